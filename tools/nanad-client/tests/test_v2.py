"""v2 (write-behind) mode through the drop-in, against the real daemon.

The daemon stages writes in memory per table (shared by every session and process) and a
flusher commits them; every client reads staged writes at once. The file itself is read with
the stdlib ``sqlite3`` to tell what is staged from what is committed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import multiprocessing
import sqlite3
import time

import pytest

import nanad_client
from nanad_client import (
    AsyncNanaSQLite,
    NanaSQLite,
    NanaSQLiteNotSupportedError,
    NanaSQLiteValidationError,
    V2Config,
)

import _workers

nanasqlite = __import__("nanasqlite")

SPAWN = multiprocessing.get_context("spawn")

METRIC_NAMES = {
    "flush_count", "kvs_items_flushed", "strict_tasks_executed", "dlq_errors", "last_flush_time",
    "total_flush_time_ms", "current_staging_count", "current_strict_queue_size",
}

POISON = """CREATE TRIGGER poison BEFORE INSERT ON "data" WHEN NEW.key = 'bad'
            BEGIN SELECT RAISE(ABORT, 'bad rows are refused'); END"""


def file_rows(path, table="data"):
    """The rows committed to the file (read-only, beside the daemon)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return {k: json.loads(v) for k, v in conn.execute(f'SELECT key, value FROM "{table}"')}
    finally:
        conn.close()


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# ------------------------------------------------------------------ V2Config and options


def test_v2config_is_nanasqlites_dataclass():
    ours = {f.name: f.default for f in dataclasses.fields(V2Config)}
    real = {f.name: f.default for f in dataclasses.fields(nanasqlite.V2Config)}
    assert ours == real
    assert nanad_client.CacheType.LRU == "lru" and [c.value for c in nanad_client.CacheType] == [
        c.value for c in nanasqlite.CacheType]
    for bad in ({"flush_mode": "never"}, {"flush_interval": 0}, {"flush_count": True}, {"chunk_size": 0},
                {"max_dlq_size": -1}):
        with pytest.raises(ValueError) as ours_err:
            V2Config(**bad)
        with pytest.raises(ValueError) as real_err:
            nanasqlite.V2Config(**bad)
        assert str(ours_err.value) == str(real_err.value)


def test_flat_kwargs_and_v2_config_are_stated_in_full(nanad, dbfile):
    db = NanaSQLite(dbfile, v2_mode=True, flush_mode="count", flush_count=7, v2_chunk_size=50,
                    v2_max_dlq_size=None, v2_enable_metrics=True, socket=nanad.socket)
    try:
        assert db._open_params["v2_mode"] is True
        assert db._open_params["v2_config"] == {"flush_mode": "count", "flush_interval": 3.0, "flush_count": 7,
                                                "chunk_size": 50, "max_dlq_size": None, "enable_metrics": True}
        # the same settings, given as a V2Config (which wins over the flat ones), share the table
        same = NanaSQLite(dbfile, v2_mode=True, flush_mode="manual",
                          v2_config=V2Config(flush_mode="count", flush_count=7, chunk_size=50, max_dlq_size=None,
                                             enable_metrics=True), socket=nanad.socket)
        same.close()
        for i in range(6):
            db[f"k{i}"] = i
        assert file_rows(nanad.path(dbfile)) == {}  # 6 < flush_count
        db["k6"] = 6
        assert wait_until(lambda: len(file_rows(nanad.path(dbfile))) == 7)
    finally:
        db.close()
    plain = NanaSQLite(dbfile, socket=nanad.socket)  # nobody uses it now: may go back to write-through
    assert plain._open_params["v2_mode"] is False and "v2_config" not in plain._open_params
    plain.close()


def test_memory_first_is_v2_with_time_flushes(nanad, dbfile):
    with pytest.raises(NanaSQLiteValidationError):
        NanaSQLite(dbfile, memory_first=True, cache_strategy="lru", cache_size=10, socket=nanad.socket)
    db = NanaSQLite(dbfile, memory_first=True, memory_flush_interval=0.2, socket=nanad.socket)
    try:
        assert db._open_params["v2_config"]["flush_mode"] == "time"
        assert db._open_params["v2_config"]["flush_interval"] == 0.2
        assert db._open_params["bulk_load"] is True
        db["m"] = {"x": 1}
        assert db["m"] == {"x": 1}
        assert wait_until(lambda: file_rows(nanad.path(dbfile)) == {"m": {"x": 1}})
    finally:
        db.close()


# ------------------------------------------------------------------ many processes


def test_4_processes_in_v2_mode_write_and_read_each_others_latest_values(nanad, dbfile):
    workers, count = 4, 300
    config = {"flush_mode": "manual", "enable_metrics": True}
    # This instance holds the table in manual v2 mode for the whole test: nothing reaches the
    # file until someone flushes or closes, so every read the workers make while writing is
    # served from the staging.
    db = NanaSQLite(dbfile, v2_mode=True, v2_config=V2Config(**config), socket=nanad.socket)
    try:
        barrier = SPAWN.Barrier(workers)
        results = SPAWN.Queue()
        procs = [
            SPAWN.Process(target=_workers.v2_write_and_read_others,
                          args=(nanad.socket, dbfile, n, workers, count, config, barrier, results))
            for n in range(workers)
        ]
        for p in procs:
            p.start()
        reports = [results.get(timeout=180) for _ in procs]
        for p in procs:
            p.join(timeout=60)
            assert p.exitcode == 0
        assert {n: errors for n, errors, _ in reports if errors} == {}
        for _, _, final in reports:  # after the second barrier every worker saw everyone's last write
            assert final == {m: count - 1 for m in range(workers)}
        expected = {f"w{n}-{i}": {"worker": n, "i": i} for n in range(workers) for i in range(count)}
        expected.update({f"latest-{n}": count - 1 for n in range(workers)})
        # The workers' reads above were of staged writes (manual mode: nothing flushes until
        # the first close()). Each worker's close() flushes what is staged, as NanaSQLite's
        # close() does: the file has every write once they have all closed.
        assert file_rows(nanad.path(dbfile)) == expected
        assert db.get_v2_metrics()["kvs_items_flushed"] >= len(expected)
        assert db.batch_get(list(expected)) == expected
        assert len(db) == len(expected) and db.to_dict() == expected
    finally:
        db.close()


# ------------------------------------------------------------------ flushing


def test_flush_wait_commits_everything_staged(nanad, dbfile):
    db = NanaSQLite(dbfile, v2_mode=True, flush_mode="manual", socket=nanad.socket)
    try:
        db["gone"] = 0
        db.flush(wait=True)
        db.update({f"k{i}": {"i": i} for i in range(500)})
        db["k0"] = "overwritten"
        del db["gone"]
        db.batch_delete(["k499"])
        assert db["k0"] == "overwritten" and "gone" not in db and "k499" not in db  # read from the staging
        assert file_rows(nanad.path(dbfile)) == {"gone": 0}
        assert db.flush(wait=True) is None
        expected = {f"k{i}": {"i": i} for i in range(1, 499)}
        expected["k0"] = "overwritten"
        assert file_rows(nanad.path(dbfile)) == expected
        db["later"] = 1
        assert db.flush() is None  # without wait: it lands soon after
        assert wait_until(lambda: file_rows(nanad.path(dbfile)).get("later") == 1)
    finally:
        db.close()


def test_reads_that_go_to_sqlite_see_staged_writes(nanad, dbfile):
    # NanaSQLite's len()/keys()/query() read SQLite and miss staged writes (spec 5.7); here
    # the daemon flushes first where a read goes to the file.
    with NanaSQLite(dbfile, v2_mode=True, flush_mode="manual", socket=nanad.socket) as db:
        db["a"] = 1
        assert "a" in db and len(db) == 1
        db["b"] = 2
        assert db.keys() == ["a", "b"]
        db["c"] = 3
        assert db.fetch_all('SELECT key FROM "data" ORDER BY key') == [("a",), ("b",), ("c",)]
        db["d"] = 4
        assert db.count() == 4 and db.to_dict() == {"a": 1, "b": 2, "c": 3, "d": 4}


def test_time_mode_flushes_by_itself(nanad, dbfile):
    db = NanaSQLite(dbfile, v2_mode=True, flush_mode="time", flush_interval=0.2, socket=nanad.socket)
    try:
        db.batch_update({"a": 1, "b": [2]})
        assert wait_until(lambda: file_rows(nanad.path(dbfile)) == {"a": 1, "b": [2]})
    finally:
        db.close()


def test_sigterm_flushes_everything_staged(second_nanad):
    daemon = second_nanad
    db = NanaSQLite("sigterm.db", v2_mode=True, flush_mode="manual", socket=daemon.socket)
    db["old"] = "flushed"
    db["doomed"] = "flushed"
    db.flush(wait=True)
    db.update({f"k{i}": {"i": i, "s": "x" * 10} for i in range(2000)})
    db["old"] = "new"
    del db["doomed"]
    users = db.table("users")  # a child: v2 as well, staged in its own table
    users["u1"] = {"name": "Alice"}
    assert file_rows(daemon.path("sigterm.db")) == {"old": "flushed", "doomed": "flushed"}
    assert daemon.stop() == 0  # SIGTERM, without closing the client first
    rows = file_rows(daemon.path("sigterm.db"))
    assert len(rows) == 2001 and rows["old"] == "new" and "doomed" not in rows
    assert rows["k1999"] == {"i": 1999, "s": "x" * 10}
    assert file_rows(daemon.path("sigterm.db"), "users") == {"u1": {"name": "Alice"}}


def test_close_flushes_what_was_staged_and_waits_for_it(nanad, dbfile):
    """As NanaSQLite's close(): a v2 instance's staged writes are in the file once close()
    returns (before, in manual mode they reached it only when nanad stopped, and a SIGKILL of
    nanad lost them), for the sync and the async class."""
    db = NanaSQLite(dbfile, v2_mode=True, flush_mode="manual", socket=nanad.socket)
    db.update({f"k{i}": i for i in range(500)})
    db["last"] = "staged"
    assert file_rows(nanad.path(dbfile)) == {}
    db.close()
    rows = file_rows(nanad.path(dbfile))
    assert len(rows) == 501 and rows["last"] == "staged"

    async def main():
        adb = AsyncNanaSQLite(dbfile, table="async", v2_mode=True, flush_mode="manual", socket=nanad.socket)
        await adb.aset("a", 1)
        assert file_rows(nanad.path(dbfile), "async") == {}
        await adb.close()
        return file_rows(nanad.path(dbfile), "async")

    assert asyncio.run(main()) == {"a": 1}


# ------------------------------------------------------------------ dead letters


def test_dlq_round_trip(nanad, dbfile):
    db = NanaSQLite(dbfile, v2_mode=True, flush_mode="manual", v2_enable_metrics=True, socket=nanad.socket)
    try:
        db.execute(POISON)
        db["good"] = {"ok": True}
        db["bad"] = {"b": [1, 2]}
        db.flush(wait=True)
        assert file_rows(nanad.path(dbfile)) == {"good": {"ok": True}}
        [entry] = db.get_dlq()
        assert set(entry) == {"error", "item", "timestamp"}
        assert entry["error"].startswith("KVS Poison Pill row 'bad' failed:") and "bad rows are refused" in entry["error"]
        (table, key), op = entry["item"]
        assert (table, key) == ('"data"', "bad") and op["action"] == "set"
        assert json.loads(op["value"]) == {"b": [1, 2]}
        assert isinstance(entry["timestamp"], float) and abs(entry["timestamp"] - time.time()) < 60
        assert db.get_dlq_summary() == [{"error": "write_failed", "timestamp": entry["timestamp"]}]
        status = db.get_status()
        assert status["mode"] == "write_back" and status["failed_count"] == 1
        assert db.get_v2_metrics()["dlq_errors"] == 1

        db.execute("DROP TRIGGER poison")
        assert db.retry_dlq() is None
        assert db.get_dlq() == []
        db.flush(wait=True)
        assert file_rows(nanad.path(dbfile)) == {"good": {"ok": True}, "bad": {"b": [1, 2]}}
        assert db.get_status()["failed_count"] == 0

        db.execute(POISON)
        del db["bad"]  # deletes are not refused by an insert trigger...
        db["bad"] = 2  # ...but this set is
        db.flush(wait=True)
        assert [e["item"][1] for e in db.get_dlq()] == [{"action": "set", "value": "2"}]
        assert db.clear_dlq() is None and db.get_dlq() == []
    finally:
        db.close()


def test_v2_methods_async(nanad, dbfile):
    async def main():
        async with AsyncNanaSQLite(dbfile, v2_mode=True, v2_config=V2Config(flush_mode="manual", enable_metrics=True),
                                   socket=nanad.socket) as db:
            await db.aexecute(POISON)
            await db.aset("bad", 1)
            await db.aset("good", 2)
            assert await db.aflush(wait=True) is None
            [entry] = await db.aget_dlq()
            assert entry["item"] == (('"data"', "bad"), {"action": "set", "value": "1"})
            assert set(await db.aget_v2_metrics()) == METRIC_NAMES
            await db.aexecute("DROP TRIGGER poison")
            assert await db.aretry_dlq() is None
            await db.flush(wait=True)
            assert await db.get_dlq() == [] and await db.aclear_dlq() is None
            assert (await db.get_v2_metrics())["dlq_errors"] == 1
            child = await db.table("other")
            await child.aset("x", 1)
            assert await child.aget_v2_metrics() != {}  # the child is in v2 mode too
        assert file_rows(nanad.path(dbfile)) == {"bad": 1, "good": 2}

    asyncio.run(main())


# ------------------------------------------------------------------ metrics


def test_metrics_names_and_counts(nanad, dbfile):
    with NanaSQLite(dbfile, v2_mode=True, flush_mode="manual", v2_enable_metrics=True, socket=nanad.socket) as db:
        first = db.get_v2_metrics()
        assert set(first) == METRIC_NAMES
        assert first["flush_count"] == 0 and first["last_flush_time"] is None
        db.update({"a": 1, "b": 2, "c": 3})
        assert db.get_v2_metrics()["current_staging_count"] == 3
        db.flush(wait=True)
        m = db.get_v2_metrics()
        assert m["flush_count"] >= 1 and m["kvs_items_flushed"] == 3 and m["current_staging_count"] == 0
        assert isinstance(m["last_flush_time"], float) and abs(m["last_flush_time"] - time.time()) < 60
        assert isinstance(m["total_flush_time_ms"], float) and m["total_flush_time_ms"] >= 0
    other = dbfile.replace(".db", "_nometrics.db")
    with NanaSQLite(other, v2_mode=True, socket=nanad.socket) as db:
        assert db.get_v2_metrics() == {}  # v2 without metrics, as NanaSQLite
    with NanaSQLite(other.replace(".db", "_v1.db"), socket=nanad.socket) as db:
        assert db.get_v2_metrics() == {} and db.get_dlq() == []


# ------------------------------------------------------------------ settings shared by the table


def test_conflicting_settings_are_refused_while_the_table_is_in_use(nanad, dbfile):
    v1 = NanaSQLite(dbfile, socket=nanad.socket)
    try:
        with pytest.raises(ValueError, match="write-through"):
            NanaSQLite(dbfile, v2_mode=True, socket=nanad.socket)

        async def async_open():
            async with AsyncNanaSQLite(dbfile, v2_mode=True, socket=nanad.socket) as adb:
                await adb.aget("x")

        with pytest.raises(ValueError):
            asyncio.run(async_open())
        NanaSQLite(dbfile, table="elsewhere", v2_mode=True, socket=nanad.socket).close()  # another table is free
        NanaSQLite(dbfile, socket=nanad.socket).close()  # the same settings share it
    finally:
        v1.close()
    v2 = NanaSQLite(dbfile, v2_mode=True, flush_mode="manual", socket=nanad.socket)  # nobody uses it now
    try:
        v2["staged"] = 1
        with pytest.raises(ValueError):
            NanaSQLite(dbfile, socket=nanad.socket)  # v1 while v2 holds it
        with pytest.raises(ValueError):
            NanaSQLite(dbfile, v2_mode=True, flush_mode="time", socket=nanad.socket)  # another v2 config
    finally:
        v2.close()
    # going back to write-through flushes what was staged first
    with NanaSQLite(dbfile, socket=nanad.socket) as v1_again:
        assert v1_again["staged"] == 1
        assert file_rows(nanad.path(dbfile))["staged"] == 1


def test_children_inherit_v2_and_refuse_other_settings(nanad, dbfile):
    with NanaSQLite(dbfile, v2_mode=True, flush_mode="manual", v2_enable_metrics=True, socket=nanad.socket) as db:
        child = db.table("items", v2_enable_metrics=True, cache_strategy="unbounded", memory_first=False)
        child["a"] = 1
        assert child.get_v2_metrics()["current_staging_count"] == 1
        assert file_rows(nanad.path(dbfile), "items") == {}
        child.flush(wait=True)
        assert file_rows(nanad.path(dbfile), "items") == {"a": 1}
        with pytest.raises(NanaSQLiteNotSupportedError, match="v2_enable_metrics"):
            db.table("items2", v2_enable_metrics=False)
        with pytest.raises(NanaSQLiteNotSupportedError, match="memory_first"):
            db.table("items2", memory_first=True)


# ------------------------------------------------------------------ side by side with NanaSQLite


def test_v2_management_shapes_match_nanasqlite(impl):
    db = impl("v2shapes.db", v2_mode=True, flush_mode="manual", v2_enable_metrics=True)
    db.execute(POISON)
    db["good"] = {"ok": True}
    db["bad"] = {"b": [1, 2], "s": "é"}
    assert db["bad"] == {"b": [1, 2], "s": "é"}  # staged writes are read back
    assert db.flush(wait=True) is None
    dlq = db.get_dlq()
    assert len(dlq) == 1 and set(dlq[0]) == {"error", "item", "timestamp"}
    assert dlq[0]["error"].startswith("KVS Poison Pill row 'bad' failed:")
    (table, key), op = dlq[0]["item"]
    assert (table, key, op["action"]) == ('"data"', "bad", "set")
    assert json.loads(op["value"]) == {"b": [1, 2], "s": "é"}
    assert isinstance(dlq[0]["timestamp"], float)
    assert db.get_dlq_summary() == [{"error": "write_failed", "timestamp": dlq[0]["timestamp"]}]
    metrics = db.get_v2_metrics()
    assert set(metrics) == METRIC_NAMES and metrics["dlq_errors"] == 1
    assert isinstance(metrics["last_flush_time"], float) and isinstance(metrics["total_flush_time_ms"], float)
    status = db.get_status()
    assert status["mode"] == "write_back" and status["failed_count"] == 1 and status["pending_kvs_count"] == 0
    db.execute("DROP TRIGGER poison")
    assert db.retry_dlq() is None
    db.flush(wait=True)
    assert db.get_dlq() == [] and db["bad"] == {"b": [1, 2], "s": "é"}
    assert db.clear_dlq() is None
    assert db.get_v2_metrics()["dlq_errors"] == 1

    plain = impl("v2shapes_v1.db")
    assert plain.flush(wait=True) is None and plain.get_dlq() == [] and plain.get_v2_metrics() == {}
    assert plain.retry_dlq() is None and plain.clear_dlq() is None
    quiet = impl("v2shapes_nometrics.db", v2_mode=True)
    quiet["x"] = 1
    assert quiet.get_v2_metrics() == {}


@pytest.mark.parametrize("newer", ["flushed", "pending", "delete", "batch_delete"])
def test_retry_dlq_never_stores_a_failed_row_over_a_newer_write(impl, newer):
    """A row that failed goes to the dead-letter queue; a newer write to its key (flushed,
    still staged, or a delete) wins over it when the queue is retried. NanaSQLite 1.6.2 gets
    this right too; the drop-in used to store the old row over a newer write already flushed."""
    db = impl("retry.db", v2_mode=True, flush_mode="manual")
    db.execute("CREATE TRIGGER reject_old BEFORE INSERT ON data WHEN NEW.value = '1' BEGIN SELECT RAISE(ABORT, 'rejected'); END")
    db["k"] = 1
    db.flush(wait=True)
    assert len(db.get_dlq()) == 1
    db.execute("DROP TRIGGER reject_old")
    if newer == "delete":
        # The failed value is the client's last word on "k": `del` succeeds and supersedes it,
        # though nanad's reads no longer show it (it never reached the file) where NanaSQLite's
        # cache keeps answering it; a read first (which caches the key as absent) changes nothing.
        assert db.get("k") == (1 if impl.kind == "nanasqlite" else None)
        del db["k"]
        with pytest.raises(KeyError):
            del db["k"]  # now there is nothing left to delete
    elif newer == "batch_delete":
        db.batch_delete(["k"])
    else:
        db["k"] = 2
    if newer != "pending":
        db.flush(wait=True)
    db.retry_dlq()
    db.flush(wait=True)
    assert db.get_dlq() == []
    deleted = newer in ("delete", "batch_delete")
    assert dict(db.items()) == ({} if deleted else {"k": 2})
    db.clear_cache()
    assert db.get("k") == (None if deleted else 2)


def test_get_status_reports_the_oldest_pending_write_and_the_last_flush(impl):
    """get_status() side by side with NanaSQLite: while a write waits, its age grows; after
    flush(wait=True) nothing is pending and the last successful flush has a time."""
    import time

    db = impl("status.db", v2_mode=True, flush_mode="manual")
    before = db.get_status()
    assert before["oldest_pending_age_seconds"] is None and before["pending_kvs_count"] == 0
    db["a"] = 1
    db["b"] = 2
    time.sleep(0.2)
    waiting = db.get_status()
    assert waiting["pending_kvs_count"] == 2 and waiting["flushing_kvs_count"] == 0
    assert waiting["oldest_pending_age_seconds"] is not None and 0.15 <= waiting["oldest_pending_age_seconds"] < 30
    assert waiting["flush_active"] is False
    started = time.time()
    db.flush(wait=True)
    after = db.get_status()
    assert after["pending_kvs_count"] == 0 and after["oldest_pending_age_seconds"] is None
    assert after["last_successful_flush_time"] is not None and started - 1 <= after["last_successful_flush_time"] <= time.time() + 1
    assert after["failed_count"] == 0
