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
