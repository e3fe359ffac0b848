#!/usr/bin/env bash
# Tests of the Python drop-in client (tools/nanad-client) against the real nanad binary.
#
#   tools/nanad-client/run_tests.sh [pytest arguments...]
#
# Creates (or reuses) a virtual environment at .build/nanad-client-venv (git-ignored), installs
# the package with pytest, the real NanaSQLite 1.6.2 and cryptography (NanaSQLite's encryption)
# from PyPI, and runs the suite. The daemon binary is $NANAD_BIN, default .build/debug/nanad
# (build it first). Exits with pytest's status.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."   # the repository root

VENV=.build/nanad-client-venv
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p .build
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q ./tools/nanad-client pytest nanasqlite==1.6.2 pydantic cryptography validkit-py google-re2

export NANAD_BIN="${NANAD_BIN:-.build/debug/nanad}"
case "$NANAD_BIN" in /*) ;; *) NANAD_BIN="$PWD/$NANAD_BIN" ;; esac

status=0
"$VENV/bin/python" -m pytest -q tools/nanad-client/tests "$@" || status=$?
exit "$status"
