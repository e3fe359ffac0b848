"""``AsyncNanaSQLite``: the asyncio drop-in, served by nanad."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import Any, AsyncIterator, Dict, Generator, Optional, Set, Tuple

from . import _near
from ._admission import Admission
from ._base import IN_HOOKS, UNSET, EllipsisType, Operations, async_method, build_open_params, check_batch_size, resolve_child_hooks
from ._connection import AsyncConnection, StaleGeneration
from ._options import TableOptions
from ._wire import socket_path
from .exceptions import NanaSQLiteConnectionError, NanaSQLiteError, NanaSQLiteTransactionError

# Operation name -> the names it gets: NanaSQLite's a-prefixed name and its unprefixed alias
# (every operation has both here; the seed lists some of each only).
ASYNC_METHODS = [
    "get", "set", "delete", "contains", "len", "keys", "values", "items", "pop", "update", "setdefault",
    "clear", "to_dict", "copy",
    "batch_get", "batch_update", "batch_update_partial", "batch_delete",
    "load_all", "refresh", "is_cached", "get_fresh", "clear_cache",
    "increment", "patch",
    "flush", "get_dlq", "retry_dlq", "clear_dlq", "get_v2_metrics", "get_dlq_summary", "get_status",
    "begin_transaction", "commit", "rollback", "in_transaction",
    "execute", "execute_many", "fetch_one", "fetch_all",
    "sql_insert", "sql_update", "sql_delete", "upsert", "query", "query_with_pagination", "count", "exists",
    "export_table_to_dict", "import_from_dict_list",
    "create_table", "create_index", "drop_table", "drop_index", "alter_table_add_column",
    "table_exists", "list_tables", "get_table_schema", "list_indexes",
    "add_constraint", "drop_constraint", "list_constraints",
    "vacuum", "pragma", "stats",
    "set_model", "get_model",
]


class _AsyncTransaction:
    """``async with db.transaction():`` — commits on normal exit, rolls back on an exception."""

    def __init__(self, db: "AsyncNanaSQLite") -> None:
        self.db = db

    async def __aenter__(self) -> "AsyncNanaSQLite":
        await self.db.begin_transaction()
        return self.db

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            await self.db.commit()
        else:
            try:
                await self.db.rollback()
            except Exception:
                pass  # the block's own exception is the one worth seeing
        return False


class _Done:
    """An already-finished awaitable: ``add_hook`` works with and without ``await``."""

    def __await__(self) -> Generator[Any, None, None]:
        return None
        yield  # pragma: no cover


class AsyncNanaSQLite(Operations):
    """NanaSQLite's ``AsyncNanaSQLite``, served by nanad.

    Same constructor as NanaSQLite 1.6, plus the keyword ``socket``. Nothing is opened until the
    first awaited call (or ``async with``), as in NanaSQLite; errors of the constructor's
    arguments surface there. Every coroutine of the event loop shares one connection: calls are
    pipelined and their replies matched by msgid, so ``asyncio.gather`` of many calls costs
    about one round trip, not one each.
    """

    def __init__(
        self,
        db_path: str,
        table: str = "data",
        bulk_load: bool = False,
        optimize: bool = True,
        cache_size_mb: int = 64,
        max_workers: int = 5,
        strict_sql_validation: bool = True,
        validator: Any = None,
        coerce: bool = False,
        v2_mode: bool = False,
        v2_config: Any = None,
        *,
        socket: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        """Connects to nanad and opens ``table`` of ``db_path`` at the first awaited call.

        Args:
            db_path: a file inside the daemon's data folder, relative to it.
            table: the key-value table (created if missing).
            bulk_load: read every row into the daemon's cache at open.
            optimize, cache_size_mb, max_workers, strict_sql_validation: as NanaSQLite's; the
                daemon applies and checks them (README, "Options").
            validator: a callable ``validator(value)`` or a validkit schema, run in this process
                before each write (``None``: none).
            coerce: store what ``validator`` returns instead of the value given.
            v2_mode, v2_config: write-behind, run by the daemon for every client of the table.
            socket: nanad's socket (else ``$NANAD_SOCKET``, else ``nanad-data/nanad.sock``).
            **kwargs: NanaSQLite's other options (``cache_strategy``, ``encryption_key``, ``hooks``,
                ``flush_mode``, …, ``max_pending_operations``, ``admission_timeout``) and the
                near-cache's (``near_cache``, ``near_cache_size``, ``near_cache_bytes``).
        """
        # Checked here, as NanaSQLite checks them, not at the first await as the others.
        self._admission = Admission.from_options(kwargs)
        self._db_path = db_path
        self._table = table
        self._max_workers = max_workers
        # As in NanaSQLite, errors of the arguments surface at the first await.
        self._init_error: Optional[BaseException] = None
        try:
            self._init_near(kwargs)
            self._options = TableOptions.from_constructor(v2_mode, v2_config, kwargs)
        except Exception as exc:
            self._init_error = exc
            self._options = TableOptions()
            self._tracking, self._near_limits, self._near, self._near_fast = False, (0, 0), None, None
        self._open_params = build_open_params(
            db_path, table, bulk_load, optimize, cache_size_mb, strict_sql_validation, self._options, kwargs,
            max_workers=max_workers,
        )
        if self._tracking:
            self._open_params["near_cache"] = True
        self._init_hooks(kwargs.get("hooks"), validator, coerce)
        self._conn = AsyncConnection(socket_path(socket))
        self._root = self
        self._parent: Optional[AsyncNanaSQLite] = None
        self._table_request = table
        self._handle = 0
        self._gen = -1
        self._closed = False
        self._lock: Optional[asyncio.Lock] = None
        self._lock_loop: Optional[asyncio.AbstractEventLoop] = None
        # The root's, for the instance and its children: the calls that run hooks, and the
        # threads they run on (made at the first such call).
        self._active: Set["asyncio.Future[Any]"] = set()
        self._hook_threads: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._close_task: Optional["asyncio.Future[None]"] = None
        self._hook_serial: Optional[asyncio.Lock] = None
        self._hook_serial_loop: Optional[asyncio.AbstractEventLoop] = None
        self._hook_db_lock = threading.Lock()

    # ------------------------------------------------------------ driver

    async def _arun(self, gen: Generator) -> Any:
        if self._closed or self._root._closed:
            gen.close()
            raise self._closed_error()
        if self._hooks:
            return await self._arun_with_hooks(gen)
        admission = self._admission
        if admission is None:
            return await self._arun_admitted(gen)
        try:
            await admission.acquire()
        except BaseException:
            gen.close()  # timed out or cancelled: nothing was sent
            raise
        try:
            return await self._arun_admitted(gen)
        finally:
            admission.release()

    async def _arun_admitted(self, gen: Generator, hooks_off_loop: bool = False) -> Any:
        """Drives an operation: its steps on the event loop, its requests to the daemon, and
        its hook calls (``IN_HOOKS``) on a worker thread when ``hooks_off_loop`` (an instance
        without hooks of its own asks for none that run user code: they run inline)."""
        send = gen.send
        try:
            request = send(None)
            while True:
                try:
                    if request[0] is IN_HOOKS:
                        fn, args = request[1]
                        result = await self._in_hook_thread(fn, args) if hooks_off_loop else fn(*args)
                    else:
                        result = await self._arequest(request[0], request[1])
                except Exception as exc:
                    request = gen.throw(exc)
                    continue
                request = send(result)
        except StopIteration as stop:
            return stop.value

    async def _in_hook_thread(self, fn: Any, args: Tuple[Any, ...]) -> Any:
        root = self._root
        threads = root._hook_threads
        if threads is None:  # made at the first hook call
            threads = root._hook_threads = concurrent.futures.ThreadPoolExecutor(
                max_workers=max(1, int(self._max_workers or 1)), thread_name_prefix="nanad-client-hooks")
        return await asyncio.get_running_loop().run_in_executor(threads, fn, *args)

    async def _arun_with_hooks(self, gen: Generator) -> Any:
        """A call of an instance with hooks, as NanaSQLite runs every call: the hooks (which
        may block, or take long) run on one of ``max_workers`` threads, never on the event
        loop (the operation hands them over as ``IN_HOOKS`` requests, only where a hook of the
        instance runs); and once admitted the call is the instance's, not its caller's:
        cancelling the caller does not stop it, and ``close()`` waits for it."""
        admission = self._admission
        if admission is not None:
            try:
                await admission.acquire()
            except BaseException:
                gen.close()  # timed out or cancelled: nothing was run
                raise
        root = self._root
        task = asyncio.ensure_future(self._arun_serially(gen, admission))
        root._active.add(task)
        task.add_done_callback(root._call_done)
        return await asyncio.shield(task)

    def _call_done(self, task: "asyncio.Future[Any]") -> None:
        self._active.discard(task)
        if not task.cancelled():
            task.exception()  # a caller that was cancelled no longer looks: not "never retrieved"

    async def _arun_serially(self, gen: Generator, admission: Optional[Admission]) -> Any:
        # One call with hooks at a time for the instance and its children, as NanaSQLite's
        # RLock makes it (its SEC-05 fix): a hook's check and the write it allows are one step.
        try:
            async with self._serial_lock():
                return await self._arun_admitted(gen, hooks_off_loop=True)
        finally:
            if admission is not None:
                admission.release()

    def _serial_lock(self) -> asyncio.Lock:
        root = self._root
        loop = asyncio.get_running_loop()
        if root._hook_serial is None or root._hook_serial_loop is not loop:
            root._hook_serial, root._hook_serial_loop = asyncio.Lock(), loop
        return root._hook_serial

    def _hook_db(self) -> Any:
        """Hooks get a sync instance of the same file and table, as NanaSQLite's hooks get its
        sync one: they run on a worker thread, where its blocking calls are what they expect
        (UniqueHook reads ``db.items()``). It is ``sync_db``'s, on a connection of its own, so
        it is not in this instance's transaction."""
        sync = self.__dict__.get("_sync")
        if sync is None or sync.closed:
            with self._root._hook_db_lock:
                sync = self.__dict__.get("_sync")
                if sync is None or sync.closed:
                    from .sync import NanaSQLite
                    sync = self._sync = NanaSQLite._beside(self)
                    self._root.__dict__.setdefault("_syncs", []).append(sync)
        return sync

    async def _arequest(self, method: str, params: Dict[str, Any]) -> Any:
        if self._tracking and method in _near.TRACKED:
            gen = _near.operation(self._near, method, params)
            try:
                request = gen.send(None)
                while True:
                    request = gen.send(await self._asend(request[0], request[1]))
            except StopIteration as stop:
                return stop.value
        return await self._asend(method, params)

    async def _asend(self, method: str, params: Dict[str, Any]) -> Any:
        conn = self._conn
        loop = asyncio.get_running_loop()
        for _ in range(3):
            if not conn.usable_in(loop):
                await conn.ensure(method)
            try:
                if self._gen != conn.generation:
                    await self._areopen()
                params["db"] = self._handle
                return await conn.call(method, params, self._gen)
            except StaleGeneration:
                continue
        raise NanaSQLiteConnectionError("The connection to nanad keeps being replaced")

    def _root_lock(self) -> asyncio.Lock:
        root = self._root
        loop = asyncio.get_running_loop()
        if root._lock is None or root._lock_loop is not loop:
            root._lock = asyncio.Lock()
            root._lock_loop = loop
        return root._lock

    async def _areopen(self) -> None:
        """Gets this instance's handle on the current connection (first use, reconnection)."""
        root = self._root
        async with self._root_lock():
            conn = self._conn
            generation = conn.generation
            if self._gen == generation:
                return
            if self is root:
                if self._init_error is not None:
                    raise self._init_error
                reply = await conn.call("open", dict(self._open_params), generation)
            else:
                # Children are (re)opened from the root: they would inherit its SQL policy anyway.
                if root._gen != generation:
                    reply = await conn.call("open", dict(root._open_params), generation)
                    root._handle, root._table, root._gen = reply["db"], reply["table"], generation
                reply = await conn.call("table", {"db": root._handle, "table_name": self._table_request,
                                                  **self._table_params}, generation)
            self._handle = reply["db"]
            self._table = reply["table"]
            self._adopt_reply(reply)
            self._gen = generation

    async def _ensure_initialized(self) -> None:
        if self._closed or self._root._closed:
            raise self._closed_error()
        conn = self._conn
        for _ in range(3):
            await conn.ensure()
            try:
                await self._areopen()
                return
            except StaleGeneration:
                continue

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> "AsyncNanaSQLite":
        await self._ensure_initialized()
        return self

    async def __aexit__(self, exc_type, exc_val, exc_tb):  # type: ignore[no-untyped-def]
        await self.close()
        return False

    _aitems_page = async_method(Operations._op_items_page, "_aitems_page", "AsyncNanaSQLite")

    async def aiter_items(self, batch_size: int = 1000) -> AsyncIterator[Tuple[str, Any]]:
        """Every (key, value) pair in key order, in pages of ``batch_size`` keys (as
        ``NanaSQLite.iter_items``)."""
        check_batch_size(batch_size)
        after: Optional[str] = None
        while True:
            page, after = await self._aitems_page(after, batch_size)
            for item in page:
                yield item
            if after is None:
                return

    def __repr__(self) -> str:
        initialized = self._gen >= 0
        return (f"AsyncNanaSQLite({self._db_path!r}, table={self._table!r}, max_workers={self._max_workers}, "
                f"initialized={initialized})")

    def add_hook(self, hook: Any) -> _Done:
        """Appends a hook (it runs in this process). Returns an awaitable, so both
        ``db.add_hook(h)`` and NanaSQLite's ``await db.add_hook(h)`` work."""
        self._hooks.append(hook)
        self._refresh_hook_flags()
        return _Done()

    def transaction(self) -> _AsyncTransaction:
        """``async with db.transaction():`` — begin; commit on exit; roll back on an exception.

        The transaction belongs to the connection, which every coroutine using this instance
        (or its ``table()`` children) shares, as in NanaSQLite: do not run unrelated writes
        concurrently with a ``transaction()`` block."""
        return _AsyncTransaction(self)

    async def table(self, table_name: str, validator: Any | EllipsisType = UNSET, coerce: Any | EllipsisType = UNSET,
                    hooks: Any | EllipsisType = UNSET, warn_duplicate_table_instance: Any = UNSET) -> "AsyncNanaSQLite":
        """Another table of the same file, on the same connection (and in the same transaction);
        it shares the daemon's one cache of that table, so there are no duplicates to warn about."""
        if self._closed or self._root._closed:
            raise self._closed_error()
        child = AsyncNanaSQLite.__new__(AsyncNanaSQLite)
        child._db_path = self._db_path
        child._table = table_name
        child._max_workers = self._max_workers
        child._admission = self._admission  # one bound for the instance and its children
        child._options = self._options
        child._table_params = self._table_params
        child._init_error = None
        child._open_params = self._open_params
        child._hooks, child._validator, child._coerce = resolve_child_hooks(
            self._hooks, validator, coerce, hooks, self._validator, self._coerce
        )
        child._refresh_hook_flags()
        child._inherit_near(self)
        child._conn = self._conn
        child._root = self._root
        child._parent = self
        child._table_request = table_name
        child._handle = 0
        child._gen = -1
        child._closed = False
        child._lock = None
        child._lock_loop = None
        child._close_task = None
        await child._ensure_initialized()
        return child

    atable = table

    async def close(self) -> None:
        """Closes this instance; a root also closes its children and its connection. It first
        waits for the calls that run hooks (see ``_arun_with_hooks``), even those whose caller
        was cancelled; cancelling ``close()`` itself does not stop it. Refused with
        NanaSQLiteTransactionError while a transaction is open (then it can be called again).
        Idempotent, and calls made while one runs wait for it."""
        if self._closed:
            return
        task = self._close_task
        if task is None:
            task = self._close_task = asyncio.ensure_future(self._close_once())
            task.add_done_callback(self._close_done)
        await asyncio.shield(task)

    def _close_done(self, task: "asyncio.Future[None]") -> None:
        if task.cancelled() or task.exception() is not None:
            self._close_task = None  # refused (a transaction is open): it may be called again

    async def _close_once(self) -> None:
        active = tuple(self._root._active)
        if active:
            await asyncio.gather(*active, return_exceptions=True)
        if self._closed:
            return
        conn = self._conn
        loop = asyncio.get_running_loop()
        if conn.usable_in(loop) and self._gen == conn.generation and not self._root._closed:
            try:
                await conn.call("close", {"db": self._handle}, self._gen)
            except NanaSQLiteTransactionError:
                raise
            except (NanaSQLiteError, StaleGeneration):
                pass
        elif self is self._root and conn.in_transaction:
            raise NanaSQLiteTransactionError(
                "Cannot close connection while transaction is in progress. Please commit or rollback first."
            )
        self._closed = True
        self._near = self._near_fast = None
        self._close_sync()
        if self is self._root:
            conn.close()
            if self._hook_threads is not None:
                self._hook_threads.shutdown(wait=False)  # idle: every call was waited for above

    aclose = close

    @property
    def closed(self) -> bool:
        return self._closed or self._root._closed

    @property
    def sync_db(self) -> Any:
        """NanaSQLite's "internal sync instance", for advanced use: here a ``NanaSQLite`` of
        the same file and table, with this instance's options and hooks, on a connection of its
        own (made at the first use; closed with this instance). Its calls block the event loop,
        as NanaSQLite's do. ``None`` before this instance is initialised (the first ``await``),
        as in NanaSQLite.

        The daemon serves both connections, so each sees the other's acknowledged writes at
        once. It is not in this instance's transaction: while one is open here, asking for it
        raises NanaSQLiteTransactionError (a write through it would wait for the transaction's
        COMMIT, which the blocked event loop could never send). ``None`` again once closed."""
        if self._closed or self._root._closed or self._gen < 0:
            return None
        if self._conn.in_transaction:
            raise NanaSQLiteTransactionError(
                "sync_db is a connection of its own and not in this instance's transaction: "
                "commit or roll back first, or use the async methods inside it."
            )
        sync = self.__dict__.get("_sync")
        if sync is None or sync.closed:
            from .sync import NanaSQLite
            sync = self._sync = NanaSQLite._beside(self)
            self._root.__dict__.setdefault("_syncs", []).append(sync)
        return sync

    def _close_sync(self) -> None:
        for sync in (self.__dict__.pop("_syncs", []) if self is self._root else [self.__dict__.get("_sync")]):
            if sync is not None:
                try:
                    sync.close()
                except NanaSQLiteError:
                    # A transaction left open through it: dropping its connection makes the
                    # daemon roll that back, as a process that exits mid-transaction does.
                    sync._closed = True
                    sync._conn.close()
        self.__dict__.pop("_sync", None)


def _install() -> None:
    owner = "AsyncNanaSQLite"
    for name in ASYNC_METHODS:
        op = getattr(Operations, "_op_" + name)
        setattr(AsyncNanaSQLite, "a" + name, async_method(op, "a" + name, owner))
        setattr(AsyncNanaSQLite, name, async_method(op, name, owner))
    # NanaSQLite's async backup/restore name their path parameters differently from the sync ones.
    for name, op in (("backup", Operations._op_abackup), ("restore", Operations._op_arestore)):
        setattr(AsyncNanaSQLite, "a" + name, async_method(op, "a" + name, owner))
        setattr(AsyncNanaSQLite, name, async_method(op, name, owner))
    # Its `upsert` alias takes conflict_columns by keyword only; `aupsert` also positionally.
    setattr(AsyncNanaSQLite, "upsert", async_method(Operations._op_upsert_kw, "upsert", owner))
    # A near-cache hit is answered before the generator machinery (see NanaSQLite.get).
    slow_get, slow_contains = AsyncNanaSQLite.aget, AsyncNanaSQLite.acontains
    for name in ("aget", "get"):
        setattr(AsyncNanaSQLite, name, _fast_get(name, owner, slow_get))
    for name in ("acontains", "contains"):
        setattr(AsyncNanaSQLite, name, _fast_contains(name, owner, slow_contains))


def _fast_get(name: str, owner: str, slow: Any) -> Any:
    async def method(self: AsyncNanaSQLite, key: str, default: Any = None) -> Any:
        fast = self._near_fast  # its near-cache's hit (_near.HitIndex)
        if fast is not None:
            value = fast(key)
            if value is not _near.MISS:
                return default if value is _near.ABSENT else value
        return await slow(self, key, default)
    return _named(method, name, owner, slow)


def _fast_contains(name: str, owner: str, slow: Any) -> Any:
    async def method(self: AsyncNanaSQLite, key: str) -> bool:
        fast = self._near_fast
        if fast is not None:
            value = fast(key)
            if value is not _near.MISS:
                return value is not _near.ABSENT
        return await slow(self, key)
    return _named(method, name, owner, slow)


def _named(method: Any, name: str, owner: str, like: Any) -> Any:
    method.__name__ = name
    method.__qualname__ = f"{owner}.{name}"
    method.__doc__ = like.__doc__
    method.__signature__ = like.__signature__
    return method


_install()
