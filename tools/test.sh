#!/usr/bin/env bash
# The test command: installs what is missing, builds every product (the integration tests
# start the real nanad and nanabench binaries), and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
swift build
swift test
