#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of the ima-keeper tests (issue 15), with adders measuring new
# files on the results folder (measured; /tmp is not):
#  - delete-N, then stage: `ima-keeper run` killed with SIGKILL at random
#    moments (seeded) and restarted, KILLS times per flavour; then a final
#    export, and archive ++ live must be every record since boot, once, in
#    order, and replay to PCR 10 in both banks;
#  - a full archive file system (ext4 on a loop device, or a small tmpfs if
#    the kernel has neither): the export fails, reports it, deletes nothing;
#    once space is freed the next export succeeds;
#  - Keylime's verifier code accepts the keeper's full ascii log against PCR
#    10 and rejects the live list alone;
#  - a reader holding ascii_runtime_measurements open: the keeper says so in
#    one line, retries, and exports once the reader closes;
#  - the view (FUSE), when the kernel has FUSE.
#   keeper.sh RESULTS_DIR PATH(c|rust) [--seed N] [--kills N]
# The keeper is $RESULTS/ima-keeper (scripts/e2e puts it there) or else
# keeper/target/release/ima-keeper; Keylime is the venv scripts/setup makes
# in the cache (KEYLIME_PY overrides).
RESULTS=$1
KPATH=$2
shift 2
# shellcheck source=guest/lib.sh
source "$(dirname "$0")/lib.sh"
exec > >(tee "$RESULTS/guest.log") 2>&1

SEED=$(date +%s)
KILLS=60
while [ $# -gt 0 ]; do
	case "$1" in
	--seed) SEED=$2; shift 2 ;;
	--kills) KILLS=$2; shift 2 ;;
	*) echo "keeper.sh: unknown argument: $1"; shift ;;
	esac
done
RANDOM=$SEED

PROJ=$(cd "$GUESTDIR/.." && pwd)
KEEPER=$RESULTS/ima-keeper
[ -x "$KEEPER" ] || KEEPER=$PROJ/keeper/target/release/ima-keeper
KEYLIME_PY=${KEYLIME_PY:-$(dirname "$RESULTS")/keylime-venv/bin/python}
# On tmpfs: the tcb policy does not measure the keeper reading its archive.
ARCHIVE=$SCRATCH/archive
ADDDIR=$RESULTS/adders
CREATED=$SCRATCH/created
SMALL=$SCRATCH/small
VIEW=$SCRATCH/view
ADDERS=()
ROUND=0
TOTAL_KILLS=0
mkdir -p "$ARCHIVE" "$ADDDIR"
: >"$CREATED"

# rand_sleep MAX_MS: sleep a random time below MAX_MS milliseconds.
rand_sleep() {
	local ms=$((RANDOM % $1))
	sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
}

# adder ID: until told to stop, create a new file on the measured results
# folder, read it (one record) and note "ID PATH" in $CREATED.
adder() {
	local id=$1 i=0 f
	while [ ! -e "$SCRATCH/stop-adders" ]; do
		i=$((i + 1))
		f=$ADDDIR/r$ROUND.a$id.$i
		echo "$ROUND $id $i" >"$f"
		cat "$f" >/dev/null
		echo "$ROUND.$id $f" >>"$CREATED"
		sleep 0.02
	done
}

start_adders() {
	local id
	ROUND=$((ROUND + 1))
	rm -f "$SCRATCH/stop-adders"
	for id in 1 2; do
		adder "$id" &
		ADDERS+=($!)
	done
}

stop_adders() {
	touch "$SCRATCH/stop-adders"
	[ ${#ADDERS[@]} -eq 0 ] || wait "${ADDERS[@]}"
	ADDERS=()
}

# kill_loop LOG N ARGS...: N times, start `ima-keeper run ARGS` with a low
# threshold, SIGKILL it after a random time below 1.5 s, and start it again.
# KILLED counts the keepers that died of the SIGKILL (not of an error).
kill_loop() {
	local log=$1 n=$2 k pid rc
	shift 2
	KILLED=0
	for ((k = 1; k <= n; k++)); do
		"$KEEPER" run --archive "$ARCHIVE" --interval 1 --threshold-records 10 "$@" >>"$log" 2>&1 &
		pid=$!
		rand_sleep 1500
		kill -9 "$pid" 2>/dev/null
		rc=0
		wait "$pid" 2>/dev/null || rc=$?
		[ "$rc" -ne 137 ] || KILLED=$((KILLED + 1))
	done
	TOTAL_KILLS=$((TOTAL_KILLS + KILLED))
	echo "killed $KILLED of $n keepers (seed $SEED)"
	[ "$KILLED" -eq "$n" ]
}

# keeper_phase TAG ARGS...: adders on, the kill loop with flavour ARGS,
# adders off, a final export.
keeper_phase() {
	local tag=$1
	shift
	start_adders
	check "${tag}_kills" "ima-keeper run $* killed with SIGKILL at random moments and restarted $KILLS times, adders running" \
		kill_loop "$SCRATCH/keeper-$tag.log" "$KILLS" "$@"
	stop_adders
	check "${tag}_final_export" "a last ima-keeper export $* succeeds" \
		"$KEEPER" export --archive "$ARCHIVE" "$@"
	local log=$SCRATCH/keeper-$tag.log
	echo "INFO $tag: $KILLED kills (seed $SEED); $(grep -c '^exported' "$log") exports, $(grep -c 'dropped the uncommitted bytes' "$log") restarts found an interrupted append, $(grep -cE ': 0 records archived, [1-9][0-9]* deleted' "$log") found records archived but not deleted; $("$KEEPER" status --archive "$ARCHIVE" | grep -E '^records (archived|since boot)' | tr '\n' ';')"
}

# full_log TAG: the keeper's full log in both banks and as ascii, then the
# PCR files of lib.sh.
full_log() {
	"$KEEPER" cat --archive "$ARCHIVE" --binary --bank sha1 >"$SCRATCH/$1.sha1" &&
		"$KEEPER" cat --archive "$ARCHIVE" --binary --bank sha256 >"$SCRATCH/$1.sha256" &&
		"$KEEPER" cat --archive "$ARCHIVE" --ascii >"$SCRATCH/$1.ascii" &&
		pcr_file sha1 >/dev/null && pcr_file sha256 >/dev/null
}

# live_records: records in the kernel's lists, staged and current.
live_records() {
	cat "$IMA/ascii_runtime_measurements_staged" "$IMA/ascii_runtime_measurements" | wc -l
}

# deleted_some TAG: the kernel deleted records the full log holds, the
# archive holds them.
deleted_some() {
	local full live archived
	full=$(wc -l <"$SCRATCH/$1.ascii")
	live=$(live_records)
	archived=$("$KEEPER" status --archive "$ARCHIVE" | sed -n 's/^records archived: //p')
	echo "full log $full records, live $live, archived $archived"
	[ "$live" -lt "$full" ] && [ "${archived:-0}" -ge $((full - live)) ]
}

# boot_prefix TAG: what the kernel listed at the start is a prefix of the
# full log, in both binary lists and in the ascii one (the keeper renders
# records as the kernel does).
boot_prefix() {
	local bank n
	for bank in sha1 sha256; do
		n=$(stat -c %s "$SCRATCH/boot.$bank")
		[ "$n" -gt 0 ] || { echo "empty boot list"; return 1; }
		cmp -n "$n" "$SCRATCH/boot.$bank" "$SCRATCH/$1.$bank" || return 1
	done
	n=$(wc -l <"$SCRATCH/boot.ascii")
	head -n "$n" "$SCRATCH/$1.ascii" | cmp - "$SCRATCH/boot.ascii"
}

# files_once TAG MODE: every file the adders created is in the full ascii
# log once (MODE once), or each adder's files are in the order it made them
# (MODE order); at least 100 files.
files_once() {
	awk -v mode="$2" '
		NR == FNR { k[$1]++; seq[$1, k[$1]] = $2; want[$2] = 1; files++; next }
		($NF in want) { n[$NF]++; at[$NF] = FNR }
		END {
			for (f in want) if (n[f] != 1 && bad++ < 5) print f ": " n[f] + 0 " records"
			for (a in k) for (i = 2; i <= k[a]; i++)
				if (at[seq[a, i]] <= at[seq[a, i - 1]] && late++ < 5)
					print seq[a, i] " is not after " seq[a, i - 1]
			printf "%d files, %d not once, %d out of order\n", files, bad, late
			exit !(files >= 100 && (mode == "once" ? bad == 0 : late == 0))
		}' "$CREATED" "$SCRATCH/$1.ascii"
}

# keeper_verify: `ima-keeper verify` says OK for both banks.
keeper_verify() {
	local out
	out=$("$KEEPER" verify --archive "$ARCHIVE") || { echo "$out"; return 1; }
	echo "$out"
	[ "$(grep -cE '^sha(1|256): PCR 10 matches' <<<"$out")" -eq 2 ]
}

# full_log_checks TAG: the full log is every record since boot, once, in
# order, and replays.
full_log_checks() {
	local tag=$1
	check "${tag}_full_log" "ima-keeper cat gives the full log in both banks and as ascii" full_log "$tag"
	check "${tag}_deleted" "records were deleted from the kernel and the archive holds them" deleted_some "$tag"
	check "${tag}_boot_prefix" "the lists at the start are a prefix of archive ++ live (binary, both banks, and ascii)" \
		boot_prefix "$tag"
	check "${tag}_files_once" "every file the adders measured is in archive ++ live exactly once" files_once "$tag" once
	check "${tag}_files_in_order" "each adder's files are in archive ++ live in the order it measured them" \
		files_once "$tag" order
	check "${tag}_verify" "ima-keeper verify replays archive ++ live to PCR 10 in both banks" keeper_verify
	check "${tag}_replay" "evmctl and the independent replay validate archive ++ live against PCR 10" \
		validate_both "$SCRATCH/$tag.sha1" "$SCRATCH/$tag.sha256"
}

# small_fs KIB: a file system of KIB KiB on $SMALL: ext4 on a loop device
# if the kernel has both, else tmpfs with that size limit.
small_fs() {
	local kib=$1
	mkdir -p "$SMALL"
	if grep -qw ext4 /proc/filesystems && [ -e /dev/loop-control ]; then
		truncate -s "${kib}K" "$SCRATCH/small.img" &&
			mkfs.ext4 -q -F -m 0 -O ^has_journal "$SCRATCH/small.img" &&
			mount -o loop "$SCRATCH/small.img" "$SMALL" || return 1
		echo "ext4 on a loop device, $kib KiB"
	else
		mount -t tmpfs -o "size=${kib}k" tmpfs "$SMALL" || return 1
		echo "tmpfs of $kib KiB (the kernel has no loop device or no ext4)"
	fi
}

# fill_up: fill $SMALL until writes fail.
fill_up() {
	local bs
	for bs in 65536 4096 512 1; do
		dd if=/dev/zero of="$SMALL/filler.$bs" bs="$bs" 2>/dev/null
	done
	df -k "$SMALL" | tail -n 1
	! echo x >"$SMALL/probe" 2>/dev/null || ! sync "$SMALL/probe" 2>/dev/null
}

# export_refused FLAVOUR_ARG: an export into the full archive fails and
# says why; the kernel still holds its first record and every record.
export_refused() {
	local first count out=$SCRATCH/full-export.out
	first=$(head -n 1 "$IMA/ascii_runtime_measurements")
	count=$(live_records)
	if "$KEEPER" export --archive "$SMALL/archive" "$1" >"$out" 2>&1; then
		cat "$out"
		echo "the export succeeded on a full file system"
		return 1
	fi
	cat "$out"
	grep -q 'No space left on device' "$out" || { echo "no ENOSPC reported"; return 1; }
	[ "$(live_records)" -ge "$count" ] || { echo "records left the kernel: $count, now $(live_records)"; return 1; }
	[ "$1" != --stage ] || [ "$(list_bytes "$IMA/ascii_runtime_measurements_staged")" -gt 0 ] ||
		{ echo "nothing left staged after the stage flavour's failure"; return 1; }
	[ "$1" = --stage ] || [ "$(head -n 1 "$IMA/ascii_runtime_measurements")" = "$first" ] ||
		{ echo "the first live record changed: deleted"; return 1; }
	echo "still live: $(live_records) records (were $count), the first unchanged"
}

# small_archive_complete: archive ++ live on the full file system still
# verifies (nothing deleted that it lacks).
small_archive_complete() {
	"$KEEPER" verify --archive "$SMALL/archive"
}

# export_after_freeing: with space again, the stage export settles what the
# failed one left staged, archives and deletes.
export_after_freeing() {
	rm -f "$SMALL"/filler.* "$SMALL/probe"
	"$KEEPER" export --archive "$SMALL/archive" --stage | tee "$SCRATCH/free-export.out" || return 1
	grep -qE '^exported \(stage\): [1-9][0-9]* records archived' "$SCRATCH/free-export.out" &&
		[ "$(list_bytes "$IMA/ascii_runtime_measurements_staged")" -eq 0 ] &&
		"$KEEPER" verify --archive "$SMALL/archive"
}

full_disk_phase() {
	local kib
	add_records 30
	kib=$(($(du -sk "$ARCHIVE" | cut -f1) * 2 + 1024))
	check small_fs "a small file system for the archive" small_fs "$kib"
	if ! grep -q " $SMALL " /proc/mounts; then
		# Never fill the guest's own /tmp.
		check full_disk "the full-disk checks need the small file system" false
		return
	fi
	sed 's/^/INFO archive file system: /' "$SCRATCH/check.out"
	mkdir -p "$SMALL/archive"
	cp -a "$ARCHIVE/." "$SMALL/archive/"
	check full_disk_filled "the archive's file system is filled until writes fail" fill_up
	check full_disk_refused "export (delete-N) into the full archive fails, reports ENOSPC and deletes nothing" \
		export_refused --keep=0
	check full_disk_stage_refused "export (stage) into the full archive fails after A, reports ENOSPC, leaves the records staged" \
		export_refused --stage
	check full_disk_complete "archive ++ live still verifies: nothing was deleted that the archive lacks" \
		small_archive_complete
	check full_disk_recovers "with space freed, the next export settles the staged records and succeeds" \
		export_after_freeing
	# Back to the unmeasured archive for the rest.
	rm -rf "$ARCHIVE" && cp -a "$SMALL/archive" "$ARCHIVE"
	umount "$SMALL"
}

# keylime EXPECT LIST: Keylime's verifier code on LIST against PCR 10 as
# read before LIST was taken (a quote may lag the list, not lead it).
keylime() {
	"$KEYLIME_PY" "$GUESTDIR/keylime_check.py" --expect "$1" \
		--pcr "sha1:$PCR_SHA1" --pcr "sha256:$PCR_SHA256" "$2"
}

# keylime_lists: PCR 10, then the keeper's full ascii log, the live list,
# and the view's file if it is mounted.
keylime_lists() {
	PCR_SHA1=$(cat /sys/class/tpm/tpm0/pcr-sha1/10) &&
		PCR_SHA256=$(cat /sys/class/tpm/tpm0/pcr-sha256/10) &&
		"$KEEPER" cat --archive "$ARCHIVE" --ascii >"$SCRATCH/keylime-full.ascii" &&
		cat "$IMA/ascii_runtime_measurements" >"$SCRATCH/keylime-live.ascii" || return 1
	if [ -n "${VIEW_PID:-}" ]; then
		cat "$VIEW/ascii_runtime_measurements" >"$SCRATCH/keylime-view.ascii" || return 1
	fi
	wc -l "$SCRATCH"/keylime-*.ascii
}

# live_alone_rejected: the live list is shorter than the full log (records
# were deleted), and Keylime rejects it.
live_alone_rejected() {
	local full live
	full=$(wc -l <"$SCRATCH/keylime-full.ascii")
	live=$(wc -l <"$SCRATCH/keylime-live.ascii")
	echo "live list $live records, full log $full"
	[ "$live" -lt "$full" ] && keylime reject "$SCRATCH/keylime-live.ascii"
}

# verdicts: Keylime's verdict lines of the last check, as INFO.
verdicts() {
	grep '^keylime ' "$SCRATCH/check.out" | sed "s/^/INFO $1: /"
}

# view_start: `ima-keeper view` mounted on $VIEW, or 1.
view_start() {
	mkdir -p "$VIEW"
	"$KEEPER" view --archive "$ARCHIVE" "$VIEW" >"$SCRATCH/view.log" 2>&1 &
	VIEW_PID=$!
	local i
	for i in $(seq 100); do
		grep -q " $VIEW fuse" /proc/mounts && return 0
		kill -0 "$VIEW_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$SCRATCH/view.log"
	VIEW_PID=
	return 1
}

# prefix_of A B: file A is a prefix of file B.
prefix_of() {
	local n
	n=$(stat -c %s "$1")
	[ "$n" -le "$(stat -c %s "$2")" ] && cmp -n "$n" "$1" "$2"
}

# view_matches: each file of the view, read once, lies between the keeper's
# full log taken before it and the one taken after it: it holds every
# record of the first, and nothing the second lacks. (A root read of a
# FUSE file is measured again at every open, since the kernel cannot tell
# whether it changed: reading the view adds records of its own.)
view_matches() {
	local f
	full_log before || return 1
	cp "$VIEW/binary_runtime_measurements" "$SCRATCH/view.sha1" &&
		cp "$VIEW/binary_runtime_measurements_sha256" "$SCRATCH/view.sha256" &&
		cp "$VIEW/ascii_runtime_measurements" "$SCRATCH/view.ascii" || return 1
	full_log after || return 1
	for f in sha1 sha256 ascii; do
		echo "$f: full log before $(stat -c %s "$SCRATCH/before.$f") bytes, view $(stat -c %s "$SCRATCH/view.$f"), after $(stat -c %s "$SCRATCH/after.$f")"
		prefix_of "$SCRATCH/before.$f" "$SCRATCH/view.$f" &&
			prefix_of "$SCRATCH/view.$f" "$SCRATCH/after.$f" || return 1
	done
}

# view_stop: SIGTERM unmounts the view and the keeper exits 0.
view_stop() {
	local rc=0
	kill -TERM "$VIEW_PID" || return 1
	wait "$VIEW_PID" || rc=$?
	VIEW_PID=
	cat "$SCRATCH/view.log"
	[ "$rc" -eq 0 ] && ! grep -q " $VIEW " /proc/mounts
}

keylime_phase() {
	local pid
	start_adders
	"$KEEPER" run --archive "$ARCHIVE" --interval 1 --threshold-records 10 --keep=3 \
		>"$SCRATCH/keeper-keylime.log" 2>&1 &
	pid=$!
	sleep 3
	check keylime_lists "PCR 10, then the full log, the live list (and the view's file)" keylime_lists
	check keylime_accepts_full "Keylime's process_measurement_list accepts the keeper's full ascii log against PCR 10 (both banks)" \
		keylime accept "$SCRATCH/keylime-full.ascii"
	verdicts "full log"
	check keylime_rejects_live "Keylime rejects the live list alone (PCR 10 mismatch)" live_alone_rejected
	verdicts "live list"
	if [ -n "${VIEW_PID:-}" ]; then
		check keylime_accepts_view "Keylime accepts the view's ascii_runtime_measurements, read while the keeper exports and adders add" \
			keylime accept "$SCRATCH/keylime-view.ascii"
		verdicts "view"
	fi
	kill -TERM "$pid"
	wait "$pid"
	stop_adders
}

# busy_reported: while fd 3 holds ascii_runtime_measurements, an export in
# the background reports the busy files and has not finished.
busy_reported() {
	sleep 3
	cat "$SCRATCH/busy.err"
	grep -qE "ima-keeper: $IMA/[a-z_0-9]+: busy, a reader holds the measurement files open .*; retry 1 of" "$SCRATCH/busy.err" &&
		kill -0 "$BUSY_PID"
}

# busy_export_done: once the reader closed, the export finishes, archives
# and deletes.
busy_export_done() {
	wait "$BUSY_PID" || { cat "$SCRATCH/busy.out" "$SCRATCH/busy.err"; return 1; }
	cat "$SCRATCH/busy.out"
	grep -qE '^exported \(stage\): [1-9][0-9]* records archived, [1-9][0-9]* deleted' "$SCRATCH/busy.out"
}

coexistence_phase() {
	add_records 20
	exec 3<"$IMA/ascii_runtime_measurements"
	# Not inherited by the keeper: it would hold the reader open itself.
	"$KEEPER" export --archive "$ARCHIVE" --stage --busy-retries 30 --busy-delay-ms 100 \
		>"$SCRATCH/busy.out" 2>"$SCRATCH/busy.err" 3<&- &
	BUSY_PID=$!
	check busy_reported "while a reader holds ascii_runtime_measurements, the keeper says so in one line and retries" \
		busy_reported
	exec 3<&-
	check busy_export_done "after the reader closes, the export completes" busy_export_done
	grep -m 1 'busy' "$SCRATCH/busy.err" | sed 's/^/INFO the keeper said: /'
}

warm_up
"$KEEPER" --version >/dev/null 2>&1 || true
echo "INFO path=$KPATH kernel=$(uname -r) keeper=$KEEPER seed=$SEED kills per flavour=$KILLS"
check keeper_binary "the ima-keeper binary is there (scripts/e2e builds it)" test -x "$KEEPER"
check tpm_device "/dev/tpm0 exists" test -c /dev/tpm0
check staging "the kernel has export/delete (_staged files)" test -e "$IMA/binary_runtime_measurements_staged"
# What the kernel lists before anything is deleted: all since boot.
cat "$IMA/binary_runtime_measurements" >"$SCRATCH/boot.sha1"
cat "$IMA/binary_runtime_measurements_sha256" >"$SCRATCH/boot.sha256"
cat "$IMA/ascii_runtime_measurements" >"$SCRATCH/boot.ascii"

keeper_phase deleten --keep=5
full_log_checks deleten
keeper_phase stage --stage
full_log_checks stage
check kills_total "at least 100 SIGKILLs over the run" test "$TOTAL_KILLS" -ge 100

full_disk_phase

if grep -qw fuse /proc/filesystems && [ -c /dev/fuse ]; then
	check view_mounted "ima-keeper view mounts the view" view_start
else
	echo "SKIP view  # the kernel has no FUSE (CONFIG_FUSE_FS=n)"
fi
keylime_phase
coexistence_phase
full_log_checks final
if [ -n "${VIEW_PID:-}" ]; then
	check view_matches "each view file read is the keeper's full log as of that read: what the kernel had before it, and no record it lacks after" view_matches
	sed 's/^/INFO view: /' "$SCRATCH/check.out"
	check view_unmounts "SIGTERM unmounts the view; it exits 0" view_stop
fi
check kernel_log_clean "the kernel log holds no report (KASAN, BUG, WARNING, lockdep, RCU, UBSAN, call trace, Rust panic)" \
	kernel_log_clean
echo "INFO keeper: $TOTAL_KILLS kills (seed $SEED); $("$KEEPER" status --archive "$ARCHIVE" | grep -E '^records (archived|since boot)' | tr '\n' ';')"
rm -rf "$ADDDIR"
finish
