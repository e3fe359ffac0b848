#!/usr/bin/env bash
# Writes the protocol's method table, as nanad declares it (Sources/NanaServer/Methods/
# MethodTable.swift), into proto/PROTOCOL.md and docs/API.md between their markers.
# NanaServerTests.MethodTableTests fails until this has been run after a change of the table.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --product nanad >/dev/null
table=$(.build/debug/nanad --print-method-table)
for file in proto/PROTOCOL.md docs/API.md; do
    TABLE="$table" python3 - "$file" <<'PY'
import os, re, sys
path = sys.argv[1]
text = open(path).read()
begin, end = "<!-- methods:begin -->", "<!-- methods:end -->"
if begin not in text or end not in text:
    sys.exit(f"{path}: no {begin} … {end} markers")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open(path, "w").write(head + begin + "\n" + os.environ["TABLE"] + "\n" + end + tail)
PY
    echo "updated $file"
done
