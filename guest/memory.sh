#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of the memory measurement: kernel slab bytes per live record and
# per deleted record (what the digest table keeps), from SUnreclaim in
# /proc/meminfo around adding N records and deleting them with A + D.
#   memory.sh RESULTS_DIR PATH(c|rust) [N]
RESULTS=$1
KPATH=$2
N=${3:-4000}
source "$(dirname "$0")/lib.sh"
exec > >(tee "$RESULTS/guest.log") 2>&1

unreclaimable_kb() {
	awk '/^SUnreclaim:/ { print $2 }' /proc/meminfo
}

# Free what can be freed (dentries, inodes and their IMA state) so that only
# the measurement list's own memory differs between two readings.
settle() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	sleep 1
}

stage_and_delete() {
	exec 3<>$IMA/binary_runtime_measurements_staged
	echo A >&3
	echo D >&3
	exec 3>&-
}

warm_up
# The lists as this kernel shows them, for scripts/compare-lists.
cat $IMA/binary_runtime_measurements >"$RESULTS/binary.sha1"
cat $IMA/ascii_runtime_measurements >"$RESULTS/ascii.txt"
stage_and_delete
add_records 10
settle
before=$(count)
s0=$(unreclaimable_kb)
add_records "$N"
settle
added=$(($(count) - before))
s1=$(unreclaimable_kb)
stage_and_delete
settle
s2=$(unreclaimable_kb)
left=$(count)

live=$(((s1 - s0) * 1024 / added))
deleted=$(((s2 - s0) * 1024 / added))
echo "INFO $KPATH path, cmdline: $(cat /proc/cmdline | grep -o 'ima_flush_htable' || echo 'default')"
echo "INFO SUnreclaim: ${s0} kB before, ${s1} kB with $added more records, ${s2} kB after deleting them ($left left)"
echo "MEMORY path=$KPATH records=$added live_bytes_per_record=$live deleted_bytes_per_record=$deleted"
[ "$added" -ge "$N" ] && [ "$left" -lt 10 ]
echo $? >"$RESULTS/rc"
