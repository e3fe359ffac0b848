#!/usr/bin/env python3
"""Shrink a nanafuzz-dispatch input that fails on replay to fewer frames that still fail.

usage: tools/fuzz/minimize-dispatch.py INPUT OUTPUT [BINARY]

Works on whole frames (4-byte length, MessagePack body), so every candidate stays well formed:
it removes runs of frames, halving the run length, while the plain build's replay still
reports the same kind of failure (an invariant naming the first line of the original report).
libFuzzer's -minimize_crash mutates bytes and keeps whatever crashes, which for this target
often turns one failure into another; hence this.
"""
import os, subprocess, sys

source, target = sys.argv[1], sys.argv[2]
binary = sys.argv[3] if len(sys.argv) > 3 else ".build/debug/nanafuzz-dispatch"
data = open(source, "rb").read()
frames, offset = [], 0
while offset + 4 <= len(data):
    length = int.from_bytes(data[offset:offset + 4], "big")
    if offset + 4 + length > len(data):
        break
    frames.append(data[offset:offset + 4 + length])
    offset += 4 + length
tail = data[offset:]
environment = dict(os.environ, SWIFT_BACKTRACE="enable=no")


def failure(candidate):
    path = target + ".candidate"
    open(path, "wb").write(candidate)
    result = subprocess.run([binary, path], capture_output=True, env=environment, timeout=600)
    os.unlink(path)
    for line in result.stderr.decode(errors="replace").splitlines():
        if "invariant failed:" in line:
            return line.split("invariant failed:", 1)[1].split(";")[0].split(":")[0].strip()
    return None


kind = failure(data)
if kind is None:
    sys.exit(f"{source} does not fail on replay with {binary}")
print(f"{len(frames)} frames; failure: {kind}")
if failure(b"".join(frames)) == kind:
    tail = b""
run = max(1, len(frames) // 2)
while True:
    i = 0
    while i < len(frames):
        candidate = frames[:i] + frames[i + run:]
        if candidate and failure(b"".join(candidate) + tail) == kind:
            frames = candidate
            print(f"removed {run} at {i}: {len(frames)} frames left", flush=True)
        else:
            i += run
    if run == 1:
        break
    run //= 2
open(target, "wb").write(b"".join(frames) + tail)
print(f"{len(frames)} frames written to {target}")
