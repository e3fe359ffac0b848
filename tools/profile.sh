#!/usr/bin/env bash
# Where nanad's CPU goes: starts a nanad binary on a scratch socket, drives it with
# ../shared/bench/loadgen.c, and samples it with `perf record -e cpu-clock -g` (a software
# clock: this kind of VM offers no hardware counters, and valgrind cannot run the Swift
# binary). Prints the share of the kernel, the Swift runtime and nanad itself, the hottest
# symbols, and nanad's own functions with what they call (inclusive), demangled.
#
# Usage: tools/profile.sh [NANAD] [OP CONNS DEPTH REQUESTS]   default: .build-release/release/nanad get 16 1 400000
#   e.g. tools/profile.sh .build-release/release/nanad set 16 1 100000
# Keeps the samples in $PROFILE_OUT (default /tmp/nanad-profile.data) for `perf report -i`.
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${NANAD_SHARED_BENCH:-$(pwd)/../shared/bench}"
bin=${1:-.build-release/release/nanad}
op=${2:-get}; conns=${3:-16}; depth=${4:-1}; requests=${5:-400000}
data_out=${PROFILE_OUT:-/tmp/nanad-profile.data}
command -v perf >/dev/null || { echo "perf is missing (Debian: linux-perf)" >&2; exit 1; }
[ -x "$bin" ] || { echo "no nanad at $bin (swift build -c release --scratch-path .build-release --product nanad)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/nanad-profile.XXXXXX)
source tools/lib/nanad.sh
trap 'stop_nanad; rm -rf "$tmp"' EXIT
cc -O2 "$shared/loadgen.c" -o "$tmp/loadgen" -lmsgpackc
start_nanad "$bin" "$tmp/n.sock" "$tmp/data" "$tmp/nanad.log"
"$tmp/loadgen" "$tmp/n.sock" lg.db set 4 1 10000 1000 >/dev/null   # the keys a get finds
perf record -e cpu-clock -F 4000 -g -p "$nanad_pid" -o "$data_out" 2>/dev/null &
perf_pid=$!
sleep 0.5
"$tmp/loadgen" "$tmp/n.sock" lg.db "$op" "$conns" "$depth" "$requests" 1000
kill -INT "$perf_pid"; wait "$perf_pid" 2>/dev/null || true
report() { perf report -i "$data_out" "$@" 2>/dev/null | grep -v '^#' | grep -v '^$' | swift demangle --simplified | cut -c1-150; }
echo "== by object"; report --no-children --sort dso -g none | head -8
echo "== hottest symbols (self)"; report --no-children --sort sym -g none | head -25
echo "== nanad's own functions (inclusive)"
report --children --sort sym -g none | grep -E 'NanaServer|NanaStorage|NanaWire|ConnectionHandler|FrameOutbox|KeyValueTable|TableCache|WriteBehind|MessagePack' | head -30
