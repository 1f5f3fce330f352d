#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of the ABI conformance suite: guest/ima-abi.c (built on the
# host into RESULTS_DIR by scripts/e2e) runs every syscall-level case, then evmctl and the replay
# check that everything the suite saved ++ the live lists reproduce PCR 10.
# On a kernel without export/delete, ima-keeper (which scripts/e2e builds
# for those boots) must refuse to export and say why.
#   conformance.sh RESULTS_DIR PATH [ima-abi options...]
# The names given to ima-abi's --xfail may include archive_replays, the
# check made here.
RESULTS=$1
KPATH=$2
shift 2
source "$(dirname "$0")/lib.sh"
XFAIL_CHECKS=$(sed -n 's/.*--xfail \([^ ]*\).*/\1/p' <<<"$*")
exec > >(tee "$RESULTS/guest.log") 2>&1

ABI=${IMA_ABI:-$RESULTS/ima-abi}
flush=n
grep -qw ima_flush_htable /proc/cmdline && flush=y
staging=y
[ -e $IMA/binary_runtime_measurements_staged ] || staging=n

# keeper_nostaging: on this kernel ima-keeper export fails in both flavours
# and status notes it, each naming CONFIG_IMA_STAGING=n; nothing changes.
keeper_nostaging() {
	local keeper=$RESULTS/ima-keeper dir=$SCRATCH/keeper out=$SCRATCH/keeper.out flavour
	local why='kernel without export/delete \(CONFIG_IMA_STAGING=n\)'
	mkdir -p "$dir"
	cat $IMA/ascii_runtime_measurements >"$SCRATCH/keeper-before"
	for flavour in --keep=0 --stage; do
		if "$keeper" export --archive "$dir" "$flavour" >"$out" 2>&1; then
			cat "$out"
			echo "export $flavour succeeded"
			return 1
		fi
		echo "export $flavour: $(<"$out")"
		grep -qE "$why" "$out" || return 1
	done
	"$keeper" status --archive "$dir" >"$out" 2>&1 || { cat "$out"; return 1; }
	cat "$out"
	grep -qE "^note: .*$why" "$out" || return 1
	cat $IMA/ascii_runtime_measurements >"$SCRATCH/keeper-after"
	prefix_of "$SCRATCH/keeper-before" "$SCRATCH/keeper-after"
}

warm_up
"$ABI" --help >/dev/null 2>&1 || true
mkdir -p "$RESULTS/scratch"
echo "INFO path=$KPATH staging=$staging flush=$flush kernel=$(uname -r)"
rc=0
"$ABI" --scratch "$RESULTS/scratch" --staging=$staging --flush=$flush \
	--save "$SCRATCH/archive" "$@" | tee "$SCRATCH/abi.out" || rc=$?
snapshot_current
abi_line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$SCRATCH/abi.out" | tail -n 1)
NPASS=$(awk '{ print $1 }' <<<"$abi_line")
NFAIL=$(awk '{ print $3 }' <<<"$abi_line")
[ -n "$abi_line" ] || NFAIL=1

cat "$DELETED.sha1" "$SCRATCH/archive" >"$SCRATCH/all.sha1"
cat "$DELETED.sha256" "$SCRATCH/archive.sha256" >"$SCRATCH/all.sha256"
# PCR 10 as ima-abi read it right after the lists: with ima_flush_htable a
# tool that runs again after the flush is measured again, so a PCR read
# now could be ahead of the archive.
sed -i "s/^PCR-10: .*/PCR-10: $(cat "$SCRATCH/archive.pcr10")/" "$SCRATCH/pcrs-sha1"
sed -i "s/^PCR-10: .*/PCR-10: $(cat "$SCRATCH/archive.sha256.pcr10")/" "$SCRATCH/pcrs-sha256"
check archive_replays "everything deleted in this boot ++ the live lists replays to PCR 10" \
	validate_both "$SCRATCH/all.sha1" "$SCRATCH/all.sha256"
if [ "$staging" = n ]; then
	check keeper_nostaging "ima-keeper export (both flavours) fails and status notes that the kernel lacks export/delete (CONFIG_IMA_STAGING=n)" \
		keeper_nostaging
	sed -n 's/^\(export .*\|note: .*\)/INFO ima-keeper: \1/p' "$SCRATCH/check.out"
fi
check kernel_log_clean "the kernel log holds no report ($REPORT_NAMES)" \
	kernel_log_clean
[ "$rc" -eq 0 ] || [ "$NFAIL" -gt 0 ] || NFAIL=1
finish
