#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of the memory measurement: kernel slab bytes per live record and
# per deleted record (what the digest table keeps) around adding N records and
# deleting them with A + D, counted two ways: the bytes of the slab objects in
# use (/proc/slabinfo: active objects times object size, after every cache
# is shrunk) and the slab pages the kernel holds (SUnreclaim in /proc/meminfo,
# which only drops when whole slab pages empty).
#   memory.sh RESULTS_DIR PATH(c|rust) [N]
RESULTS=$1
KPATH=$2
N=${3:-5000}
source "$(dirname "$0")/lib.sh"
exec > >(tee "$RESULTS/guest.log") 2>&1

unreclaimable_kb() {
	awk '/^SUnreclaim:/ { print $2 }' /proc/meminfo
}

stage_and_delete() {
	exec 3<>$IMA/binary_runtime_measurements_staged
	echo A >&3
	echo D >&3
	exec 3>&-
}

# rewrite_and_read TAG N: one file rewritten and read back N times: every
# content is a new measurement (TAG keeps rounds apart: the digest table
# refuses an event it has seen), and no inode per record blurs the reading
# (creating files on the shared folder costs seconds each under emulation).
rewrite_and_read() {
	python3 - "$RESULTS/memory-file" "$1" "$2" <<'PY'
import sys
path, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    with open(path, "w") as f:
        f.write(f"{tag} {i}\n")
    with open(path) as f:
        f.read()
PY
}

warm_up
# The lists as this kernel shows them, for scripts/compare-lists.
cat $IMA/binary_runtime_measurements >"$RESULTS/binary.sha1"
cat $IMA/ascii_runtime_measurements >"$RESULTS/ascii.txt"
# A first round warms up everything but the records themselves; deleting
# it leaves the measured round alone in the list.
rewrite_and_read warm-up 50
stage_and_delete
settle
before=$(count)
s0=$(unreclaimable_kb)
o0=$(object_bytes)
rewrite_and_read measured "$N"
settle
added=$(($(count) - before))
s1=$(unreclaimable_kb)
o1=$(object_bytes)
stage_and_delete
settle
s2=$(unreclaimable_kb)
o2=$(object_bytes)
left=$(count)

flush=default
grep -qw ima_flush_htable /proc/cmdline && flush=ima_flush_htable
echo "INFO $KPATH path ($flush), $added records added, then all deleted ($left left)"
echo "INFO slab objects: $o0 B before, $o1 B with the records, $o2 B after deleting them"
echo "INFO SUnreclaim: $s0 kB before, $s1 kB with the records, $s2 kB after deleting them"
echo "MEMORY path=$KPATH $flush objects: live=$(((o1 - o0) / added)) deleted=$(((o2 - o0) / added)) B/record;" \
	"pages: live=$(((s1 - s0) * 1024 / added)) deleted=$(((s2 - s0) * 1024 / added)) B/record"
rm -f "$RESULTS/memory-file"
[ "$added" -ge "$N" ] && [ "$left" -lt 10 ]
echo $? >"$RESULTS/rc"
