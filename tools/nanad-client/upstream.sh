#!/usr/bin/env bash
# NanaSQLite 1.6.2's own test suite, through the drop-in (issue #16).
#
#   tools/nanad-client/upstream.sh [--real] [pytest arguments...]
#
# Downloads NanaSQLite's sdist once (pip download, into .build/upstream), and runs its tests/
# against the drop-in: a `nanasqlite` package that is nanad_client (upstream/shim) and one real
# nanad for the whole run ($NANAD_BIN, default .build/debug/nanad), whose data folder holds
# pytest's temporary folders. Prints per-file counts against upstream/baseline-1.6.2.txt (the
# tests that pass on real NanaSQLite) and upstream/excluded.txt (tests listed with a reason),
# and exits 1 on a regression: a test that passes on NanaSQLite, fails here, and is not listed.
#
# --real runs the same tests against real NanaSQLite 1.6.2 instead and rewrites the baseline.
# The benchmark files are left out, as NanaSQLite's own pytest settings leave them out.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."   # the repository root
repo=$PWD
here=tools/nanad-client/upstream
real=0
if [ "${1:-}" = "--real" ]; then real=1; shift; fi
work=.build/upstream
mkdir -p "$work"
if [ ! -d "$work/nanasqlite-1.6.2/tests" ]; then
    python3 -m pip download -q --no-deps --no-binary :all: nanasqlite==1.6.2 -d "$work"
    tar -xzf "$work/nanasqlite-1.6.2.tar.gz" -C "$work"
fi
# NanaSQLite's test dependencies (its `dev` extra, without the linters and coverage tools), and
# apsw, its SQLite binding, which some tests use to look at the files themselves.
# pytest-timeout: a test that hangs through the drop-in fails after 60 s (with its stack)
# instead of holding the run.
deps=(pytest "pytest-asyncio>=0.21,<2" pydantic cryptography validkit-py lru-dict orjson google-re2 apsw pytest-timeout)
venv=$work/venv-$([ $real = 1 ] && echo real || echo drop-in)
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if [ $real = 1 ]; then
    "$venv/bin/python" -m pip install -q nanasqlite==1.6.2 "${deps[@]}"
else
    "$venv/bin/python" -m pip install -q ./tools/nanad-client "${deps[@]}"
fi
# Paths below are relative to the sdist's root, where pytest runs.
ignore=(--ignore=tests/test_benchmark.py --ignore=tests/test_async_benchmark.py)
results=$work/results-$([ $real = 1 ] && echo real || echo drop-in).xml
deselect=()
# A listed file (an id without "::") is left out whole: its module cannot even be imported here.
while read -r id; do
    case "$id" in *::*) deselect+=(--deselect "$id") ;; *) deselect+=(--ignore="$id") ;; esac
done < <(grep -v '^\s*#' "$here/excluded.txt" | sed 's/#.*//; s/[[:space:]]*$//' | grep -v '^$' || true)
cd "$work/nanasqlite-1.6.2"
status=0
if [ $real = 1 ]; then
    "$repo/$venv/bin/python" -m pytest -q -p no:cacheprovider -o addopts="" -o asyncio_mode=auto \
        "${ignore[@]}" --junitxml="$repo/$results" tests "$@" > "$repo/$work/pytest-real.log" 2>&1 || status=$?
    cd "$repo"
    tail -3 "$work/pytest-real.log"
    "$venv/bin/python" "$here/summary.py" "$results" --write-baseline "$here/baseline-1.6.2.txt"
    exit 0
fi
export NANAD_BIN="${NANAD_BIN:-$repo/.build/debug/nanad}"
case "$NANAD_BIN" in /*) ;; *) NANAD_BIN="$repo/$NANAD_BIN" ;; esac
if [ ! -x "$NANAD_BIN" ]; then   # a fresh clone: build the daemon the run talks to
    (cd "$repo" && tools/setup.sh && swift build --product nanad)
fi
# The shim first on the path, so that `import nanasqlite` finds it and not a real one.
PYTHONPATH="$repo/$here/shim" "$repo/$venv/bin/python" -m pytest -q -p no:cacheprovider -p nanad_upstream -o addopts="" -o asyncio_mode=auto --continue-on-collection-errors --timeout 60 \
    "${ignore[@]}" ${deselect[@]+"${deselect[@]}"} --junitxml="$repo/$results" tests "$@" \
    > "$repo/$work/pytest-drop-in.log" 2>&1 || status=$?
cd "$repo"
tail -3 "$work/pytest-drop-in.log"
"$venv/bin/python" "$here/summary.py" "$results" --baseline "$here/baseline-1.6.2.txt" --excluded "$here/excluded.txt"
