"""pytest plugin for upstream.sh: one real nanad for the whole run of NanaSQLite's suite.

Its data folder holds pytest's base temporary folder and tempfile's, so every folder a test
makes (``tmp_path``, ``tempfile.mkdtemp()``) is inside it. The plugin fails the run if nanad is not running after any test (the
daemon must stay up whatever a test does), and if it does not exit 0 on SIGTERM at the end.
"""

from __future__ import annotations

import os
import pathlib
import signal
import socket
import subprocess
import tempfile
import time

import pytest

_daemon = {}


def pytest_configure(config):
    if hasattr(config, "workerinput"):
        return
    root = pathlib.Path(tempfile.mkdtemp(prefix="nanad-up-"))
    data = root / "data"
    data.mkdir()
    config.option.basetemp = str(data / "t")
    # Tests that make their folders with tempfile (mkdtemp, TemporaryDirectory) make them in
    # the data folder too.
    (data / "tmp").mkdir()
    tempfile.tempdir = str(data / "tmp")
    os.environ["TMPDIR"] = str(data / "tmp")
    sock = str(root / "s.sock")
    log = open(root / "nanad.log", "wb")
    binary = os.environ["NANAD_BIN"]
    proc = subprocess.Popen([binary, "--socket", sock, "--data-dir", str(data), "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while True:
        if proc.poll() is not None:
            raise pytest.UsageError(f"nanad exited at start: {(root / 'nanad.log').read_text()}")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(sock)
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise pytest.UsageError("nanad did not start listening within 20 s")
            time.sleep(0.02)
        finally:
            probe.close()
    os.environ["NANAD_SOCKET"] = sock
    os.environ["NANAD_UPSTREAM_DATA"] = str(data)
    _daemon.update(proc=proc, root=root, log=log, died_after=None)
    # Imported now, before any test module: several of them put the sdist's src/ first on
    # sys.path before `import nanasqlite`, and whichever module imported it first would
    # otherwise decide for the whole run whether the suite tests the drop-in or the real
    # library. Once in sys.modules, every later import gets the shim.
    import nanasqlite

    shim = pathlib.Path(__file__).resolve().parent / "nanasqlite"
    if pathlib.Path(nanasqlite.__file__).resolve().parent != shim:
        raise pytest.UsageError(f"`import nanasqlite` found {nanasqlite.__file__}, not the drop-in's shim in {shim}")


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item):
    proc = _daemon.get("proc")
    if proc is not None and proc.poll() is not None and _daemon["died_after"] is None:
        _daemon["died_after"] = item.nodeid


def pytest_sessionfinish(session, exitstatus):
    proc = _daemon.get("proc")
    if proc is None:
        return
    died = _daemon["died_after"]
    if died is None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "killed after 60 s"
    else:
        code = proc.poll()
    _daemon["log"].close()
    report = _daemon["root"] / "nanad-status.txt"
    if died is not None:
        report.write_text(f"nanad died (status {code}) during or before {died}\n")
    elif code != 0:
        report.write_text(f"nanad exited {code} after SIGTERM\n")
    else:
        report.write_text("nanad stayed up and exited 0\n")
    print(f"\n[nanad-upstream] {report.read_text().strip()} (log: {_daemon['root'] / 'nanad.log'})")
    if died is not None or code != 0:
        session.exitstatus = 3
