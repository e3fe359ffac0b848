"""Every public method of the real NanaSQLite 1.6.2 classes exists in the drop-in with the same
parameters (names, kinds, defaults), except the few the README lists as not provided."""

from __future__ import annotations

import asyncio
import inspect

import pytest

import nanad_client

nanasqlite = __import__("nanasqlite")

NOT_PROVIDED = {"get_db_size", "get_last_insert_rowid", "sync_db"}
# Documented supersets: the `socket` keyword; alter_table_add_column's `default` on the async
# class too; add_hook answers plain calls as well as `await`.
SUPERSETS = {"__init__", "aalter_table_add_column", "add_hook"}
DUNDERS = {"__getitem__", "__setitem__", "__delitem__", "__contains__", "__len__", "__iter__", "__init__",
           "__enter__", "__exit__", "__aenter__", "__aexit__", "__eq__", "__repr__"}


def _params(fn):
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


@pytest.mark.parametrize("real_cls, our_cls", [
    (nanasqlite.NanaSQLite, nanad_client.NanaSQLite),
    (nanasqlite.AsyncNanaSQLite, nanad_client.AsyncNanaSQLite),
], ids=["NanaSQLite", "AsyncNanaSQLite"])
def test_same_methods_and_parameters(real_cls, our_cls):
    checked = 0
    for name in dir(real_cls):
        if (name.startswith("_") and name not in DUNDERS) or name in NOT_PROVIDED:
            continue
        real = getattr(real_cls, name)
        assert hasattr(our_cls, name), name
        ours = getattr(our_cls, name)
        if not callable(real):
            continue
        checked += 1
        assert inspect.iscoroutinefunction(ours) == inspect.iscoroutinefunction(real) or name in SUPERSETS, name
        if name in SUPERSETS:
            real_names = [p[0] for p in _params(real)]
            assert [p[0] for p in _params(ours)][: len(real_names)] == real_names or name == "__init__", name
            continue
        assert _params(ours) == _params(real), name
    assert checked > 60
    init_names = [p[0] for p in _params(our_cls.__init__)]
    assert init_names[: len(_params(real_cls.__init__)) - 1] == [p[0] for p in _params(real_cls.__init__)][:-1]
    assert "socket" in init_names


def test_exceptions_have_nanasqlites_names_and_hierarchy():
    for name in nanasqlite.__all__:
        if name.startswith("NanaSQLite") and name.endswith("Error"):
            ours, real = getattr(nanad_client, name), getattr(nanasqlite, name)
            assert [c.__name__ for c in ours.__mro__] == [c.__name__ for c in real.__mro__], name


def test_has_flags_say_what_is_installed():
    import importlib.util

    assert nanad_client.HAS_VALIDKIT == (importlib.util.find_spec("validkit") is not None)
    assert nanad_client.HAS_ORJSON == (importlib.util.find_spec("orjson") is not None)
    assert "HAS_ORJSON" in nanad_client.__all__ and "HAS_VALIDKIT" in nanad_client.__all__
    # NanaSQLite computes them the same way, in the same environment.
    assert nanad_client.HAS_VALIDKIT == nanasqlite.HAS_VALIDKIT and nanad_client.HAS_ORJSON == nanasqlite.HAS_ORJSON


def test_smaller_compatibility_methods(db):
    db["user"] = {"name": "Nana", "age": 20, "tags": ["a", "b"], "s": "123"}
    assert db.get_by_path("user", "age") == 20
    assert db.get_by_path("user", "$.tags") == ["a", "b"]
    assert db.get_by_path("user", "s") == 123  # NanaSQLite's quirk: JSON-looking text is decoded
    assert db.get_by_path("user", "missing") is None and db.get_by_path("nobody", "age") is None
    assert db.get_status()["mode"] == "immediate" and db.get_dlq_summary() == []
    assert list(db.iter_items()) == db.items()

    async def main():
        async with nanad_client.AsyncNanaSQLite(db._db_path, socket=db._conn.path) as adb:
            assert [item async for item in adb.aiter_items()] == db.items()
            assert (await adb.aget_status())["pending_kvs_count"] == 0
            with pytest.raises(nanad_client.NanaSQLiteValidationError, match="batch_size"):
                [item async for item in adb.aiter_items(0)]

    asyncio.run(main())


@pytest.mark.parametrize("mode", ["lazy", "scheduler", "timer"])
def test_expiring_dict_behaves_as_nanasqlites(mode):
    """nanad_client.utils.ExpiringDict beside nanasqlite.utils.ExpiringDict: keys expire after
    their time in every mode, a key set again lives on, on_expire hears only real expiries."""
    import time

    import nanasqlite.utils as real
    import nanad_client.utils as ours

    def scenario(module):
        expired = []
        d = module.ExpiringDict(0.4, mode=module.ExpirationMode(mode), on_expire=lambda k, v: expired.append(k))
        d["a"], d["b"], d["c"] = 1, 2, 3
        seen = [sorted(d), len(d), d["a"]]
        d.pop("c")
        time.sleep(0.25)
        d["b"] = 20  # set again: its time starts over (0.65 s from the start)
        time.sleep(0.3)  # 0.55 s: "a" has expired, "b" has not
        seen += ["a" in d, "b" in d, d.get("b"), sorted(d)]
        time.sleep(0.5)
        seen += [len(d), "b" in d]
        list(d)  # lazy mode removes on access
        seen.append(sorted(expired))
        d.clear()
        return seen

    # len() counts the keys held: in lazy mode "b" is still held once expired, until accessed.
    held = 1 if mode == "lazy" else 0
    assert scenario(ours) == scenario(real) == [["a", "b", "c"], 3, 1, False, True, 20, ["b"], held, False, ["a", "b"]]


def test_sql_utils_answer_as_nanasqlites():
    """nanad_client.sql_utils beside nanasqlite.sql_utils on fixed SQL and 20,000 random strings
    of SQL's quoting and comment characters."""
    import random

    import nanasqlite.sql_utils as real
    import nanad_client.sql_utils as ours

    corpus = ["", "SELECT 'COUNT(*)' FROM t -- x\nWHERE a = 'O''Reilly'", 'SELECT "col""name", "LOAD_EXTENSION"(1)',
              "SELECT `a``b`(1), [my col](2) /* f(3) */", "SELECT 'unclosed f(", 'SELECT "unclosed', "SELECT 日本(1)"]
    rng = random.Random(1)
    alphabet = list("ab_(')\"`[]-/*\n x1日")
    corpus += ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20))) for _ in range(20_000)]
    for name in ("sanitize_sql_for_function_scan", "find_sql_functions", "fast_validate_sql_chars", "sanitize_identifier"):
        ours_f, real_f = getattr(ours, name), getattr(real, name)
        differing = [s for s in corpus if ours_f(s) != real_f(s)]
        assert not differing, (name, differing[:3])
    assert ours.find_sql_functions('SELECT "LOAD_EXTENSION"(1), f(2) -- g(3)') == ["LOAD_EXTENSION", "f"]


class _Wrap:
    def after_read(self, db, key, value):
        return {"wrapped": value}


def test_iter_items_reads_pages_in_key_order_through_the_hooks(nanad, dbfile):
    key = b"0123456789abcdef"
    with nanad_client.NanaSQLite(dbfile, encryption_key=key, hooks=[_Wrap()], socket=nanad.socket) as db:
        values = {f"k{i:03d}": {"n": i} for i in reversed(range(31))}  # written out of key order
        db.batch_update(values)
        db.clear_cache()
        assert list(db.iter_items(batch_size=7)) == [(k, {"wrapped": v}) for k, v in sorted(values.items())]
        assert list(db.iter_items(batch_size=31)) == list(db.iter_items(batch_size=1000))
        for size in (0, -1, True, 1.5, "1"):
            with pytest.raises(nanad_client.NanaSQLiteValidationError, match="batch_size"):
                list(db.iter_items(size))
    with nanad_client.NanaSQLite(dbfile, table="plain", socket=nanad.socket) as db:
        assert list(db.iter_items()) == []
        db.batch_update({"a": 1, "b": 2, "c": 3})
        stream = db.iter_items(1)
        assert next(stream) == ("a", 1)
        # Nothing is held between pages: later pages see what changed meanwhile.
        db["b"] = 20
        del db["c"]
        db["d"] = 4
        assert list(stream) == [("b", 20), ("d", 4)]

        async def main():
            async with nanad_client.AsyncNanaSQLite(dbfile, table="plain", socket=nanad.socket) as adb:
                assert [item async for item in adb.aiter_items(2)] == [("a", 1), ("b", 20), ("d", 4)]

        asyncio.run(main())
