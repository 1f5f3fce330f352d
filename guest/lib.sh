# SPDX-License-Identifier: GPL-2.0
# Helpers for the guest-side scripts (run as root inside the vng guest).
# Source it; the caller sets RESULTS (the shared results folder).

IMA=/sys/kernel/security/ima
GUESTDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The guest's /tmp is an overlay (vng), which the tcb policy measures:
# root's reads of files here add records (a tmpfs mounted on it does not).
SCRATCH=/tmp/ima-rs
mkdir -p "$SCRATCH"
# What the scripts of this boot deleted, in order (sha1 and sha256 lists):
# it comes before anything a later script saves when PCR 10 is replayed.
DELETED=$SCRATCH/deleted
touch "$DELETED.sha1" "$DELETED.sha256"
NPASS=0
NFAIL=0

# A process costs about a third of a second in the guest under emulation
# (TCG), a builtin next to nothing: the helpers below read text files with
# builtins.

# slurp VAR FILE: the text FILE holds, in VAR.
slurp() {
	IFS= read -r -d '' "$1" <"$2" || true
}

# show FILE...: print text files, as cat does.
show() {
	local file text
	for file; do
		slurp text "$file"
		printf '%s' "$text"
	done
}

# lines FILE: the number of lines of a text file.
lines() {
	local all
	mapfile -t all <"$1"
	echo "${#all[@]}"
}

# Checks expected to fail (comma-separated names): a failure is reported as
# XFAIL and counted as passed, a pass as XPASS and counted as failed.
XFAIL_CHECKS=

# check NAME DESCRIPTION CMD...: one result line per check.
check() {
	local name=$1 desc=$2 ok=y xfail=n
	shift 2
	case ",$XFAIL_CHECKS," in *",$name,"*) xfail=y ;; esac
	"$@" >"$SCRATCH/check.out" 2>&1 || ok=n
	case $ok$xfail in
	yn) NPASS=$((NPASS + 1)); echo "PASS $name  # $desc" ;;
	ny) NPASS=$((NPASS + 1)); echo "XFAIL $name  # $desc" ;;
	yy) NFAIL=$((NFAIL + 1)); echo "XPASS $name  # $desc (expected to fail)" ;;
	nn) NFAIL=$((NFAIL + 1)); echo "FAIL $name  # $desc" ;;
	esac
	[ "$ok" = y ] || sed 's/^/    /' "$SCRATCH/check.out"
}

# vng's init starts udevd, whose coldplug under emulation goes on for
# seconds after the guest script starts; each file it reads or runs is a
# record, added at a moment no check expects: wait for it to end.
udev_settle() {
	udevadm settle --timeout=120 || echo "INFO udevadm settle: events still queued after 120 s"
}

# Run every tool the checks use once, so that measuring them happens
# before a snapshot of the list and PCR 10, not between the two reads.
warm_up() {
	udev_settle
	evmctl --help >/dev/null 2>&1 || true
	python3 -c pass
	cat /proc/version >/dev/null
	head -c 1 /proc/version >/dev/null
	sha1sum /proc/version >/dev/null
	cmp /proc/version /proc/version
	date >/dev/null
	sleep 0
	seq 1 >/dev/null
	tail -n 1 /proc/version >/dev/null
	mkdir -p "$SCRATCH/warm" && rm -rf "$SCRATCH/warm"
	touch "$SCRATCH/warm" && rm -f "$SCRATCH/warm"
	printf '' | tee /dev/null
	grep -q . /proc/version
	wc -c </proc/version >/dev/null
	tr -d x </proc/version >/dev/null
	awk 1 /proc/version >/dev/null
	sed -n 1p /proc/version >/dev/null
	python3 "$GUESTDIR/replay.py" --help >/dev/null
	dmesg >/dev/null
}

# pcr_file BANK: the file evmctl's --pcrs takes, from sysfs (read with
# builtins, above).
pcr_file() {
	local bank=$1 i value f=$SCRATCH/pcrs-$1
	: >"$f"
	for ((i = 0; i <= 10; i++)); do
		read -r value <"/sys/class/tpm/tpm0/pcr-$bank/$i" || return 1
		printf 'PCR-%02d: %s\n' "$i" "$value" >>"$f"
	done
	echo "$f"
}

# snapshot_current: copy the current lists (sha1, sha256) and read the PCRs
# right after.
snapshot_current() {
	cat $IMA/binary_runtime_measurements >"$SCRATCH/current.sha1"
	cat $IMA/binary_runtime_measurements_sha256 >"$SCRATCH/current.sha256"
	pcr_file sha1 >/dev/null
	pcr_file sha256 >/dev/null
}

# evmctl_validate LIST: evmctl replays the binary list against PCR 10 in
# both banks (Debian's evmctl cannot read TPM 2.0 PCRs: they are handed in).
evmctl_validate() {
	local out rc=0
	out=$(evmctl ima_measurement --ignore-violations \
		--pcrs "sha1,$SCRATCH/pcrs-sha1" --pcrs "sha256,$SCRATCH/pcrs-sha256" \
		-v "$1" 2>&1) || rc=$?
	tail -n 5 <<<"$out"
	return "$rc"
}

# replay BANK LIST: the independent replay of one bank's binary list.
replay() {
	local line pcr=
	while IFS= read -r line; do
		[[ "$line" != "PCR-10: "* ]] || pcr=${line#PCR-10: }
	done <"$SCRATCH/pcrs-$1"
	python3 "$GUESTDIR/replay.py" --bank "$1" --pcr "$pcr" "$2"
}

# validate_both SHA1_LIST SHA256_LIST: evmctl and the replay of each bank,
# at the same time (seconds each under emulation; the guest has two CPUs).
validate_both() {
	local rc=0 sha1 sha256
	replay sha1 "$1" >"$SCRATCH/replay-sha1.out" 2>&1 &
	sha1=$!
	replay sha256 "$2" >"$SCRATCH/replay-sha256.out" 2>&1 &
	sha256=$!
	evmctl_validate "$1" || rc=1
	wait "$sha1" || rc=1
	wait "$sha256" || rc=1
	show "$SCRATCH/replay-sha1.out" "$SCRATCH/replay-sha256.out"
	return "$rc"
}

# add_records N: cause N new measurements (files read by root on a measured
# file system: the shared results folder).
add_records() {
	local n=$1 i d=$RESULTS/new-files
	mkdir -p "$d"
	for ((i = 1; i <= n; i++)); do
		echo "$RANDOM $i $EPOCHREALTIME" >"$d/f.$i.$RANDOM$RANDOM"
	done
	cat "$d"/f.* >/dev/null
	rm -rf "$d"
}

# prefix_of A B: file A is a prefix of file B.
prefix_of() {
	local n
	n=$(stat -c %s "$1")
	[ "$n" -le "$(stat -c %s "$2")" ] && cmp -n "$n" "$1" "$2"
}

count() {
	local n
	read -r n <$IMA/runtime_measurements_count
	echo "$n"
}

# list_bytes FILE: the bytes a measurement list file holds. securityfs
# gives its files size 0, so test -s cannot tell an empty list.
list_bytes() {
	cat "$1" | wc -c
}

# Bytes of kernel slab objects in use: active objects times object size
# (with builtins: a command takes about half a second to start under
# emulation, and the benchmark reads this a hundred times a boot).
object_bytes() {
	local name active total size rest bytes=0
	{
		read -r rest && read -r rest
		while read -r name active total size rest; do
			bytes=$((bytes + active * size))
		done
	} </proc/slabinfo
	echo "$bytes"
}

# Free what can be freed (dentries, inodes and their IMA state) so that only
# the measurement list's own memory differs between two readings.
settle() {
	local f
	sync
	echo 3 >/proc/sys/vm/drop_caches
	for f in /sys/kernel/slab/*/shrink; do echo 1 >"$f" 2>/dev/null || true; done
	sleep 1
}

# The kernel's fault injection (CONFIG_FAULT_INJECTION_DEBUG_FS with
# CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC and the stacktrace filter): slab
# and page allocations of tasks marked make-it-fail.
FI=/sys/kernel/debug
FI_ATTRS=(failslab fail_page_alloc)
# "times" counts down once per injected failure: it starts high enough
# never to run out, and what it lost is the number injected (-1, no
# limit, would count nothing).
FI_TIMES=1000000000

# fi_set NAME ATTR VALUE: write a fault-injection attribute, read it back.
fi_set() {
	local v
	echo "$3" >"$FI/$1/$2" || { echo "cannot write $3 to $FI/$1/$2"; return 1; }
	v=$(cat "$FI/$1/$2") || return 1
	[ "$v" = "$3" ] || { echo "$FI/$1/$2 reads \"$v\" after writing $3"; return 1; }
}

# sym_range FUNCTION: "START END" of FUNCTION's code (END is the next text
# symbol) in the form debugfs reads back (0x and 16 digits), from
# /proc/kallsyms, or without CONFIG_KALLSYMS from the System.map
# scripts/e2e puts beside the kernel in the results folder (the e2e
# kernels are not randomized: their addresses are the map's). FUNCTION may
# be a shell pattern, for a Rust symbol (mangled, with a hash of its crate):
# it must then match one text symbol.
sym_range() {
	local map=/proc/kallsyms d
	if [ ! -r "$map" ]; then
		for d in "$RESULTS" "$(dirname "$RESULTS")"; do
			[ ! -r "$d/System.map" ] || { map=$d/System.map; break; }
		done
	fi
	python3 - "$1" "$map" <<'PY'
import fnmatch, sys
starts, addrs = [], []
with open(sys.argv[2]) as f:
    for line in f:
        p = line.split()
        if len(p) < 3 or p[1] not in 'tT':
            continue
        a = int(p[0], 16)
        addrs.append(a)
        if fnmatch.fnmatchcase(p[2], sys.argv[1]):
            starts.append(a)
if len(starts) > 1:
    sys.exit('%s matches %d symbols in %s' % (sys.argv[1], len(starts), sys.argv[2]))
start = starts[0] if starts else 0
end = min((a for a in addrs if a > start), default=0) if start else 0
if not end:
    sys.exit('%s not found in %s (or its addresses are hidden)' % (sys.argv[1], sys.argv[2]))
print('0x%016x 0x%016x' % (start, end))
PY
}

# fi_setup [FUNCTION]: fault injection ready for marked tasks, nothing
# failing yet (probability 0). With FUNCTION, only allocations whose call
# chain runs through it; never below tpm_pcr_extend (a record whose
# extend failed stays in the list without it: no replay can match).
fi_setup() {
	local d req="0x0000000000000000 0xffffffffffffffff" rej
	if ! grep -q " $FI debugfs " /proc/mounts; then
		mount -t debugfs debugfs "$FI" || { echo "cannot mount debugfs at $FI"; return 1; }
	fi
	for d in "${FI_ATTRS[@]}"; do
		[ -e "$FI/$d/require-start" ] || {
			echo "no $FI/$d/require-start: the kernel lacks CONFIG_FAULT_INJECTION_DEBUG_FS, CONFIG_FAILSLAB, CONFIG_FAIL_PAGE_ALLOC or CONFIG_FAULT_INJECTION_STACKTRACE_FILTER"
			return 1
		}
	done
	[ -w /proc/self/make-it-fail ] || { echo "no /proc/self/make-it-fail to write"; return 1; }
	[ -z "${1:-}" ] || req=$(sym_range "$1") || return 1
	rej=$(sym_range tpm_pcr_extend) || return 1
	for d in "${FI_ATTRS[@]}"; do
		fi_set "$d" probability 0 &&
		fi_set "$d" interval 1 &&
		fi_set "$d" task-filter Y &&
		fi_set "$d" verbose 0 &&
		fi_set "$d" ignore-gfp-wait N &&
		fi_set "$d" space 0 &&
		fi_set "$d" times "$FI_TIMES" &&
		fi_set "$d" stacktrace-depth 32 &&
		fi_set "$d" require-start "${req% *}" &&
		fi_set "$d" require-end "${req#* }" &&
		fi_set "$d" reject-start "${rej% *}" &&
		fi_set "$d" reject-end "${rej#* }" || return 1
	done
	fi_set fail_page_alloc ignore-gfp-highmem N &&
	fi_set fail_page_alloc min-order 0 || return 1
	if [ -e "$FI/failslab/cache-filter" ]; then
		fi_set failslab cache-filter N || return 1
	fi
}

# fi_rates SLAB_PERCENT PAGE_PERCENT: the probabilities, set last.
fi_rates() {
	fi_set failslab probability "$1" && fi_set fail_page_alloc probability "$2"
}

# fi_injected: failures injected since fi_setup, both kinds.
fi_injected() {
	local d t n=0
	for d in "${FI_ATTRS[@]}"; do
		t=$(cat "$FI/$d/times") && [[ "$t" =~ ^[0-9]+$ ]] || return 1
		n=$((n + FI_TIMES - t))
	done
	echo "$n"
}

# add_refused_for_memory FUNCTION N: N new files are read by one task whose
# allocations fail where their call chain runs through FUNCTION. At least
# one add must be refused for memory (where FUNCTION allocates on every
# add, all are; a Rust list allocates a chunk every 507 records, and from
# the first refused add on the rest fail at the same position). A refused
# record must be missing and every other there once, IMA must log
# cause=ENOMEM, and a read without faults must then leave every file's
# record there once.
add_refused_for_memory() {
	local fn=$1 n=$2 d=$RESULTS/enomem-$1 i f files=() injected once refused logged stamp
	local t0=$SECONDS
	mkdir -p "$d"
	# One stamp for all the files: a command substitution forks, which costs
	# about a third of a second under TCG.
	stamp=$(date +%s%N)
	for ((i = 1; i <= n; i++)); do
		f=$d/f.$i.$stamp
		echo "$f" >"$f"
		files+=("$f")
	done
	fi_setup "$fn" && fi_rates 100 100 || return 1
	sh -c 'echo 1 >/proc/self/make-it-fail && exec cat "$@"' - "${files[@]}" >/dev/null &
	if ! wait_or_dump $! 120; then
		fi_rates 0 0
		return 1
	fi
	fi_rates 0 0 || return 1
	injected=$(fi_injected) || return 1
	read -r once refused < <(records_of "${files[@]}" | awk '
		$1 == 1 { o++ } $1 == 0 { r++ } $1 > 1 { print "twice: " $2 >"/dev/stderr" }
		END { print o + 0, r + 0 }')
	logged=$(dmesg | grep -F "cause=ENOMEM" | grep -cF "$d/")
	echo "$n files read with allocations under $fn failing: $once added, $refused refused for memory; $injected allocations failed; $logged audit lines with cause=ENOMEM for them"
	[ "$refused" -ge 1 ] && [ $((once + refused)) -eq "$n" ] && [ "$injected" -ge 1 ] &&
		[ "$logged" -ge 1 ] || return 1
	cat "${files[@]}" >/dev/null
	read -r once < <(records_of "${files[@]}" | awk '$1 == 1 { o++ } END { print o + 0 }')
	echo "after a read without faults: $once of $n there once ($((SECONDS - t0)) s in all)"
	[ "$once" -eq "$n" ]
}

# wait_or_dump PID SECONDS: wait for PID; if it runs longer, print where it
# waits in the kernel, switch the fault injection off, give it 30 s more and
# say whether it finished then; fail either way.
wait_or_dump() {
	local pid=$1 end=$((SECONDS + $2))
	# Bounded by the clock: under TCG each `sleep` costs a third of a second.
	while [ "$SECONDS" -lt "$end" ]; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" || echo "the reader under injection exited $?"
		return 0
	fi
	echo "the reader under injection still runs after $2 s: state $(awk '{ print $3 }' "/proc/$pid/stat"), wchan $(cat "/proc/$pid/wchan"), kernel stack:"
	sed 's/^/    /' "/proc/$pid/stack"
	fi_rates 0 0
	end=$((SECONDS + 30))
	while [ "$SECONDS" -lt "$end" ]; do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "still running 30 s after the injection was switched off: killed"
		kill -KILL "$pid"
	else
		echo "it finished once the injection was switched off"
	fi
	wait "$pid"
	return 1
}

# records_of FILE...: "COUNT FILE" per file, the records of the current
# ascii list that name it.
records_of() {
	printf '%s\n' "$@" | awk 'NR == FNR { want[$0] = 0; next }
		($NF in want) { want[$NF]++ }
		END { for (f in want) print want[f], f }' - $IMA/ascii_runtime_measurements
}

# add_enomem_checks: an add refused for memory, made to happen (the first
# allocation under ima_list_add, both paths; on the Rust path also the
# XArray store of the list's append, which must hand the record back to C).
add_enomem_checks() {
	check add_enomem "an add whose allocations under ima_list_add fail leaves no record; the next read adds it once" \
		add_refused_for_memory ima_list_add 3
	echo "INFO add_enomem: $(paste -sd ' ' "$SCRATCH/check.out")"
	[ "$KPATH" = rust ] || return 0
	# A push allocates only for the first position of a chunk (507): 520
	# files reach one, and every add from there on is refused.
	check add_enomem_chunk "an add whose list chunk cannot be allocated (under RecordList::push) leaves no record; the next read adds it once" \
		add_refused_for_memory '_R*6ima_rs4list*10RecordList4push' 520
	echo "INFO add_enomem_chunk: $(paste -sd ' ' "$SCRATCH/check.out")"
}

# The kernel log lines that count as a report: name|fixed string.
REPORTS='kasan|KASAN
bug|BUG:
warning|WARNING:
lockdep|possible circular locking
rcu|suspicious RCU usage
ubsan|UBSAN
call_trace|Call Trace
rust_panic|rust_panic
panicked|panicked
deprecated_wq|enqueued on deprecated workqueue'
# Their names, for the descriptions of checks.
REPORT_NAMES=$(cut -d'|' -f1 <<<"$REPORTS" | paste -sd ' ')

# no_reports LOG PATTERN: the kernel log LOG has no line with PATTERN.
no_reports() {
	local n
	n=$(grep -cF -- "$2" "$1")
	[ "$n" -eq 0 ] && return 0
	echo "$n lines with \"$2\", the first ones:"
	grep -F -- "$2" "$1" | head -n 20
	return 1
}

# alloc_traces IN OUT: IN without the "Call Trace" of allocation-failure
# reports (warn_alloc: "vmalloc error: ..." from a failed thread stack,
# "page allocation failure: ..."), which injected failures cause; prints
# how many were left out. Any other trace stays.
alloc_traces() {
	awk -v out="$2" '
		/vmalloc error: |page allocation failure: / { hdr = NR }
		/Call Trace/ && hdr && NR - hdr <= 10 { n++; hdr = 0; next }
		{ print >out }
		END { printf "%d\n", n }' "$1"
}

# kernel_log_clean: the kernel log of this boot so far holds no report of
# any kind (the call traces of allocation failures aside); the log is kept
# in the results folder. One grep for every pattern; each is counted apart
# only when one is there.
kernel_log_clean() {
	local name pattern rc=0 patterns=()
	dmesg >"$SCRATCH/dmesg.txt" 2>&1 || return 1
	cp "$SCRATCH/dmesg.txt" "$RESULTS/dmesg.txt"
	alloc_traces "$SCRATCH/dmesg.txt" "$SCRATCH/dmesg-checked.txt" >/dev/null
	while IFS='|' read -r name pattern; do
		patterns+=(-e "$pattern")
	done <<<"$REPORTS"
	grep -qF "${patterns[@]}" "$SCRATCH/dmesg-checked.txt" || return 0
	while IFS='|' read -r name pattern; do
		no_reports "$SCRATCH/dmesg-checked.txt" "$pattern" || rc=1
	done <<<"$REPORTS"
	return "$rc"
}

finish() {
	echo "$NPASS passed, $NFAIL failed"
	[ "$NFAIL" -eq 0 ]
	echo $? >"$RESULTS/rc"
}
