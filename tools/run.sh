#!/usr/bin/env bash
# The run command: installs what is missing, builds nanad in release mode and serves
# ./nanad-data on ./nanad-data/nanad.sock until SIGTERM or Ctrl-C. Extra flags go to nanad.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
swift build -c release --product nanad
exec .build/release/nanad --data-dir nanad-data --socket nanad-data/nanad.sock "$@"
