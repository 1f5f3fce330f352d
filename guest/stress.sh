#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of the stress run: guest/ima-stress.c (built on the host into
# RESULTS_DIR, as scripts/e2e does for ima-abi) runs adders, readers of
# every list file, counter loops, one writer (A/D and N, fd hand-offs to a
# child and over SCM_RIGHTS) and a flood of malformed writes at once, then
# accounts for every record. Here, evmctl and the replay check that
# everything deleted in this boot ++ the live lists at the end reproduce
# PCR 10, and the kernel log must hold no report of the kernel's checkers.
#   stress.sh RESULTS_DIR PATH(c|rust) [ima-stress options...]
# --flush is added when the kernel was booted with ima_flush_htable.
# --faults (passed on to ima-stress too): allocation failures injected into
# ima-stress's tasks. Here: debugfs is set up (failslab, fail_page_alloc,
# only for tasks marked make-it-fail, GFP_KERNEL included, silent), and
# switched off again right after the run, before the replay and the checks;
# ima-stress marks itself once its start-up is done (an exec or the initial
# snapshot under injection would just fail) and its workers inherit the
# mark. Without the kernel's fault injection, --faults fails here.
RESULTS=$1
KPATH=$2
shift 2
source "$(dirname "$0")/lib.sh"
exec > >(tee "$RESULTS/guest.log") 2>&1

STRESS=${IMA_STRESS:-$RESULTS/ima-stress}
# ima-stress's files stay in the guest while it runs: its output (OUT)
# under SCRATCH, the adders' files on a ramfs (which the tcb policy
# measures). The output is copied to RESULTS/stress at the end. Under --faults its tasks'
# allocations fail, and on the 9p results folder that broke the share for
# the rest of the boot: after a 1% run every write to it, even with the
# injection off, failed with EINVAL.
RUN=$SCRATCH/stress-run
OUT=$RUN/out
flush=n
grep -qw ima_flush_htable /proc/cmdline && flush=y
args=("$@")
if [ "$flush" = y ] && [[ " $* " != *" --flush "* ]]; then
	args+=(--flush)
fi
faults=n
[[ " $* " == *" --faults "* ]] && faults=y

# Fault injection (--faults). failslab fails 1% of the slab allocations of
# the marked tasks (every allocation is a candidate: interval 1),
# fail_page_alloc 1% of their page allocations (every order). At 5% of slab
# allocations (the first choice) an add, which makes a file and measures
# it through some hundred allocations, almost never got through: one add
# and one A/D in 60 s on the Rust e2e kernel, 359964 failures injected.
FI_PROBABILITY=(1 1)

# replay_full: ima-stress's full lists, after what earlier scripts of this
# boot deleted, against the PCR 10 values it read right after them (tools
# run since then are measured too, so a PCR read now could be ahead).
replay_full() {
	local b
	for b in sha1 sha256; do
		[ -s "$OUT/full.$b.pcr10" ] || { echo "no $OUT/full.$b.pcr10"; return 1; }
		sed -i "s/^PCR-10: .*/PCR-10: $(cat "$OUT/full.$b.pcr10")/" "$SCRATCH/pcrs-$b"
		cat "$DELETED.$b" "$OUT/full.$b" >"$SCRATCH/all.$b"
	done
	validate_both "$SCRATCH/all.sha1" "$SCRATCH/all.sha256"
}

# faults_setup: the kernel's fault injection for --faults, or why not.
# Nothing fails yet: only tasks marked make-it-fail do, and ima-stress
# marks itself. The rates go in last.
faults_setup() {
	fi_setup && fi_rates "${FI_PROBABILITY[@]}"
}

# faults_show: the settings, as the kernel reads them back.
faults_show() {
	local d a line
	for d in "${FI_ATTRS[@]}"; do
		line=
		for a in probability interval times space verbose task-filter ignore-gfp-wait \
			ignore-gfp-highmem min-order cache-filter stacktrace-depth require-start require-end \
			reject-start reject-end; do
			[ -e "$FI/$d/$a" ] && line+=" $a=$(cat "$FI/$d/$a")"
		done
		echo "INFO faults $d:$line"
	done
	echo "INFO faults: nothing injected below tpm_pcr_extend (the reject range of the stacktrace filter)"
}

# faults_off: no more failures, for the replay and the checks; the number
# injected into ima-stress's tasks, from the countdown of "times".
faults_off() {
	local d t n rc=0
	for d in "${FI_ATTRS[@]}"; do
		echo 0 >"$FI/$d/probability" || rc=1
		[ "$(cat "$FI/$d/probability")" = 0 ] || rc=1
		t=$(cat "$FI/$d/times")
		n=?
		[[ "$t" =~ ^[0-9]+$ ]] && n=$((FI_TIMES - t))
		echo "INFO faults $d: $n failures injected; probability now $(cat "$FI/$d/probability")"
	done
	return $rc
}

warm_up
"$STRESS" --help >/dev/null 2>&1 || true
mkdir -p "$OUT" "$RUN/scratch"
mount -t ramfs ramfs "$RUN/scratch" || echo "cannot mount ramfs on $RUN/scratch"
echo "INFO path=$KPATH flush=$flush faults=$faults kernel=$(uname -r) args=${args[*]}"
# Under the checkers: a record handed back to C is freed once.
add_enomem_checks
if [ "$faults" = y ]; then
	failed=$NFAIL
	check faults_setup "fault injection set up in $FI (failslab probability=${FI_PROBABILITY[0]}%, fail_page_alloc probability=${FI_PROBABILITY[1]}%, interval 1, marked tasks only)" \
		faults_setup
	if [ "$NFAIL" -ne "$failed" ]; then
		faults_off >/dev/null 2>&1
		echo "SUMMARY stress path=$KPATH flush=$flush faults=$faults: not run, the kernel's fault injection could not be set up"
		finish
		exit 1
	fi
	faults_show
	tpm_before=$(dmesg | grep -cF "Error Communicating to TPM chip")
fi
# stuck_dump PID: where each thread of a stuck ima-stress (and its
# children) waits: its state and, if it sleeps in the kernel, its stack.
stuck_dump() {
	local t
	for t in $(pgrep -f "$STRESS") ; do
		for d in /proc/"$t"/task/*; do
			echo "task ${d##*/} of $t: $(awk '{ print $3 }' "$d/stat" 2>/dev/null) wchan=$(cat "$d/wchan" 2>/dev/null)"
			sed 's/^/    /' "$d/stack" 2>/dev/null
		done
	done
}

# ima-stress must end within its run time plus 5 minutes of accounting;
# otherwise something is stuck: say where, and fail.
seconds=60
for ((i = 0; i < ${#args[@]}; i++)); do
	[ "${args[$i]}" = --seconds ] && seconds=${args[$((i + 1))]}
done
rc=0
"$STRESS" --out "$OUT" --scratch "$RUN/scratch" "${args[@]}" &
stress_pid=$!
for ((waited = 0; waited < seconds + 300; waited += 5)); do
	kill -0 "$stress_pid" 2>/dev/null || break
	sleep 5
done
if kill -0 "$stress_pid" 2>/dev/null; then
	echo "ima-stress still running after $waited s: stuck"
	stuck_dump
	pkill -KILL -f "$STRESS"
fi
wait "$stress_pid" || rc=$?
tpm_errors=0
if [ "$faults" = y ]; then
	off=0
	faults_off || off=$?
	check faults_off "fault injection switched off after the run, before the replay (probability 0)" \
		test "$off" -eq 0
	tpm_errors=$(($(dmesg | grep -cF "Error Communicating to TPM chip") - tpm_before))
	echo "INFO faults: $tpm_errors records whose PCR extend failed during the run (\"Error Communicating to TPM chip\" in the kernel log)"
fi
check stress_account "ima-stress ran and every check of its account passed (exit $rc)" \
	test "$rc" -eq 0

pcr_file sha1 >/dev/null
pcr_file sha256 >/dev/null
failed=$NFAIL
check stress_replays "everything deleted in this boot ++ the live lists at the end replays to PCR 10" \
	replay_full
replay=MATCH
[ "$NFAIL" -eq "$failed" ] || replay=FAILED
if [ "$faults" = y ]; then
	# Not a fault of the list: IMA appends a record, then extends; a
	# failed extend is reported, not undone (ima_add_template_entry).
	check faults_pcr_extends "no PCR extend failed under injection ($tpm_errors did: such a record is in the list without its extend, the replay cannot match; tpm_pcr_extend was spared: an allocation deeper than 32 frames below it?)" \
		test "$tpm_errors" -eq 0
fi
# What ima-stress deleted comes before anything a later script saves.
cat "$OUT/saved.sha1" >>"$DELETED.sha1" 2>/dev/null
cat "$OUT/saved.sha256" >>"$DELETED.sha256" 2>/dev/null

dmesg >"$SCRATCH/dmesg.txt" 2>&1
cp "$SCRATCH/dmesg.txt" "$RESULTS/dmesg.txt"
DMESG=$SCRATCH/dmesg.txt
if [ "$faults" = y ]; then
	DMESG=$SCRATCH/dmesg-checked.txt
	n=$(alloc_traces "$SCRATCH/dmesg.txt" "$DMESG")
	echo "INFO dmesg: $n call traces of allocation-failure reports left out (injected failures; verbose=0, so no FAULT_INJECTION traces)"
fi
reports=0
while IFS='|' read -r name pattern; do
	n=$(grep -cF -- "$pattern" "$DMESG")
	echo "INFO dmesg $name (\"$pattern\"): $n"
	reports=$((reports + n))
	check "dmesg_$name" "no \"$pattern\" in the kernel log" no_reports "$DMESG" "$pattern"
done <<<"$REPORTS"

account=none
seed=?
if [ -f "$OUT/report.txt" ]; then
	account=$(awk '/^CHECK .* FAIL/ { f++ } /^CHECK / { n++ } END { print n - f "/" n " checks passed" }' "$OUT/report.txt")
	seed=$(sed -n 's/^=== ima-stress account: seed=\([0-9]*\).*/\1/p' "$OUT/report.txt")
fi
cp -r "$OUT" "$RESULTS/stress" || echo "cannot copy $OUT to $RESULTS/stress"
umount "$RUN/scratch"
echo "SUMMARY stress path=$KPATH flush=$flush faults=$faults seed=$seed: ima-stress exit $rc ($account)," \
	"replay $replay, $reports kernel log reports"
finish
