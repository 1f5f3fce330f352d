#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of scripts/bench: for each round and list size, kernel memory
# per live and per deleted record, whole-list read times, and the times of
# A, the read of _staged, D and N with the worst add latency during each
# and, to compare it with, the worst of as many adds right after each and
# the longest stall of a thread that only reads the clock for a second
# (guest/ima-bench.c). Adds go to one file on a ramfs (measured by the tcb
# policy), rewritten with a new content per record. A read figure is the
# second of two passes over the list (ima-bench prints the first as
# first_seconds).
#   bench.sh RESULTS_DIR PATH(c|rust) ROUNDS SIZE...
# With a TPM (swtpm) it measures the rate of adds, whose every extend is a
# TPM command, and the memory per record (IMA keeps a digest per bank the
# TPM allocates): everything else is measured in boots without one, where
# lists fill a hundred times faster. With ima_flush_htable there is no N,
# and no read is timed (the lists are the same as without it).
# Every figure is a line "BENCH round=R n=SIZE METRIC VALUE", or
# "BENCH round=R n=SIZE METRIC FAILED" when it could not be measured.
RESULTS=$1
KPATH=$2
ROUNDS=$3
shift 3
SIZES=("$@")
source "$(dirname "$0")/lib.sh"
exec > >(tee "$RESULTS/guest.log") 2>&1

BENCH=$RESULTS/ima-bench
FILE=$SCRATCH/bench/f
mode=tpm
[ -e /dev/tpm0 ] || mode=notpm
flush=n
grep -qw ima_flush_htable /proc/cmdline && flush=y
# The figures of a flushing boot, and the memory figures of a boot with a
# TPM, have names of their own.
suffix=
[ "$flush" = n ] || suffix=_flush
[ "$mode" = notpm ] || suffix=_tpm
rc=0

# figure R N METRIC VALUE: one result line (VALUE empty: failed).
figure() {
	if [ -n "$4" ]; then
		echo "BENCH round=$1 n=$2 $3 $4"
	else
		echo "BENCH round=$1 n=$2 $3 FAILED"
		rc=1
	fi
}

# field KEY LINE: the value of KEY=VALUE in LINE.
field() {
	local w
	for w in $2; do
		[ "${w%%=*}" != "$1" ] || { echo "${w#*=}"; return; }
	done
}

# bench_run ARGS...: ima-bench's output, shown and left in OUT; fails if
# ima-bench did.
bench_run() {
	local rc=0
	OUT=$("$BENCH" "$@") || rc=$?
	echo "$OUT"
	return "$rc"
}

# empty_list: A and D with nothing else running, so a size starts alone
# (A refuses an empty list: nothing to do then).
empty_list() {
	[ "$(count)" -gt 0 ] || return 0
	exec 3<>$IMA/binary_runtime_measurements_staged || return 1
	echo A >&3 && echo D >&3
	local r=$?
	exec 3>&-
	return $r
}

# one_size R N: every figure of one round at one size.
one_size() {
	local r=$1 n=$2 o0 o1 o2 live staged= after line b s
	empty_list || { figure "$r" "$n" empty ""; return; }
	settle_timed
	o0=$(object_bytes)
	bench_run fill "$FILE" "$n" || { figure "$r" "$n" "adds_per_s$suffix" ""; return; }
	figure "$r" "$n" "adds_per_s$suffix" "$(field per_second "$OUT")"
	settle_timed
	o1=$(object_bytes)
	live=$(((o1 - o0) / n))
	figure "$r" "$n" "live_bytes$suffix" "$live"
	if [ "$mode" = tpm ]; then
		staged=$(count)
		empty_list || { figure "$r" "$n" deleted_bytes_tpm ""; return; }
		settle_timed
		o2=$(object_bytes)
		figure "$r" "$n" deleted_bytes_tpm "$(((o2 - o0 - $(count) * live) / staged))"
		return
	fi
	for b in binary ascii; do
		[ "$flush" = n ] || break
		for s in 4096 65536; do
			if bench_run read "$b" "$s"; then
				figure "$r" "$n" "read_${b}_$((s / 1024))k_s" "$(field seconds "$OUT")"
			else
				figure "$r" "$n" "read_${b}_$((s / 1024))k_s" ""
			fi
		done
	done
	# The guest's own stalls, for the worst add latencies below.
	if [ "$flush" = n ]; then
		if bench_run stall 1; then
			figure "$r" "$n" stall_us "$(field worst_us "$OUT")"
		else
			figure "$r" "$n" stall_us ""
		fi
	fi
	if ! bench_run stage "$FILE"; then
		figure "$r" "$n" "A_s$suffix" ""
		return
	fi
	while IFS= read -r line; do
		case "$line" in
		"CMD op="[AD]" "*)
			figure "$r" "$n" "$(field op "$line")_s$suffix" "$(field seconds "$line")"
			figure "$r" "$n" "$(field op "$line")_worst_add_us$suffix" "$(field worst_add_us "$line")"
			figure "$r" "$n" "$(field op "$line")_idle_worst_add_us$suffix" "$(field idle_worst_add_us "$line")"
			figure "$r" "$n" "$(field op "$line")_after_worst_add_us$suffix" "$(field after_worst_add_us "$line")"
			;;
		"READ what=staged "*)
			staged=$(field records "$line")
			[ "$flush" = n ] || continue
			figure "$r" "$n" read_staged_64k_s "$(field seconds "$line")"
			;;
		esac
	done <<<"$OUT"
	settle_timed
	o2=$(object_bytes)
	# The records added while A and D ran are live: their bytes are not
	# the deleted records'. Staged were the N records and the adds before A.
	after=$(count)
	if [ "${staged:-0}" -ge "$n" ]; then
		figure "$r" "$n" "deleted_bytes$suffix" "$(((o2 - o0 - after * live) / staged))"
	else
		figure "$r" "$n" "deleted_bytes$suffix" ""
	fi
	[ "$flush" = n ] || return
	bench_run fill "$FILE" "$n" || { figure "$r" "$n" N_s ""; return; }
	if bench_run delete "$FILE"; then
		line=$(grep '^CMD op=N ' <<<"$OUT")
		figure "$r" "$n" N_s "$(field seconds "$line")"
		figure "$r" "$n" N_worst_add_us "$(field worst_add_us "$line")"
		figure "$r" "$n" N_idle_worst_add_us "$(field idle_worst_add_us "$line")"
		figure "$r" "$n" N_after_worst_add_us "$(field after_worst_add_us "$line")"
	else
		figure "$r" "$n" N_s ""
	fi
}

# The checks' warm_up (lib.sh) runs some twenty tools that this script
# never starts, about 30 seconds of a boot under emulation. Inside a round
# it starts ima-bench, grep, sync and sleep: the first two are measured
# here, sync and sleep by the first settle, before the first reading of
# the slab.
udev_settle
"$BENCH" 2>/dev/null || true
grep -q . /proc/version
# The lists as this kernel shows them, for scripts/compare-lists.
cat $IMA/binary_runtime_measurements >"$RESULTS/binary.sha1"
cat $IMA/ascii_runtime_measurements >"$RESULTS/ascii.txt"
mkdir -p "$SCRATCH/bench"
mount -t ramfs ramfs "$SCRATCH/bench" || { echo "cannot mount ramfs on $SCRATCH/bench"; rc=1; }
echo "INFO path=$KPATH mode=$mode flush=$flush kernel=$(uname -r) cpus=$(nproc)" \
	"memory=$(awk '/^MemTotal:/ { print $2 " kB" }' /proc/meminfo) rounds=$ROUNDS sizes=${SIZES[*]} uptime=$(cut -d" " -f1 /proc/uptime)"
echo "INFO lists:" $IMA/binary_runtime_measurements*
# Where a boot's time goes: each size's seconds, and the part of them
# spent settling (bash's clock, in microseconds: no command to start,
# which costs about half a second under emulation).
settle_timed() {
	local t0=${EPOCHREALTIME/./}
	settle
	SETTLE_US=$((SETTLE_US + ${EPOCHREALTIME/./} - t0))
}
for ((round = 1; round <= ROUNDS; round++)); do
	for n in "${SIZES[@]}"; do
		t0=$SECONDS
		SETTLE_US=0
		one_size "$round" "$n"
		echo "INFO round=$round n=$n seconds=$((SECONDS - t0)) settling=$((SETTLE_US / 1000000))"
	done
done
echo "$rc" >"$RESULTS/rc"
