#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
# Guest side of the ima-keeper tests (issue 15), with adders measuring new
# files on the results folder, and the archive on a tmpfs of its own:
#  - delete-N, then stage: `ima-keeper run` SIGKILLed at each point between
#    two steps of an export (IMA_KEEPER_PAUSE_AT), TARGETED times per point,
#    each restart reporting what it reconciled; then killed at random moments
#    (seeded) and restarted, KILLS times per flavour; then a final export,
#    and archive ++ live must be every record since boot, once, in order,
#    and replay to PCR 10 in both banks;
#  - bad archives (missing, on a read-only mount, a flipped byte, a
#    truncated tail): each export fails, names the problem, deletes nothing;
#    without a TPM (hidden in a mount namespace) verify refuses, status says;
#  - a full archive file system (ext4 on a loop device): the export fails,
#    reports it, deletes nothing; once space is freed the next export
#    succeeds;
#  - Keylime's verifier code accepts the keeper's full ascii log against PCR
#    10 and rejects the live list alone;
#  - a reader holding ascii_runtime_measurements open: the keeper says so in
#    one line, retries, and exports once the reader closes;
#  - the view (FUSE), when the kernel has FUSE.
#   keeper.sh RESULTS_DIR PATH(c|rust) [--seed N] [--kills N] [--targeted N]
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
KILLS=42
TARGETED=3
while [ $# -gt 0 ]; do
	case "$1" in
	--seed) SEED=$2; shift 2 ;;
	--kills) KILLS=$2; shift 2 ;;
	--targeted) TARGETED=$2; shift 2 ;;
	*) echo "keeper.sh: unknown argument: $1"; shift ;;
	esac
done
RANDOM=$SEED

PROJ=$(cd "$GUESTDIR/.." && pwd)
KEEPER=$RESULTS/ima-keeper
[ -x "$KEEPER" ] || KEEPER=$PROJ/keeper/target/release/ima-keeper
KEYLIME_PY=${KEYLIME_PY:-$(dirname "$RESULTS")/keylime-venv/bin/python}
# The archive and its damaged copies on a tmpfs of their own: the tcb
# policy does not measure tmpfs, so the keeper reading them adds no records
# (the guest's /tmp is an overlay, which it measures).
KEEPDIR=$SCRATCH/keeper
ARCHIVE=$KEEPDIR/archive
ADDDIR=$RESULTS/adders
CREATED=$SCRATCH/created
SMALL=$SCRATCH/small
VIEW=$SCRATCH/view
PAUSED=$SCRATCH/paused.fifo
ADDERS=()
ROUND=0
TOTAL_KILLS=0
mkdir -p "$KEEPDIR" "$ADDDIR"
mount -t tmpfs ima-keeper "$KEEPDIR"
mkdir "$ARCHIVE"
: >"$CREATED"
mkfifo "$PAUSED"

# The loops below sleep with a builtin (a process costs a third of a second
# here, lib.sh): `read -t` on a pipe that never has data.
exec {NAP_FD}<> <(:)
nap() {
	read -r -t "$1" -u "$NAP_FD" _ || true
}

# rand_sleep MAX_MS: sleep a random time below MAX_MS milliseconds.
rand_sleep() {
	local ms=$((RANDOM % $1)) s
	printf -v s '%d.%03d' $((ms / 1000)) $((ms % 1000))
	nap "$s"
}

# phase NAME ARGS...: run NAME ARGS... and say how long it took.
phase() {
	local start=$SECONDS
	"$@"
	echo "INFO time: $1 ${2:-} $((SECONDS - start)) s (at $SECONDS s)"
}

# info LABEL [GLOB]: the lines of the last check's output that match GLOB
# (every line without it), as "INFO LABEL: " lines.
info() {
	local line
	while IFS= read -r line; do
		# shellcheck disable=SC2053 # GLOB is a pattern
		[[ "$line" != ${2:-*} ]] || echo "INFO $1: $line"
	done <"$SCRATCH/check.out"
}

# adder ID: until told to stop, create a new file on the measured results
# folder, open it for reading (root's read: one record; a redirection, not
# a process) and note "ID PATH" in $CREATED.
adder() {
	local id=$1 i=0 f
	while [ ! -e "$SCRATCH/stop-adders" ]; do
		i=$((i + 1))
		f=$ADDDIR/r$ROUND.a$id.$i
		echo "$ROUND $id $i" >"$f"
		: <"$f"
		echo "$ROUND.$id $f" >>"$CREATED"
		nap 0.2
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

# What an export reports having found of an interrupted one (ima-keeper's
# export.rs and archive/verify.rs), by letter: d an append not committed
# (its bytes dropped), a records archived but not deleted, s records left
# staged; and how the counts name them.
FOUND_LETTER=(d a s)
FOUND_TEXT=("dropped the uncommitted bytes of an interrupted append"
	"live records are archived already" "records were left staged by an earlier export")
FOUND_LABEL=("dropped an uncommitted append" "found records archived but not deleted"
	"found records left staged")
# The points an export of each flavour passes (IMA_KEEPER_PAUSE_AT) and what
# the next export must find after a SIGKILL there.
declare -A PAUSES=([deleten]="read: append:d durable:a" [stage]="read: stage:s append:ds durable:as")

# found TEXT: the letters of what the export messages in TEXT report.
found() {
	local i letters=
	for i in "${!FOUND_TEXT[@]}"; do
		[[ "$1" != *"${FOUND_TEXT[i]}"* ]] || letters+=${FOUND_LETTER[i]}
	done
	echo "$letters"
}

# describe LETTERS: what the LETTERS of FOUND_LETTER name, or "nothing".
describe() {
	local i out=
	for i in "${!FOUND_LETTER[@]}"; do
		[[ "$1" != *"${FOUND_LETTER[i]}"* ]] || out+="${out:+ and }${FOUND_LABEL[i]}"
	done
	echo "${out:-nothing}"
}

# count_found LOG: how many keepers logged each message of FOUND_TEXT.
count_found() {
	local line i sep='' counts=()
	while IFS= read -r line; do
		for i in "${!FOUND_TEXT[@]}"; do
			[[ "$line" != *"${FOUND_TEXT[i]}"* ]] || counts[i]=$((${counts[i]:-0} + 1))
		done
	done <"$1"
	for i in "${!FOUND_TEXT[@]}"; do
		printf '%s%s %s' "$sep" "${FOUND_LABEL[i]}" "${counts[i]:-0}"
		sep=', '
	done
}

# starting FILE PREFIX: how many lines of FILE start with PREFIX.
starting() {
	local line n=0
	while IFS= read -r line; do
		[[ "$line" != "$2"* ]] || n=$((n + 1))
	done <"$1"
	echo "$n"
}

# status_line NAME: the value of status's "NAME: " line.
status_line() {
	local line
	while IFS= read -r line; do
		[[ "$line" != "$1: "* ]] || echo "${line#"$1: "}"
	done < <("$KEEPER" status --archive "$ARCHIVE")
}

# kill_loop LOG N ARGS...: N times, start `ima-keeper run ARGS` with a low
# threshold, SIGKILL it after a random time below 0.8 s, and start it again.
# KILLED counts the keepers that died of the SIGKILL (not of an error).
kill_loop() {
	local log=$1 n=$2 k pid rc
	shift 2
	KILLED=0
	for ((k = 1; k <= n; k++)); do
		"$KEEPER" run --archive "$ARCHIVE" --interval 1 --threshold-records 10 "$@" >>"$log" 2>&1 &
		pid=$!
		rand_sleep 800
		kill -9 "$pid" 2>/dev/null
		rc=0
		wait "$pid" 2>/dev/null || rc=$?
		[ "$rc" -ne 137 ] || KILLED=$((KILLED + 1))
	done
	TOTAL_KILLS=$((TOTAL_KILLS + KILLED))
	echo "killed $KILLED of $n keepers (seed $SEED)"
	[ "$KILLED" -eq "$n" ]
}

# paused_kill LOG STEP EXPECT ARGS...: start `ima-keeper run ARGS` with
# IMA_KEEPER_PAUSE_AT=STEP, SIGKILL it once it says it paused there (within
# 60 s), then restart it as `ima-keeper export ARGS`, which reconciles as
# run's first export does and exits: it must succeed and report exactly
# what the kill left (EXPECT: letters of FOUND_TEXT).
paused_kill() {
	local log=$1 step=$2 expect=$3 pid fd line rc=0 paused=n said got
	local want="ima-keeper: paused at $step (IMA_KEEPER_PAUSE_AT)"
	shift 3
	IMA_KEEPER_PAUSE_AT=$step "$KEEPER" run --archive "$ARCHIVE" --interval 1 --threshold-records 10 "$@" \
		>>"$log" 2>"$PAUSED" &
	pid=$!
	exec {fd}<"$PAUSED"
	while read -r -t 60 -u "$fd" line; do
		echo "$line" >>"$log"
		[ "$line" != "$want" ] || { paused=y; break; }
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null || rc=$?
	exec {fd}<&-
	[ "$paused" = y ] || { echo "$step: no \"$want\" within 60 s (the keeper's exit: $rc)"; return 1; }
	[ "$rc" -eq 137 ] || { echo "$step: the keeper exited $rc, not of the SIGKILL"; return 1; }
	TOTAL_KILLS=$((TOTAL_KILLS + 1))
	rc=0
	"$KEEPER" export --archive "$ARCHIVE" "$@" >"$SCRATCH/restart.out" 2>&1 || rc=$?
	slurp said "$SCRATCH/restart.out"
	printf '%s' "$said" >>"$log"
	got=$(found "$said")
	[ "$rc" -eq 0 ] && [ "$got" = "$expect" ] && return 0
	printf '%s' "$said"
	echo "$step: the restart exited $rc and reported: $(describe "$got"); expected exit 0 and: $(describe "$expect")"
	return 1
}

# paused_kills LOG STEP EXPECT ARGS...: paused_kill TARGETED times.
paused_kills() {
	local log=$1 step=$2 expect=$3 k
	shift 3
	for ((k = 1; k <= TARGETED; k++)); do
		paused_kill "$log" "$step" "$expect" "$@" || return 1
	done
	echo "$TARGETED keepers paused at $step and were SIGKILLed; each restart reported: $(describe "$expect")"
}

# keeper_phase TAG ARGS...: adders on; for each pause point of the flavour
# (ARGS), keepers killed there; then the random kill loop; adders off; a
# final export.
keeper_phase() {
	local tag=$1 point step expect log random
	shift
	random=$SCRATCH/keeper-$tag-random.log
	start_adders
	for point in ${PAUSES[$tag]}; do
		step=${point%%:*}
		expect=${point#*:}
		log=$SCRATCH/keeper-$tag-paused-$step.log
		check "${tag}_paused_$step" "ima-keeper run $* paused at $step (IMA_KEEPER_PAUSE_AT) and SIGKILLed there $TARGETED times, each restart (export) exited 0 and reported exactly: $(describe "$expect"); adders running" \
			paused_kills "$log" "$step" "$expect" "$@"
		echo "INFO $tag paused at $step: $(starting "$log" 'ima-keeper: paused at ') kills; restarts: $(count_found "$log")"
	done
	check "${tag}_kills" "ima-keeper run $* killed with SIGKILL at random moments and restarted $KILLS times, adders running" \
		kill_loop "$random" "$KILLS" "$@"
	stop_adders
	check "${tag}_final_export" "a last ima-keeper export $* succeeds" \
		"$KEEPER" export --archive "$ARCHIVE" "$@"
	echo "INFO $tag random kills: $KILLED (seed $SEED), $(starting "$random" exported) exports; restarts: $(count_found "$random")"
	echo "INFO $tag: $(status_line 'records since boot') records since boot, $(status_line 'records archived') archived"
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
	echo $(($(lines "$IMA/ascii_runtime_measurements_staged") + $(lines "$IMA/ascii_runtime_measurements")))
}

# deleted_some TAG: the kernel deleted records the full log holds, the
# archive holds them.
deleted_some() {
	local full live archived
	full=$(lines "$SCRATCH/$1.ascii")
	live=$(live_records)
	archived=$(status_line 'records archived')
	echo "full log $full records, live $live, archived $archived"
	[ "$live" -lt "$full" ] && [ "${archived:-0}" -ge $((full - live)) ]
}

# boot_prefix TAG: what the kernel listed at the start (BOOT_BYTES of each
# file) is a prefix of the full log, in both binary lists and in the ascii
# one (the keeper renders records as the kernel does).
boot_prefix() {
	local list
	for list in sha1 sha256 ascii; do
		[ "${BOOT_BYTES[$list]}" -gt 0 ] || { echo "empty boot list"; return 1; }
		cmp -n "${BOOT_BYTES[$list]}" "$SCRATCH/boot.$list" "$SCRATCH/$1.$list" || return 1
	done
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

# live_list VAR: the kernel's live records, staged then current, in ascii.
live_list() {
	local staged current
	slurp staged "$IMA/ascii_runtime_measurements_staged"
	slurp current "$IMA/ascii_runtime_measurements"
	printf -v "$1" '%s%s' "$staged" "$current"
}

# refused DIR PATTERN: an export into archive DIR fails in both flavours
# with a message matching PATTERN (extended regex; its groups are left in
# BASH_REMATCH), and the kernel's live list is what it was before each:
# as many records, the same first one, nothing staged. (Nothing else runs
# meanwhile, and the keeper's own reads are on tmpfs, which the policy does
# not measure.)
refused() {
	local dir=$1 pattern=$2 flavour before after said
	for flavour in --keep=0 --stage; do
		live_list before
		if "$KEEPER" export --archive "$dir" "$flavour" >"$SCRATCH/bad.out" 2>&1; then
			show "$SCRATCH/bad.out"
			echo "export $flavour into $dir succeeded"
			return 1
		fi
		live_list after
		slurp said "$SCRATCH/bad.out"
		printf 'export %s: %s' "$flavour" "$said"
		[ "$before" = "$after" ] || { echo "the live list changed"; return 1; }
		[[ "$said" =~ $pattern ]] || { echo "no message matching: $pattern"; return 1; }
	done
	after=${before//[^$'\n']/}
	echo "live list unchanged: ${#after} records, the first: ${before%%$'\n'*}"
}

# read_only_refused DIR: root cannot create a file in DIR (a read-only
# mount), and an export into it is refused.
read_only_refused() {
	local said
	if touch "$1/probe" 2>"$SCRATCH/touch.err"; then
		echo "root created a file in $1"
		return 1
	fi
	slurp said "$SCRATCH/touch.err"
	printf 'touch: %s' "$said"
	[[ "$said" == *'Read-only file system'* ]] &&
		refused "$1" "archive directory $1 is on a read-only file system: refusing to append to it"
}

# flipped_refused DIR AT: an export into DIR, whose sha256.bin has byte AT
# flipped (in the last record's template data), is refused; the message
# names the file, a checksummed byte range holding AT, and the record that
# starts at or before AT.
flipped_refused() {
	local dir=$1 at=$2 start end record
	refused "$dir" "$dir/sha256.bin: checksum mismatch in bytes \[([0-9]+), ([0-9]+)\) \(chunk [0-9]+\); record [0-9]+ at byte ([0-9]+): " ||
		return 1
	start=${BASH_REMATCH[1]} end=${BASH_REMATCH[2]} record=${BASH_REMATCH[3]}
	echo "flipped byte $at: the message names bytes [$start, $end) and a record at byte $record"
	[ "$start" -le "$record" ] && [ "$record" -le "$at" ] && [ "$at" -lt "$end" ]
}

# flip_byte FILE AT: FILE with its byte at offset AT xor 0x40.
flip_byte() {
	local byte
	byte=$(od -An -tu1 -j "$2" -N 1 "$1") || return 1
	# shellcheck disable=SC2059 # the format is the octal escape
	printf "$(printf '\\%03o' $((byte ^ 0x40)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# bad_archive NAME: a copy of the archive in $KEEPDIR/bad-NAME, echoed.
bad_archive() {
	local dir=$KEEPDIR/bad-$1
	cp -a "$ARCHIVE" "$dir" && echo "$dir"
}

bad_input_phase() {
	local dir at size
	dir=$KEEPDIR/bad-missing
	check bad_missing "export (both flavours) into a missing archive directory fails, names it, leaves the kernel's lists alone" \
		refused "$dir" "archive directory $dir: No such file or directory"
	info "bad archive, missing" 'export *'
	dir=$(bad_archive read-only) && mount --bind "$dir" "$dir" && mount -o remount,bind,ro "$dir"
	check bad_read_only "export (both flavours) into an archive on a read-only bind mount fails before A, says so, leaves the kernel's lists alone" \
		read_only_refused "$dir"
	info "bad archive, read-only" 'export *'
	umount "$dir"
	dir=$(bad_archive flipped)
	at=$(($(stat -c %s "$dir/sha256.bin") - 2))
	flip_byte "$dir/sha256.bin" "$at"
	check bad_flipped_byte "export (both flavours) into an archive with a flipped byte fails, names the file and the byte range and record holding it, leaves the kernel's lists alone" \
		flipped_refused "$dir" "$at"
	info "bad archive, flipped byte $at" 'export *'
	dir=$(bad_archive truncated)
	size=$(stat -c %s "$dir/sha1.bin")
	truncate -s $((size - 7)) "$dir/sha1.bin"
	check bad_truncated "export (both flavours) into an archive whose sha1.bin lost its last 7 bytes fails, names the file and where it ends, leaves the kernel's lists alone" \
		refused "$dir" "$dir/sha1.bin: holds $((size - 7)) bytes, COMMIT records $size: truncated at byte $((size - 7))"
	info "bad archive, truncated" 'export *'
}

# without_tpm CMD...: CMD in a mount namespace of its own whose
# /sys/class/tpm is an empty tmpfs: no TPM for CMD, as on a machine without.
without_tpm() {
	unshare -m sh -c 'mount -t tmpfs none /sys/class/tpm && exec "$@"' - "$@"
}

# no_tpm_verify: without a TPM, verify exits 1 and says why.
no_tpm_verify() {
	local rc=0 said
	without_tpm "$KEEPER" verify --archive "$ARCHIVE" >"$SCRATCH/notpm.out" 2>&1 || rc=$?
	slurp said "$SCRATCH/notpm.out"
	printf '%s' "$said"
	[ "$rc" -eq 1 ] && [ "$said" = $'ima-keeper: cannot verify without PCR 10: no TPM at /sys/class/tpm/tpm0\n' ]
}

# no_tpm_status: without a TPM, status works and notes that the overlap
# with the live list was taken unverified.
no_tpm_status() {
	local said rc=0
	without_tpm "$KEEPER" status --archive "$ARCHIVE" >"$SCRATCH/notpm.out" 2>&1 || rc=$?
	slurp said "$SCRATCH/notpm.out"
	printf '%s' "$said"
	[ "$rc" -eq 0 ] && [[ "$said" == *$'\n''note: no TPM: took overlap '[0-9]*' (the largest candidate) without checking it against PCR 10'$'\n'* ]]
}

# small_fs KIB: an ext4 file system of KIB KiB on a loop device, on $SMALL
# (the e2e kernels have both); what /proc/mounts says it is.
small_fs() {
	local kib=$1 dev fs
	mkdir -p "$SMALL"
	grep -qw ext4 /proc/filesystems || { echo "the kernel has no ext4 (CONFIG_EXT4_FS)"; return 1; }
	[ -e /dev/loop-control ] ||
		{ echo "no /dev/loop-control: the kernel has no loop device (CONFIG_BLK_DEV_LOOP)"; return 1; }
	truncate -s "${kib}K" "$SCRATCH/small.img" &&
		mkfs.ext4 -q -F -m 0 -O ^has_journal "$SCRATCH/small.img" &&
		mount -o loop "$SCRATCH/small.img" "$SMALL" || return 1
	read -r dev fs < <(awk -v m="$SMALL" '$2 == m { print $1, $3 }' /proc/mounts)
	echo "$fs on $dev, $kib KiB"
	[ "$fs" = ext4 ] && [[ "$dev" == /dev/loop[0-9]* ]]
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
	local first now count said staged
	read -r first <"$IMA/ascii_runtime_measurements"
	count=$(live_records)
	if "$KEEPER" export --archive "$SMALL/archive" "$1" >"$SCRATCH/full-export.out" 2>&1; then
		show "$SCRATCH/full-export.out"
		echo "the export succeeded on a full file system"
		return 1
	fi
	slurp said "$SCRATCH/full-export.out"
	printf '%s' "$said"
	[[ "$said" == *'No space left on device'* ]] || { echo "no ENOSPC reported"; return 1; }
	[ "$(live_records)" -ge "$count" ] || { echo "records left the kernel: $count, now $(live_records)"; return 1; }
	slurp staged "$IMA/ascii_runtime_measurements_staged"
	[ "$1" != --stage ] || [ -n "$staged" ] ||
		{ echo "nothing left staged after the stage flavour's failure"; return 1; }
	read -r now <"$IMA/ascii_runtime_measurements"
	[ "$1" = --stage ] || [ "$now" = "$first" ] ||
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
	local said staged
	rm -f "$SMALL"/filler.* "$SMALL/probe"
	"$KEEPER" export --archive "$SMALL/archive" --stage >"$SCRATCH/free-export.out" || return 1
	slurp said "$SCRATCH/free-export.out"
	slurp staged "$IMA/ascii_runtime_measurements_staged"
	printf '%s' "$said"
	[[ "$said" =~ ^exported\ \(stage\):\ [1-9][0-9]*\ records\ archived ]] && [ -z "$staged" ] &&
		"$KEEPER" verify --archive "$SMALL/archive"
}

full_disk_phase() {
	local kib
	add_records 30
	kib=$(($(du -sk "$ARCHIVE" | cut -f1) * 2 + 1024))
	check small_fs "a small ext4 file system on a loop device for the archive" small_fs "$kib"
	if ! grep -q " $SMALL " /proc/mounts; then
		# Never fill the guest's own /tmp.
		check full_disk "the full-disk checks need the small file system" false
		return
	fi
	info "archive file system"
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

# keylime_lists: PCR 10, then the keeper's full ascii log, the live list,
# and the view's file if it is mounted; then Keylime's verifier code on
# each against that PCR 10 (a quote may lag the list, not lead it), in one
# run (importing Keylime takes seconds under emulation): it must have
# given its verdicts, which the checks below read.
keylime_lists() {
	local lists=(--accept "$SCRATCH/keylime-full.ascii" --reject "$SCRATCH/keylime-live.ascii") rc=0
	read -r PCR_SHA1 </sys/class/tpm/tpm0/pcr-sha1/10 &&
		read -r PCR_SHA256 </sys/class/tpm/tpm0/pcr-sha256/10 &&
		"$KEEPER" cat --archive "$ARCHIVE" --ascii >"$SCRATCH/keylime-full.ascii" &&
		cat "$IMA/ascii_runtime_measurements" >"$SCRATCH/keylime-live.ascii" || return 1
	if [ -n "${VIEW_PID:-}" ]; then
		cat "$VIEW/ascii_runtime_measurements" >"$SCRATCH/keylime-view.ascii" || return 1
		lists+=(--accept "$SCRATCH/keylime-view.ascii")
	fi
	wc -l "$SCRATCH"/keylime-*.ascii
	"$KEYLIME_PY" "$GUESTDIR/keylime_check.py" --pcr "sha1:$PCR_SHA1" --pcr "sha256:$PCR_SHA256" \
		"${lists[@]}" >"$SCRATCH/keylime.out" 2>&1 || rc=$?
	cat "$SCRATCH/keylime.out"
	[ "$rc" -le 1 ]
}

# keylime VERDICT LIST: Keylime's verdict on LIST was VERDICT (accepted,
# rejected) in both banks.
keylime() {
	local line banks=0
	while IFS= read -r line; do
		[[ "$line" == *" of $2;"* ]] || continue
		echo "$line"
		[[ "$line" =~ ^keylime\ [^\ ]+\ sha(1|256):\ $1\ \( ]] && banks=$((banks + 1))
	done <"$SCRATCH/keylime.out"
	[ "$banks" -eq 2 ]
}

# live_alone_rejected: the live list is shorter than the full log (records
# were deleted), and Keylime rejected it.
live_alone_rejected() {
	local full live
	full=$(lines "$SCRATCH/keylime-full.ascii")
	live=$(lines "$SCRATCH/keylime-live.ascii")
	echo "live list $live records, full log $full"
	[ "$live" -lt "$full" ] && keylime rejected "$SCRATCH/keylime-live.ascii"
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
		nap 0.1
	done
	cat "$SCRATCH/view.log"
	VIEW_PID=
	return 1
}

# view_matches: each file of the view, read once, lies between the keeper's
# full log taken before it and the one taken after it: it holds every
# record of the first, and nothing the second lacks. (A root read of a
# FUSE file is measured again at every open, since the kernel cannot tell
# whether it changed: reading the view adds records of its own.)
view_matches() {
	local lists=(sha1 sha256 ascii) sizes i f before view after
	full_log before || return 1
	cp "$VIEW/binary_runtime_measurements" "$SCRATCH/view.sha1" &&
		cp "$VIEW/binary_runtime_measurements_sha256" "$SCRATCH/view.sha256" &&
		cp "$VIEW/ascii_runtime_measurements" "$SCRATCH/view.ascii" || return 1
	full_log after || return 1
	mapfile -t sizes < <(stat -c %s "$SCRATCH"/{before,view,after}.{sha1,sha256,ascii})
	for i in 0 1 2; do
		f=${lists[i]} before=${sizes[i]} view=${sizes[i + 3]} after=${sizes[i + 6]}
		echo "$f: full log before $before bytes, view $view, after $after"
		[ "$before" -le "$view" ] && [ "$view" -le "$after" ] &&
			cmp -n "$before" "$SCRATCH/before.$f" "$SCRATCH/view.$f" &&
			cmp -n "$view" "$SCRATCH/view.$f" "$SCRATCH/after.$f" || return 1
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
	nap 3
	check keylime_lists "PCR 10, then the full log, the live list (and the view's file), and Keylime's verdicts on them" \
		keylime_lists
	check keylime_accepts_full "Keylime's process_measurement_list accepts the keeper's full ascii log against PCR 10 (both banks)" \
		keylime accepted "$SCRATCH/keylime-full.ascii"
	info "full log" 'keylime *'
	check keylime_rejects_live "Keylime rejects the live list alone (PCR 10 mismatch)" live_alone_rejected
	info "live list" 'keylime *'
	if [ -n "${VIEW_PID:-}" ]; then
		check keylime_accepts_view "Keylime accepts the view's ascii_runtime_measurements, read while the keeper exports and adders add" \
			keylime accepted "$SCRATCH/keylime-view.ascii"
		info view 'keylime *'
	fi
	kill -TERM "$pid"
	wait "$pid"
	stop_adders
}

# busy_reported: while fd 3 holds ascii_runtime_measurements, an export in
# the background reports the busy files and has not finished.
busy_reported() {
	local said
	nap 3
	slurp said "$SCRATCH/busy.err"
	printf '%s' "$said"
	[[ "$said" =~ "ima-keeper: $IMA/"[a-z_0-9]+": busy, a reader holds the measurement files open ".*"; retry 1 of" ]] &&
		kill -0 "$BUSY_PID"
}

# busy_export_done: once the reader closed, the export finishes, archives
# and deletes.
busy_export_done() {
	local said
	wait "$BUSY_PID" || { show "$SCRATCH/busy.out" "$SCRATCH/busy.err"; return 1; }
	slurp said "$SCRATCH/busy.out"
	printf '%s' "$said"
	[[ "$said" =~ ^exported\ \(stage\):\ [1-9][0-9]*\ records\ archived,\ [1-9][0-9]*\ deleted ]]
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
	info "the keeper said" 'ima-keeper: *: busy, *; retry 1 of *'
	exec 3<&-
	check busy_export_done "after the reader closes, the export completes" busy_export_done
}

warm_up
"$KEEPER" --version >/dev/null 2>&1 || true
echo "INFO path=$KPATH kernel=$(uname -r) keeper=$KEEPER seed=$SEED random kills per flavour=$KILLS, paused kills per point=$TARGETED; /tmp is $(stat -f -c %T /tmp), the archive on $(stat -f -c %T "$KEEPDIR")"
check keeper_binary "the ima-keeper binary is there (scripts/e2e builds it)" test -x "$KEEPER"
check tpm_device "/dev/tpm0 exists" test -c /dev/tpm0
check staging "the kernel has export/delete (_staged files)" test -e "$IMA/binary_runtime_measurements_staged"
# What the kernel lists before anything is deleted: all since boot.
cat "$IMA/binary_runtime_measurements" >"$SCRATCH/boot.sha1"
cat "$IMA/binary_runtime_measurements_sha256" >"$SCRATCH/boot.sha256"
cat "$IMA/ascii_runtime_measurements" >"$SCRATCH/boot.ascii"
mapfile -t sizes < <(stat -c %s "$SCRATCH"/boot.{sha1,sha256,ascii})
declare -A BOOT_BYTES=([sha1]=${sizes[0]} [sha256]=${sizes[1]} [ascii]=${sizes[2]})

phase keeper_phase deleten --keep=5
phase full_log_checks deleten
phase keeper_phase stage --stage
phase full_log_checks stage
check kills_total "at least 100 SIGKILLs over the run, $TOTAL_KILLS done" test "$TOTAL_KILLS" -ge 100

phase bad_input_phase
check no_tpm_verify "without a TPM (/sys/class/tpm hidden in a mount namespace) ima-keeper verify exits 1 and says it needs PCR 10" \
	no_tpm_verify
info "no TPM, verify" 'ima-keeper: *'
check no_tpm_status "without a TPM, ima-keeper status works and notes the unverified overlap" no_tpm_status
info "no TPM, status" 'note: *'
phase full_disk_phase

if grep -qw fuse /proc/filesystems && [ -c /dev/fuse ]; then
	check view_mounted "ima-keeper view mounts the view" view_start
else
	echo "SKIP view  # the kernel has no FUSE (CONFIG_FUSE_FS=n)"
fi
phase keylime_phase
phase coexistence_phase
phase full_log_checks final
if [ -n "${VIEW_PID:-}" ]; then
	check view_matches "each view file read is the keeper's full log as of that read: what the kernel had before it, and no record it lacks after" view_matches
	info view
	check view_unmounts "SIGTERM unmounts the view; it exits 0" view_stop
fi
check kernel_log_clean "the kernel log holds no report ($REPORT_NAMES)" \
	kernel_log_clean
echo "INFO keeper: $TOTAL_KILLS kills (seed $SEED); $(status_line 'records since boot') records since boot, $(status_line 'records archived') archived"
echo "INFO time: the guest script took $SECONDS s"
rm -rf "$ADDDIR"
finish
