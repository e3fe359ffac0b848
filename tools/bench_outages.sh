#!/usr/bin/env bash
# The outage figures of docs/BENCHMARKS.md (issue #18): `nanabench outages` calls a release
# nanad without pause through one reconnecting NanaClient while this script, from outside,
# kills nanad (SIGKILL, or SIGTERM) at random moments and starts it again. nanabench prints one
# JSON line per outage (the client's time from the loss to its first success, the calls that
# failed, and the daemon's start as its new `hello` reports it) and a summary.
#
# Usage: tools/bench_outages.sh [--kills N] [--terms N] [--callers N] [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
kills=20
terms=5
callers=8
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --kills) kills=$2; shift ;;
        --terms) terms=$2; shift ;;
        --callers) callers=$2; shift ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

bin="$repo/.build-release/release"
if [ "$build" = 1 ]; then
    swift build -c release --scratch-path .build-release --product nanad >&2
    swift build -c release --scratch-path .build-release --product nanabench >&2
fi
tmp=$(mktemp -d /tmp/nanad-outages.XXXXXX)
mkdir -p "$tmp/data"
bench_pid=""
source tools/lib/nanad.sh
cleanup() {
    [ -z "$bench_pid" ] || kill "$bench_pid" 2>/dev/null || true
    [ -z "$nanad_pid" ] || kill -KILL "$nanad_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

start_nanad "$bin/nanad" "$tmp/nanad.sock" "$tmp/data" "$tmp/nanad.log"
signals=$( (for _ in $(seq "$kills"); do echo KILL; done; for _ in $(seq "$terms"); do echo TERM; done) | shuf)
rounds=$((kills + terms))
# Long enough for every round (at most ~1.3 s each), and a little more.
seconds=$(( rounds * 2 + 3 ))
"$bin/nanabench" outages --socket "$tmp/nanad.sock" --seconds "$seconds" --callers "$callers" --json > "$tmp/outages.jsonl" &
bench_pid=$!
sleep 1
for signal in $signals; do
    sleep "0.$(shuf -i 300-999 -n 1)"
    kill "-$signal" "$nanad_pid"
    wait "$nanad_pid" 2>/dev/null || true
    nanad_pid=""
    start_nanad "$bin/nanad" "$tmp/nanad.sock" "$tmp/data" "$tmp/nanad.log"
done
wait "$bench_pid"
bench_pid=""
stop_nanad
cat "$tmp/outages.jsonl"
