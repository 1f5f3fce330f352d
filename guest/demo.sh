#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of scripts/demo: move the measurement list out of the kernel
# with ima-keeper (stage with prompt) and show that nothing was lost.
#   demo.sh RESULTS_DIR PATH(c|rust)
# The keeper is $RESULTS/ima-keeper (scripts/e2e puts it there).
RESULTS=$1
KPATH=$2
source "$(dirname "$0")/lib.sh"
exec > >(tee "$RESULTS/guest.log") 2>&1
KEEPER=$RESULTS/ima-keeper
ARCHIVE=$SCRATCH/archive
mkdir -p "$ARCHIVE"

warm_up
add_records 200
# Twice: the first round also frees what creating the files left behind.
settle
settle
before=$(object_bytes)
echo "INFO Running kernel $(uname -r), $KPATH implementation of the measurement list."
echo "INFO The kernel holds $(count) measurement records; slab objects in use: $((before / 1024)) kB."

# ima-keeper stages the list (A), archives _staged durably in both banks
# and only then deletes it (D). The archive is on tmpfs: not measured.
staged=
if "$KEEPER" export --archive "$ARCHIVE" --stage >"$SCRATCH/export.out"; then
	staged=$(sed -n 's/^exported (stage): \([1-9][0-9]*\) records archived.*/\1/p' "$SCRATCH/export.out")
fi
if [ -z "$staged" ]; then
	cat "$SCRATCH/export.out"
	echo "VERDICT FAIL: ima-keeper export archived nothing."
	echo 1 >"$RESULTS/rc"
	exit 1
fi
echo "INFO ima-keeper export --stage: staged the whole list (A), archived $staged records in both banks, deleted them (D)."
settle
after=$(object_bytes)
echo "INFO The kernel now holds $(count) records; slab objects in use: $((after / 1024)) kB ($(((before - after) / staged)) bytes freed per deleted record)."

add_records 5
echo "INFO Five new files were measured; the kernel holds $(count) records."
"$KEEPER" status --archive "$ARCHIVE" | grep -E '^records|^last export' | sed 's/^/INFO ima-keeper status: /'
"$KEEPER" cat --archive "$ARCHIVE" --binary --bank sha1 >"$SCRATCH/all.sha1"
# The PCRs right after the full log was read, for evmctl and the replay.
pcr_file sha1 >/dev/null
pcr_file sha256 >/dev/null
verified=0
"$KEEPER" verify --archive "$ARCHIVE" >"$SCRATCH/verify.out" || verified=$?
sed 's/^/INFO ima-keeper verify: /' "$SCRATCH/verify.out"
if [ "$verified" -eq 0 ] && evmctl_validate "$SCRATCH/all.sha1" && replay sha1 "$SCRATCH/all.sha1"; then
	echo "INFO ima-keeper verify, evmctl and an independent replay: archive ++ live reproduces the TPM's PCR 10."
	echo "VERDICT PASS: the list left the kernel and still verifies against the TPM."
	echo 0 >"$RESULTS/rc"
else
	echo "VERDICT FAIL: archive ++ live does not reproduce PCR 10."
	echo 1 >"$RESULTS/rc"
fi
