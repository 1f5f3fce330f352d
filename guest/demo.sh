#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of scripts/demo: move the measurement list out of the kernel
# with stage with prompt and show that nothing was lost.
#   demo.sh RESULTS_DIR PATH(c|rust)
RESULTS=$1
KPATH=$2
source "$(dirname "$0")/lib.sh"
exec > >(tee "$RESULTS/guest.log") 2>&1

warm_up
add_records 200
# Twice: the first round also frees what creating the files left behind.
settle
settle
before=$(object_bytes)
echo "INFO Running kernel $(uname -r), $KPATH implementation of the measurement list."
echo "INFO The kernel holds $(count) measurement records; slab objects in use: $((before / 1024)) kB."

exec 3<>$IMA/binary_runtime_measurements_staged
echo A >&3
cat <&3 >"$SCRATCH/saved.sha1"
staged=$(python3 "$GUESTDIR/replay.py" "$SCRATCH/saved.sha1" | awk '{ print $3 }')
echo "INFO Staged the whole list (A) and saved $staged records ($(wc -c <"$SCRATCH/saved.sha1") bytes) to user space."
echo D >&3
exec 3>&-
settle
after=$(object_bytes)
echo "INFO Deleted them from the kernel (D): it now holds $(count) records; slab objects in use: $((after / 1024)) kB ($(((before - after) / staged)) bytes freed per deleted record)."

add_records 5
snapshot_current
echo "INFO Five new files were measured; the kernel holds $(count) records."
cat "$SCRATCH/saved.sha1" "$SCRATCH/current.sha1" >"$SCRATCH/all.sha1"
if evmctl_validate "$SCRATCH/all.sha1" && replay sha1 "$SCRATCH/all.sha1"; then
	echo "INFO evmctl and an independent replay: saved ++ current reproduces the TPM's PCR 10."
	echo "VERDICT PASS: the list left the kernel and still verifies against the TPM."
	echo 0 >"$RESULTS/rc"
else
	echo "VERDICT FAIL: saved ++ current does not reproduce PCR 10."
	echo 1 >"$RESULTS/rc"
fi
