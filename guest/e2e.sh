#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of `scripts/e2e`: the TPM is there, the list replays to PCR 10
# (evmctl and an independent replay), and after stage with prompt (A, read
# _staged, D) plus new records, saved ++ current still replays.
#   e2e.sh RESULTS_DIR PATH(c|rust)
RESULTS=$1
KPATH=$2
source "$(dirname "$0")/lib.sh"
exec > >(tee "$RESULTS/guest.log") 2>&1

boot_aggregate_nonzero() {
	local agg
	agg=$(head -n 1 $IMA/ascii_runtime_measurements | awk '{ print $4 }')
	echo "boot_aggregate: $agg"
	[ "$(awk '{ print $5 }' <<<"$(head -n 1 $IMA/ascii_runtime_measurements)")" = boot_aggregate ] &&
		[ -n "${agg#*:}" ] && ! grep -qE ':0+$' <<<"$agg"
}

implementation_selected() {
	if [ "$KPATH" = rust ]; then
		dmesg | grep 'ima: Rust measurement list selected'
	else
		! dmesg | grep 'Rust measurement list'
	fi
}

must_fail() {
	! "$@"
}

stage_save_delete() {
	# One writer open of each _staged file: A, read it back, D.
	exec 3<>$IMA/binary_runtime_measurements_staged ||
		return 1
	exec 4<>$IMA/binary_runtime_measurements_sha256_staged || return 1
	echo A >&3 || return 1
	cat <&3 >"$SCRATCH/saved.sha1"
	cat <&4 >"$SCRATCH/saved.sha256"
	echo D >&3 || return 1
	exec 3>&- 4>&-
	cat "$SCRATCH/saved.sha1" >>"$DELETED.sha1"
	cat "$SCRATCH/saved.sha256" >>"$DELETED.sha256"
	echo "staged and saved $(python3 "$GUESTDIR/replay.py" --bank sha1 "$SCRATCH/saved.sha1" | awk '{ print $3 }') records"
	# What the current list holds now was added after A: its records name
	# the files read meanwhile.
	echo "current list after D ($(count) records):"
	show $IMA/ascii_runtime_measurements
	[ -s "$SCRATCH/saved.sha1" ] && [ "$(count)" -lt 5 ]
}

warm_up
echo "INFO path=$KPATH kernel=$(uname -r)"
check tpm_device "/dev/tpm0 exists" test -c /dev/tpm0
check implementation "the selected implementation is the one running" implementation_selected
check boot_aggregate "the first record is a non-zero boot_aggregate" boot_aggregate_nonzero

snapshot_current
check list_replays "evmctl and the replay validate the whole list against PCR 10" \
	validate_both "$SCRATCH/current.sha1" "$SCRATCH/current.sha256"

check stage_with_prompt "A on _staged, read it back, D" stage_save_delete
add_enomem_checks
add_records 5
snapshot_current
cat "$SCRATCH/saved.sha1" "$SCRATCH/current.sha1" >"$SCRATCH/all.sha1"
cat "$SCRATCH/saved.sha256" "$SCRATCH/current.sha256" >"$SCRATCH/all.sha256"
check saved_plus_current "saved ++ current validates against PCR 10" \
	validate_both "$SCRATCH/all.sha1" "$SCRATCH/all.sha256"
check current_alone_fails "current alone does not (the check can fail)" \
	must_fail replay sha1 "$SCRATCH/current.sha1"

finish
