# SPDX-License-Identifier: GPL-2.0
# Common helpers for the project's scripts.  Source it; do not run it.

set -euo pipefail

PROJ=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything that is not source (kernel trees, build folders, logs, tools'
# caches) lives here, outside git, and is reused between runs.
CACHE=${IMA_RS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ima-rust-staging}
LOGDIR=${IMA_RS_LOGDIR:-$CACHE/logs}
LLVM_SUFFIX=-19
JOBS=${JOBS:-$(nproc)}
mkdir -p "$CACHE" "$LOGDIR"

export PATH="$HOME/.cargo/bin:$HOME/.local/bin:$PATH"
export CCACHE_DIR=${CCACHE_DIR:-$CACHE/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-10G}
export CCACHE_BASEDIR=$CACHE

say() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# step NAME CMD...: run CMD with its output in $LOGDIR/NAME.log; on failure
# name the step and the log, show its tail and stop.
step() {
	local name=$1 log="$LOGDIR/$1.log" t0 rc=0
	shift
	t0=$(date +%s)
	say "$name ..."
	"$@" >"$log" 2>&1 || rc=$?
	if [ "$rc" -ne 0 ]; then
		tail -n 40 "$log" >&2
		die "step '$name' failed (exit $rc); log: $log"
	fi
	say "$name done in $(($(date +%s) - t0)) s (log: $log)"
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
