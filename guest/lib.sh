# SPDX-License-Identifier: GPL-2.0
# Helpers for the guest-side scripts (run as root inside the vng guest).
# Source it; the caller sets RESULTS (the shared results folder).

IMA=/sys/kernel/security/ima
GUESTDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRATCH=/tmp/ima-rs    # tmpfs: the tcb policy does not measure it
mkdir -p "$SCRATCH"
# What the scripts of this boot deleted, in order (sha1 and sha256 lists):
# it comes before anything a later script saves when PCR 10 is replayed.
DELETED=$SCRATCH/deleted
touch "$DELETED.sha1" "$DELETED.sha256"
NPASS=0
NFAIL=0

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

# Run every tool the checks use once, so that measuring them happens
# before a snapshot of the list and PCR 10, not between the two reads.
warm_up() {
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

# pcr_file BANK: the file evmctl's --pcrs takes, from sysfs.
pcr_file() {
	local bank=$1 i f=$SCRATCH/pcrs-$1
	: >"$f"
	for i in $(seq 0 10); do
		printf 'PCR-%02d: %s\n' "$i" "$(cat /sys/class/tpm/tpm0/pcr-$bank/$i)" >>"$f"
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
	evmctl ima_measurement --ignore-violations \
		--pcrs "sha1,$SCRATCH/pcrs-sha1" --pcrs "sha256,$SCRATCH/pcrs-sha256" \
		-v "$1" 2>&1 | tail -n 5
	evmctl ima_measurement --ignore-violations \
		--pcrs "sha1,$SCRATCH/pcrs-sha1" --pcrs "sha256,$SCRATCH/pcrs-sha256" \
		"$1" >/dev/null 2>&1
}

# replay BANK LIST: the independent replay of one bank's binary list.
replay() {
	python3 "$GUESTDIR/replay.py" --bank "$1" \
		--pcr "$(sed -n 's/^PCR-10: //p' "$SCRATCH/pcrs-$1")" "$2"
}

# validate_both SHA1_LIST SHA256_LIST: evmctl, then the replay of each bank.
validate_both() {
	evmctl_validate "$1" && replay sha1 "$1" && replay sha256 "$2"
}

# add_records N: cause N new measurements (files read by root on a measured
# file system: the shared results folder).
add_records() {
	local n=$1 i d=$RESULTS/new-files
	mkdir -p "$d"
	for i in $(seq "$n"); do
		echo "$RANDOM $i $(date +%s%N)" >"$d/f.$i.$RANDOM$RANDOM"
	done
	cat "$d"/f.* >/dev/null
	rm -rf "$d"
}

count() {
	cat $IMA/runtime_measurements_count
}

# Bytes of kernel slab objects in use: active objects times object size.
object_bytes() {
	awk 'NR > 2 { s += $2 * $4 } END { print s }' /proc/slabinfo
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

finish() {
	echo "$NPASS passed, $NFAIL failed"
	[ "$NFAIL" -eq 0 ]
	echo $? >"$RESULTS/rc"
}
