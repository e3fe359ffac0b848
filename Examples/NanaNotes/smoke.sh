#!/usr/bin/env bash
# Builds nanad and the example, starts one nanad and three copies of nana-notes against it,
# and checks the README's curl session: the copies share notes and counters, carry on through
# a SIGKILL and restart of nanad, answer 503 while it is down, and stop on SIGTERM.
# Not part of tools/test.sh by default (Hummingbird's first build takes 2.5–4.5 minutes);
# NANAD_EXAMPLES=1 tools/test.sh runs it after the suite.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
(cd "$repo" && swift build --product nanad)
(cd "$here" && swift build)
nanad="$repo/.build/debug/nanad"
notes="$here/.build/debug/NanaNotes"
tmp=$(mktemp -d /tmp/nana-notes.XXXXXX)
mkdir -p "$tmp/data"
pids=()
nanad_pid=""
cleanup() {
    for pid in "${pids[@]}" $nanad_pid; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for f in "$tmp"/*.log; do echo "== $f" >&2; tail -5 "$f" >&2; done; exit 1; }

start_nanad() {
    "$nanad" --data-dir "$tmp/data" --socket "$tmp/nanad.sock" >>"$tmp/nanad.log" 2>&1 &
    nanad_pid=$!
}
expect() {  # expect WHAT ACTUAL PATTERN
    [[ "$2" =~ $3 ]] || fail "$1: got '$2', expected /$3/"
    echo "ok: $1"
}

start_nanad
ports=(18081 18082 18083)
for i in 0 1 2; do
    "$notes" --socket "$tmp/nanad.sock" --port "${ports[$i]}" --name "copy$i" >"$tmp/copy$i.log" 2>&1 &
    pids+=($!)
done
for port in "${ports[@]}"; do
    for _ in $(seq 100); do curl -sf "localhost:$port/status" >/dev/null && break; sleep 0.1; done
done

expect "a note written through one copy" "$(curl -s --max-time 10 -X PUT "localhost:${ports[0]}/notes/shopping" --data 'milk, eggs')" '"text":"milk, eggs"'
expect "is read through another" "$(curl -s --max-time 10 "localhost:${ports[1]}/notes/shopping")" '"by":"copy0"'
for i in 0 1 2; do last=$(curl -s --max-time 10 -X POST "localhost:${ports[$i]}/hits/home"); done
expect "three copies increment one counter" "$last" '"count":3'

kill -KILL "$nanad_pid"; wait "$nanad_pid" 2>/dev/null || true
(sleep 1; "$nanad" --data-dir "$tmp/data" --socket "$tmp/nanad.sock" >>"$tmp/nanad.log" 2>&1 & echo $! >"$tmp/nanad.pid") &
restarter=$!
expect "a request while nanad is down waits for its restart" "$(curl -s --max-time 10 "localhost:${ports[2]}/notes/shopping")" '"text":"milk, eggs"'
wait "$restarter"
nanad_pid=$(cat "$tmp/nanad.pid")
expect "the counter carries on" "$(curl -s --max-time 10 -X POST "localhost:${ports[0]}/hits/home")" '"count":4'
expect "the status says it reconnected" "$(curl -s --max-time 10 "localhost:${ports[0]}/status")" '"reconnects":1'
expect "delete" "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' -X DELETE "localhost:${ports[1]}/notes/shopping")" '^204$'
expect "deleted everywhere" "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "localhost:${ports[0]}/notes/shopping")" '^404$'

kill -KILL "$nanad_pid"; wait "$nanad_pid" 2>/dev/null || true
nanad_pid=""
expect "no nanad: 503 after the connection timeout" "$(curl -s --max-time 10 -o /dev/null -w '%{http_code}' "localhost:${ports[1]}/notes/shopping")" '^503$'

for pid in "${pids[@]}"; do kill -TERM "$pid"; done
for pid in "${pids[@]}"; do wait "$pid" || fail "a copy exited with status $? on SIGTERM"; done
pids=()
echo "ok: the copies stopped on SIGTERM"
