"""``NanaSQLite``: the synchronous, dict-like drop-in, served by nanad."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, MutableMapping
from typing import Any, Dict, Generator, Iterator, Optional

from . import _near
from ._near import ABSENT as _ABSENT, MISS as _MISS
from ._base import IN_HOOKS, UNSET, EllipsisType, Operations, build_open_params, check_batch_size, resolve_child_hooks, sync_method
from ._connection import StaleGeneration, SyncConnection
from ._options import TableOptions
from ._wire import socket_path
from .exceptions import NanaSQLiteConnectionError, NanaSQLiteError, NanaSQLiteTransactionError

# Seed method name -> operation (nanad_client._base.Operations._op_<name>).
SYNC_METHODS = [
    "keys", "values", "items", "pop", "update", "setdefault", "clear", "to_dict", "copy",
    "batch_get", "batch_update", "batch_update_partial", "batch_delete",
    "load_all", "refresh", "is_cached", "get_fresh", "clear_cache",
    "increment", "patch",
    "flush", "get_dlq", "retry_dlq", "clear_dlq", "get_v2_metrics", "get_dlq_summary", "get_status",
    "begin_transaction", "commit", "rollback", "in_transaction",
    "execute", "execute_many", "fetch_one", "fetch_all",
    "sql_insert", "sql_update", "sql_delete", "upsert", "query", "query_with_pagination", "count", "exists",
    "export_table_to_dict", "import_from_dict_list", "get_by_path", "get_db_size",
    "create_table", "create_index", "drop_table", "drop_index", "alter_table_add_column",
    "table_exists", "list_tables", "get_table_schema", "list_indexes",
    "add_constraint", "drop_constraint", "list_constraints",
    "vacuum", "pragma", "backup", "restore", "stats",
    "set_model", "get_model",
]


class _Transaction:
    """``with db.transaction():`` — commits on normal exit, rolls back on an exception."""

    def __init__(self, db: "NanaSQLite") -> None:
        self.db = db

    def __enter__(self) -> "NanaSQLite":
        self.db.begin_transaction()
        return self.db

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            self.db.commit()
        else:
            try:
                self.db.rollback()
            except Exception:
                pass  # the block's own exception is the one worth seeing
        return False


class NanaSQLite(Operations, MutableMapping):
    """A dict-like view of one table of a NanaSQLite database file, served by nanad.

    Same constructor as NanaSQLite 1.6, plus the keyword ``socket`` (else ``$NANAD_SOCKET``,
    else ``nanad-data/nanad.sock``). ``db_path`` names a file inside the daemon's data folder.
    ``validator``, ``coerce`` and ``hooks=`` run in this process; the other options go to the
    daemon's ``open`` (see the README for those ignored or refused).

    One instance may be shared by the threads of a process: calls from several threads are in
    flight together on its one connection (see ``SyncConnection``). After ``os.fork()`` the
    child reconnects by itself on its first call.
    """

    def __init__(
        self,
        db_path: str,
        table: str = "data",
        bulk_load: bool = False,
        optimize: bool = True,
        cache_size_mb: int = 64,
        strict_sql_validation: bool = True,
        validator: Any = None,
        coerce: bool = False,
        v2_mode: bool = False,
        v2_config: Any = None,
        *,
        socket: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        """Connects to nanad and opens ``table`` of ``db_path``.

        Args:
            db_path: a file inside the daemon's data folder, relative to it.
            table: the key-value table (created if missing).
            bulk_load: read every row into the daemon's cache at open.
            optimize, cache_size_mb, strict_sql_validation: as NanaSQLite's; the daemon applies
                and checks them (README, "Options").
            validator: a callable ``validator(value)`` or a validkit schema, run in this process
                before each write (``None``: none).
            coerce: store what ``validator`` returns instead of the value given.
            v2_mode, v2_config: write-behind, run by the daemon for every client of the table.
            socket: nanad's socket (else ``$NANAD_SOCKET``, else ``nanad-data/nanad.sock``).
            **kwargs: NanaSQLite's other options (``cache_strategy``, ``encryption_key``, ``hooks``,
                ``flush_mode``, …) and the near-cache's (``near_cache``, ``near_cache_size``,
                ``near_cache_bytes``).
        """
        self._db_path = db_path
        self._table = table
        self._init_near(kwargs)
        self._options = TableOptions.from_constructor(v2_mode, v2_config, kwargs)
        self._open_params = build_open_params(
            db_path, table, bulk_load, optimize, cache_size_mb, strict_sql_validation, self._options, kwargs
        )
        if self._tracking:
            self._open_params["near_cache"] = True
        self._init_hooks(kwargs.get("hooks"), validator, coerce)
        self._conn = SyncConnection(socket_path(socket))
        self._root = self
        self._parent: Optional[NanaSQLite] = None
        self._table_request = table
        self._handle = 0
        self._gen = -1
        self._closed = False
        self._reopen_lock = threading.RLock()
        self._hook_lock = threading.RLock()  # the root's: see _run
        try:
            self._conn.ensure()
            self._reopen()
        except BaseException:
            self._closed = True
            self._conn.close()
            raise

    @classmethod
    def _beside(cls, other: Any) -> "NanaSQLite":
        """A NanaSQLite on a connection of its own to another instance's file and table, with
        its options, hooks and near-cache limits (``AsyncNanaSQLite.sync_db``)."""
        db = cls.__new__(cls)
        db._db_path = other._db_path
        db._table = other._table_request
        db._options = other._options
        db._open_params = dict(other._open_params, table=other._table_request, **other._options.cache_params())
        db._inherit_near(other)
        db._hooks, db._validator, db._coerce = list(other._hooks), other._validator, other._coerce
        db._refresh_hook_flags()
        db._conn = SyncConnection(other._conn.path)
        db._rowid_sibling = other._conn
        db._root = db
        db._parent = None
        db._table_request = other._table_request
        db._handle = 0
        db._gen = -1
        db._closed = False
        db._reopen_lock = threading.RLock()
        db._hook_lock = threading.RLock()
        try:
            db._conn.ensure()
            db._reopen()
        except BaseException:
            db._closed = True
            db._conn.close()
            raise
        return db

    # ------------------------------------------------------------ driver

    def _run(self, gen: Generator) -> Any:
        if self._closed or self._root._closed:
            gen.close()
            raise self._closed_error()
        if self._hooks:
            # As NanaSQLite (its SEC-05 fix): the hooks' checks and the write they allow are
            # one step for the threads sharing the instance and its children (an RLock: a hook
            # may read the instance, as UniqueHook does).
            with self._root._hook_lock:
                return self._run_steps(gen)
        return self._run_steps(gen)

    def _run_steps(self, gen: Generator) -> Any:
        send = gen.send
        try:
            request = send(None)
            while True:
                try:
                    if request[0] is IN_HOOKS:  # hook calls: here, on the caller's thread
                        fn, args = request[1]
                        result = fn(*args)
                    else:
                        result = self._request(request[0], request[1])
                except Exception as exc:
                    request = gen.throw(exc)
                    continue
                request = send(result)
        except StopIteration as stop:
            return stop.value

    def _request(self, method: str, params: Dict[str, Any]) -> Any:
        if self._tracking and method in _near.TRACKED:
            gen = _near.operation(self._near, method, params)
            try:
                request = gen.send(None)
                while True:
                    request = gen.send(self._send(request[0], request[1]))
            except StopIteration as stop:
                return stop.value
        return self._send(method, params)

    def _send(self, method: str, params: Dict[str, Any]) -> Any:
        conn = self._conn
        for _ in range(3):
            if conn._sock is None or conn.broken is not None:
                conn.ensure(method)
            try:
                if self._gen != conn.generation:
                    self._reopen()
                params["db"] = self._handle
                return conn.call(method, params, self._gen)
            except StaleGeneration:
                continue
        raise NanaSQLiteConnectionError("The connection to nanad keeps being replaced")

    def _reopen(self) -> None:
        """Gets this instance's handle on the current connection (first use, reconnection)."""
        root = self._root
        with root._reopen_lock:
            conn = self._conn
            generation = conn.generation
            if self._gen == generation:
                return
            if self is root:
                reply = conn.call("open", dict(self._open_params), generation)
            else:
                # Children are (re)opened from the root: they would inherit its SQL policy anyway.
                if root._gen != generation:
                    root._reopen()
                reply = conn.call("table", {"db": root._handle, "table_name": self._table_request, **self._table_params},
                                  generation)
            self._handle = reply["db"]
            self._table = reply["table"]
            self._adopt_reply(reply)
            self._gen = generation

    # ------------------------------------------------------------ dict protocol

    _getitem = sync_method(Operations._op_getitem, "__getitem__", "NanaSQLite")
    _get = sync_method(Operations._op_get, "get", "NanaSQLite")
    _contains = sync_method(Operations._op_contains, "__contains__", "NanaSQLite")

    # A near-cache hit is answered here, before the generator machinery: the handle's
    # _near.HitIndex (a dict lookup and two reads of the board that match, PROTOCOL.md 10.5).
    # Everything else, TTL entries and hooks that transform reads included, takes the full
    # path (_near.operation).
    def __getitem__(self, key: str) -> Any:
        fast = self._near_fast
        if fast is not None:
            value = fast(key)
            if value is not _MISS:
                if value is _ABSENT:
                    raise KeyError(key)
                return value
        return self._getitem(key)

    def get(self, key: str, default: Any = None) -> Any:
        fast = self._near_fast
        if fast is not None:
            value = fast(key)
            if value is not _MISS:
                return default if value is _ABSENT else value
        return self._get(key, default)

    def __contains__(self, key: object) -> bool:
        fast = self._near_fast
        if fast is not None:
            value = fast(key)
            if value is not _MISS:
                return value is not _ABSENT
        return self._contains(key)
    __setitem__ = sync_method(Operations._op_set, "__setitem__", "NanaSQLite")
    __delitem__ = sync_method(Operations._op_delete, "__delitem__", "NanaSQLite")
    __len__ = sync_method(Operations._op_len, "__len__", "NanaSQLite")

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __eq__(self, other: Any) -> bool:
        if other is self:
            return True
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other.items())
        return False

    def __ne__(self, other: Any) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return object.__hash__(self)

    def __repr__(self) -> str:
        state = ", closed" if self._closed else ""
        return f"NanaSQLite({self._db_path!r}, table={self._table!r}, socket={self._conn.path!r}{state})"

    def __enter__(self) -> "NanaSQLite":
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):  # type: ignore[no-untyped-def]
        self.close()

    # ------------------------------------------------------------ lifecycle

    def add_hook(self, hook: Any) -> None:
        """Appends a hook to this instance's chain (it runs in this process)."""
        self._hooks.append(hook)
        self._refresh_hook_flags()

    def transaction(self) -> _Transaction:
        """``with db.transaction():`` — begin; commit on exit; roll back on an exception.

        The transaction belongs to this instance's connection (shared by its ``table()``
        children and by every thread using them), as NanaSQLite's belongs to its SQLite
        connection. Other processes keep reading committed data; their writes wait."""
        return _Transaction(self)

    def table(
        self,
        table_name: str,
        cache_strategy: Any = None,
        cache_size: Optional[int] = None,
        cache_ttl: Optional[float] = None,
        cache_persistence_ttl: Optional[bool] = None,
        validator: Any | EllipsisType = UNSET,
        coerce: Any | EllipsisType = UNSET,
        hooks: Any | EllipsisType = UNSET,
        v2_enable_metrics: Any = UNSET,
        memory_first: Any = UNSET,
        warn_duplicate_table_instance: Any = UNSET,
    ) -> "NanaSQLite":
        """Another table of the same file, on the same connection (and in the same transaction).

        Unlike NanaSQLite's children, it shares the daemon's one cache of that table, so it never
        reads stale. The daemon opens it with this instance's settings, except the cache
        settings given here (``cache_strategy``, ``cache_size``, ``cache_ttl``,
        ``cache_persistence_ttl``, each this instance's when ``None``), which nanad checks as an
        open's: while another session uses that table with other settings, ``ValueError``.
        ``v2_enable_metrics`` and ``memory_first`` may repeat this instance's but not change
        them (NanaSQLiteNotSupportedError): open the table with
        ``NanaSQLite(db_path, table=..., ...)`` for other write-behind settings."""
        if self._closed or self._root._closed:
            raise self._closed_error()
        options = self._options.child(cache_strategy, cache_size, cache_ttl, cache_persistence_ttl,
                                      v2_enable_metrics, memory_first, UNSET)
        child = NanaSQLite.__new__(NanaSQLite)
        child._db_path = self._db_path
        child._table = table_name
        child._options = options
        child._open_params = self._open_params
        # Children open through the root's handle and inherit its settings; the cache settings
        # that differ from the root's travel with `table`.
        own = options.cache_params()
        child._table_params = own if own != self._root._options.cache_params() else {}
        child_hooks, child_validator, child_coerce = resolve_child_hooks(
            self._hooks, validator, coerce, hooks, self._validator, self._coerce
        )
        child._hooks = child_hooks
        child._validator = child_validator
        child._coerce = child_coerce
        child._refresh_hook_flags()
        child._inherit_near(self)
        child._conn = self._conn
        child._root = self._root
        child._parent = self
        child._table_request = table_name
        child._handle = 0
        child._gen = -1
        child._closed = False
        child._reopen_lock = self._root._reopen_lock
        conn = self._conn
        for _ in range(3):
            conn.ensure()
            try:
                child._reopen()
                break
            except StaleGeneration:
                continue
        return child

    def close(self) -> None:
        """Closes this instance; a root also closes its children and its connection.

        Refused with NanaSQLiteTransactionError while a transaction is open (as NanaSQLite).
        Idempotent."""
        if self._closed:
            return
        conn = self._conn
        if conn.ready and self._gen == conn.generation and conn._pid == os.getpid() and not self._root._closed:
            try:
                conn.call("close", {"db": self._handle}, self._gen)
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
        if self is self._root:
            conn.close()

    @property
    def closed(self) -> bool:
        return self._closed or self._root._closed

    _rowid_sibling: Any = None  # sync_db's: the AsyncNanaSQLite's connection

    def get_last_insert_rowid(self) -> int:
        """The rowid of the last row this instance's connection inserted (``execute``,
        ``sql_insert``, ``upsert``, ``import_from_dict_list``; its ``table()`` children share
        it), 0 before any: NanaSQLite's ``last_insert_rowid()`` of its own connection. Kept
        from the daemon's replies, since the daemon's writer connection serves every client.
        On ``AsyncNanaSQLite.sync_db``, the later insert of it and its async instance, whose
        connection NanaSQLite's ``sync_db`` shares."""
        if self._closed or self._root._closed:
            raise self._closed_error()
        conn = self._conn
        sibling = self._rowid_sibling
        if sibling is not None and sibling.last_insert_order > conn.last_insert_order:
            return sibling.last_insert_rowid
        return conn.last_insert_rowid

    _items_page = sync_method(Operations._op_items_page, "_items_page", "NanaSQLite")

    def iter_items(self, batch_size: int = 1000) -> Iterator[Any]:
        """Every (key, value) pair in key order, read in pages of ``batch_size`` keys, as
        NanaSQLite's: values are decrypted and pass the ``after_read`` hooks; nothing is held
        between pages, so changes made meanwhile show in later pages."""
        check_batch_size(batch_size)
        after: Optional[str] = None
        while True:
            page, after = self._items_page(after, batch_size)
            yield from page
            if after is None:
                return


for _name in SYNC_METHODS:
    setattr(NanaSQLite, _name, sync_method(getattr(Operations, "_op_" + _name), _name, "NanaSQLite"))
del _name
