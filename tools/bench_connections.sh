#!/usr/bin/env bash
# Throughput against the number of connections (issue #6), nanad beside Redis, in one sitting.
# For every N in 1 2 4 8 16 32 64, one call in flight per connection:
#   nanad through nanabench:  `nanabench run --only c,d --connections N` (c: 2×REQUESTS cache-hit
#                             gets, d: REQUESTS sets of fresh keys), a fresh nanad and data folder
#   nanad through loadgen:    the same nanad, another file: `loadgen set N 1 REQUESTS 10000`, then
#                             `loadgen get N 1 2×REQUESTS 10000` (every get a cache hit)
#   Redis through loadgen:    `loadgen redis-set` and `redis-get` with the same counts, on a
#                             redis-server over a Unix socket with no persistence (one per round)
# loadgen is ../shared/bench/loadgen.c, the client the earlier sittings used for Redis at 16
# connections. ROUNDS rounds; each round walks N = 1 … 64 and at each N runs the three clients
# one after the other, so the three are measured minutes apart at most. Raw output goes to OUT,
# medians of the rounds to CSV (docs/bench/connections.csv by default); plot it with
# tools/plot_connections.py. Builds nothing: give the release binaries with --bin.
#
# Usage: tools/bench_connections.sh [--rounds 3] [--requests 100000] [--bin DIR] [--out DIR] [--csv FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

rounds=3
requests=100000
bin="$repo/.build-release/release"
out=""
csv="$repo/docs/bench/connections.csv"
counts="1 2 4 8 16 32 64"
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) rounds=$2; shift ;;
        --requests) requests=$2; shift ;;
        --bin) bin=$2; shift ;;
        --out) out=$2; shift ;;
        --csv) csv=$2; shift ;;
        --counts) counts=$2; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

shared="${NANAD_SHARED_BENCH:-$repo/../shared/bench}"
out="${out:-$repo/bench-results/connections-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -x "$bin/nanad" ] && [ -x "$bin/nanabench" ] || { echo "missing $bin/nanad or $bin/nanabench" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server redis-tools)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/nanad-conns.XXXXXX)
nanad_pid=""
redis_sock="$tmp/redis.sock"

cleanup() {
    if [ -n "$nanad_pid" ] && kill -0 "$nanad_pid" 2>/dev/null; then
        kill -TERM "$nanad_pid" 2>/dev/null || true
        wait "$nanad_pid" 2>/dev/null || true
    fi
    [ -S "$redis_sock" ] && redis-cli -s "$redis_sock" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
log() { echo "== $(date -u +%H:%M:%S) $*" >&2; }

cc -O2 "$shared/loadgen.c" -o "$tmp/loadgen" -lmsgpackc
lg="$tmp/loadgen"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "kernel: $(uname -r)"
    echo "redis: $(redis-server --version)"
    echo "rounds: $rounds, requests: $requests, counts: $counts"
} | tee "$out/machine.txt"

# start_nanad / stop_nanad
source "$repo/tools/lib/nanad.sh"

for round in $(seq "$rounds"); do
    rm -f "$redis_sock"
    redis-server --port 0 --unixsocket "$redis_sock" --unixsocketperm 700 --save "" --appendonly no \
        --daemonize yes --pidfile "$tmp/redis.pid" --logfile "$tmp/redis.log"
    for _ in $(seq 50); do [ -S "$redis_sock" ] && break; sleep 0.1; done
    for n in $counts; do
        log "round $round/$rounds, $n connections"
        start_nanad "$bin/nanad" "$tmp/nanad.sock" "$tmp/data-$round-$n" "$out/nanad.log"
        "$bin/nanabench" run --socket "$tmp/nanad.sock" --only c,d --connections "$n" --requests "$requests" \
            --json-file "$out/nanabench-r$round-n$n.json" >"$out/nanabench-r$round-n$n.txt"
        {
            "$lg" "$tmp/nanad.sock" lg.db set "$n" 1 "$requests" 10000
            "$lg" "$tmp/nanad.sock" lg.db get "$n" 1 $((requests * 2)) 10000
        } >"$out/loadgen-nanad-r$round-n$n.txt" 2>&1 || echo "loadgen against nanad failed (round $round, $n)" >&2
        stop_nanad
        {
            "$lg" "$redis_sock" - redis-set "$n" 1 "$requests" 10000
            "$lg" "$redis_sock" - redis-get "$n" 1 $((requests * 2)) 10000
        } >"$out/loadgen-redis-r$round-n$n.txt" 2>&1 || echo "loadgen against Redis failed (round $round, $n)" >&2
        cat "$out/nanabench-r$round-n$n.txt" "$out/loadgen-nanad-r$round-n$n.txt" "$out/loadgen-redis-r$round-n$n.txt" | grep -E '^(c |d |get|set|redis)' >&2 || true
    done
    redis-cli -s "$redis_sock" shutdown nosave >/dev/null 2>&1 || true
done
date -u +%Y-%m-%dT%H:%M:%SZ >"$out/end.txt"

mkdir -p "$(dirname "$csv")"
python3 - "$out" "$rounds" "$counts" >"$csv" <<'PY'
import glob, json, os, re, statistics, sys

out, rounds, counts = sys.argv[1], int(sys.argv[2]), [int(c) for c in sys.argv[3].split()]
med = statistics.median
rows = {}  # (server, client, op, n) -> [(rate, p50, p99, errors), ...] in round order

for r in range(1, rounds + 1):
    for n in counts:
        f = os.path.join(out, f"nanabench-r{r}-n{n}.json")
        if os.path.exists(f):
            for w in json.load(open(f))["workloads"]:
                op = {"c": "get", "d": "set"}.get(w["id"])
                if op:
                    rows.setdefault(("nanad", "nanabench", op, n), []).append((w["rate"], w["p50Microseconds"], w["p99Microseconds"], w["errors"]))
        for server in ("nanad", "redis"):
            f = os.path.join(out, f"loadgen-{server}-r{r}-n{n}.txt")
            if not os.path.exists(f):
                continue
            for line in open(f, errors="replace"):
                m = re.match(r"(?:redis-)?(get|set) conns=(\d+) P=1: (\d+) req/s, errors=(\d+), p50=(\d+) us, p99=(\d+) us", line)
                if m:
                    rows.setdefault((server, "loadgen", m.group(1), n), []).append((float(m.group(3)), float(m.group(5)), float(m.group(6)), int(m.group(4))))

print("server,client,op,connections,rate_median,rate_runs,p50_us_median,p99_us_median,errors")
order = {("nanad", "nanabench"): 0, ("nanad", "loadgen"): 1, ("redis", "loadgen"): 2}
for key in sorted(rows, key=lambda k: (k[2], order[(k[0], k[1])], k[3])):
    vals = rows[key]
    runs = " ".join(f"{v[0]:.0f}" for v in vals)
    print(f"{key[0]},{key[1]},{key[2]},{key[3]},{med(v[0] for v in vals):.0f},{runs},"
          f"{med(v[1] for v in vals):.1f},{med(v[2] for v in vals):.1f},{sum(v[3] for v in vals)}")
PY
cat "$csv"
log "raw results in $out, medians in $csv"
