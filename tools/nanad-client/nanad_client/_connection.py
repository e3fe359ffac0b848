"""Connections to nanad: one Unix-socket session, shared by a root instance, the ``table()``
children opened from it, and every thread or task using them.

Both kinds send each request as one frame and match replies to requests by msgid only
(proto/PROTOCOL.md 5.2): the daemon may answer out of order, a cache hit ahead of a write
waiting for its COMMIT.

Both reconnect by themselves, lazily, on the next call after the connection broke or after the
process forked (gunicorn ``--preload`` forks workers after the app opened its database). The
instances then re-open their handles on the new connection (``_reopen`` in sync.py,
``_areopen`` in aio.py). The one exception is a broken connection while a transaction is open:
the daemon has rolled it back, so the calls of that transaction must not silently continue in
autocommit. Until ``commit()`` or ``rollback()`` (which then raise
``NanaSQLiteTransactionError``) every call raises ``NanaSQLiteConnectionError``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket as _socket
import threading
import weakref
from typing import Any, Dict, List, Optional, Tuple

from . import _wire
from .exceptions import (
    NanaSQLiteClosedError,
    NanaSQLiteConnectionError,
    NanaSQLiteTransactionError,
    error_from_wire,
)

_TXN_METHODS = ("begin_transaction", "commit", "rollback")
#: Orders inserts across a process's connections: ``AsyncNanaSQLite.sync_db`` reports the later
#: of its own and its async instance's (NanaSQLite's share one SQLite connection).
_INSERT_ORDER = itertools.count(1)

#: The calls whose replies say which rowid they inserted (``get_last_insert_rowid``).
_ROWID_METHODS = ("execute", "sql_insert", "upsert")


class StaleGeneration(Exception):
    """Internal: the connection was replaced between choosing a handle and sending."""


def _hello_params() -> Dict[str, Any]:
    return {"protocol": _wire.PROTOCOL_VERSION, "client": _wire.CLIENT_NAME}


def _lost_transaction_error(reason: str) -> NanaSQLiteTransactionError:
    return NanaSQLiteTransactionError(
        f"The transaction was rolled back by nanad: the connection closed ({reason})."
    )


class _ConnectionState:
    """What both connection kinds track besides the transport."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.generation = 0  # bumped by every (re)connection; handles belong to one generation
        self.closed = False  # closed by the client: never reconnects
        self.broken: Optional[Tuple[type, str]] = None  # why the current transport is unusable
        self.server_info: Optional[Dict[str, Any]] = None
        # The client's view of the session's transaction: set by a successful begin_transaction,
        # cleared by commit/rollback. If the connection breaks while it is set, the transaction
        # is lost (the daemon rolled it back), and calls refuse until commit/rollback is called.
        self.in_transaction = False
        self.transaction_lost: Optional[str] = None
        # The rowid of the last row this session inserted, from the replies of _ROWID_METHODS:
        # SQLite's last_insert_rowid() of the daemon's writer would be any client's.
        self.last_insert_rowid = 0
        self.last_insert_order = 0  # when, among every connection of the process (_INSERT_ORDER)
        # The near-cache (_near.py): boards mapped on this connection, by generation; and
        # whether reads must bypass every near-cache of the connection, from the moment a
        # begin_transaction is sent until its transaction is known to be over.
        # Weakly: a board goes (and is unmapped) when the last near-cache using it does.
        self.near_boards: "weakref.WeakValueDictionary[Any, Any]" = weakref.WeakValueDictionary()
        self.near_caches: "weakref.WeakSet[Any]" = weakref.WeakSet()
        self._near_bypass = False
        self._next_id = 0

    @property
    def near_bypass(self) -> bool:
        return self._near_bypass

    @near_bypass.setter
    def near_bypass(self, bypassed: bool) -> None:
        if bypassed != self._near_bypass:
            self._near_bypass = bypassed
            for near in list(self.near_caches):
                near.bypass(bypassed)

    def _msgid(self) -> int:
        msgid = self._next_id
        self._next_id = (msgid + 1) % _wire.MSGID_LIMIT
        return msgid

    def _check_reconnect(self, method: str) -> None:
        """Raises instead of reconnecting when that would be wrong (closed, lost transaction)."""
        if self.closed:
            raise NanaSQLiteClosedError("Database connection is closed")
        if self.transaction_lost is not None:
            reason = self.transaction_lost
            if method in ("commit", "rollback"):
                self.transaction_lost = None
                self.in_transaction = False
                raise _lost_transaction_error(reason)
            raise NanaSQLiteConnectionError(
                f"The connection to nanad closed during a transaction ({reason}); nanad rolled it "
                "back. Call rollback() (or leave the transaction() block) before using the database again."
            )

    def _note_rowid(self, method: str, result: Any) -> None:
        rowid = result.get("lastrowid") if method == "execute" and isinstance(result, dict) else result
        if isinstance(rowid, int) and not isinstance(rowid, bool) and rowid:
            self.last_insert_rowid = rowid
            self.last_insert_order = next(_INSERT_ORDER)

    def _note_transaction(self, method: str, error: Any) -> None:
        if method == "begin_transaction":
            if error is None:
                self.in_transaction = True
        elif error is None or (isinstance(error, dict) and error.get("type") == "NanaSQLiteTransactionError"):
            self.in_transaction = False
        self.near_bypass = self.in_transaction

    def _new_generation(self) -> None:
        """A new connection: the old one's boards, near-caches and bypass go with it."""
        self.near_boards = weakref.WeakValueDictionary()
        self.near_caches = weakref.WeakSet()
        self._near_bypass = False

    def _broke(self, cls: type, reason: str) -> None:
        if self.broken is None:
            self.broken = (cls, reason)
            if self.in_transaction and not self.closed:
                self.transaction_lost = reason
            self.in_transaction = False


# --------------------------------------------------------------------------------------------
# Synchronous
# --------------------------------------------------------------------------------------------

_SYNC_CONNECTIONS: "weakref.WeakSet[SyncConnection]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for conn in list(_SYNC_CONNECTIONS):
        conn._reset_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class SyncConnection(_ConnectionState):
    """A blocking Unix socket shared by threads, with replies multiplexed by msgid.

    Why this design, rather than one lock held around each request/reply, or a private event-loop
    thread: a lock would make every thread wait for the slowest call in flight (a write waits
    for its group COMMIT while a cache hit could be answered at once), and an event-loop thread
    adds two thread hand-offs to every call, which costs more than the round trip itself on a
    Unix socket. Here the calling threads do the I/O themselves ("leader/follower"): each sends
    its frame under a send lock, then either reads the socket for everyone (the one reader at a
    time, without holding the state lock while it blocks in recv) or sleeps on a condition until
    the reader has filed its reply. A single thread thus pays one send and one recv per call,
    exactly as a plain blocking client; many threads keep many calls in flight on one socket.
    """

    _RECV_SIZE = 1 << 18

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._sock: Optional[_socket.socket] = None
        self._pid = os.getpid()
        self._init_locks()
        _SYNC_CONNECTIONS.add(self)

    def _init_locks(self) -> None:
        self._connect_lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._cond = threading.Condition(threading.Lock())
        self._pending: Dict[int, List[Any]] = {}  # msgid -> [done, error, result]
        self._reading = False
        self._frames = _wire.FrameBuffer()

    def _reset_after_fork(self) -> None:
        # In a forked child: the socket (and any transaction on it) belongs to the parent's
        # session. Forget it without closing it for the parent, and reconnect on the next call.
        self._sock = None  # the inherited descriptor is left to the parent (not shut down)
        self._pid = os.getpid()
        self._init_locks()
        self.broken = (NanaSQLiteConnectionError, "the process forked")
        self.in_transaction = False
        self.transaction_lost = None

    @property
    def ready(self) -> bool:
        return self._sock is not None and self.broken is None

    def ensure(self, method: str = "") -> None:
        """Connects (or reconnects) unless the connection is usable."""
        if self._sock is not None and self.broken is None:
            return
        with self._connect_lock:
            if self._sock is not None and self.broken is None:
                return
            self._check_reconnect(method)
            self._connect()

    def _connect(self) -> None:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise NanaSQLiteConnectionError(f"Cannot connect to nanad at '{self.path}': {exc}") from None
        with self._cond:
            old = self._sock
            self._sock = sock
            self._frames = _wire.FrameBuffer()
            self._reading = False
            self.broken = None
            self.in_transaction = False
            self.generation += 1
            self._new_generation()
            generation = self.generation
        if old is not None:
            try:
                old.close()
            except OSError:
                pass
        try:
            self.server_info = self.call("hello", _hello_params(), generation)
        except BaseException:
            self._fail(NanaSQLiteConnectionError, "hello failed", sock)
            raise

    def call(self, method: str, params: Dict[str, Any], generation: Optional[int] = None) -> Any:
        """Sends one request and waits for its reply. ``generation``: the connection the
        caller's handle belongs to (StaleGeneration if it was replaced meanwhile)."""
        with self._cond:
            if self.broken is not None:
                cls, reason = self.broken
                raise cls(f"Connection to nanad lost: {reason}")
            if generation is not None and generation != self.generation:
                raise StaleGeneration()
            msgid = self._msgid()
            sock = self._sock
            if method == "begin_transaction":
                self.near_bypass = True
        data = _wire.encode_request(msgid, method, params)  # local errors leave nothing pending
        slot: List[Any] = [False, None, None]
        with self._cond:
            if self._sock is not sock or self.broken is not None:
                cls, reason = self.broken or (NanaSQLiteConnectionError, "reconnected")
                raise cls(f"Connection to nanad lost: {reason}")
            self._pending[msgid] = slot
        try:
            with self._send_lock:
                sock.sendall(data)  # type: ignore[union-attr]
        except OSError as exc:
            self._fail(NanaSQLiteConnectionError, f"send failed: {exc}", sock)
        self._wait(slot, msgid, sock)
        error = slot[1]
        if method in _TXN_METHODS:
            self._note_transaction(method, error)
        if error is not None:
            if isinstance(error, BaseException):
                raise error
            raise error_from_wire(error)
        if method in _ROWID_METHODS:
            self._note_rowid(method, slot[2])
        return slot[2]

    def _wait(self, slot: List[Any], msgid: int, sock: Any) -> None:
        cond = self._cond
        cond.acquire()
        try:
            while not slot[0]:
                if self._reading:
                    cond.wait()
                    continue
                if self._sock is not sock:  # replaced while we waited: our reply is gone
                    slot[0], slot[1] = True, NanaSQLiteConnectionError("Connection to nanad lost")
                    break
                self._reading = True
                frames = self._frames
                cond.release()
                messages: List[Any] = []
                failure: Optional[str] = None
                try:
                    data = sock.recv(self._RECV_SIZE)
                    if not data:
                        failure = "nanad closed the connection"
                    else:
                        for body in frames.feed(data):
                            messages.append(_wire.decode_body(body))
                except BaseException as exc:  # KeyboardInterrupt included: leave consistently
                    cond.acquire()
                    self._reading = False
                    if isinstance(exc, Exception):
                        self._fail_locked(NanaSQLiteConnectionError, f"receive failed: {exc}", sock)
                    else:
                        self._pending.pop(msgid, None)
                    cond.notify_all()
                    raise
                cond.acquire()
                self._reading = False
                for message in messages:
                    self._dispatch_locked(message, sock)
                if failure is not None:
                    self._fail_locked(NanaSQLiteConnectionError, failure, sock)
                cond.notify_all()
        finally:
            cond.release()

    def _dispatch_locked(self, message: Any, sock: Any) -> None:
        if isinstance(message, list) and len(message) == 4 and message[0] == _wire.RESPONSE:
            slot = self._pending.pop(message[1], None)
            if slot is not None:
                slot[0], slot[1], slot[2] = True, message[2], message[3]
        elif isinstance(message, list) and len(message) == 3 and message[0] == _wire.NOTIFICATION:
            params = message[2] if isinstance(message[2], dict) else {}
            # The daemon sends this just before closing the connection (6.3).
            exc = error_from_wire(params)
            self._fail_locked(type(exc), f"{params.get('type')}: {params.get('message')}", sock)

    def _fail(self, cls: type, reason: str, sock: Any) -> None:
        with self._cond:
            self._fail_locked(cls, reason, sock)
            self._cond.notify_all()

    def _fail_locked(self, cls: type, reason: str, sock: Any) -> None:
        if sock is not self._sock:
            return
        self._broke(cls, reason)
        if self.transaction_lost is not None:
            reason += "; nanad rolled back the open transaction"
        pending, self._pending = self._pending, {}
        for slot in pending.values():
            slot[0], slot[1] = True, cls(f"Connection to nanad lost: {reason}")
        if sock is not None:
            try:
                sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Closes the socket for good; calls still waiting fail with NanaSQLiteClosedError."""
        with self._connect_lock:
            if self.closed:
                return
            self.closed = True
            self.near_bypass = True  # for good: a closed connection's near-caches answer nothing
            sock = self._sock
            if sock is not None:
                self._fail(NanaSQLiteClosedError, "the database was closed", sock)
                try:
                    sock.close()
                except OSError:
                    pass
            self.in_transaction = False
            self.transaction_lost = None


# --------------------------------------------------------------------------------------------
# asyncio
# --------------------------------------------------------------------------------------------


class _ReplyProtocol(asyncio.Protocol):
    """The reader side of an AsyncConnection: asyncio calls ``data_received`` as bytes arrive,
    and every complete frame resolves the future waiting on its msgid. (This is the callback form
    of "a reader task resolving futures in a dict": no task switch per reply.)"""

    def __init__(self, conn: "AsyncConnection", generation: int) -> None:
        self.conn = conn
        self.generation = generation
        self.frames = _wire.FrameBuffer()
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        if conn.generation != self.generation:
            return
        try:
            bodies = self.frames.feed(data)
            for body in bodies:
                conn._dispatch(_wire.decode_body(body), self.generation)
        except Exception as exc:
            conn._fail(NanaSQLiteConnectionError, f"undecodable reply: {exc}", self.generation)

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        reason = f"nanad closed the connection ({exc})" if exc else "nanad closed the connection"
        self.conn._fail(NanaSQLiteConnectionError, reason, self.generation)
        self.conn._writable(self.generation)

    def pause_writing(self) -> None:
        self.conn._paused = True

    def resume_writing(self) -> None:
        self.conn._writable(self.generation)


class AsyncConnection(_ConnectionState):
    """One connection used by every coroutine of one event loop.

    Each request is written with a single ``transport.write`` (so frames never interleave:
    writes are serialised by the loop itself), then the caller awaits a future filed under its
    msgid. When the transport's buffer is over its high-water mark, writers wait until it drains.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._transport: Optional[asyncio.Transport] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._pending: Dict[int, asyncio.Future] = {}
        self._paused = False
        self._drain_waiters: List[asyncio.Future] = []
        self._lock: Optional[asyncio.Lock] = None
        self._pid = os.getpid()

    def usable_in(self, loop: asyncio.AbstractEventLoop) -> bool:
        return self._transport is not None and self.broken is None and self._loop is loop

    async def ensure(self, method: str = "") -> None:
        loop = asyncio.get_running_loop()
        if self.usable_in(loop):
            return
        if self._pid != os.getpid():
            # A forked child: the transport, its event loop and any transaction are the parent's.
            # Forget them without touching them (unregistering the socket from the inherited
            # epoll set would disturb the parent's loop).
            self._pid = os.getpid()
            self._transport = None
            self._loop = None
            self._pending = {}
            self.broken = (NanaSQLiteConnectionError, "the process forked")
            self.in_transaction = False
            self.transaction_lost = None
        if self._loop is not loop:
            if self._loop is not None and not self._loop.is_closed() and self._transport is not None and self.broken is None:
                raise NanaSQLiteConnectionError(
                    "This database was opened in another event loop that is still running; "
                    "use one instance per event loop"
                )
            # First use, or the previous loop is gone (asyncio.run() called again): start afresh.
            if self._transport is not None:
                self._broke(NanaSQLiteConnectionError, "the event loop changed")
                self._drop_transport()
            self._loop = loop
            self._lock = None
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.usable_in(loop):
                return
            self._check_reconnect(method)
            await self._connect(loop)

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        self._drop_transport()
        self.generation += 1
        self._new_generation()
        generation = self.generation
        try:
            transport, _ = await loop.create_unix_connection(
                lambda: _ReplyProtocol(self, generation), self.path
            )
        except OSError as exc:
            raise NanaSQLiteConnectionError(f"Cannot connect to nanad at '{self.path}': {exc}") from None
        self._transport = transport  # type: ignore[assignment]
        self._paused = False
        self.broken = None
        self.in_transaction = False
        try:
            self.server_info = await self.call("hello", _hello_params(), generation)
        except BaseException:
            self._fail(NanaSQLiteConnectionError, "hello failed", generation)
            raise

    def _drop_transport(self) -> None:
        transport, self._transport = self._transport, None
        if transport is None:
            return
        if self._loop is not None and self._loop.is_closed():
            # Its loop is gone (asyncio.run ended) and cannot run abort(): end the session now
            # (so the daemon drops its handles and any transaction); the descriptor itself is
            # closed when the transport is collected.
            sock = transport.get_extra_info("socket")
            try:
                if sock is not None:
                    sock.shutdown(_socket.SHUT_RDWR)
            except OSError:
                pass
            return
        try:
            transport.abort()
        except Exception:
            pass

    async def call(self, method: str, params: Dict[str, Any], generation: Optional[int] = None) -> Any:
        if self.broken is not None:
            cls, reason = self.broken
            raise cls(f"Connection to nanad lost: {reason}")
        if generation is not None and generation != self.generation:
            raise StaleGeneration()
        msgid = self._msgid()
        data = _wire.encode_request(msgid, method, params)
        if method == "begin_transaction":
            self.near_bypass = True
        future = self._loop.create_future()  # type: ignore[union-attr]
        self._pending[msgid] = future
        try:
            self._transport.write(data)  # type: ignore[union-attr]
            if self._paused:
                await self._wait_writable()
            error, result = await future
        finally:
            self._pending.pop(msgid, None)
        if method in _TXN_METHODS:
            self._note_transaction(method, error)
        if error is not None:
            raise error_from_wire(error)
        if method in _ROWID_METHODS:
            self._note_rowid(method, result)
        return result

    async def _wait_writable(self) -> None:
        while self._paused and self.broken is None:
            waiter = self._loop.create_future()  # type: ignore[union-attr]
            self._drain_waiters.append(waiter)
            await waiter

    def _writable(self, generation: int) -> None:
        if generation != self.generation:
            return
        self._paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _dispatch(self, message: Any, generation: int) -> None:
        if isinstance(message, list) and len(message) == 4 and message[0] == _wire.RESPONSE:
            future = self._pending.pop(message[1], None)
            if future is not None and not future.done():
                future.set_result((message[2], message[3]))
        elif isinstance(message, list) and len(message) == 3 and message[0] == _wire.NOTIFICATION:
            params = message[2] if isinstance(message[2], dict) else {}
            exc = error_from_wire(params)
            self._fail(type(exc), f"{params.get('type')}: {params.get('message')}", generation)

    def _fail(self, cls: type, reason: str, generation: int) -> None:
        if generation != self.generation:
            return
        self._broke(cls, reason)
        if self.transaction_lost is not None:
            reason += "; nanad rolled back the open transaction"
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(cls(f"Connection to nanad lost: {reason}"))
        self._writable(generation)
        self._drop_transport()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.near_bypass = True  # for good: a closed connection's near-caches answer nothing
        self._fail(NanaSQLiteClosedError, "the database was closed", self.generation)
        self.in_transaction = False
        self.transaction_lost = None
