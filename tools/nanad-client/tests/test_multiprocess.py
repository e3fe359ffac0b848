"""Many OS processes on one database through the drop-in: no lost writes, no stale reads."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from nanad_client import NanaSQLite

import _workers

SPAWN = multiprocessing.get_context("spawn")


def test_8_processes_write_1000_keys_each(nanad, dbfile):
    workers, count = 8, 1000
    barrier = SPAWN.Barrier(workers)
    results = SPAWN.Queue()
    procs = [
        SPAWN.Process(target=_workers.write_keys, args=(nanad.socket, dbfile, n, count, barrier, results))
        for n in range(workers)
    ]
    for p in procs:
        p.start()
    reports = dict(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert {n: errors for n, errors in reports.items() if errors} == {}
    with NanaSQLite(dbfile, socket=nanad.socket) as db:
        assert len(db) == workers * count
        keys = [f"w{n}-{i}" for n in range(workers) for i in range(count)]
        found = db.batch_get(keys)
        assert len(found) == workers * count
        for n in range(workers):
            for i in (0, 1, count - 1):
                value = found[f"w{n}-{i}"]
                assert value == {"worker": n, "i": i, "f": i / 2, "even": i % 2 == 0}
                assert type(value["f"]) is float and type(value["even"]) is bool


def test_a_value_changed_in_one_process_is_read_fresh_in_another(nanad, dbfile):
    rounds = 20
    db = NanaSQLite(dbfile, socket=nanad.socket)
    parent_end, child_end = SPAWN.Pipe()
    child = SPAWN.Process(target=_workers.ping_pong, args=(nanad.socket, dbfile, rounds, child_end))
    child.start()
    try:
        db["shared"] = 0
        for r in range(rounds):
            assert db["shared"] == 2 * r  # cached in the daemon by this read...
            parent_end.send("go")
            assert parent_end.recv() == 2 * r
            assert db["shared"] == 2 * r + 1  # ...and still never stale after the other process wrote
            db["shared"] = 2 * r + 2
        assert parent_end.recv() == [2 * r for r in range(rounds)]
    finally:
        child.join(timeout=60)
        db.close()
    assert child.exitcode == 0


def test_increments_from_4_processes_are_never_lost(nanad, dbfile):
    procs_n, count = 4, 250
    barrier = SPAWN.Barrier(procs_n)
    results = SPAWN.Queue()
    procs = [SPAWN.Process(target=_workers.increment_many, args=(nanad.socket, dbfile, count, barrier, results))
             for _ in range(procs_n)]
    for p in procs:
        p.start()
    assert sum(results.get(timeout=120) for _ in procs) == procs_n * count
    for p in procs:
        p.join(timeout=60)
    with NanaSQLite(dbfile, socket=nanad.socket) as db:
        assert db["counter"] == procs_n * count


def test_instance_created_before_fork_reconnects_in_the_child(nanad, dbfile):
    # gunicorn --preload: the app opens its database in the master, then forks the workers.
    db = NanaSQLite(dbfile, socket=nanad.socket)
    db["before"] = 1
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()

    def child(n):
        try:
            db[f"child{n}"] = n  # the inherited socket is the parent's: a new connection is made
            results.put((n, db["before"], db[f"child{n}"]))
        except Exception as exc:  # pragma: no cover - reported below
            results.put((n, "error", repr(exc)))

    procs = [ctx.Process(target=child, args=(n,)) for n in range(3)]
    for p in procs:
        p.start()
    got = sorted(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert got == [(0, 1, 0), (1, 1, 1), (2, 1, 2)]
    assert db.batch_get(["child0", "child1", "child2"]) == {"child0": 0, "child1": 1, "child2": 2}
    db["after"] = 2  # the parent's own connection was not disturbed
    assert db["after"] == 2
    db.close()
