#!/usr/bin/env bash
# nanad's CPU per request: starts the given nanad binaries one after another on a scratch
# socket, drives each with ../shared/bench/loadgen.c, and prints loadgen's rate beside the
# daemon's own CPU time (utime+stime from /proc/PID/stat) divided by the requests. CPU per
# request moves less with a shared machine's load than a rate does, so A/B runs of two builds
# (old, new, old, new) compare them within one sitting.
#
# Usage: tools/cpu_per_request.sh NANAD [NANAD...]   e.g. an old build copied aside, then .build-release/release/nanad
set -euo pipefail
cd "$(dirname "$0")/.."
shared="${NANAD_SHARED_BENCH:-$(pwd)/../shared/bench}"
[ $# -ge 1 ] || { sed -n '2,8p' "$0"; exit 2; }
tmp=$(mktemp -d /tmp/nanad-cpu.XXXXXX)
source tools/lib/nanad.sh
trap 'stop_nanad; rm -rf "$tmp"' EXIT
cc -O2 "$shared/loadgen.c" -o "$tmp/loadgen" -lmsgpackc
tick=$(getconf CLK_TCK)
for bin in "$@"; do
    echo "== $bin"
    rm -rf "$tmp/data" "$tmp/n.sock"
    start_nanad "$bin" "$tmp/n.sock" "$tmp/data" "$tmp/nanad.log"
    cpu() { awk '{print $14 + $15}' "/proc/$nanad_pid/stat"; }
    run() {  # op conns depth requests keyspace
        local before after out
        before=$(cpu); out=$("$tmp/loadgen" "$tmp/n.sock" lg.db "$@"); after=$(cpu)
        echo "$out | nanad CPU $(awk -v a="$after" -v b="$before" -v t="$tick" -v n="$4" 'BEGIN { printf "%.2f", (a - b) * 1e6 / t / n }') µs/request"
    }
    run set 16 1 100000 10000
    run get 1 1 30000 10000
    run get 16 1 400000 10000
    run get 16 16 1000000 10000
    stop_nanad
done
