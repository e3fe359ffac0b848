#!/usr/bin/env bash
# What replication with Litestream costs and how far the replica lags (issue #19), in one
# sitting. Each round:
#   off  plain nanad (its own checkpoints): loadgen set, 16 connections × 1 in flight;
#   on   nanad under `litestream replicate -exec` with tools/litestream/litestream.yml and a
#        file:// replica: the same loadgen set; then, with that load running again in the
#        background, `nanabench replication-lag` (acknowledgement → in the replica, p50/p99).
# Prints loadgen's rate and p50 with nanad's own CPU per set (and Litestream's, when on), then
# the medians over the rounds. Release builds from .build-release (built unless --no-build).
#
# Usage: tools/bench_replication.sh [--runs N] [--no-build] [--probes N]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
runs=3
build=1
probes=30
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs=$2; shift ;;
        --probes) probes=$2; shift ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
shared="${NANAD_SHARED_BENCH:-$repo/../shared/bench}"
bin="$repo/.build-release/release"
if [ "$build" = 1 ]; then
    tools/setup.sh
    swift build -c release --scratch-path .build-release --product nanad
    swift build -c release --scratch-path .build-release --product nanabench
fi
litestream=$(command -v litestream || echo "$repo/.build/tools-venv/bin/litestream")
[ -x "$litestream" ] || { echo "no litestream: run tools/setup.sh" >&2; exit 1; }
tmp=$(mktemp -d /tmp/nanad-repl.XXXXXX)
ls_pid=""
bg_pid=""
source tools/lib/nanad.sh
cleanup() {
    [ -z "$bg_pid" ] || kill "$bg_pid" 2>/dev/null || true
    [ -z "$ls_pid" ] || { kill -TERM "$ls_pid" 2>/dev/null || true; wait "$ls_pid" 2>/dev/null || true; }
    stop_nanad
    rm -rf "$tmp"
}
trap cleanup EXIT
cc -O2 "$shared/loadgen.c" -o "$tmp/loadgen" -lmsgpackc
tick=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
per_set() { awk -v a="$2" -v b="$1" -v t="$tick" -v n="$3" 'BEGIN { printf "%.2f", (a - b) * 1e6 / t / n }'; }
sets=100000
results="$tmp/results.txt"
: > "$results"

for run in $(seq "$runs"); do
    echo "== round $run/$runs: off"
    start_nanad "$bin/nanad" "$tmp/off.sock" "$tmp/off-$run" "$tmp/nanad.log"
    before=$(cpu "$nanad_pid"); out=$("$tmp/loadgen" "$tmp/off.sock" lg.db set 16 1 $sets 10000); after=$(cpu "$nanad_pid")
    echo "off $out | nanad CPU $(per_set "$before" "$after" $sets) µs/set" | tee -a "$results"
    stop_nanad

    echo "== round $run/$runs: on"
    data="$tmp/on-$run"
    mkdir -p "$data"
    NANAD_DATA_DIR="$data" NANAD_REPLICA_URL="file://$tmp/replica-$run" \
        "$litestream" replicate -config tools/litestream/litestream.yml \
        -exec "$bin/nanad --external-checkpoints --socket $tmp/on.sock --data-dir $data --log-level warning" \
        > "$tmp/litestream-$run.log" 2>&1 &
    ls_pid=$!
    for _ in $(seq 100); do [ -S "$tmp/on.sock" ] && break; sleep 0.1; done
    [ -S "$tmp/on.sock" ] || { echo "nanad under litestream did not start" >&2; cat "$tmp/litestream-$run.log" >&2; exit 1; }
    child=$(pgrep -P "$ls_pid" -f nanad | head -1)
    before=$(cpu "$child"); lbefore=$(cpu "$ls_pid")
    out=$("$tmp/loadgen" "$tmp/on.sock" lg.db set 16 1 $sets 10000)
    after=$(cpu "$child"); lafter=$(cpu "$ls_pid")
    echo "on $out | nanad CPU $(per_set "$before" "$after" $sets) µs/set | litestream CPU $(per_set "$lbefore" "$lafter" $sets) µs/set" | tee -a "$results"
    # Lag under the same load, kept running in the background.
    "$tmp/loadgen" "$tmp/on.sock" lg.db set 16 1 100000000 10000 > /dev/null 2>&1 &
    bg_pid=$!
    lag=$("$bin/nanabench" replication-lag --socket "$tmp/on.sock" --replica "file://$tmp/replica-$run/lag-probe.db" --probes "$probes" --litestream "$litestream" --json)
    kill "$bg_pid" 2>/dev/null || true; wait "$bg_pid" 2>/dev/null || true; bg_pid=""
    echo "lag $lag" | tee -a "$results"
    kill -TERM "$ls_pid"; wait "$ls_pid" || echo "warning: litestream exited $? after SIGTERM" >&2; ls_pid=""
    grep -q "shutdown sync skipped" "$tmp/litestream-$run.log" && echo "warning: litestream skipped its shutdown sync" >&2
    rm -rf "$data" "$tmp/replica-$run"
done

python3 - "$results" <<'PY'
import json, re, statistics, sys
rows = open(sys.argv[1]).read().splitlines()
def med(xs): return statistics.median(xs) if xs else float("nan")
def grab(kind, pattern):
    return [float(m.group(1)) for r in rows if r.startswith(kind + " ") for m in [re.search(pattern, r)] if m]
rate = r"([0-9.]+) req/s"; p50 = r"p50=([0-9.]+) us"; cpu = r"nanad CPU ([0-9.]+)"; lcpu = r"litestream CPU ([0-9.]+)"
off, on = med(grab("off", rate)), med(grab("on", rate))
print(f"\nmedians over {len(grab('off', rate))} rounds")
print(f"| set, 16 connections × 1 | replication off | on (Litestream) | on / off |")
print(f"|---|---|---|---|")
print(f"| rate | {off:,.0f}/s | {on:,.0f}/s | {on / off:.2f}x |")
print(f"| p50 | {med(grab('off', p50)):.0f} µs | {med(grab('on', p50)):.0f} µs | |")
print(f"| nanad CPU per set | {med(grab('off', cpu)):.2f} µs | {med(grab('on', cpu)):.2f} µs | |")
print(f"| Litestream CPU per set | | {med(grab('on', lcpu)):.2f} µs | |")
lags = [json.loads(r[4:]) for r in rows if r.startswith("lag ")]
print(f"| replication lag p50 / p99 (under that load) | | {med([l['lag_ms_p50'] for l in lags]):.0f} / {med([l['lag_ms_p99'] for l in lags]):.0f} ms | restore {med([l['restore_ms_p50'] for l in lags]):.0f} ms |")
PY
