"""NanaSQLite (synchronous) through every method family, against the real nanad."""

from __future__ import annotations

import threading

import pytest

import nanad_client
from nanad_client import (
    Cursor,
    NanaSQLite,
    NanaSQLiteClosedError,
    NanaSQLiteConnectionError,
    NanaSQLiteDatabaseError,
    NanaSQLiteError,
    NanaSQLiteNotSupportedError,
    NanaSQLiteProtocolError,
    NanaSQLiteTransactionError,
    NanaSQLiteValidationError,
)

VALUES = [
    None,
    True,
    False,
    0,
    5,
    -7,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    5.0,
    -0.0,
    1.5,
    1e300,
    "",
    "héllo ✓ \u0000 nul",
    [],
    {},
    [1, 1.0, True, None, "s"],
    {"b": 1, "a": 2.0, "nested": {"z": [True, {"k": None}]}},
]


def same(a, b):
    """Equal and of exactly the same types all the way down (True is not 1, 5.0 is not 5)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and a == 0.0:
        return str(a) == str(b)  # -0.0 stays -0.0
    return a == b


# ------------------------------------------------------------------ dict interface


def test_values_keep_their_exact_types(db):
    for i, value in enumerate(VALUES):
        db[f"k{i}"] = value
    for i, value in enumerate(VALUES):
        got = db[f"k{i}"]
        assert same(got, value), (value, got)
    assert same(db.get("k1"), True)
    assert same(db.get("k9"), 5.0)
    assert type(db["k4"]) is int


def test_tuples_go_out_as_lists(db):
    db["t"] = (1, (2.0, "x"))
    assert same(db["t"], [1, [2.0, "x"]])


def test_dict_protocol(db):
    assert len(db) == 0
    db["a"] = 1
    db["b"] = {"x": 1}
    assert "a" in db and "zz" not in db
    assert len(db) == 2
    assert sorted(db) == ["a", "b"]
    assert sorted(db.keys()) == ["a", "b"]
    assert isinstance(db.keys(), list) and isinstance(db.values(), list)
    items = db.items()
    assert isinstance(items, list) and all(type(p) is tuple for p in items)
    assert dict(items) == {"a": 1, "b": {"x": 1}}
    assert same(db.to_dict(), {"a": 1, "b": {"x": 1}})
    assert db.copy() == {"a": 1, "b": {"x": 1}}
    assert db == {"a": 1, "b": {"x": 1}}
    assert db != {"a": 2}
    del db["a"]
    assert "a" not in db
    with pytest.raises(KeyError) as info:
        del db["a"]
    assert info.value.args == ("a",)
    with pytest.raises(KeyError):
        db["missing"]
    db.clear()
    assert len(db) == 0 and db.keys() == []


def test_get_default_is_the_callers_object(db):
    default = {"fresh": True}
    assert db.get("missing") is None
    assert db.get("missing", default) is default
    db["null"] = None
    assert db.get("null", default) is None  # a stored null is a value, not a miss


def test_pop_and_setdefault(db):
    db["p"] = [1, 2]
    assert db.pop("p") == [1, 2]
    with pytest.raises(KeyError):
        db.pop("p")
    sentinel = object()
    assert db.pop("p", sentinel) is sentinel
    assert db.pop("p", None) is None
    assert same(db.setdefault("s", 5.0), 5.0)
    assert same(db.setdefault("s", 99), 5.0)
    assert db.setdefault("n") is None and "n" in db


def test_update_forms(db):
    db.update({"a": 1}, b=2)
    db.update([("c", 3.0), ("d", True)])
    db.update(e=None)
    db.update()
    db.update({})
    assert db.batch_get(["a", "b", "c", "d", "e"]) == {"a": 1, "b": 2, "c": 3.0, "d": True, "e": None}
    assert type(db["c"]) is float and db["d"] is True


def test_mutable_mapping_mixins(db):
    import collections.abc

    assert isinstance(db, collections.abc.MutableMapping)
    db["only"] = 1
    assert db.popitem() == ("only", 1)
    assert len(db) == 0


# ------------------------------------------------------------------ batches


def test_batches(db):
    assert db.batch_update({"a": 1, "b": 2.0, "c": None}) is None
    assert db.batch_get(["c", "a", "zz", "a"]) == {"c": None, "a": 1}
    assert list(db.batch_get(["c", "a"])) == ["c", "a"]
    assert db.batch_get([]) == {}
    refused = db.batch_update_partial({"ok": 1, "bad": b"x", "nan": float("nan"), "ok2": [1]})
    assert list(refused) == ["bad", "nan"]
    assert all(msg.startswith(f"Skipped key '{k}' during partial batch update") for k, msg in refused.items())
    assert db["ok"] == 1 and db["ok2"] == [1] and "bad" not in db
    assert db.batch_update_partial({}) == {}
    db.batch_delete(["a", "b", "never"])
    assert "a" not in db and "b" not in db
    db.batch_delete([])
    with pytest.raises(TypeError):
        db.batch_update({"x": 1, "y": b"bytes"})
    assert "x" not in db  # all or nothing


# ------------------------------------------------------------------ cache control


def test_cache_control(db):
    db["k"] = 1
    db.clear_cache()
    assert db.is_cached("k") is False
    assert db["k"] == 1
    assert db.is_cached("k") is True
    db.refresh("k")
    db.refresh()
    assert db.get_fresh("k") == 1
    assert db.get_fresh("nope", "d") == "d"
    db.load_all()
    assert db.is_cached("anything-else") is True  # complete cache knows absent keys
    # a write through SQL is seen by the next read (the daemon clears the cache)
    db.execute("UPDATE data SET value = ? WHERE key = ?", ("2", "k"))
    assert db["k"] == 2


# ------------------------------------------------------------------ atomic updates


def test_increment_and_patch(db):
    assert db.increment("n", default=0) == 1
    assert same(db.increment("n", 2), 3)
    assert same(db.increment("n", 0.5), 3.5)
    with pytest.raises(KeyError):
        db.increment("missing")
    db["s"] = "text"
    with pytest.raises(NanaSQLiteValidationError):
        db.increment("s")
    with pytest.raises(NanaSQLiteValidationError):
        db.increment("n", True)
    assert db.increment("u", field="visits", default=0) == {"visits": 1}
    db["user"] = {"name": "Nana", "age": 20}
    assert db.patch("user", {"age": 21, "tags": ["a"]}) == {"name": "Nana", "age": 21, "tags": ["a"]}
    assert db.patch("new", {"a": 1}, create=True) == {"a": 1}
    with pytest.raises(KeyError):
        db.patch("absent", {"a": 1})
    with pytest.raises(NanaSQLiteValidationError):
        db.patch("user", ["not", "a", "dict"])


# ------------------------------------------------------------------ v2 management (no-ops)


def test_v2_methods_are_v1_noops(db):
    assert db.flush() is None and db.flush(wait=True) is None
    assert db.get_dlq() == []
    assert db.retry_dlq() is None and db.clear_dlq() is None
    assert db.get_v2_metrics() == {}


# ------------------------------------------------------------------ transactions


def test_transactions(db):
    assert db.in_transaction() is False
    db.begin_transaction()
    assert db.in_transaction() is True
    with pytest.raises(NanaSQLiteTransactionError):
        db.begin_transaction()
    db["t"] = 1
    with pytest.raises(NanaSQLiteTransactionError):
        db.close()  # refused inside a transaction, as NanaSQLite
    db.rollback()
    assert "t" not in db
    with pytest.raises(NanaSQLiteTransactionError):
        db.commit()
    with pytest.raises(NanaSQLiteTransactionError):
        db.rollback()
    with db.transaction() as same_db:
        assert same_db is db
        db["c"] = 1
    assert db["c"] == 1
    with pytest.raises(RuntimeError):
        with db.transaction():
            db["r"] = 1
            raise RuntimeError("boom")
    assert "r" not in db
    assert db.in_transaction() is False


def test_batches_and_sql_inside_a_transaction(db):
    db["keep"] = 1
    with pytest.raises(RuntimeError):
        with db.transaction():
            db.batch_update({"a": 1, "b": 2})
            db.batch_delete(["keep"])
            db.update(c=3)
            db.execute("CREATE TABLE t (x)")
            db.execute_many("INSERT INTO t VALUES (?)", [(1,), (2,)])
            assert db.fetch_all("SELECT x FROM t") == [(1,), (2,)]  # sees its own writes
            assert sorted(db.keys()) == ["a", "b", "c"]
            raise RuntimeError("roll back")
    assert db.keys() == ["keep"] and db.table_exists("t") is False
    with db.transaction():
        db.batch_update({"a": 1})
        db.increment("n", default=0)
    assert db.batch_get(["a", "n"]) == {"a": 1, "n": 1}


def test_transaction_isolation_from_other_connections(nanad, db, dbfile):
    other = NanaSQLite(dbfile, socket=nanad.socket)
    try:
        db["k"] = "before"
        with db.transaction():
            db["k"] = "inside"
            assert other["k"] == "before"  # other clients read committed data
        assert other["k"] == "inside"
    finally:
        other.close()


# ------------------------------------------------------------------ direct SQL


def test_last_insert_rowid_is_this_connections_own(nanad, dbfile):
    db = NanaSQLite(dbfile, socket=nanad.socket)
    other = NanaSQLite(dbfile, socket=nanad.socket)
    assert db.get_last_insert_rowid() == 0  # nothing inserted yet
    db.create_table("items", {"id": "INTEGER PRIMARY KEY", "name": "TEXT"})
    assert db.sql_insert("items", {"name": "a"}) == 1 and db.get_last_insert_rowid() == 1
    db.execute("INSERT INTO items (name) VALUES ('b')")
    assert db.get_last_insert_rowid() == 2
    other.sql_insert("items", {"name": "c"})  # another client's insert is its own
    assert other.get_last_insert_rowid() == 3 and db.get_last_insert_rowid() == 2
    db.execute("UPDATE items SET name = 'z' WHERE id = 1")  # not an insert: unchanged
    db["k"] = 1
    assert db.get_last_insert_rowid() == 2
    db.table("child").execute("INSERT INTO items (name) VALUES ('d')")  # a child shares the connection
    assert db.get_last_insert_rowid() == 4
    other.close()
    db.close()
    with pytest.raises(NanaSQLiteClosedError):
        db.get_last_insert_rowid()


def test_db_size_is_the_main_files_and_a_deleted_file_is_refused(nanad, dbfile):
    db = NanaSQLite(dbfile, socket=nanad.socket)
    db["k"] = "x" * 10_000
    path = nanad.path(dbfile)
    # The main file as it is (the row may still be in the WAL): nothing writes in between.
    assert db.get_db_size() == path.stat().st_size > 0
    path.unlink()
    with pytest.raises(NanaSQLiteDatabaseError, match="changed underneath nanad"):
        db.get_db_size()
    db.close()


def test_direct_sql(db):
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL, blob BLOB)")
    cur = db.execute("INSERT INTO items (name, price, blob) VALUES (?, ?, ?)", ("a", 1.5, b"\x00\x01"))
    assert isinstance(cur, Cursor) and cur.rowcount == 1 and cur.lastrowid == 1
    db.execute_many("INSERT INTO items (name, price) VALUES (?, ?)", [("b", 2.0), ("c", 3)])
    cur = db.execute("SELECT id, name, price, blob FROM items ORDER BY id")
    assert [d[0] for d in cur.description] == ["id", "name", "price", "blob"]
    assert cur.fetchone() == (1, "a", 1.5, b"\x00\x01")
    assert cur.fetchall() == [(2, "b", 2.0, None), (3, "c", 3.0, None)]
    assert cur.fetchone() is None
    assert list(db.execute("SELECT name FROM items ORDER BY id")) == [("a",), ("b",), ("c",)]
    assert db.fetch_one("SELECT name, price FROM items WHERE id = ?", (2,)) == ("b", 2.0)
    assert db.fetch_one("SELECT name FROM items WHERE id = ?", [99]) is None
    rows = db.fetch_all("SELECT id FROM items WHERE price > ?", (1.6,))
    assert rows == [(2,), (3,)] and all(type(r) is tuple for r in rows)
    with pytest.raises(NanaSQLiteDatabaseError):
        db.execute("SELECT * FROM no_such_table")
    with pytest.raises(NanaSQLiteValidationError):
        db.execute("PRAGMA journal_mode = DELETE")
    with pytest.raises(NanaSQLiteValidationError):
        db.execute("PRAGMA journal_mode")  # the daemon's settings are read with pragma()
    # The schema's description runs, as NanaSQLite's programs use it.
    columns = db.execute("PRAGMA table_info(items)").fetchall()
    assert [c[1] for c in columns] == ["id", "name", "price", "blob"] and columns[0][5] == 1
    assert db.execute("PRAGMA index_list(items)").fetchall() == []
    assert db.fetch_one("SELECT COUNT(*) FROM pragma_table_info('items')") == (4,)
    assert db.pragma("journal_mode") == "wal"
    with pytest.raises(TypeError):
        db.execute("SELECT ?", ([1, 2],))
    with pytest.raises(NanaSQLiteDatabaseError):
        db.execute_many("INSERT INTO items (id, name) VALUES (?, ?)", [(10, "x"), (10, "dup")])
    assert db.fetch_one("SELECT COUNT(*) FROM items WHERE id = 10") == (0,)  # all or nothing


# ------------------------------------------------------------------ SQL helpers


def test_sql_helpers(db):
    db.create_table("users", {"id": "INTEGER PRIMARY KEY", "name": "TEXT NOT NULL", "age": "INTEGER",
                              "email": "TEXT UNIQUE"})
    assert db.sql_insert("users", {"name": "Alice", "age": 30, "email": "a@x"}) == 1
    assert db.sql_insert("users", {"name": "Bob", "age": 17, "email": "b@x"}) == 2
    assert db.sql_update("users", {"age": 31}, "name = ?", ("Alice",)) == 1
    rows = db.query("users", columns=["id", "name", "age"], where="age > ?", parameters=(18,), order_by="name ASC")
    assert rows == [{"id": 1, "name": "Alice", "age": 31}]
    assert db.query(table_name="users", limit=1)[0]["name"] == "Alice"
    page = db.query_with_pagination("users", columns=["name"], order_by="id", limit=1, offset=1)
    assert page == [{"name": "Bob"}]
    grouped = db.query_with_pagination("users", columns=["age", "COUNT(*) AS n"], group_by="age", order_by="age")
    assert grouped == [{"age": 17, "n": 1}, {"age": 31, "n": 1}]
    assert db.count("users") == 2
    assert db.count("users", "age < ?", (18,)) == 1
    assert db.exists("users", "email = ?", ("b@x",)) is True
    assert db.exists("users", "email = ?", ("zz",)) is False
    assert isinstance(db.upsert("users", {"id": 2, "name": "Bobby", "age": 18, "email": "b@x"}), int)
    db.upsert("users", {"id": 2, "name": "Robert", "age": 18, "email": "b@x"}, conflict_columns=["id"])
    assert db.query("users", where="id = ?", parameters=(2,))[0]["name"] == "Robert"
    # No such table: NanaSQLite 1.6 stores the dict under that key (PROTOCOL 9.6c).
    assert db.upsert("no_such_table", {"v": 1}) is None
    assert db["no_such_table"] == {"v": 1} and not db.table_exists("no_such_table")
    db.upsert("user:1", "plain value")  # NanaSQLite's upsert(key, value)
    assert db["user:1"] == "plain value"
    assert db.sql_delete("users", "age < ?", (18.5,)) == 1
    assert db.count("users") == 1
    assert db.export_table_to_dict("users") == [{"id": 1, "name": "Alice", "age": 31, "email": "a@x"}]
    assert db.import_from_dict_list("users", [{"name": "C", "email": "c@x"}, {"name": "D", "email": "d@x"}]) == 2
    assert db.count("users") == 3
    # NanaSQLite's families: ValueError for the text's structure, the validation error for policy.
    with pytest.raises(ValueError, match="Invalid where clause: Potentially dangerous SQL pattern"):
        db.query("users", where="name = 'x'; DROP TABLE users")
    with pytest.raises(NanaSQLiteValidationError):
        db.query("users", where="load_extension('x') = 1")
    assert db.query("users", columns=["UPPER(name) AS u"], where="id = ?", parameters=(1,)) == [{"u": "ALICE"}]
    assert db.count("users", "id IN (?, ?) AND (age > 0 OR age IS NULL)", (1, 2)) == 2
    with pytest.raises(NanaSQLiteValidationError):
        db.sql_insert("bad name", {"a": 1})
    with pytest.raises(ValueError, match="limit must be non-negative"):
        db.query("users", limit=-1)
    with pytest.raises(NanaSQLiteDatabaseError):
        db.sql_insert("users", {"name": None})


def test_schema(db):
    db.create_table("t", {"id": "INTEGER", "name": "TEXT"}, primary_key="id")
    db.create_table("t", {"id": "INTEGER"})  # if_not_exists defaults to True
    with pytest.raises(NanaSQLiteDatabaseError):
        db.create_table("t", {"id": "INTEGER"}, if_not_exists=False)
    assert db.table_exists("t") is True and db.table_exists("T_missing") is False
    assert "t" in db.list_tables() and "data" in db.list_tables()
    db.create_index("idx_t_name", "t", ["name"], unique=True)
    indexes = db.list_indexes("t")
    assert [i["name"] for i in indexes] == ["idx_t_name"] and indexes[0]["table"] == "t"
    db.alter_table_add_column("t", "score", "REAL", default=1.5)
    db.alter_table_add_column("t", "note", "TEXT")
    schema = db.get_table_schema("t")
    assert [c["name"] for c in schema] == ["id", "name", "score", "note"]
    assert schema[0]["pk"] is True and schema[1]["pk"] is False and type(schema[0]["notnull"]) is bool
    assert db.get_table_schema()[0]["name"] == "key"  # the handle's own table
    with pytest.raises(ValueError):
        db.alter_table_add_column("t", "bad", "TEXT; DROP TABLE t")
    with pytest.raises(NanaSQLiteValidationError):
        db.create_table("x", {"a": "TEXT DEFAULT 'x'"})
    db.drop_index("idx_t_name")
    assert db.list_indexes("t") == []
    db.drop_table("t")
    assert db.table_exists("t") is False
    db.drop_table("t")  # if_exists defaults to True
    with pytest.raises(NanaSQLiteDatabaseError):
        db.drop_table("t", if_exists=False)


def test_utilities(nanad, db, dbfile):
    db["v"] = 1
    assert db.vacuum() is None
    assert db.pragma("journal_mode") == "wal"
    assert isinstance(db.pragma("user_version"), int)
    assert db.pragma("user_version", 7) is None and db.pragma("user_version") == 7
    with pytest.raises(NanaSQLiteValidationError, match="managed by nanad"):
        db.pragma("journal_mode", "delete")
    with pytest.raises(ValueError, match="PRAGMA string value"):  # NanaSQLite's refusal comes first
        db.pragma("journal_mode", "WAL; DROP TABLE data--")
    with pytest.raises(ValueError):
        db.pragma("not_a_pragma")
    stats = db.stats()
    assert stats["server"]["name"] == "nanad" and len(stats["databases"]) == 1
    copy_name = dbfile + ".bak"
    db.backup(copy_name)
    assert nanad.path(copy_name).exists()
    db["v"] = 2
    db.restore(copy_name)
    assert db["v"] == 1
    with pytest.raises(NanaSQLiteValidationError):
        db.backup(dbfile)  # not onto itself
    with pytest.raises(NanaSQLiteValidationError):
        db.backup("/etc/outside.db")


# ------------------------------------------------------------------ tables, lifecycle


def test_table_children(nanad, db, dbfile):
    users = db.table("users")
    users["u1"] = {"name": "Alice"}
    assert "u1" not in db and users["u1"] == {"name": "Alice"}
    assert db.list_tables() == ["data", "users"]
    with pytest.raises(NanaSQLiteValidationError):
        db.table("bad-name")
    with pytest.raises(ValueError, match="cache_size must be a positive integer when using LRU strategy"):
        db.table("t", cache_strategy="lru")  # NanaSQLite's check of the child's own settings
    # children of the same table on other connections share one cache: never stale
    other = NanaSQLite(dbfile, socket=nanad.socket)
    other_users = other.table("USERS")
    assert other_users["u1"] == {"name": "Alice"}
    users["u1"] = {"name": "Alicia"}
    assert other_users["u1"] == {"name": "Alicia"}
    other.close()
    with pytest.raises(NanaSQLiteClosedError):
        other_users["u1"]
    users.close()
    with pytest.raises(NanaSQLiteClosedError):
        users["u1"]
    db.close()
    db.close()  # idempotent
    with pytest.raises(NanaSQLiteClosedError):
        len(db)
    assert db.closed is True


def test_context_manager_and_repr(nanad, dbfile):
    with NanaSQLite(dbfile, socket=nanad.socket) as db:
        db["a"] = 1
        assert "NanaSQLite(" in repr(db) and dbfile in repr(db)
    with pytest.raises(NanaSQLiteClosedError):
        db["a"]


def test_constructor_errors(nanad, dbfile):
    with pytest.raises(NanaSQLiteValidationError):
        NanaSQLite(dbfile, table="bad name", socket=nanad.socket)
    with pytest.raises(NanaSQLiteValidationError):
        NanaSQLite("../escape.db", socket=nanad.socket)
    with pytest.raises(ValueError, match="Invalid flush_mode"):
        NanaSQLite(dbfile, v2_mode=True, flush_mode="sometimes", socket=nanad.socket)
    with pytest.raises(NanaSQLiteNotSupportedError):
        NanaSQLite(":memory:", socket=nanad.socket)
    with pytest.raises(ValueError):
        NanaSQLite(dbfile, cache_size_mb=0, socket=nanad.socket)
    with pytest.raises(NanaSQLiteConnectionError):
        NanaSQLite(dbfile, socket=str(nanad.root / "no-such.sock"))
    # options that mean nothing without v2 mode or a TTL cache are ignored, as NanaSQLite does
    db = NanaSQLite(dbfile, socket=nanad.socket, cache_ttl=5, flush_mode="time", lock_timeout=1.0,
                    max_clause_length=None, allowed_sql_functions=("json_extract",), unknown_option=1)
    try:
        db["j"] = {"a": 5}
        assert db.query(columns=["json_extract(value, '$.a') AS a"]) == [{"a": 5}]
    finally:
        db.close()


def test_socket_from_environment(nanad, dbfile, monkeypatch):
    monkeypatch.setenv("NANAD_SOCKET", nanad.socket)
    db = NanaSQLite(dbfile)
    try:
        db["env"] = True
        assert db["env"] is True
    finally:
        db.close()
    monkeypatch.delenv("NANAD_SOCKET")
    monkeypatch.chdir(nanad.root)  # default: nanad-data/nanad.sock, relative to the working folder
    with pytest.raises(NanaSQLiteConnectionError, match="nanad-data/nanad.sock"):
        NanaSQLite(dbfile)


# ------------------------------------------------------------------ errors leave the connection usable


def test_bad_input_leaves_the_connection_usable(db):
    db["ok"] = 1
    with pytest.raises(TypeError, match="not JSON serializable"):
        db["b"] = b"bytes"
    with pytest.raises(TypeError):
        db["nested"] = {"a": [b"x"]}
    with pytest.raises(ValueError):
        db["nan"] = float("inf")
    with pytest.raises(TypeError):
        db["intkey"] = {1: "int keys would make the daemon drop the connection"}
    deep = []
    for _ in range(600):
        deep = [deep]
    with pytest.raises(NanaSQLiteValidationError):
        db["deep"] = deep  # deeper than a frame may nest: refused before sending
    just_too_deep = []
    for _ in range(254):
        just_too_deep = [just_too_deep]
    with pytest.raises(NanaSQLiteValidationError):
        db["deep"] = just_too_deep  # 255 levels: refused by the daemon
    with pytest.raises(TypeError):
        db["big"] = 2**64
    with pytest.raises(TypeError):
        db["surrogate"] = "\ud800"
    with pytest.raises(TypeError):
        db["set"] = {1, 2}
    with pytest.raises(TypeError):
        db[5] = "non-str key"
    with pytest.raises(NanaSQLiteValidationError):
        db.table("no spaces")
    assert db["ok"] == 1
    db["after"] = [1.0]
    assert db["after"] == [1.0]


def test_unknown_method_is_a_protocol_error(db):
    with pytest.raises(NanaSQLiteProtocolError, match="unknown method") as info:
        db._run(iter_request("no_such_method"))
    assert isinstance(info.value, NanaSQLiteError)
    assert db.get("x") is None  # still usable


def iter_request(method, **params):
    return (yield (method, params))


def test_exception_hierarchy():
    assert issubclass(NanaSQLiteClosedError, NanaSQLiteConnectionError)
    for cls in (nanad_client.NanaSQLiteValidationError, nanad_client.NanaSQLiteDatabaseError,
                nanad_client.NanaSQLiteTransactionError, nanad_client.NanaSQLiteConnectionError,
                nanad_client.NanaSQLiteLockError, nanad_client.NanaSQLiteCacheError,
                nanad_client.NanaSQLiteProtocolError, nanad_client.NanaSQLiteNotSupportedError):
        assert issubclass(cls, NanaSQLiteError)
    from nanad_client.exceptions import error_from_wire

    assert type(error_from_wire({"type": "SomethingNew", "message": "m"})) is NanaSQLiteError
    err = error_from_wire({"type": "KeyError", "message": "k", "details": {"x": 1}})
    assert type(err) is KeyError and err.args == ("k",) and err.nanad_details == {"x": 1}
    assert NanaSQLiteDatabaseError("m", original_error=ValueError()).original_error is not None


# ------------------------------------------------------------------ threads


def test_one_instance_shared_by_threads(db):
    errors = []

    def worker(n):
        try:
            for i in range(200):
                db[f"t{n}-{i}"] = i
                assert db[f"t{n}-{i}"] == i
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(db) == 1600
