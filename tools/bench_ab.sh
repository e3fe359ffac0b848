#!/usr/bin/env bash
# Two nanad builds side by side in one sitting, interleaved (A, B, A, B, …) so that the
# machine's drift falls on both: nanabench's sequential and 16-connection workloads (a, b,
# ping, c, d) through NanaClient, open/close churn on one file through the Python drop-in,
# and loadgen rates with the daemon's own CPU per request (tools/cpu_per_request.sh).
#
# Usage: tools/bench_ab.sh DIR_A DIR_B [ROUNDS]   each DIR holds that build's nanad and nanabench
# Prints one line per run; the medians go into docs/BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,9p' "$0"; exit 2; }
a=$1 b=$2 rounds=${3:-3}
tmp=$(mktemp -d /tmp/nanad-ab.XXXXXX)
source tools/lib/nanad.sh
trap 'stop_nanad; rm -rf "$tmp"' EXIT
[ -x .build/nanad-client-venv/bin/python ] || tools/nanad-client/run_tests.sh >/dev/null
py=.build/nanad-client-venv/bin/python

churn() {  # open, get, set, close one file N times; each close lets the file go idle
    "$py" - "$1" <<'PY'
import sys, time
sys.path.insert(0, "tools/nanad-client")
from nanad_client import NanaSQLite
sock, n = sys.argv[1], 2000
db = NanaSQLite("churn.db", socket=sock); db["k"] = 0; db.close()
t = time.perf_counter()
for i in range(n):
    db = NanaSQLite("churn.db", socket=sock)
    db["k"] = db["k"] + 1
    db.close()
dt = time.perf_counter() - t
print(f"churn: {n / dt:.0f} open+get+set+close/s ({dt / n * 1e6:.0f} µs each)")
PY
}

for round in $(seq "$rounds"); do
    for dir in "$a" "$b"; do
        rm -rf "$tmp/data" "$tmp/n.sock"
        start_nanad "$dir/nanad" "$tmp/n.sock" "$tmp/data" "$tmp/nanad.log"
        echo "== round $round, $dir"
        "$dir/nanabench" run --socket "$tmp/n.sock" --requests 50000 --only a,b,ping,c,d | grep -E '^\s*(a|b|ping|c|d) ' || true
        churn "$tmp/n.sock"
        stop_nanad
    done
done
echo "== CPU per request (loadgen), A B A B"
tools/cpu_per_request.sh "$a/nanad" "$b/nanad" "$a/nanad" "$b/nanad"
