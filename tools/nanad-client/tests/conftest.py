"""Fixtures: the real nanad binary, started once for the session.

``$NANAD_BIN`` names the binary (default: the repository's .build/debug/nanad). The daemon gets
a fresh socket and data folder under pytest's temporary directory and ``--log-level warning``;
after the session it is stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import itertools
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
DEFAULT_BIN = REPO / ".build" / "debug" / "nanad"


class Daemon:
    def __init__(self, root: pathlib.Path, name: str = "s") -> None:
        self.root = root
        self.socket = str(root / f"{name}.sock")
        self.data_dir = root / "data"
        self.binary = os.environ.get("NANAD_BIN") or str(DEFAULT_BIN)
        self.proc: subprocess.Popen | None = None
        self.log = root / f"{name}.log"

    def start(self) -> "Daemon":
        if not os.path.exists(self.binary):
            pytest.exit(f"nanad binary not found at {self.binary} (set NANAD_BIN)", returncode=2)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log_file = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [self.binary, "--socket", self.socket, "--data-dir", str(self.data_dir), "--log-level", "warning"],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nanad exited with {self.proc.returncode}: {self.log.read_text()}")
            if os.path.exists(self.socket):
                probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    probe.connect(self.socket)
                    return self
                except OSError:
                    pass
                finally:
                    probe.close()
            time.sleep(0.02)
        self.proc.kill()
        raise RuntimeError("nanad did not start listening within 20 s")

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            code = -9
        self._log_file.close()
        return code

    def path(self, name: str) -> pathlib.Path:
        return self.data_dir / name


def _short_tmp() -> pathlib.Path:
    # AF_UNIX paths are limited to ~107 bytes: keep the socket's folder short.
    return pathlib.Path(tempfile.mkdtemp(prefix="nanad-py-"))


@pytest.fixture(scope="session")
def nanad():
    daemon = Daemon(_short_tmp()).start()
    yield daemon
    code = daemon.stop()
    log = daemon.log.read_text()
    shutil.rmtree(daemon.root, ignore_errors=True)
    assert code == 0, f"nanad exited with {code}; log:\n{log}"


@pytest.fixture
def second_nanad():
    """A daemon of the test's own (another data folder), for tests that stop it."""
    daemon = Daemon(_short_tmp(), "t").start()
    yield daemon
    code = daemon.stop() if daemon.proc is not None and daemon.proc.poll() is None else 0
    shutil.rmtree(daemon.root, ignore_errors=True)
    assert code == 0


_counter = itertools.count()


@pytest.fixture
def dbfile(request) -> str:
    """A database file name, unique to the test, inside the daemon's data folder."""
    return f"t{next(_counter)}_{request.node.name[:40].replace('[', '_').replace(']', '_')}.db"


@pytest.fixture
def db(nanad, dbfile):
    from nanad_client import NanaSQLite

    instance = NanaSQLite(dbfile, socket=nanad.socket)
    yield instance
    try:
        if instance.in_transaction():
            instance.rollback()
    except Exception:
        pass
    instance.close()


_compat_names = itertools.count()


@pytest.fixture(params=["nanasqlite", "nanad"])
def impl(request, tmp_path):
    """A function opening a NanaSQLite-like instance: the real NanaSQLite 1.6.2 (in-process, on a
    private file) or the drop-in (through the session's nanad). Tests using it run twice."""
    import warnings

    opened = []
    if request.param == "nanasqlite":
        nanasqlite = __import__("nanasqlite")
        warnings.filterwarnings("ignore", module="nanasqlite")
        # v2 mode's multi-process warning fires for any process with a parent (pytest's too)
        request.getfixturevalue("monkeypatch").setenv("NANASQLITE_SUPPRESS_MP_WARNING", "1")

        def open_db(name, **kwargs):
            db = nanasqlite.NanaSQLite(str(tmp_path / name), **kwargs)
            opened.append(db)
            return db

        module = nanasqlite
    else:
        import nanad_client

        daemon = request.getfixturevalue("nanad")
        prefix = f"compat{next(_compat_names)}_"

        def open_db(name, **kwargs):
            db = nanad_client.NanaSQLite(prefix + name, socket=daemon.socket, **kwargs)
            opened.append(db)
            return db

        module = nanad_client
    open_db.module = module
    open_db.kind = request.param
    yield open_db
    for db in opened:
        try:
            if db.in_transaction():
                db.rollback()
            db.close()
        except Exception:
            pass
