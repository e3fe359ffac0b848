"""The drop-in next to the real NanaSQLite 1.6.2 (installed from PyPI in the test environment).

1. A file made by NanaSQLite is served by nanad through the drop-in, and a file written through
   nanad opens in NanaSQLite, with the same values and types.
2. NanaSQLite's own behaviours, re-expressed as tests that run twice: once against the real
   library (in-process, on a private file) and once against the drop-in (through nanad). The
   same script must give the same results, so a user switching the import sees no difference.
   The families: dict, batch, SQL helpers, transactions.
"""

from __future__ import annotations

import math
import warnings

import pytest

nanasqlite = __import__("nanasqlite")
assert nanasqlite.__version__ == "1.6.2"

import nanad_client  # noqa: E402

from test_sync import VALUES, same  # noqa: E402

warnings.filterwarnings("ignore", module="nanasqlite")

# The values both sides can store and give back identically (NanaSQLite writes with Python's
# json here: -0.0 and the 64-bit extremes round-trip in both).
COMMON_VALUES = VALUES


# ------------------------------------------------------------------ files across the two


def test_file_made_by_nanasqlite_is_served_through_the_drop_in(nanad):
    path = nanad.path("made_by_nanasqlite.db")
    real = nanasqlite.NanaSQLite(str(path))
    for i, value in enumerate(COMMON_VALUES):
        real[f"k{i}"] = value
    real["nan"] = float("nan")  # Python's json writes the literal NaN; nanad reads it
    users = real.table("users")
    users.batch_update({"u1": {"name": "Alice", "age": 30}, "u2": {"name": "Bob", "tags": ["x"]}})
    real.create_table("orders", {"id": "INTEGER PRIMARY KEY", "total": "REAL"})
    real.sql_insert("orders", {"total": 9.5})
    real.close()

    with nanad_client.NanaSQLite("made_by_nanasqlite.db", socket=nanad.socket) as db:
        for i, value in enumerate(COMMON_VALUES):
            assert same(db[f"k{i}"], value), (i, value)
        assert math.isnan(db["nan"])
        assert len(db) == len(COMMON_VALUES) + 1
        child = db.table("users")
        assert child.to_dict() == {"u1": {"name": "Alice", "age": 30}, "u2": {"name": "Bob", "tags": ["x"]}}
        assert db.query("orders") == [{"id": 1, "total": 9.5}]
        db["written-by-nanad"] = {"ok": True}  # and nanad can write to it


def test_file_written_through_nanad_opens_in_nanasqlite(second_nanad):
    with nanad_client.NanaSQLite("written_by_nanad.db", socket=second_nanad.socket) as db:
        for i, value in enumerate(COMMON_VALUES):
            db[f"k{i}"] = value
        db.update({"big": 2**64 - 1, "neg": -(2**63), "exp": 1e16, "tiny": 1e-05, "text": 'quote " \\ \n\t'})
        db.table("users")["u1"] = {"name": "Alice", "nested": {"deep": [1, 2.5, None]}}
        db.create_table("orders", {"id": "INTEGER PRIMARY KEY", "total": "REAL"})
        db.sql_insert("orders", {"total": 9.5})
    assert second_nanad.stop() == 0  # the real library then opens the file alone

    real = nanasqlite.NanaSQLite(str(second_nanad.path("written_by_nanad.db")))
    try:
        for i, value in enumerate(COMMON_VALUES):
            assert same(real[f"k{i}"], value), (i, value)
        assert real["big"] == 2**64 - 1 and real["neg"] == -(2**63)
        assert same(real["exp"], 1e16) and same(real["tiny"], 1e-05)
        assert real["text"] == 'quote " \\ \n\t'
        assert real.table("users")["u1"] == {"name": "Alice", "nested": {"deep": [1, 2.5, None]}}
        assert real.query("orders") == [{"id": 1, "total": 9.5}]
        real["written-by-nanasqlite"] = 1
    finally:
        real.close()


# ------------------------------------------------------------------ the same behaviours on both

# dict family ----------------------------------------------------------------------------


def test_dict_family(impl):
    db = impl("dict.db")
    for i, value in enumerate(COMMON_VALUES):
        db[f"k{i}"] = value
    assert all(same(db[f"k{i}"], v) for i, v in enumerate(COMMON_VALUES))
    assert len(db) == len(COMMON_VALUES)
    assert "k0" in db and "absent" not in db
    assert db.get("absent") is None and db.get("absent", 42) == 42
    assert db.get("k0", 42) is None  # a stored None is returned, not the default
    with pytest.raises(KeyError):
        db["absent"]
    with pytest.raises(KeyError):
        del db["absent"]
    del db["k0"]
    assert "k0" not in db
    assert db.pop("k1") is True
    assert db.pop("absent", "d") == "d"
    with pytest.raises(KeyError):
        db.pop("absent")
    assert db.setdefault("sd", [1]) == [1] and db.setdefault("sd", [2]) == [1]
    db.update({"u1": 1}, u2=2.0)
    assert same(db["u2"], 2.0)
    keys = db.keys()
    assert isinstance(keys, list) and sorted(keys) == sorted(iter(db))
    items = db.items()
    assert isinstance(items, list) and all(isinstance(p, tuple) and len(p) == 2 for p in items)
    assert dict(items) == db.to_dict() == db.copy()
    snapshot = db.copy()
    snapshot["u1"] = "changed locally"
    assert db["u1"] == 1  # copy() is a snapshot
    assert db == db.to_dict()
    db.clear()
    assert len(db) == 0 and db.keys() == [] and db.to_dict() == {}


def test_dict_family_errors(impl):
    db = impl("errors.db")
    with pytest.raises(TypeError):
        db["bytes"] = b"raw"
    with pytest.raises(impl.module.NanaSQLiteValidationError):
        impl("bad.db", table="no-dashes")
    db["ok"] = 1
    assert db["ok"] == 1
    db.close()
    with pytest.raises(impl.module.NanaSQLiteClosedError):
        db["ok"] = 2
    assert issubclass(impl.module.NanaSQLiteClosedError, impl.module.NanaSQLiteConnectionError)


# batch family ---------------------------------------------------------------------------


def test_batch_family(impl):
    db = impl("batch.db")
    db.batch_update({"a": 1, "b": None, "c": {"x": [1, 2]}})
    assert db.batch_get(["a", "b", "missing"]) == {"a": 1, "b": None}
    assert db.batch_get([]) == {}
    refused = db.batch_update_partial({"d": 4, "e": b"bytes", "f": 6.0})
    assert list(refused) == ["e"]
    assert refused["e"].startswith("Skipped key 'e' during partial batch update:")
    assert same(db.batch_get(["d", "f"]), {"d": 4, "f": 6.0})
    assert db.batch_update_partial({}) == {}
    db.batch_delete(["a", "missing"])
    assert "a" not in db and len(db) == 4
    db.batch_update({})
    db.batch_delete([])
    assert sorted(db.keys()) == ["b", "c", "d", "f"]


def test_atomic_update_family(impl):
    db = impl("atomic.db")
    assert db.increment("n", default=0) == 1
    assert same(db.increment("n", 1.5), 2.5)
    with pytest.raises(KeyError):
        db.increment("missing")
    db["user"] = {"name": "Nana"}
    assert db.increment("user", field="visits", default=0) == {"name": "Nana", "visits": 1}
    with pytest.raises(impl.module.NanaSQLiteValidationError):
        db.increment("user")
    assert db.patch("user", {"age": 20}) == {"name": "Nana", "visits": 1, "age": 20}
    assert db.patch("fresh", {"a": 1}, create=True) == {"a": 1}
    with pytest.raises(KeyError):
        db.patch("absent", {"a": 1})


# SQL helper family ----------------------------------------------------------------------


def test_sql_helper_family(impl):
    db = impl("sql.db")
    db.create_table("users", {"id": "INTEGER PRIMARY KEY", "name": "TEXT NOT NULL", "age": "INTEGER"})
    assert db.table_exists("users") is True and db.table_exists("nope") is False
    assert db.list_tables() == ["data", "users"]
    assert db.sql_insert("users", {"name": "Alice", "age": 30}) == 1
    assert db.sql_insert("users", {"name": "Bob", "age": 17}) == 2
    assert db.sql_insert("users", {"name": "Carol", "age": 45}) == 3
    assert db.sql_update("users", {"age": 31}, "name = ?", ("Alice",)) == 1
    assert db.query("users", columns=["name", "age"], where="age >= ?", parameters=(18,), order_by="age DESC") == [
        {"name": "Carol", "age": 45}, {"name": "Alice", "age": 31}]
    assert db.query("users", where="id = ?", parameters=(2,)) == [{"id": 2, "name": "Bob", "age": 17}]
    assert db.query("users", order_by="id", limit=1) == [{"id": 1, "name": "Alice", "age": 31}]
    assert db.query_with_pagination("users", columns=["id"], order_by="id", limit=2, offset=1) == [{"id": 2}, {"id": 3}]
    assert db.count("users") == 3 and db.count("users", "age < ?", (18,)) == 1
    assert db.exists("users", "name = ?", ("Bob",)) is True
    assert db.exists("users", "name = ?", ("Zed",)) is False
    db.upsert("users", {"id": 2, "name": "Robert", "age": 18}, conflict_columns=["id"])
    assert db.query("users", columns=["name"], where="id = ?", parameters=(2,)) == [{"name": "Robert"}]
    db.create_index("idx_users_name", "users", ["name"], unique=True)
    assert [(i["name"], i["table"]) for i in db.list_indexes("users")] == [("idx_users_name", "users")]
    db.alter_table_add_column("users", "email", "TEXT")
    assert db.get_table_schema("users") == [
        {"cid": 0, "name": "id", "type": "INTEGER", "notnull": False, "default_value": None, "pk": True},
        {"cid": 1, "name": "name", "type": "TEXT", "notnull": True, "default_value": None, "pk": False},
        {"cid": 2, "name": "age", "type": "INTEGER", "notnull": False, "default_value": None, "pk": False},
        {"cid": 3, "name": "email", "type": "TEXT", "notnull": False, "default_value": None, "pk": False},
    ]
    assert db.sql_delete("users", "age < ?", (20,)) == 1
    assert db.count("users") == 2
    assert db.fetch_one("SELECT name FROM users WHERE id = ?", (1,)) == ("Alice",)
    assert db.fetch_all("SELECT id FROM users ORDER BY id") == [(1,), (3,)]
    cursor = db.execute("SELECT id, name FROM users ORDER BY id")
    assert [d[0] for d in cursor.description] == ["id", "name"]
    assert cursor.fetchall() == [(1, "Alice"), (3, "Carol")]
    db.execute_many("INSERT INTO users (name, age) VALUES (?, ?)", [("D", 1), ("E", 2)])
    assert db.count("users") == 4
    with pytest.raises(impl.module.NanaSQLiteValidationError):
        db.sql_insert("bad-table", {"a": 1})
    with pytest.raises(impl.module.NanaSQLiteValidationError):
        db.query("users", where="sqlite_version() = ?", parameters=("x",))
    with pytest.raises(impl.module.NanaSQLiteDatabaseError):
        db.execute("SELECT * FROM missing_table")
    db.drop_index("idx_users_name")
    db.drop_table("users")
    assert db.list_tables() == ["data"]


# transaction family ---------------------------------------------------------------------


def test_transaction_family(impl):
    db = impl("txn.db")
    Txn = impl.module.NanaSQLiteTransactionError
    db["base"] = 0
    assert db.in_transaction() is False
    db.begin_transaction()
    assert db.in_transaction() is True
    with pytest.raises(Txn):
        db.begin_transaction()
    db["in"] = 1
    db.commit()
    assert db["in"] == 1 and db.in_transaction() is False
    with pytest.raises(Txn):
        db.commit()
    with pytest.raises(Txn):
        db.rollback()
    db.begin_transaction()
    db.execute("UPDATE data SET value = '5' WHERE key = 'base'")
    db.rollback()
    db.refresh("base")
    assert db["base"] == 0
    with db.transaction():
        db["ctx"] = "committed"
    assert db["ctx"] == "committed"
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.create_table("t", {"id": "INTEGER"})
            db.sql_insert("t", {"id": 1})
            raise RuntimeError("roll back")
    assert db.table_exists("t") is False
    db.begin_transaction()
    with pytest.raises(Txn):
        db.close()
    db.rollback()
    db.close()


def test_canonically_equivalent_keys_are_two_keys(impl):
    # "é" as one code point and as e + a combining accent: two rows in SQLite and two keys of a
    # Python dict. nanad's cache once keyed them by Swift String (canonical equivalence) and
    # answered a read of one with the other's value.
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    for near_cache in (True, False):
        kwargs = {} if impl.kind == "nanasqlite" else {"near_cache": near_cache}
        db = impl(f"unicode_{near_cache}.db", **kwargs)
        db[composed] = 1
        db[decomposed] = 2
        for _ in range(2):  # the second round reads from the caches
            assert db[composed] == 1 and db[decomposed] == 2
        assert db.batch_get([composed, decomposed]) == {composed: 1, decomposed: 2}
        db.batch_update({composed: 10, decomposed: 20})
        assert db.to_dict() == {composed: 10, decomposed: 20}
        del db[composed]
        assert composed not in db and db[decomposed] == 20
        assert len(db) == 1
