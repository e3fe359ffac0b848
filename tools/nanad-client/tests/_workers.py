"""Functions run in other processes by test_multiprocess.py (importable without pytest)."""

from __future__ import annotations


def write_keys(socket, dbfile, worker, count, barrier, results):
    from nanad_client import NanaSQLite

    errors = []
    db = NanaSQLite(dbfile, socket=socket)
    barrier.wait()  # every worker starts writing at once
    for i in range(count):
        try:
            db[f"w{worker}-{i}"] = {"worker": worker, "i": i, "f": i / 2, "even": i % 2 == 0}
        except Exception as exc:  # counted, not raised: the test asserts zero
            errors.append(repr(exc))
    db.close()
    results.put((worker, errors))


def ping_pong(socket, dbfile, rounds, conn):
    """Reads the value the other process wrote, answers with the next one."""
    from nanad_client import NanaSQLite

    db = NanaSQLite(dbfile, socket=socket)
    seen = []
    for _ in range(rounds):
        conn.recv()  # the parent wrote
        value = db["shared"]
        seen.append(value)
        db["shared"] = value + 1
        conn.send(value)
    db.close()
    conn.send(seen)


def increment_many(socket, dbfile, count, barrier, results):
    from nanad_client import NanaSQLite

    db = NanaSQLite(dbfile, socket=socket)
    barrier.wait()
    for _ in range(count):
        db.increment("counter", default=0)
    db.close()
    results.put(count)
