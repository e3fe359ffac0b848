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


def v2_write_and_read_others(socket, dbfile, worker, workers, count, config, barrier, results):
    """v2 mode: writes ``w<worker>-<i>`` then ``latest-<worker> = i``; between writes reads the
    other workers' ``latest-<m>`` and checks that what it announces is already readable
    (``w<m>-<j>`` exists) and never goes backwards."""
    from nanad_client import NanaSQLite, V2Config

    errors = []
    seen = {m: -1 for m in range(workers) if m != worker}
    db = NanaSQLite(dbfile, v2_mode=True, v2_config=V2Config(**config), socket=socket)
    barrier.wait()
    for i in range(count):
        try:
            db[f"w{worker}-{i}"] = {"worker": worker, "i": i}
            db[f"latest-{worker}"] = i
            m = (worker + 1 + i % (workers - 1)) % workers  # each of the others in turn
            j = db.get(f"latest-{m}", -1)
            if j < seen[m]:
                errors.append(f"latest-{m} went back from {seen[m]} to {j}")
            seen[m] = max(seen[m], j)
            if j >= 0 and db.get(f"w{m}-{j}") != {"worker": m, "i": j}:
                errors.append(f"latest-{m} = {j} but w{m}-{j} is {db.get(f'w{m}-{j}')!r}")
        except Exception as exc:  # counted, not raised: the test asserts zero
            errors.append(repr(exc))
    # Everyone's last value, once everyone is done writing.
    barrier.wait()
    final = {m: db.get(f"latest-{m}") for m in range(workers)}
    db.close()
    results.put((worker, errors, final))
