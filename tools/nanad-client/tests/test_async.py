"""AsyncNanaSQLite through every method family, and many calls in flight on one connection."""

from __future__ import annotations

import asyncio
import inspect

import pytest

from nanad_client import (
    AsyncNanaSQLite,
    NanaSQLite,
    Cursor,
    NanaSQLiteClosedError,
    NanaSQLiteConnectionError,
    NanaSQLiteDatabaseError,
    NanaSQLiteNotSupportedError,
    NanaSQLiteTransactionError,
    NanaSQLiteValidationError,
)

from test_sync import VALUES, same

# Every name the seed (AsyncNanaSQLite API reference) lists.
SEED_NAMES = """
close table get keys values items to_dict copy clear_cache aflush flush aget_dlq get_dlq aretry_dlq retry_dlq
aclear_dlq clear_dlq aget_v2_metrics get_v2_metrics load_all refresh is_cached batch_update batch_update_partial
batch_delete get_fresh begin_transaction commit rollback in_transaction transaction upsert sql_insert sql_update
sql_delete query query_with_pagination count execute execute_many fetch_one fetch_all create_table create_index
table_exists list_tables drop_table drop_index vacuum set_model get_model add_hook aget aset adelete acontains
contains alen akeys avalues aitems apop aupdate aclear asetdefault aload_all arefresh ais_cached abatch_update
abatch_update_partial abatch_delete ato_dict acopy aget_fresh abatch_get aset_model aget_model aexecute
aexecute_many afetch_one afetch_all acreate_table acreate_index aquery aquery_with_pagination atable_exists
alist_tables adrop_table asql_insert asql_update asql_delete acount avacuum aclear_cache atable abackup arestore
apragma aget_table_schema alist_indexes aalter_table_add_column aupsert
""".split()


def run(coro):
    return asyncio.run(coro)


def test_every_seed_name_exists_and_is_awaitable():
    for name in SEED_NAMES:
        attr = getattr(AsyncNanaSQLite, name)
        if name not in ("transaction", "add_hook"):
            assert inspect.iscoroutinefunction(attr), name
    assert list(inspect.signature(AsyncNanaSQLite.aget).parameters) == ["self", "key", "default"]
    assert list(inspect.signature(AsyncNanaSQLite.abackup).parameters)[:2] == ["self", "target_path"]
    assert list(inspect.signature(AsyncNanaSQLite.aincrement).parameters) == ["self", "key", "amount", "field", "default"]


def test_async_families(nanad, dbfile):
    async def main():
        async with AsyncNanaSQLite(dbfile, socket=nanad.socket) as db:
            # dict interface, exact types
            for i, value in enumerate(VALUES):
                await db.aset(f"k{i}", value)
            for i, value in enumerate(VALUES):
                assert same(await db.aget(f"k{i}"), value)
            assert await db.acontains("k1") is True and await db.contains("nope") is False
            assert await db.alen() == len(VALUES)
            assert sorted(await db.akeys()) == sorted(f"k{i}" for i in range(len(VALUES)))
            assert len(await db.avalues()) == len(VALUES)
            assert all(type(p) is tuple for p in await db.aitems())
            default = []
            assert await db.aget("missing", default) is default
            assert await db.apop("k4") == 5
            assert await db.apop("k4", "d") == "d"
            with pytest.raises(KeyError):
                await db.apop("k4")
            with pytest.raises(KeyError):
                await db.adelete("k4")
            await db.adelete("k3")
            await db.aupdate({"u1": 1}, u2=2.0)
            assert same(await db.abatch_get(["u2", "u1", "zz"]), {"u2": 2.0, "u1": 1})
            assert await db.asetdefault("sd", {"a": 1}) == {"a": 1}
            assert same(await db.ato_dict() == await db.acopy(), True)
            # batches
            await db.abatch_update({"b1": True, "b2": None})
            refused = await db.abatch_update_partial({"ok": 1, "bad": b"x"})
            assert list(refused) == ["bad"]
            assert refused["bad"].startswith("Skipped key 'bad' during partial batch update: Object of type bytes")
            await db.abatch_delete(["b1", "b2"])
            assert await db.abatch_get(["b1", "b2"]) == {}
            # cache control
            await db.aclear_cache()
            assert await db.ais_cached("u1") is False
            await db.aload_all()
            assert await db.is_cached("u1") is True
            await db.arefresh("u1")
            await db.refresh()
            assert await db.aget_fresh("u1") == 1 and await db.get_fresh("zz", 0) == 0
            # atomic
            assert await db.aincrement("n", default=0) == 1
            assert await db.apatch("sd", {"b": 2}) == {"a": 1, "b": 2}
            # v2 no-ops
            assert await db.aflush(wait=True) is None and await db.aget_dlq() == []
            assert await db.aget_v2_metrics() == {}
            # direct SQL
            cur = await db.aexecute("SELECT key FROM data WHERE key = ?", ("u1",))
            assert isinstance(cur, Cursor) and cur.fetchall() == [("u1",)]
            await db.aexecute("CREATE TABLE t (id INTEGER PRIMARY KEY, v REAL)")
            await db.aexecute_many("INSERT INTO t (v) VALUES (?)", [(1.0,), (2.5,)])
            assert await db.afetch_one("SELECT v FROM t WHERE id = 2") == (2.5,)
            assert await db.afetch_all("SELECT id FROM t ORDER BY id") == [(1,), (2,)]
            # SQL helpers and schema
            await db.acreate_table("users", {"id": "INTEGER PRIMARY KEY", "name": "TEXT"})
            assert await db.asql_insert("users", {"name": "A"}) == 1
            assert await db.asql_update("users", {"name": "B"}, "id = ?", (1,)) == 1
            assert await db.aquery("users") == [{"id": 1, "name": "B"}]
            assert await db.aquery_with_pagination("users", limit=1, offset=0) == [{"id": 1, "name": "B"}]
            assert await db.acount("users") == 1 and await db.exists("users", "id = ?", (1,)) is True
            assert isinstance(await db.aupsert("users", {"id": 1, "name": "C"}, conflict_columns=["id"]), int)
            assert await db.aupsert("kv", [1, 2]) is None and await db.aget("kv") == [1, 2]
            await db.acreate_index("idx_name", "users", ["name"])
            assert [i["name"] for i in await db.alist_indexes("users")] == ["idx_name"]
            assert await db.atable_exists("users") is True
            assert "users" in await db.alist_tables()
            await db.aalter_table_add_column("users", "age", "INTEGER")
            assert [c["name"] for c in await db.aget_table_schema("users")] == ["id", "name", "age"]
            assert await db.asql_delete("users", "id = ?", (1,)) == 1
            await db.drop_index("idx_name")
            await db.adrop_table("users")
            assert await db.table_exists("users") is False
            # utilities
            await db.avacuum()
            assert await db.apragma("journal_mode") == "wal"
            await db.abackup(dbfile + ".abak")
            await db.aset("after-backup", 1)
            await db.arestore(dbfile + ".abak")
            assert await db.aget("after-backup") is None
            # transactions
            assert await db.in_transaction() is False
            await db.begin_transaction()
            with pytest.raises(NanaSQLiteTransactionError):
                await db.begin_transaction()
            await db.aset("tx", 1)
            await db.rollback()
            assert await db.aget("tx") is None
            async with db.transaction():
                await db.aset("tx", 2)
            assert await db.aget("tx") == 2
            with pytest.raises(ZeroDivisionError):
                async with db.transaction():
                    await db.aset("tx", 3)
                    1 / 0
            assert await db.aget("tx") == 2
            with pytest.raises(NanaSQLiteTransactionError):
                await db.commit()
            # tables
            users = await db.table("people")
            await users.aset("p", 1)
            assert await db.aget("p") is None and await users.aget("p") == 1
            child2 = await db.atable("people")
            assert await child2.aget("p") == 1
            await users.close()
            with pytest.raises(NanaSQLiteClosedError):
                await users.aget("p")
            assert await child2.aget("p") == 1
        with pytest.raises(NanaSQLiteClosedError):
            await db.aget("x")
        with pytest.raises(NanaSQLiteClosedError):
            await child2.aget("p")

    run(main())


def test_gather_1000_sets_on_one_connection(nanad, dbfile):
    async def main():
        db = AsyncNanaSQLite(dbfile, socket=nanad.socket)
        await asyncio.gather(*[db.aset(f"g{i}", {"i": i, "f": float(i), "b": i % 2 == 0}) for i in range(1000)])
        values = await asyncio.gather(*[db.aget(f"g{i}") for i in range(1000)])
        assert values == [{"i": i, "f": float(i), "b": i % 2 == 0} for i in range(1000)]
        assert all(type(v["f"]) is float and type(v["b"]) is bool for v in values)
        assert await db.alen() == 1000
        stats = await db.stats()
        assert stats["server"]["connections"] >= 1
        conn = db._conn
        assert conn.generation == 1  # one connection for everything
        await db.close()

    run(main())


def test_lazy_open_and_constructor_errors(nanad, dbfile):
    async def main():
        db = AsyncNanaSQLite(dbfile, table="bad name", socket=nanad.socket)  # nothing sent yet
        with pytest.raises(NanaSQLiteValidationError):
            await db.aget("x")
        bad_v2 = AsyncNanaSQLite(dbfile, v2_mode=True, flush_mode="sometimes", socket=nanad.socket)  # not yet
        with pytest.raises(ValueError, match="Invalid flush_mode"):
            async with bad_v2:
                pass
        with pytest.raises(NanaSQLiteNotSupportedError):
            async with AsyncNanaSQLite(":memory:", socket=nanad.socket):
                pass
        with pytest.raises(ValueError):
            await AsyncNanaSQLite(dbfile, max_workers=0, socket=nanad.socket).aget("x")
        with pytest.raises(NanaSQLiteConnectionError):
            await AsyncNanaSQLite(dbfile, socket=str(nanad.root / "absent.sock")).aget("x")
        good = AsyncNanaSQLite(dbfile, socket=nanad.socket)
        assert "initialized=False" in repr(good)
        await good.aset("a", 1)
        assert "initialized=True" in repr(good)
        await good.close()

    run(main())


def test_sync_db_is_a_sync_instance_of_the_same_file_and_table(nanad, dbfile):
    async def main():
        db = AsyncNanaSQLite(dbfile, socket=nanad.socket)
        assert db.sync_db is None  # as in NanaSQLite: nothing before the first await
        await db.aset("a", 1)
        sync = db.sync_db
        assert isinstance(sync, NanaSQLite) and db.sync_db is sync
        assert sync["a"] == 1  # the async write, seen at once on the other connection
        sync["b"] = 2
        assert await db.aget("b") == 2
        sync.create_table("users", {"id": "INTEGER PRIMARY KEY", "name": "TEXT"})
        sync.alter_table_add_column("users", "age", "INTEGER", default=0)
        assert "age" in [column["name"] for column in sync.get_table_schema("users")]
        child = await db.table("other")
        child_sync = child.sync_db
        child_sync["c"] = 3
        assert await child.aget("c") == 3 and "c" not in sync
        async with db.transaction():
            with pytest.raises(NanaSQLiteTransactionError):
                db.sync_db  # not in this transaction: a write through it would wait forever
        await db.close()
        assert sync.closed and child_sync.closed  # closing the root closes every one
        assert db.sync_db is None and child.sync_db is None  # as NanaSQLite's, once closed

    run(main())


def test_bad_input_leaves_the_async_connection_usable(nanad, dbfile):
    async def main():
        async with AsyncNanaSQLite(dbfile, socket=nanad.socket) as db:
            await db.aset("ok", 1)
            results = await asyncio.gather(
                db.aset("b", b"bytes"),
                db.aset("i", {1: 2}),
                db.aset("n", float("nan")),
                db.table("bad name"),
                db.aexecute("SELECT * FROM nope"),
                db.aget("ok"),
                return_exceptions=True,
            )
            assert [type(r) for r in results[:5]] == [TypeError, TypeError, ValueError,
                                                      NanaSQLiteValidationError, NanaSQLiteDatabaseError]
            assert results[5] == 1
            assert await db.aget("ok") == 1

    run(main())


def test_instance_reused_across_event_loops(nanad, dbfile):
    db = AsyncNanaSQLite(dbfile, socket=nanad.socket)
    run(db.aset("loop", 1))
    assert run(db.aget("loop")) == 1  # a new asyncio.run(): reconnects, reopens its handle
    run(db.close())


def test_cancelled_call_does_not_disturb_others(nanad, dbfile):
    async def main():
        async with AsyncNanaSQLite(dbfile, socket=nanad.socket) as db:
            task = asyncio.ensure_future(db.aset("c", 1))
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await db.aset("d", 2)
            assert await db.aget("d") == 2

    run(main())



def test_max_pending_operations_bounds_the_calls_in_flight(nanad, dbfile):
    # NanaSQLite's argument checks, at construction as there.
    for options in ({"max_pending_operations": True}, {"max_pending_operations": 0},
                    {"max_pending_operations": 1, "admission_timeout": float("nan")}, {"admission_timeout": 1}):
        with pytest.raises(ValueError):
            AsyncNanaSQLite(dbfile, socket=nanad.socket, **options)

    async def main():
        async with AsyncNanaSQLite(dbfile, max_pending_operations=1, admission_timeout=0.3,
                                   socket=nanad.socket) as db:
            child = await db.table("other")
            await asyncio.gather(*(db.aset(f"k{i}", i) for i in range(10)))  # one at a time, all done
            assert await db.alen() == 10
            # Another client's transaction holds the file's writer, so a write waits in nanad,
            # holding the one slot; the child shares it, so its call gives up, having sent nothing.
            other = NanaSQLite(dbfile, socket=nanad.socket)
            other.begin_transaction()
            waiting = asyncio.ensure_future(db.aset("first", 1))
            await asyncio.sleep(0.1)
            with pytest.raises(asyncio.TimeoutError):
                await child.aset("never", 1)
            other.commit()
            other.close()
            await waiting
            assert await db.aget("first") == 1
            assert await child.aget("never") is None
            await child.aset("now", 1)
            assert await child.aget("now") == 1

    asyncio.run(main())
