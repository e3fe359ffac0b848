#!/usr/bin/env bash
# The test command: installs what is missing, builds every product (the integration tests
# start the real nanad, nanactl and nanabench binaries), runs the Swift suite, then the Python
# client's suite against the same nanad.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
swift build
swift test --skip ManyFilesTests
# Alone: it keeps both cores busy for a minute, which would fail the timing-bound tests beside it.
swift test --skip-build --filter ManyFilesTests
# The Python drop-in client (tools/nanad-client) against the nanad just built.
tools/nanad-client/run_tests.sh
# The Hummingbird example (Examples/NanaNotes), only when asked: its first build takes minutes.
if [ "${NANAD_EXAMPLES:-0}" = 1 ]; then
    Examples/NanaNotes/smoke.sh
fi
