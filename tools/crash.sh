#!/usr/bin/env bash
# The crash-safety harness, full form: builds nanad and nanabench (release), then kills nanad
# with SIGKILL under load from several writer processes (16 connections) and a client holding
# an open transaction, restarts it and checks every acknowledged write, 20 rounds by default.
# Extra arguments go to `nanabench crash` (e.g. --rounds 50; --v2 for the write-behind variant,
# which checks the loss bound both ways). The test suite runs 3 rounds of each.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
swift build -c release --product nanad
swift build -c release --product nanabench
exec .build/release/nanabench crash --rounds 20 "$@"
