# SPDX-License-Identifier: GPL-2.0
# Common helpers for the project's scripts.  Source it; do not run it.

set -euo pipefail
# A function's failure inside $(...) fails the substitution too.
shopt -s inherit_errexit

PROJ=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything that is not source (kernel trees, build folders, logs, tools'
# caches) lives here, outside git, and is reused between runs.
CACHE=${IMA_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ima-rust-staging}
LOGDIR=${IMA_RS_LOGDIR:-$CACHE/logs}
LLVM_SUFFIX=-19
JOBS=${JOBS:-$(nproc)}
# How long a kernel may take to start under KVM before guests use TCG
# (guest_accel).
KVM_PROBE_SECONDS=5

# b4 and virtme-ng, pinned, in a venv of the system's python3 (scripts/setup);
# only their commands go on PATH, not the venv's python3.
TOOLS_VENV=$CACHE/tools-venv
# Sphinx, pinned, for scripts/series check's htmldocs (scripts/setup).
DOCS_VENV=$CACHE/docs-venv
export PATH="$HOME/.cargo/bin:$TOOLS_VENV/commands:$HOME/.local/bin:$PATH"
export CCACHE_DIR=${CCACHE_DIR:-$CACHE/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-10G}
export CCACHE_BASEDIR=$CACHE

say() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# Usage.  A script's help is its header comment (after the SPDX line, up to
# the first line that is not a comment).  Every script parses all of its
# arguments before it does anything else.
print_usage() {
	awk 'NR == 1 { next } !/^#/ { exit }
		{ sub(/^# ?/, "") } /^SPDX-License-Identifier:/ { next } { print }' "$0"
}
# print_help: the usage on stdout; exit 0 (-h, --help).
print_help() {
	print_usage
	exit 0
}
# usage_error MSG: MSG and the usage on stderr; exit 2.
usage_error() {
	printf '[%s] %s\n' "$(basename "$0")" "$*" >&2
	print_usage >&2
	exit 2
}
# need_value "$@": the option in $1 has a value in $2.
need_value() {
	[ $# -ge 2 ] || usage_error "$1 needs a value"
}
# no_options "$@": for scripts that take no argument but -h/--help.
no_options() {
	case "${1:-}" in
	'') ;;
	-h | --help) print_help ;;
	*) usage_error "unknown argument: $1" ;;
	esac
}
# parsed: called once the arguments are checked; with IMA_RS_PARSE_ONLY=1
# the script stops there (scripts/test checks the arguments it passes on
# before it does any work).
parsed() {
	[ "${IMA_RS_PARSE_ONLY:-}" != 1 ] || exit 0
}

# lock_cache: one run per cache at a time.  The scripts that work in the
# cache call it once their arguments are checked; the first of a run takes
# an exclusive flock on $CACHE/lock (fd 9, which the scripts it calls
# inherit, so the lock lasts as long as any of them) and names the lock in
# IMA_RS_LOCK, so that they do not take it again.  Another run waits for
# it, with one line that names the run holding it.
lock_cache() {
	local lock=$CACHE/lock
	[ "${IMA_RS_LOCK:-}" != "$lock" ] || return 0
	mkdir -p "$CACHE"
	exec 9>>"$lock"
	if ! flock -n 9; then
		say "waiting for the run that holds $lock ($(cat "$lock" 2>/dev/null || true)) to end ..."
		flock 9
	fi
	echo "$(basename "$0") pid $$ since $(date '+%F %T')" >"$lock"
	export IMA_RS_LOCK=$lock
}

# step NAME CMD...: run CMD with its output in $LOGDIR/NAME.log; on failure
# show the log's tail, name the step and the log, repeat the step's own
# error (a die inside it) as the last line and exit 1.
#
# CMD runs in a subshell with set -e in force: any command in it that fails
# (outside an if, a while, a ! or an && / || list) fails the step.  That
# holds only if step itself is not called from such a context (bash then
# ignores set -e in everything below, subshells included), which step
# checks.  A step cannot set the caller's variables or directory.
step() {
	step_run "$@"
	step_end
}

# step_run NAME CMD...: the first half of step: runs CMD, leaves its exit
# status in STEP_RC and always returns 0, for a caller that shows something
# before step_end stops on a failure.
step_run() {
	STEP_NAME=$1 STEP_LOG="$LOGDIR/$1.log" STEP_RC=0 STEP_T0=$(date +%s)
	shift
	local errexit=
	[[ $- != *e* ]] || errexit=1
	mkdir -p "$CACHE" "$LOGDIR"
	set +e
	# The probe: a subshell that stops at false if set -e works here (not
	# in an if: that would be the very context it detects).
	(set -e; false; true)
	# shellcheck disable=SC2181
	[ $? -ne 0 ] ||
		die "step '$STEP_NAME' is called from an if, while, ! or && / || list: set -e would not stop it"
	say "$STEP_NAME ..."
	(set -e; "$@") >"$STEP_LOG" 2>&1
	STEP_RC=$?
	[ -z "$errexit" ] || set -e
}

# step_end: the second half of step.
step_end() {
	local cause
	if [ "$STEP_RC" -eq 0 ]; then
		say "$STEP_NAME done in $(($(date +%s) - STEP_T0)) s (log: $STEP_LOG)"
		return
	fi
	tail -n 40 "$STEP_LOG" >&2 || true
	cause=$(grep -E '^\[[^]]+\] ERROR: ' "$STEP_LOG" | tail -n 1 || true)
	printf "[%s] ERROR: step '%s' failed (exit %d); log: %s\n" \
		"$(basename "$0")" "$STEP_NAME" "$STEP_RC" "$STEP_LOG" >&2
	[ -z "$cause" ] || printf '%s\n' "$cause" >&2
	exit 1
}

need() {
	local tool=$1 pkg=$2
	command -v "$tool" >/dev/null 2>&1 ||
		die "'$tool' is missing: run scripts/setup (or install $pkg)"
}

# The kernel tree with the series applied: the user's own (KERNEL_SRC) or
# the project's work tree over the packaged base.
kernel_tree() {
	if [ -n "${KERNEL_SRC:-}" ]; then
		echo "$KERNEL_SRC"
	else
		echo "$CACHE/tree"
	fi
}

# tree_key: the tree in use, in the names of the folders made from it
# (build folders, series check's scratch tree): nothing for the packaged
# tree, "-NAME-HASH" for KERNEL_SRC (its folder's name and a hash of its
# path).  No two trees share objects; a KERNEL_SRC tree moved to a newer
# base keeps its folders, and make rebuilds what changed.
tree_key() {
	[ -n "${KERNEL_SRC:-}" ] || return 0
	local path
	path=$(realpath -m "$KERNEL_SRC")
	printf -- '-%s-%s\n' "$(basename "$path" | tr -c 'A-Za-z0-9._\n-' _)" \
		"$(sha256sum <<<"$path" | cut -c1-8)"
}

# build_dir NAME: the build folder NAME of the tree in use.
build_dir() {
	echo "$CACHE/build-$1$(tree_key)"
}

# tree_base TREE: the commit the series is applied on in TREE, as
# scripts/series apply recorded it (a work tree applied before the base
# was recorded: the packaged base's tag).
tree_base() {
	git -C "$1" config ima-rs.base 2>/dev/null || git -C "$1" rev-parse -q --verify ima-rs-base 2>/dev/null ||
		die "$1 has no recorded base: run scripts/series apply"
}

# tree_detach TREE REF: TREE checked out at REF (detached), and which
# commit that is said; tree_back puts TREE back on the series' branch.
tree_detach() {
	git -C "$1" checkout -q --detach "$2" || die "no commit $2 in $1"
	say "work tree at $(git -C "$1" log -1 --format='%h %s')"
}
tree_back() { git -C "$1" checkout -q ima-rust-staging || true; }

# rust_available TREE: the kernel's own check of the Rust toolchain, make
# rustavailable in TREE; if it refuses, one line names what to install.
rust_available() {
	local out rc=0
	out=$(cd "$1" && make LLVM=$LLVM_SUFFIX rustavailable 2>&1) || rc=$?
	echo "$out"
	[ "$rc" -ne 0 ] || return 0
	case "$out" in
	*libclang*) die "install libclang$LLVM_SUFFIX-dev (apt-get install libclang$LLVM_SUFFIX-dev)" ;;
	*"Rust bindings generator"*)
		die "the kernel needs bindgen $("$1"/scripts/min-tool-version.sh bindgen) or newer: install bindgen-cli with scripts/setup" ;;
	*"Rust compiler"*)
		die "the kernel needs rustc $("$1"/scripts/min-tool-version.sh rustc) or newer: install it with rustup update stable && rustup default stable" ;;
	*"'core' standard library"*) die "install rust-src with rustup component add rust-src" ;;
	*) die "make rustavailable refuses the Rust toolchain (its output is above)" ;;
	esac
}

kmake() {
	make LLVM=$LLVM_SUFFIX CC="ccache clang$LLVM_SUFFIX" \
		-j"$JOBS" "$@"
}

# configure_x86 BUILD FRAGMENT...: an x86_64 .config in BUILD from tinyconfig
# and the fragments, redone only when the fragments change; fails if an
# option they ask for did not land (an unmet dependency).
configure_x86() {
	local build=$1 hash line bad=0
	shift
	hash=$(cat "$@" | sha256sum | cut -d' ' -f1)
	if [ -f "$build/.config" ] && [ "$(cat "$build/.frag-hash" 2>/dev/null)" = "$hash" ]; then
		echo "config up to date"
		return
	fi
	mkdir -p "$build"
	cd "$(kernel_tree)"
	kmake O="$build" ARCH=x86_64 tinyconfig
	./scripts/kconfig/merge_config.sh -m -O "$build" "$build/.config" "$@"
	kmake O="$build" ARCH=x86_64 olddefconfig
	while read -r line; do
		case "$line" in CONFIG_*=n) line="# ${line%=n} is not set" ;; CONFIG_*) ;; *) continue ;; esac
		grep -qxF "$line" "$build/.config" || { echo "not in .config: $line"; bad=1; }
	done < <(cat "$@" | awk -F= '/^CONFIG_/ { v[$1] = $0; if (!($1 in o)) o[$1] = n++ }
		END { for (k in v) print o[k], v[k] }' | sort -n | cut -d' ' -f2-)
	[ "$bad" -eq 0 ] || return 1
	echo "$hash" >"$build/.frag-hash"
}

# build_x86 BUILD: the bzImage of the configured BUILD folder.
build_x86() {
	cd "$(kernel_tree)"
	kmake O="$1" ARCH=x86_64 bzImage
}

# guest_accel KERNEL: QEMU's accelerator for the guests in ACCEL, with one
# line that says which.  kvm if KERNEL (an x86_64 bzImage), booted under
# -accel kvm, prints its "Linux version" banner on the serial console
# within KVM_PROBE_SECONDS; else tcg: no usable /dev/kvm, or a
# KVM whose guests crawl (under nested virtualization here, a kernel's
# decompressor was still running after minutes).  The verdict holds until
# the host boots again: $CACHE/accel keeps it with the host's boot id.
guest_accel() {
	local boot line why
	boot=$(cat /proc/sys/kernel/random/boot_id)
	line=$(cat "$CACHE/accel" 2>/dev/null || true)
	if [ "${line%% *}" != "$boot" ]; then
		if [ ! -w /dev/kvm ]; then
			line="$boot tcg no usable /dev/kvm"
		elif kvm_boots "$1"; then
			line="$boot kvm a kernel printed its banner under KVM within $KVM_PROBE_SECONDS s"
		else
			line="$boot tcg a kernel printed nothing under KVM in $KVM_PROBE_SECONDS s"
		fi
		mkdir -p "$CACHE"
		echo "$line" >"$CACHE/accel"
	fi
	read -r _ ACCEL why <<<"$line"
	say "QEMU runs the guest under ${ACCEL^^}: $why (probed once per host boot, $CACHE/accel)"
}

# kvm_boots KERNEL: KERNEL prints "Linux version" under KVM in time.
kvm_boots() {
	local serial rc=0
	serial=$(mktemp)
	timeout "$KVM_PROBE_SECONDS" qemu-system-x86_64 -accel kvm -nodefaults -nographic \
		-m 256 -bios qboot.rom -kernel "$1" -append "console=ttyS0 earlyprintk=serial panic=-1" \
		-serial "file:$serial" -no-reboot </dev/null >/dev/null 2>&1 || true
	grep -q 'Linux version' "$serial" || rc=1
	rm -f "$serial"
	return "$rc"
}
