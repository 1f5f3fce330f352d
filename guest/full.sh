#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# One boot, both guest suites: e2e.sh (TPM, replay, stage with prompt), then
# conformance.sh (the ABI cases).  Ends with their summed counts.
#   full.sh RESULTS_DIR PATH [ima-abi options...]
RESULTS=$1
KPATH=$2
shift 2
GUESTDIR=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$RESULTS/e2e" "$RESULTS/conformance"
"$GUESTDIR/e2e.sh" "$RESULTS/e2e" "$KPATH"
IMA_ABI=$RESULTS/ima-abi "$GUESTDIR/conformance.sh" "$RESULTS/conformance" "$KPATH" "$@"
cat "$RESULTS"/e2e/guest.log "$RESULTS"/conformance/guest.log >"$RESULTS/guest.log"
# Each suite's own closing line is its last "N passed, N failed".
for log in "$RESULTS"/e2e/guest.log "$RESULTS"/conformance/guest.log; do
	grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1
done | awk '{ p += $1; f += $3; n++ }
	END { print p " passed, " f " failed"; exit (n == 2 && f == 0) ? 0 : 1 }' |
	tee -a "$RESULTS/guest.log"
echo "${PIPESTATUS[1]}" >"$RESULTS/rc"
