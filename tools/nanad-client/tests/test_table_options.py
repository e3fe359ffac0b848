"""Cache strategies, encryption and constraints through the drop-in, against the real daemon
(and, where NanaSQLite 1.6.2 behaves the same in-process, side by side with it)."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time

import pytest

from nanad_client import (
    AsyncNanaSQLite,
    CacheType,
    NanaSQLite,
    NanaSQLiteDatabaseError,
    NanaSQLiteNotSupportedError,
    NanaSQLiteValidationError,
)

from test_sync import VALUES, same

nanasqlite = __import__("nanasqlite")

KEY = bytes(range(32))  # AES-256
OTHER_KEY = bytes(range(1, 33))


def wait_until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def stored_values(path, table="data"):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return dict(conn.execute(f'SELECT key, value FROM "{table}"'))
    finally:
        conn.close()


# ------------------------------------------------------------------ cache strategies


def test_lru_eviction_is_visible_through_is_cached(impl):
    db = impl("lru.db", cache_strategy=CacheType.LRU, cache_size=3)
    for key in "abc":
        db[key] = key.upper()
    assert [db.is_cached(k) for k in "abc"] == [True, True, True]
    db["d"] = "D"  # a fourth entry evicts the least recently used: a
    assert [db.is_cached(k) for k in "abcd"] == [False, True, True, True]
    assert db["b"] == "B"  # b is now the most recently used...
    db["e"] = "E"  # ...so c goes
    assert [db.is_cached(k) for k in "bcde"] == [True, False, True, True]
    assert db["a"] == "A" and db.is_cached("a")  # an evicted value is read back from SQLite
    assert len(db) == 5
    if impl.kind == "nanad":  # NanaSQLite 1.6.2's to_dict() gives only what its bounded cache holds
        assert db.to_dict() == {k: k.upper() for k in "abcde"}


def test_fifo_bound_of_the_unbounded_strategy(impl):
    db = impl("fifo.db", cache_size=2)  # unbounded + cache_size: evicts by insertion order
    db["a"], db["b"] = 1, 2
    assert db["a"] == 1  # reading does not move it
    db["c"] = 3
    assert [db.is_cached(k) for k in "abc"] == [False, True, True]


def test_bad_cache_settings_are_value_errors(impl):
    with pytest.raises(ValueError):
        impl("bad1.db", cache_strategy="lru")  # no cache_size
    with pytest.raises(ValueError):
        impl("bad2.db", cache_strategy="ttl")  # no cache_ttl
    with pytest.raises(ValueError):
        impl("bad3.db", cache_strategy="ttl", cache_ttl=0)


def test_ttl_cache_entries_expire_and_values_stay(nanad, dbfile):
    # NanaSQLite's is_cached stays True after expiry (spec 4.1 quirk); the daemon's shared
    # cache really drops the entry, and the value is read back from SQLite.
    with NanaSQLite(dbfile, cache_strategy="ttl", cache_ttl=0.3, socket=nanad.socket) as db:
        db["a"] = {"v": 1}
        assert db.is_cached("a")
        assert wait_until(lambda: not db.is_cached("a"), timeout=5)
        assert db["a"] == {"v": 1} and db.is_cached("a")  # loaded again, for another 0.3 s


def test_persistent_ttl_deletes_rows(impl):
    db = impl("ttlrows.db", cache_strategy="ttl", cache_ttl=0.4, cache_persistence_ttl=True)
    db["short"] = "lived"
    assert db["short"] == "lived"
    assert wait_until(lambda: "short" not in db, timeout=10)
    assert db.get("short") is None and len(db) == 0


def test_persistent_ttl_survives_a_daemon_restart_and_unread_rows_expire(second_nanad):
    daemon = second_nanad
    with NanaSQLite("ttl_restart.db", cache_strategy="ttl", cache_ttl=1.5, cache_persistence_ttl=True,
                    socket=daemon.socket) as db:
        db["x"] = 1
    assert daemon.stop() == 0
    daemon.start()
    time.sleep(1.6)
    with NanaSQLite("ttl_restart.db", cache_strategy="ttl", cache_ttl=1.5, cache_persistence_ttl=True,
                    socket=daemon.socket) as db:
        assert "x" not in db  # never read after the restart, deleted all the same
    assert stored_values(daemon.path("ttl_restart.db")) == {}


def test_cache_settings_are_table_settings(nanad, dbfile):
    db = NanaSQLite(dbfile, cache_strategy="lru", cache_size=10, socket=nanad.socket)
    try:
        with pytest.raises(ValueError, match="cache"):
            NanaSQLite(dbfile, socket=nanad.socket)  # unbounded while it is LRU
        with pytest.raises(ValueError):
            NanaSQLite(dbfile, cache_strategy="lru", cache_size=20, socket=nanad.socket)
        NanaSQLite(dbfile, cache_strategy="lru", cache_size=10, socket=nanad.socket).close()
        child = db.table("other", cache_strategy="lru", cache_size=10)  # repeating is fine
        child["k"] = 1
        # A child's own cache settings are its table's, as NanaSQLite's table() arguments are:
        # every other session of that table is held to them.
        small = db.table("other2", cache_size=5)  # still LRU (the parent's), now of 5
        small["k"] = 1
        with pytest.raises(ValueError, match=r"lru\(capacity: 5\)"):
            NanaSQLite(dbfile, table="other2", cache_strategy="lru", cache_size=10, socket=nanad.socket)
        NanaSQLite(dbfile, table="other2", cache_strategy="lru", cache_size=5, socket=nanad.socket).close()
        timed = db.table("timed", cache_strategy="ttl", cache_ttl=30.0)
        timed["k"] = {"v": 1}
        assert timed["k"] == {"v": 1}
        grandchild = timed.table("timed2")  # a child of a child inherits its parent's, not the root's
        grandchild["k"] = 2
        with pytest.raises(ValueError, match="ttl"):
            NanaSQLite(dbfile, table="timed2", socket=nanad.socket)
        with pytest.raises(ValueError, match="cache_ttl"):
            db.table("timed3", cache_strategy="ttl")  # a TTL cache needs its cache_ttl
        with pytest.raises(NanaSQLiteNotSupportedError, match="memory_first"):
            db.table("other3", memory_first=True)  # the file's write-behind is not the child's to change
    finally:
        db.close()
    # unknown strategies are refused (NanaSQLite falls back to unbounded silently)
    with pytest.raises(ValueError):
        NanaSQLite(dbfile, cache_strategy="mru", socket=nanad.socket)
    # without the TTL strategy, cache_ttl and cache_persistence_ttl are ignored, as in NanaSQLite
    NanaSQLite(dbfile, cache_ttl=5, cache_persistence_ttl=True, socket=nanad.socket).close()


def test_async_cache_strategy(nanad, dbfile):
    async def main():
        async with AsyncNanaSQLite(dbfile, cache_strategy="lru", cache_size=2, socket=nanad.socket) as db:
            await db.aupdate({"a": 1, "b": 2})
            await db.aset("c", 3)
            assert [await db.ais_cached(k) for k in "abc"] == [False, True, True]
        with pytest.raises(ValueError):
            async with AsyncNanaSQLite(dbfile, cache_strategy="lru", socket=nanad.socket):
                pass

    asyncio.run(main())


# ------------------------------------------------------------------ encryption


@pytest.mark.parametrize("mode", ["aes-gcm", "chacha20"])
def test_file_encrypted_by_nanasqlite_is_read_through_the_drop_in(nanad, mode):
    name = f"enc_by_nanasqlite_{mode}.db"
    real = nanasqlite.NanaSQLite(str(nanad.path(name)), encryption_key=KEY, encryption_mode=mode)
    for i, value in enumerate(VALUES):
        real[f"k{i}"] = value
    real.table("users")["u1"] = {"name": "Alice"}  # NanaSQLite's children store plaintext (spec 9)
    real.close()
    assert all(isinstance(v, bytes) for v in stored_values(nanad.path(name)).values())

    with NanaSQLite(name, encryption_key=KEY, encryption_mode=mode, socket=nanad.socket) as db:
        for i, value in enumerate(VALUES):
            assert same(db[f"k{i}"], value), (i, value)
        assert db.to_dict() == {f"k{i}": v for i, v in enumerate(VALUES)}
        db["added"] = {"by": "nanad"}
    assert isinstance(stored_values(nanad.path(name))["added"], bytes)


def test_file_encrypted_through_the_drop_in_opens_in_nanasqlite(second_nanad):
    daemon = second_nanad
    with NanaSQLite("enc_by_nanad.db", encryption_key=KEY, socket=daemon.socket) as db:
        for i, value in enumerate(VALUES):
            db[f"k{i}"] = value
        db.batch_update({"b1": [1, 2], "b2": {"x": None}})
        users = db.table("users")  # children inherit the key here (NanaSQLite's would not)
        users["u1"] = {"name": "Alice"}
    rows = stored_values(daemon.path("enc_by_nanad.db"))
    assert rows and all(isinstance(v, bytes) and b"Alice" not in v for v in rows.values())
    assert all(isinstance(v, bytes) for v in stored_values(daemon.path("enc_by_nanad.db"), "users").values())
    assert daemon.stop() == 0

    real = nanasqlite.NanaSQLite(str(daemon.path("enc_by_nanad.db")), encryption_key=KEY)
    try:
        for i, value in enumerate(VALUES):
            assert same(real[f"k{i}"], value), (i, value)
        assert real["b1"] == [1, 2] and real["b2"] == {"x": None}
    finally:
        real.close()
    real_users = nanasqlite.NanaSQLite(str(daemon.path("enc_by_nanad.db")), table="users", encryption_key=KEY)
    try:
        assert real_users["u1"] == {"name": "Alice"}
    finally:
        real_users.close()
    wrong = nanasqlite.NanaSQLite(str(daemon.path("enc_by_nanad.db")), encryption_key=OTHER_KEY)
    try:
        with pytest.raises(nanasqlite.NanaSQLiteDatabaseError):
            wrong["k0"]
    finally:
        wrong.close()


def test_wrong_key_is_an_error(nanad, dbfile):
    with NanaSQLite(dbfile, encryption_key=KEY, socket=nanad.socket) as db:
        db["secret"] = "value"
        # while the table is open with its key: another key, or none, is refused
        with pytest.raises(NanaSQLiteDatabaseError):
            NanaSQLite(dbfile, encryption_key=OTHER_KEY, socket=nanad.socket)
        with pytest.raises(NanaSQLiteDatabaseError):
            NanaSQLite(dbfile, encryption_key=KEY, encryption_mode="chacha20", socket=nanad.socket)
        with pytest.raises(NanaSQLiteDatabaseError):
            NanaSQLite(dbfile, socket=nanad.socket)
        same_key = NanaSQLite(dbfile, encryption_key=bytes(KEY), socket=nanad.socket)
        assert same_key["secret"] == "value"
        same_key.close()
    # nobody uses it now: a wrong key fails the open (it is tried on a stored row)
    with pytest.raises(NanaSQLiteDatabaseError):
        NanaSQLite(dbfile, encryption_key=OTHER_KEY, socket=nanad.socket)

    async def main():
        with pytest.raises(NanaSQLiteDatabaseError):
            async with AsyncNanaSQLite(dbfile, encryption_key=OTHER_KEY, socket=nanad.socket) as adb:
                await adb.aget("secret")
        async with AsyncNanaSQLite(dbfile, encryption_key=KEY, socket=nanad.socket) as adb:
            assert await adb.aget("secret") == "value"

    asyncio.run(main())


def test_a_plaintext_table_migrates_to_a_key_as_in_nanasqlite(impl, caplog):
    """Side by side with NanaSQLite 1.6.2: a plaintext table opens with a key; its plaintext
    rows are refused at each read unless allow_legacy_plaintext=True, which reads them (with
    NanaSQLite's warning) while writes encrypt, so rewriting every row migrates the table."""
    module = impl.module
    with impl("legacy.db") as plain:
        plain.batch_update({"a": {"v": 1}, "b": [1, None]})
    keyed = impl("legacy.db", encryption_key=KEY)
    with pytest.raises(module.NanaSQLiteDatabaseError, match="legacy plaintext value"):
        keyed["a"]
    keyed.close()
    caplog.clear()
    with impl("legacy.db", encryption_key=KEY, allow_legacy_plaintext=True) as migrating:
        assert migrating["a"] == {"v": 1}
        assert any("AEAD encryption is enabled but received non-bytes" in r.getMessage() for r in caplog.records)
        migrating.batch_update(dict(migrating.items()))
    with impl("legacy.db", encryption_key=KEY) as migrated:
        assert dict(migrated.items()) == {"a": {"v": 1}, "b": [1, None]}


def test_encryption_argument_errors(nanad, dbfile):
    with pytest.raises(NanaSQLiteValidationError):
        NanaSQLite(dbfile, encryption_key=b"", socket=nanad.socket)
    with pytest.raises(NanaSQLiteValidationError):
        NanaSQLite(dbfile, encryption_key=12345, socket=nanad.socket)
    with pytest.raises(ValueError, match="Unsupported encryption_mode"):
        NanaSQLite(dbfile, encryption_key=KEY, encryption_mode="rot13", socket=nanad.socket)
    with pytest.raises(ValueError):
        NanaSQLite(dbfile, encryption_key=b"short", socket=nanad.socket)  # not 16/24/32 bytes
    with pytest.raises(NanaSQLiteNotSupportedError):
        NanaSQLite(dbfile, encryption_key=os.urandom(32), encryption_mode="fernet", socket=nanad.socket)
    # a str key is its UTF-8 bytes, as in NanaSQLite
    text_key = "k" * 32
    with NanaSQLite(dbfile, encryption_key=text_key, socket=nanad.socket) as db:
        db["x"] = 1
    with NanaSQLite(dbfile, encryption_key=text_key.encode(), socket=nanad.socket) as db:
        assert db["x"] == 1


# ------------------------------------------------------------------ constraints (nanad only)


def test_constraints_are_enforced_for_every_client(nanad, dbfile):
    unique_email = {"type": "unique", "field": "email"}
    adult = {"type": "check", "field": "age", "op": ">=", "value": 18, "message": "adults only"}
    with NanaSQLite(dbfile, constraints=[unique_email], socket=nanad.socket) as db:
        assert db.add_constraint(adult) is True and db.add_constraint(adult) is False
        assert unique_email in db.list_constraints() and len(db.list_constraints()) == 2
        db["u1"] = {"email": "a@x", "age": 30}
        other = NanaSQLite(dbfile, socket=nanad.socket)  # another client, no constraint stated
        try:
            with pytest.raises(NanaSQLiteValidationError):
                other["u2"] = {"email": "a@x", "age": 40}
            with pytest.raises(NanaSQLiteValidationError, match="adults only"):
                other["u3"] = {"email": "b@x", "age": 12}
            other["u4"] = {"email": "b@x", "age": 18}
        finally:
            other.close()
        child = db.table("accounts")  # settings are inherited, constraints are not: they govern one table
        assert child.list_constraints() == []
        child["a1"] = {"email": "a@x"}  # the parent's unique email does not apply here
        assert db.drop_constraint(adult) is True
        db["u5"] = {"email": "c@x", "age": 1}
        assert sorted(db.keys()) == ["u1", "u4", "u5"]


def _write_around_nanad(path) -> None:
    """Another OS process writes the file with Python's sqlite3, not through nanad."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", "\n".join([
        "import sqlite3, sys",
        "with sqlite3.connect(sys.argv[1], timeout=10) as c:",
        "    c.execute('UPDATE data SET value = ? WHERE key = ?', ('3', 'change'))",
        "    c.execute('DELETE FROM data WHERE key = ?', ('delete',))",
        "    c.execute('INSERT OR REPLACE INTO data VALUES (?, ?)', ('new', '4'))",
    ]), str(path)], check=True, timeout=30)


def test_cache_consistency_auto_sees_writes_made_around_nanad(nanad, dbfile):
    with pytest.raises(NanaSQLiteValidationError, match="cache_consistency must be 'manual' or 'auto'"):
        NanaSQLite(dbfile, cache_consistency="sometimes", socket=nanad.socket)
    with NanaSQLite(dbfile, cache_consistency="auto", socket=nanad.socket) as db:
        db.batch_update({"change": 1, "delete": 2})
        assert db.get("new") is None  # remembered as absent
        assert db["change"] == 1 and "delete" in db  # cached
        child = db.table("other")  # children inherit the setting
        child["x"] = 1
        _write_around_nanad(nanad.path(dbfile))
        assert db.batch_get(["change", "delete", "new"]) == {"change": 3, "new": 4}
        assert db["change"] == 3 and "delete" not in db
        assert child["x"] == 1
        with pytest.raises(KeyError):
            db["delete"]
    # Without it (the default, as NanaSQLite's "manual"), the shared cache keeps what nanad
    # last wrote until refresh(): writes made around nanad are outside its contract.
    with NanaSQLite(dbfile, socket=nanad.socket) as db:
        db["change"] = 1
        assert db["change"] == 1
        _write_around_nanad(nanad.path(dbfile))
        assert db["change"] == 1
        db.refresh("change")
        assert db["change"] == 3
