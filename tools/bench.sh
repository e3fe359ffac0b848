#!/usr/bin/env bash
# The benchmark command. Builds nanad and nanabench in release mode (scratch path .build-release,
# so that it never disturbs a developer's .build), then RUNS times: starts a fresh nanad on a
# temporary socket and data folder, runs `nanabench run` against it, stops it with SIGTERM.
# Prints each run and the medians.
#
# With --anchors it then runs, in the same sitting, the anchor figures of ../shared/bench
# (README.md there): the bare Unix-socket floor, Redis (redis_anchor.sh, Debian's redis-server
# installed if missing), loadgen.c driving nanad with the same connections and depths as Redis,
# and NanaSQLite 1.6.2 in a venv under /tmp. Each anchor is run RUNS times too, and a last table
# puts nanad's medians beside the anchors' with the ratios docs/BENCHMARKS.md reports.
# With --anchors it also runs the near-cache's figures (coherence over 100,000 rounds, hits
# beside NanaSQLite's, the read-mostly mix from 4 processes; files near-*).
#
# Usage: tools/bench.sh [--anchors] [--runs N] [--requests N] [--only IDS] [--out DIR] [--no-build]
#   --only IDS: nanabench's workloads, comma-separated (e.g. c,d,j,k); all by default.
# Everything stays on this machine (Unix sockets only); every server it starts is stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

anchors=0
runs=3
requests=100000
out=""
only=""
build=1
while [ $# -gt 0 ]; do
    case "$1" in
        --anchors) anchors=1 ;;
        --runs) runs=$2; shift ;;
        --requests) requests=$2; shift ;;
        --out) out=$2; shift ;;
        --only) only=$2; shift ;;
        --no-build) build=0 ;;
        -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

shared="${NANAD_SHARED_BENCH:-$repo/../shared/bench}"
out="${out:-$repo/bench-results/$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$out"
out=$(cd "$out" && pwd)
bin="$repo/.build-release/release"
tmp=$(mktemp -d /tmp/nanad-bench.XXXXXX)
nanad_pid=""

cleanup() {
    if [ -n "$nanad_pid" ] && kill -0 "$nanad_pid" 2>/dev/null; then
        kill -TERM "$nanad_pid" 2>/dev/null || true
        wait "$nanad_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "== $*" >&2; }

# --- build -----------------------------------------------------------------------------------
if [ "$build" = 1 ]; then
    tools/setup.sh
    log "building nanad and nanabench (release, .build-release)"
    swift build -c release --scratch-path .build-release --product nanad
    swift build -c release --scratch-path .build-release --product nanabench
fi
[ -x "$bin/nanad" ] && [ -x "$bin/nanabench" ] || { echo "missing $bin/nanad or $bin/nanabench" >&2; exit 1; }

# --- machine ---------------------------------------------------------------------------------
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "nproc: $(nproc)"
    echo "memory: $(free -h | awk '/^Mem:/ {print $2}')"
    echo "cpu: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "kernel: $(uname -r)"
    echo "swift: $(swift --version 2>&1 | head -1)"
} | tee "$out/machine.txt"

# --- nanad -----------------------------------------------------------------------------------
# start_nanad / stop_nanad
source "$repo/tools/lib/nanad.sh"

for run in $(seq "$runs"); do
    log "nanabench run $run/$runs (requests $requests)"
    start_nanad "$bin/nanad" "$tmp/nanad.sock" "$tmp/data-$run" "$out/nanad.log"
    "$bin/nanabench" run --socket "$tmp/nanad.sock" --requests "$requests" ${only:+--only "$only"} --json-file "$out/nanad-run$run.json" \
        | tee "$out/nanad-run$run.txt"
    stop_nanad
done

# --- anchors ---------------------------------------------------------------------------------
if [ "$anchors" = 1 ]; then
    [ -d "$shared" ] || { echo "no anchors at $shared" >&2; exit 1; }
    if ! command -v redis-server >/dev/null || ! command -v redis-benchmark >/dev/null || ! command -v redis-cli >/dev/null; then
        log "installing redis-server and redis-tools"
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server redis-tools >/dev/null
        # Debian starts a redis-server service on install; the anchors start their own on a
        # socket, so stop that one rather than leave it running (and competing for CPU).
        $SUDO service redis-server stop >/dev/null 2>&1 || true
    fi
    cc -O2 "$shared/socket_floor.c" -o "$tmp/socket_floor"
    cc -O2 "$shared/loadgen.c" -o "$tmp/loadgen" -lmsgpackc

    venv=/tmp/nanad-bench-venv
    if ! "$venv/bin/python" -c 'import nanasqlite' 2>/dev/null; then
        log "creating $venv with nanasqlite==1.6.2"
        rm -rf "$venv"
        python3 -m venv "$venv"
        "$venv/bin/pip" install -q nanasqlite==1.6.2
    fi

    lg="$tmp/loadgen"
    for run in $(seq "$runs"); do
        log "anchors, round $run/$runs"
        { "$tmp/socket_floor" 200000 1; "$tmp/socket_floor" 200000 64; } | tee "$out/floor-run$run.txt"

        # Redis: redis-benchmark and loadgen (redis-set 16x1, redis-get 1x1, 16x1, 16x16).
        bash "$shared/redis_anchor.sh" 200000 2>&1 | tee "$out/redis-run$run.txt" || echo "redis anchor failed" >&2

        # nanad through the same loadgen, same totals and keyspace as redis_anchor.sh.
        start_nanad "$bin/nanad" "$tmp/nanad.sock" "$tmp/lg-data-$run" "$out/nanad.log"
        {
            "$lg" "$tmp/nanad.sock" lg.db set 16 1 100000 10000
            "$lg" "$tmp/nanad.sock" lg.db get 1 1 25000 10000
            "$lg" "$tmp/nanad.sock" lg.db get 16 1 200000 10000
            "$lg" "$tmp/nanad.sock" lg.db get 16 16 1000000 10000
            "$lg" "$tmp/nanad.sock" lg.db set 1 1 20000 10000
            "$lg" "$tmp/nanad.sock" lg.db set 16 16 400000 10000
        } 2>&1 | sed 's/^/nanad /' | tee "$out/loadgen-nanad-run$run.txt" || echo "loadgen against nanad failed" >&2
        stop_nanad

        (cd "$tmp" && "$venv/bin/python" "$shared/nanasqlite_anchor.py") 2>&1 | tee "$out/nanasqlite-run$run.txt" \
            || echo "nanasqlite anchor failed" >&2
    done
fi

# --- near-cache (issue #20) ------------------------------------------------------------------
# With --anchors: the coherence check across processes (100,000 rounds, restarts included), and
# RUNS rounds of the near-cache figures beside NanaSQLite's, interleaved: tools/bench_near_anchor.py
# for NanaSQLite in-process and for the drop-in through nanad (near-cache on and off), and
# `nanabench near-mix` (4 processes, 95 % gets on 10,000 keys, 5 % sets) with and without it.
if [ "$anchors" = 1 ]; then
    start_nanad "$bin/nanad" "$tmp/nanad.sock" "$tmp/near-data" "$out/nanad.log"
    log "near-cache: coherence, 100,000 rounds"
    "$bin/nanabench" coherence --rounds 100000 --restart-every 1000 --nanad "$bin/nanad" | tee "$out/near-coherence.txt" || echo "coherence failed" >&2
    client_venv="$repo/.build/nanad-client-venv"
    if [ ! -x "$client_venv/bin/python" ]; then
        python3 -m venv "$client_venv"
    fi
    "$client_venv/bin/python" -m pip install -q ./tools/nanad-client
    for run in $(seq "$runs"); do
        log "near-cache figures, round $run/$runs"
        (cd "$tmp" && "$venv/bin/python" "$repo/tools/bench_near_anchor.py") | tee "$out/near-nanasqlite-run$run.json"
        "$client_venv/bin/python" tools/bench_near_anchor.py --socket "$tmp/nanad.sock" | tee "$out/near-dropin-run$run.json"
        "$client_venv/bin/python" tools/bench_near_anchor.py --socket "$tmp/nanad.sock" --near-cache off --n 200000 | tee "$out/near-dropin-off-run$run.json"
        "$bin/nanabench" near-mix --socket "$tmp/nanad.sock" --db near-mix-$run.db --keys 10000 --set-percent 5 --seconds 10 --no-check | tee "$out/near-mix-run$run.json"
        "$bin/nanabench" near-mix --socket "$tmp/nanad.sock" --db near-mix-$run.db --keys 10000 --set-percent 5 --seconds 10 --no-check --near-cache-off | tee "$out/near-mix-off-run$run.json"
    done
    stop_nanad
fi

# --- summary ---------------------------------------------------------------------------------
if command -v python3 >/dev/null; then
    python3 - "$out" "$runs" "$anchors" <<'PY' | tee "$out/summary.md"
import glob, json, os, re, statistics, sys

out, runs, anchors = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
med = statistics.median

def files(pattern):
    return sorted(glob.glob(os.path.join(out, pattern)))

# nanad through nanabench (NanaClient)
by_id = {}
for f in files("nanad-run*.json"):
    for w in json.load(open(f))["workloads"]:
        by_id.setdefault(w["id"], []).append(w)
order = ["a", "b", "ping", "b-loop", "ping-loop", "c", "c-loop", "d", "d-tracked", "e", "n", "n16", "f", "g", "h", "i", "j", "k"]
print(f"## nanad through nanabench (NanaClient), median of {runs} runs\n")
print("| id | workload | rate/s (median) | runs | p50 µs | p99 µs | errors | notes |")
print("|---|---|---|---|---|---|---|---|")
nb = {}
for i in order:
    ws = by_id.get(i)
    if not ws:
        continue
    rate = med(w["rate"] for w in ws)
    p50 = med(w["p50Microseconds"] for w in ws)
    p99 = med(w["p99Microseconds"] for w in ws)
    nb[i] = dict(rate=rate, p50=p50, p99=p99, ws=ws)
    unit = "" if ws[0]["unit"] == "ops" else " " + ws[0]["unit"]
    notes = []
    if i in ("a", "d"):
        wpc = [w["notes"].get("writes_per_commit") for w in ws if "writes_per_commit" in w["notes"]]
        if wpc: notes.append(f"writes/commit {med(wpc):.1f}")
    if i == "j":
        ff = [w["notes"]["final_flush_ms"] for w in ws if "final_flush_ms" in w["notes"]]
        sb = [w["notes"].get("staged_before_flush", 0) for w in ws]
        if ff: notes.append(f"final flush(wait: true) {med(ff):.2f} ms, runs {' / '.join(f'{x:.2f}' for x in ff)} (not in the rate), staged at its start {med(sb):.0f} (max {max(sb):.0f})")
        rf = [w["notes"]["rate_including_flush"] for w in ws if "rate_including_flush" in w["notes"]]
        if rf: notes.append(f"{med(rf):,.0f}/s counting the final flush")
        wpc = [w["notes"].get("writes_per_commit") for w in ws if "writes_per_commit" in w["notes"]]
        if wpc: notes.append(f"writes/commit {med(wpc):.1f}")
        dlq = sum(w["notes"].get("dlq", 0) for w in ws)
        if dlq: notes.append(f"dead letters {dlq:.0f}")
    if i == "k":
        hr = [w["notes"]["hit_ratio"] for w in ws if "hit_ratio" in w["notes"]]
        gc = [w["notes"]["gets_from_cache"] for w in ws if "gets_from_cache" in w["notes"]]
        if gc: notes.append(f"gets answered from the cache {med(gc)*100:.1f}%")
        if hr: notes.append(f"daemon's hit ratio (per lookup) {med(hr)*100:.1f}%")
    if i == "g":
        kept = [w["notes"].get("kept_fraction", 0) for w in ws]
        notes.append(f"kept {min(kept)*100:.0f}% (worst run)")
        ex = [w["notes"].get("rate_excluding_startup") for w in ws if w["notes"].get("rate_excluding_startup")]
        if ex: notes.append(f"{med(ex):,.0f}/s without process start")
    lat = "-" if i == "g" else f"{p50:.1f}"
    lat99 = "-" if i == "g" else f"{p99:.1f}"
    each = " / ".join(format(w["rate"], ",.0f") for w in ws)
    errors = sum(w["errors"] for w in ws)
    print(f"| {i} | {ws[0]['title']} | {rate:,.0f}{unit} | {each} | {lat} | {lat99} | {errors} | {'; '.join(notes)} |")

if not anchors:
    sys.exit(0)

def grab(pattern, regex, conv=float):
    vals = {}
    for f in files(pattern):
        for line in open(f, errors="replace"):
            m = re.search(regex, line)
            if m:
                vals.setdefault(m.group(1), []).append(tuple(conv(x.replace(",", "")) for x in m.groups()[1:]))
    return vals

# socket floor
floor = grab("floor-run*.txt", r"n=\d+ depth=(\d+): ([\d.]+) us/op, (\d+) ops/s")
# loadgen lines: "<op> conns=C P=P: R req/s, errors=E, p50=X us, p99=Y us"
lgre = r"^(?:nanad )?((?:redis-)?(?:get|set) conns=\d+ P=\d+): (\d+) req/s, errors=(\d+), p50=(\d+) us, p99=(\d+) us"
lg_nanad = grab("loadgen-nanad-run*.txt", lgre)
lg_redis = grab("redis-run*.txt", lgre)
rb = {}
for f in files("redis-run*.txt"):
    cfg = None
    for line in open(f, errors="replace"):
        if line.startswith("# -n"):
            cfg = " ".join(line.split()[3:])
        m = re.match(r"(SET|GET): ([\d.]+) requests per second", line)
        if m and cfg:
            rb.setdefault(f"{m.group(1)} {cfg}", []).append(float(m.group(2)))
ns = {}
for f in files("nanasqlite-run*.txt"):
    for line in open(f, errors="replace"):
        m = re.match(r"(.+?): ([\d,]+) ops/s", line)
        if m:
            ns.setdefault(m.group(1), []).append(float(m.group(2).replace(",", "")))
        m = re.match(r"(\d+) processes x (\d+) sets: (\d+)/(\d+) persisted", line)
        if m:
            ns.setdefault("persisted_fraction", []).append(int(m.group(3)) / int(m.group(4)))

def m(vals, k=0):
    return med(v[k] for v in vals) if vals else float("nan")

print(f"\n## anchors, same sitting, median of {runs} rounds\n")
print("| anchor | rate/s | p50 µs | p99 µs |")
print("|---|---|---|---|")
for d, vals in sorted(floor.items(), key=lambda kv: int(kv[0])):
    print(f"| bare Unix-socket ping-pong, depth {d} | {m(vals, 1):,.0f} | {m(vals, 0):.2f} (mean) | |")
for k, vals in lg_redis.items():
    print(f"| Redis {k} (loadgen) | {m(vals, 0):,.0f} | {m(vals, 2):.0f} | {m(vals, 3):.0f} |")
for k, vals in lg_nanad.items():
    print(f"| nanad {k} (loadgen) | {m(vals, 0):,.0f} | {m(vals, 2):.0f} | {m(vals, 3):.0f} |")
for k, vals in rb.items():
    print(f"| Redis {k} (redis-benchmark) | {med(vals):,.0f} | | |")
for k, vals in ns.items():
    if k == "persisted_fraction":
        print(f"| NanaSQLite, 4 processes × 3,000 sets: kept | {med(vals)*100:.0f}% (worst {min(vals)*100:.0f}%) | | |")
    else:
        print(f"| NanaSQLite {k} | {med(vals):,.0f} | | |")

def ratio(a, b):
    return a / b if b and b == b else float("nan")

def paired(x, y):
    """Median over runs of x's rate / y's rate in the same run (same nanad, minutes apart)."""
    rs = [a["rate"] / b["rate"] for a, b in zip(nb[x]["ws"], nb[y]["ws"]) if b["rate"]]
    return f" (same-run ratios {' / '.join(f'{r:.2f}' for r in rs)}; median {med(rs):.2f}x)" if rs else ""

print("\n## nanad against the anchors and the goals\n")
print("| comparison | nanad | anchor | ratio | goal |")
print("|---|---|---|---|---|")
r16 = m(lg_redis.get("redis-get conns=16 P=1", []), 0)
if "c" in nb:
    print(f"| get, 16 connections: nanabench (c) vs Redis GET via loadgen | {nb['c']['rate']:,.0f}/s | {r16:,.0f}/s | {ratio(nb['c']['rate'], r16):.2f}x | ≥ 1.0x |")
if "c-loop" in nb:
    print(f"| get, 16 connections, each task on its connection's loop: nanabench (c-loop) vs Redis GET via loadgen | {nb['c-loop']['rate']:,.0f}/s | {r16:,.0f}/s | {ratio(nb['c-loop']['rate'], r16):.2f}x | ≥ 1.0x |")
    if "c" in nb:
        print(f"| get, 16 connections: on the loops (c-loop) vs from the global executor (c), both nanabench | {nb['c-loop']['rate']:,.0f}/s | {nb['c']['rate']:,.0f}/s | {ratio(nb['c-loop']['rate'], nb['c']['rate']):.2f}x{paired('c-loop', 'c')} | |")
n16 = m(lg_nanad.get("get conns=16 P=1", []), 0)
print(f"| get, 16 connections: both through loadgen | {n16:,.0f}/s | {r16:,.0f}/s | {ratio(n16, r16):.2f}x | ≥ 1.0x |")
n1616 = m(lg_nanad.get("get conns=16 P=16", []), 0); r1616 = m(lg_redis.get("redis-get conns=16 P=16", []), 0)
print(f"| get, 16 connections × 16 in flight: both through loadgen | {n1616:,.0f}/s | {r1616:,.0f}/s | {ratio(n1616, r1616):.2f}x | |")
n1 = lg_nanad.get("get conns=1 P=1", []); r1 = lg_redis.get("redis-get conns=1 P=1", [])
print(f"| get, 1 connection: both through loadgen (p50 µs) | {m(n1, 2):.0f} µs | {m(r1, 2):.0f} µs | {ratio(m(n1, 2), m(r1, 2)):.2f}x | |")
f1 = floor.get("1", [])
fl = m(f1, 0)
if "b" in nb:
    mean_b = 1e6 / nb["b"]["rate"]
    print(f"| sequential round trip: nanabench get (b), mean per call vs floor depth 1 | {mean_b:.1f} µs | {fl:.1f} µs | {ratio(mean_b, fl):.2f}x | ≤ 1.2x |")
    print(f"| sequential round trip: nanabench get (b), p50 vs floor depth 1 | {nb['b']['p50']:.1f} µs | {fl:.1f} µs | {ratio(nb['b']['p50'], fl):.2f}x | ≤ 1.2x |")
if "ping" in nb:
    print(f"| sequential round trip: nanabench ping, p50 vs floor depth 1 | {nb['ping']['p50']:.1f} µs | {fl:.1f} µs | {ratio(nb['ping']['p50'], fl):.2f}x | |")
if "b-loop" in nb:
    mean_bl = 1e6 / nb["b-loop"]["rate"]
    print(f"| sequential round trip: nanabench get on the connection's loop (b-loop), mean per call vs floor depth 1 | {mean_bl:.1f} µs | {fl:.1f} µs | {ratio(mean_bl, fl):.2f}x | ≤ 1.2x |")
    if "b" in nb:
        print(f"| sequential get: on the connection's loop (b-loop) vs from the global executor (b), both nanabench | {nb['b-loop']['rate']:,.0f}/s | {nb['b']['rate']:,.0f}/s | {ratio(nb['b-loop']['rate'], nb['b']['rate']):.2f}x{paired('b-loop', 'b')} | |")
if "ping-loop" in nb:
    print(f"| sequential round trip: nanabench ping on the connection's loop (ping-loop), p50 vs floor depth 1 | {nb['ping-loop']['p50']:.1f} µs | {fl:.1f} µs | {ratio(nb['ping-loop']['p50'], fl):.2f}x | |")
if n1:
    mean_l = 1e6 / m(n1, 0)
    print(f"| sequential round trip: loadgen get 1×1, mean per call vs floor depth 1 | {mean_l:.1f} µs | {fl:.1f} µs | {ratio(mean_l, fl):.2f}x | ≤ 1.2x |")
nsset = med(ns.get("set (autocommit each)", [float("nan")]))
if "d" in nb:
    print(f"| set, 16 connections: nanabench (d) vs goal | {nb['d']['rate']:,.0f}/s | 150,000/s | {ratio(nb['d']['rate'], 150000):.2f}x | ≥ 1.0x |")
    print(f"| set, 16 connections: nanabench (d) vs NanaSQLite set (autocommit) | {nb['d']['rate']:,.0f}/s | {nsset:,.0f}/s | {ratio(nb['d']['rate'], nsset):.2f}x | |")
rs16 = m(lg_redis.get("redis-set conns=16 P=1", []), 0)
if "j" in nb:
    print(f"| set, 16 connections: nanabench write-behind (j) vs goal | {nb['j']['rate']:,.0f}/s | 150,000/s | {ratio(nb['j']['rate'], 150000):.2f}x | ≥ 1.0x |")
    if "d" in nb:
        print(f"| set, 16 connections: write-behind (j) vs write-through (d), both nanabench | {nb['j']['rate']:,.0f}/s | {nb['d']['rate']:,.0f}/s | {ratio(nb['j']['rate'], nb['d']['rate']):.2f}x{paired('j', 'd')} | |")
    print(f"| set, 16 connections: nanabench write-behind (j) vs Redis SET via loadgen | {nb['j']['rate']:,.0f}/s | {rs16:,.0f}/s | {ratio(nb['j']['rate'], rs16):.2f}x | |")
    print(f"| set, 16 connections: nanabench write-behind (j) vs NanaSQLite set (autocommit) | {nb['j']['rate']:,.0f}/s | {nsset:,.0f}/s | {ratio(nb['j']['rate'], nsset):.2f}x | |")
if "k" in nb:
    if "c" in nb:
        print(f"| get, 16 connections: LRU 1,000 of 10,000 keys (k) vs cache hit (c), both nanabench | {nb['k']['rate']:,.0f}/s | {nb['c']['rate']:,.0f}/s | {ratio(nb['k']['rate'], nb['c']['rate']):.2f}x{paired('k', 'c')} | |")
    print(f"| get, 16 connections: nanabench LRU-bounded (k) vs Redis GET via loadgen | {nb['k']['rate']:,.0f}/s | {r16:,.0f}/s | {ratio(nb['k']['rate'], r16):.2f}x | |")
ls16 = m(lg_nanad.get("set conns=16 P=1", []), 0); rs16 = m(lg_redis.get("redis-set conns=16 P=1", []), 0)
print(f"| set, 16 connections: nanad through loadgen vs goal | {ls16:,.0f}/s | 150,000/s | {ratio(ls16, 150000):.2f}x | ≥ 1.0x |")
print(f"| set, 16 connections: both through loadgen, nanad vs Redis | {ls16:,.0f}/s | {rs16:,.0f}/s | {ratio(ls16, rs16):.2f}x | |")
ls1616 = m(lg_nanad.get("set conns=16 P=16", []), 0)
print(f"| set, 16 connections × 16 in flight: nanad through loadgen vs goal | {ls1616:,.0f}/s | 150,000/s | {ratio(ls1616, 150000):.2f}x | |")
if "a" in nb:
    print(f"| set, sequential: nanabench (a) vs NanaSQLite set (autocommit, in-process) | {nb['a']['rate']:,.0f}/s | {nsset:,.0f}/s | {ratio(nb['a']['rate'], nsset):.2f}x | |")
nsb = med(ns.get("batch_update", [float("nan")]))
if "f" in nb:
    print(f"| batch_update of 10,000 items vs NanaSQLite batch_update | {nb['f']['rate']:,.0f} items/s | {nsb:,.0f} items/s | {ratio(nb['f']['rate'], nsb):.2f}x | |")
if "g" in nb:
    kept = min(w["notes"].get("kept_fraction", 0) for w in nb["g"]["ws"])
    nsk = ns.get("persisted_fraction", [])
    print(f"| 4 processes × 3,000 sets: writes kept | {kept*100:.0f}% (worst run) | {med(nsk)*100 if nsk else float('nan'):.0f}% (median) | | 100% |")
PY
fi
log "results in $out"
