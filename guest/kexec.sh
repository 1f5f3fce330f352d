#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of the kexec cases. First kernel: measure, stage (A, no D),
# measure more, save both lists, kexec_file_load the same kernel and kexec
# into it. Second kernel (the same command runs again): its list must start
# with the staged records, then the current ones, then its own, and replay
# to PCR 10, which kexec does not reset.
#   kexec.sh RESULTS_DIR PATH
RESULTS=$1
KPATH=$2
source "$(dirname "$0")/lib.sh"
KERNEL=${RESULTS}/bzImage

first_kernel() {
	exec > >(tee "$RESULTS/guest-first.log") 2>&1
	warm_up
	kexec --version >/dev/null 2>&1 || true
	add_records 3
	exec 3<>$IMA/binary_runtime_measurements_staged
	echo A >&3
	exec 3>&-
	add_records 4
	cat $IMA/binary_runtime_measurements_staged >"$RESULTS/staged.sha1"
	cat $IMA/binary_runtime_measurements >"$RESULTS/current.sha1"
	echo "INFO first kernel: $(python3 "$GUESTDIR/replay.py" "$RESULTS/staged.sha1" | awk '{ print $3 }') staged, $(count) current records"
	touch "$RESULTS/kexec-started"
	kexec -s -l "$KERNEL" --reuse-cmdline || { echo "FAIL kexec_load"; echo 1 >"$RESULTS/rc"; return; }
	sync
	kexec -e
	echo "FAIL kexec -e returned"
	echo 1 >"$RESULTS/rc"
}

# The second kernel's list begins with the first kernel's staged records,
# then its current ones, byte for byte.
carried_in_order() {
	local n
	cat "$RESULTS/staged.sha1" "$RESULTS/current.sha1" >"$SCRATCH/carried.sha1"
	n=$(wc -c <"$SCRATCH/carried.sha1")
	echo "first kernel: $n bytes of records; second kernel's list: $(wc -c <"$SCRATCH/current.sha1") bytes"
	cmp -n "$n" "$SCRATCH/carried.sha1" "$SCRATCH/current.sha1"
}

nothing_staged() {
	[ "$(list_bytes $IMA/binary_runtime_measurements_staged)" -eq 0 ]
}

second_kernel() {
	exec > >(tee "$RESULTS/guest.log") 2>&1
	warm_up
	snapshot_current
	echo "INFO second kernel: $(count) records"
	check kexec_carried_in_order "staged records, then current ones, lead the new list" carried_in_order
	check kexec_nothing_staged "the new kernel starts with nothing staged" nothing_staged
	check kexec_list_replays "the carried list replays to PCR 10" \
		validate_both "$SCRATCH/current.sha1" "$SCRATCH/current.sha256"
	finish
}

if [ -e "$RESULTS/kexec-started" ]; then
	second_kernel
else
	first_kernel
fi
