"""The connection itself: reconnection after the daemon restarts, lost transactions, limits."""

from __future__ import annotations

import asyncio

import pytest

from nanad_client import (
    AsyncNanaSQLite,
    NanaSQLite,
    NanaSQLiteConnectionError,
    NanaSQLiteProtocolError,
    NanaSQLiteTransactionError,
)


def test_reconnects_after_the_daemon_restarts(second_nanad):
    db = NanaSQLite("restart.db", socket=second_nanad.socket)
    users = db.table("users")
    db["a"] = 1
    users["u"] = 2
    assert second_nanad.stop() == 0
    with pytest.raises(NanaSQLiteConnectionError):
        db["a"]
    with pytest.raises(NanaSQLiteConnectionError):
        users["u"]  # no daemon: reconnecting fails too
    second_nanad.start()
    assert db["a"] == 1  # a new connection; the handles are opened again
    assert users["u"] == 2
    db.close()


def test_a_transaction_lost_with_the_connection_is_not_continued(second_nanad):
    db = NanaSQLite("lost.db", socket=second_nanad.socket)
    db["base"] = 0
    db.begin_transaction()
    db["inside"] = 1
    assert second_nanad.stop() == 0
    second_nanad.start()
    with pytest.raises(NanaSQLiteConnectionError, match="rolled back the open transaction"):
        db["after"] = 2  # finds the connection gone
    with pytest.raises(NanaSQLiteConnectionError, match="during a transaction"):
        db["after"] = 2  # would autocommit outside the transaction: refused
    with pytest.raises(NanaSQLiteTransactionError, match="rolled back"):
        db.rollback()
    assert db.get("inside") is None and db.get("after") is None and db["base"] == 0
    assert db.in_transaction() is False
    with pytest.raises(RuntimeError):
        with db.transaction():
            db["tx"] = 1
            raise RuntimeError("x")
    db.close()


def test_async_reconnects_after_the_daemon_restarts(second_nanad):
    async def main():
        db = AsyncNanaSQLite("arestart.db", socket=second_nanad.socket)
        await db.aset("a", 1.0)
        assert second_nanad.stop() == 0
        with pytest.raises(NanaSQLiteConnectionError):
            await db.aget("a")
        second_nanad.start()
        assert await db.aget("a") == 1.0
        await db.close()

    asyncio.run(main())


def test_oversized_request_is_refused_locally(db):
    with pytest.raises(NanaSQLiteProtocolError, match="over the maximum"):
        db["huge"] = "x" * (16 * 1024 * 1024 + 1)
    db["small"] = 1  # the connection is still open
    assert db["small"] == 1


def test_large_replies_are_read(db):
    big = "y" * (8 * 1024 * 1024)
    db["a"] = big
    db["b"] = big
    assert len(db.to_dict()["b"]) == len(big)  # a reply of 16 MiB and more
