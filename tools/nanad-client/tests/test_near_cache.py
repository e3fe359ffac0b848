"""The near-cache of the drop-in (PROTOCOL.md section 10), against the real nanad: hits make no
round trip, another process's acknowledged write is seen at once, transactions bypass it, and
a hit returns the cached object itself, as NanaSQLite does."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

from nanad_client import AsyncNanaSQLite, NanaSQLite, NanaSQLiteConnectionError


def daemon_reads(db) -> int:
    calls = db.stats()["server"]["calls_by_method"]
    return sum(calls.get(m, 0) for m in ("get", "contains", "batch_get"))


def write_from_another_process(nanad, dbfile: str, code: str) -> None:
    """Runs ``code`` with ``db`` open on ``dbfile`` in a separate Python process."""
    script = textwrap.dedent(f"""
        from nanad_client import NanaSQLite
        db = NanaSQLite({dbfile!r}, socket={nanad.socket!r}, near_cache=False)
    """) + textwrap.dedent(code) + "\ndb.close()\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_hits_make_no_round_trip(db):
    db["k"] = {"v": 1}
    assert db["k"] == {"v": 1}  # a miss fills the near-cache
    before = daemon_reads(db)
    for _ in range(200):
        assert db["k"] == {"v": 1}
        assert db.get("k") == {"v": 1}
        assert "k" in db
    assert db.batch_get(["k"]) == {"k": {"v": 1}}
    assert daemon_reads(db) == before
    stats = db.near_cache_stats()
    assert stats["hits"] == 601 and stats["entries"] == 1


def test_absence_is_cached_and_defaults_come_back_as_given(db):
    marker = object()
    assert db.get("nope", marker) is marker
    before = daemon_reads(db)
    assert db.get("nope", marker) is marker
    assert "nope" not in db
    try:
        db["nope"]
        raise AssertionError("KeyError expected")
    except KeyError:
        pass
    assert daemon_reads(db) == before


def test_a_write_from_another_process_is_seen_at_once(nanad, dbfile):
    db = NanaSQLite(dbfile, socket=nanad.socket)
    db["k"] = 1
    db["gone"] = "here"
    assert db["k"] == 1 and db["gone"] == "here" and "gone" in db
    for i in range(2, 6):
        write_from_another_process(nanad, dbfile, f"db['k'] = {i}\ndb.pop('gone', None)\n")
        assert db["k"] == i
        assert db.get("gone") is None and "gone" not in db
        write_from_another_process(nanad, dbfile, "db['gone'] = 'back'\n")
        assert db["gone"] == "back"
    write_from_another_process(nanad, dbfile, "db.clear()\n")
    assert db.get("k") is None
    write_from_another_process(nanad, dbfile, "db['k'] = 7\ndb.execute('UPDATE data SET value = ? WHERE key = ?', ('8', 'k'))\n")
    assert db["k"] == 8
    assert db.near_cache_stats()["invalidations"] >= 10
    db.close()


def test_a_hit_returns_the_cached_object_as_nanasqlite_does(nanad, dbfile):
    db = NanaSQLite(dbfile, socket=nanad.socket)
    other = NanaSQLite(dbfile, socket=nanad.socket, near_cache=False)
    db["doc"] = {"n": 1}
    first = db["doc"]
    first["n"] = 99  # NanaSQLite: later reads in this process see the caller's change ...
    assert db["doc"] is first and db["doc"]["n"] == 99
    assert other["doc"] == {"n": 1}  # ... and nothing else does
    db.refresh("doc")
    assert db["doc"] == {"n": 1}
    db.close()
    other.close()


def test_a_transaction_reads_its_own_writes_and_a_rollback_changes_nothing(db):
    db["k"] = 1
    assert db["k"] == 1
    db.begin_transaction()
    db["k"] = 2
    assert db["k"] == 2 and db.get("k") == 2
    db.rollback()
    assert db["k"] == 1
    with db.transaction():
        db["k"] = 3
        assert db["k"] == 3
    assert db["k"] == 3


def test_limits_and_turning_it_off(nanad, dbfile):
    small = NanaSQLite(dbfile, socket=nanad.socket, near_cache_size=10)
    small.batch_update({f"k{i}": i for i in range(50)})
    for i in range(50):
        assert small[f"k{i}"] == i
    assert small.near_cache_stats()["entries"] == 10
    tiny = NanaSQLite(dbfile, socket=nanad.socket, table="big", near_cache_bytes=4096)
    tiny["big"] = "x" * 8192
    assert tiny["big"] == "x" * 8192
    assert tiny.near_cache_stats()["entries"] == 0
    off = NanaSQLite(dbfile, socket=nanad.socket, near_cache=False)
    assert off["k1"] == 1 and off.near_cache_stats() is None
    child = small.table("other")
    child["c"] = 1
    assert child["c"] == 1 and child["c"] == 1
    assert child.near_cache_stats()["hits"] == 1
    for instance in (child, tiny, off, small):
        instance.close()
    try:
        NanaSQLite(dbfile, socket=nanad.socket, near_cache_size=-1)
        raise AssertionError("ValueError expected")
    except ValueError:
        pass


def test_eviction_gives_a_read_entry_a_second_chance(nanad, dbfile):
    """CLOCK: a full near-cache evicts its oldest entry not read since it was last passed over."""
    db = NanaSQLite(dbfile, socket=nanad.socket, near_cache_size=3)
    db.batch_update({"a": 1, "b": 2, "c": 3, "d": 4, "e": 5})
    for key in ("a", "b", "c"):
        assert db[key] == ord(key) - ord("a") + 1  # three misses fill a, b, c
    assert db["a"] == 1  # a hit marks a used
    assert db["d"] == 4  # full: a is passed over (unmarked, to the back), b goes
    misses = db.near_cache_stats()["misses"]
    assert db["a"] == 1 and db["c"] == 3 and db["d"] == 4
    assert db.near_cache_stats()["misses"] == misses  # a, c and d are all still there
    assert db["b"] == 2 and db.near_cache_stats()["misses"] == misses + 1  # b was evicted
    # b's fill makes room first: c, d and a were all just read, so each loses its mark in turn
    # and the oldest of them, c, now unmarked at the front, goes; b itself stays.
    assert db.near_cache_stats()["entries"] == 3
    assert db["b"] == 2 and db["d"] == 4 and db["a"] == 1
    assert db.near_cache_stats()["misses"] == misses + 1
    assert db["c"] == 3 and db.near_cache_stats()["misses"] == misses + 2
    db.close()


def test_hooks_run_on_hits(nanad, dbfile):
    class Upper:
        def after_read(self, db, key, value):
            return value.upper() if isinstance(value, str) else value

    db = NanaSQLite(dbfile, socket=nanad.socket, hooks=[Upper()])
    db["k"] = "abc"
    assert db["k"] == "ABC"
    assert db["k"] == "ABC"
    assert db.near_cache_stats()["hits"] >= 1
    db.close()


def test_async_hits_and_another_writer(nanad, dbfile):
    async def main():
        async with AsyncNanaSQLite(dbfile, socket=nanad.socket) as db:
            await db.aset("k", 1)
            assert await db.aget("k") == 1
            before = daemon_reads_stats(await db.astats())
            for _ in range(100):
                assert await db.aget("k") == 1
                assert await db.get("k") == 1
                assert await db.acontains("k")
            assert daemon_reads_stats(await db.astats()) == before
            assert db.near_cache_stats()["hits"] == 300
            write_from_another_process(nanad, dbfile, "db['k'] = 2\n")
            assert await db.aget("k") == 2
            assert await db.abatch_get(["k", "none"]) == {"k": 2}
            assert await db.abatch_get(["k", "none"]) == {"k": 2}
            await db.abegin_transaction()
            await db.aset("k", 3)
            assert await db.aget("k") == 3
            await db.arollback()
            assert await db.aget("k") == 2

    def daemon_reads_stats(stats):
        calls = stats["server"]["calls_by_method"]
        return sum(calls.get(m, 0) for m in ("get", "contains", "batch_get"))

    asyncio.run(main())


def test_a_daemon_restart_drops_every_entry(second_nanad, dbfile):
    db = NanaSQLite(dbfile, socket=second_nanad.socket)
    db["k"] = 1
    assert db["k"] == 1
    second_nanad.proc.kill()  # SIGKILL: the next daemon invalidates the boards this one left
    second_nanad.proc.wait()
    second_nanad.start()
    writer = NanaSQLite(dbfile, socket=second_nanad.socket, near_cache=False)
    writer["k"] = 2
    # Not a hit on the old board: the read goes to the daemon, finds the connection gone (as
    # any call does after a restart), and the next one reconnects.
    try:
        db["k"]
        raise AssertionError("the first read after the restart should find the connection gone")
    except NanaSQLiteConnectionError:
        pass
    assert db["k"] == 2  # reconnected: a new handle, a new board, a new near-cache
    assert db["k"] == 2
    assert db["k"] == 2 and db.near_cache_stats()["hits"] == 1
    writer.close()
    db.close()


def test_a_board_is_unmapped_with_the_last_handle_using_it(nanad, dbfile):
    import gc

    root = NanaSQLite(dbfile, socket=nanad.socket)
    root["k"] = 1
    boards = root._conn.near_boards
    assert len(boards) == 1
    other = NanaSQLite("other-" + dbfile, socket=nanad.socket)
    assert len(other._conn.near_boards) == 1  # a connection of its own
    child = root.table("t")
    assert len(boards) == 1  # the same file: the same board
    child.close()
    del child
    gc.collect()
    assert len(boards) == 1
    root.close()
    other.close()
    del root
    gc.collect()
    assert len(boards) == 0
