"""What the synchronous and the asyncio classes share: the operations themselves.

Every method is written once, here, as a generator that yields ``(wire_method, params)`` and
receives the result (or has the exception thrown in). ``NanaSQLite`` drives the generators with
blocking calls and ``AsyncNanaSQLite`` with awaited ones, so the two classes cannot drift apart;
methods with hooks, which take several round trips, are written once too. The driver adds the
``db`` handle to every request.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from typing import Any, Callable, Dict, Generator, Iterable, List, Optional, Tuple

from . import _near, _wire
from ._options import TableOptions, plain
from ._wire import MISSING_WIRE, is_missing
from .exceptions import NanaSQLiteClosedError, NanaSQLiteValidationError
from .hooks import ValidatorHook

_logger = logging.getLogger("nanad_client.core")

# The request an operation yields to have its driver run hook calls (``Operations._in_hooks``).
IN_HOOKS = "__in_hooks__"

Request = Tuple[str, Dict[str, Any]]
Op = Generator[Request, Any, Any]


# NanaSQLite's "not given" for table()'s validator/coerce/hooks is Ellipsis; so is ours.
UNSET: Any = Ellipsis
try:
    from types import EllipsisType
except ImportError:  # Python 3.9
    EllipsisType = type(Ellipsis)  # type: ignore[misc]

# open() parameters the protocol accepts besides db_path and table (PROTOCOL.md 9.2), passed
# on as given. The table-behaviour settings (v2, cache strategy) are resolved by TableOptions.
_OPEN_KWARGS = (
    "allowed_sql_functions",
    "forbidden_sql_functions",
    "max_clause_length",
    "warn_duplicate_table_instance",
    "lock_timeout",
    "cache_consistency",
)

# NanaSQLite options that mean nothing with a daemon (its threads and read pool): accepted and
# ignored, as NanaSQLite itself ignores any unknown keyword argument.
_IGNORED_KWARGS = (
    "thread_name_prefix",
    "read_pool_size",
)

_plain = plain


def build_open_params(
    db_path: Any,
    table: Any,
    bulk_load: Any,
    optimize: Any,
    cache_size_mb: Any,
    strict_sql_validation: Any,
    options: TableOptions,
    kwargs: Dict[str, Any],
    max_workers: Any = None,
) -> Dict[str, Any]:
    """The params of the wire ``open`` for a constructor call (hooks/validator excluded)."""
    import os

    params: Dict[str, Any] = {
        "db_path": os.fspath(db_path) if hasattr(db_path, "__fspath__") else db_path,
        "table": table,
        "bulk_load": bool(bulk_load) or options.memory_first,  # memory_first loads everything, as NanaSQLite
        "optimize": optimize,
        "cache_size_mb": cache_size_mb,
        "strict_sql_validation": strict_sql_validation,
    }
    if max_workers is not None:
        params["max_workers"] = max_workers
    for name in _OPEN_KWARGS:
        if name in kwargs:
            value = _plain(kwargs[name])
            if name == "max_clause_length" and value is None:
                value = 0  # NanaSQLite's None means unlimited; on the wire nil means "1000" (9.2)
            if name in ("allowed_sql_functions", "forbidden_sql_functions") and isinstance(value, (tuple, set, frozenset)):
                value = list(value)
            params[name] = value
    params.update(options.open_params())
    return params


def _seq(parameters: Any) -> Any:
    """SQL parameters as the wire's list (tuples and other iterables become lists)."""
    if parameters is None or isinstance(parameters, (list, dict, str, bytes, bytearray)):
        return parameters
    if isinstance(parameters, tuple) or hasattr(parameters, "__iter__"):
        return list(parameters)
    return parameters


def _put(params: Dict[str, Any], **optional: Any) -> Dict[str, Any]:
    for name, value in optional.items():
        if value is not None:
            params[name] = value
    return params


def _validation_message(key: Any, exc: BaseException) -> str:
    return f"Value for key '{key}' failed schema validation: {exc} / キー '{key}' の値がスキーマに違反しています: {exc}"


def _skipped_message(key: Any, exc: BaseException) -> str:
    return f"Skipped key '{key}' during partial batch update: {exc} / 部分一括更新でキー '{key}' をスキップしました: {exc}"


class Cursor:
    """What ``execute`` returns: its rows, already fetched (a cursor cannot cross the wire).

    DB-API style: ``fetchone()``, ``fetchmany(n)``, ``fetchall()``, iteration, ``description``
    (7-tuples with only the name filled), ``rowcount`` and ``lastrowid`` as the daemon reports
    them, and APSW's ``getdescription()`` (declared types are not sent, so they are ``None``).
    Rows are tuples.
    """

    arraysize = 1

    def __init__(self, result: Any) -> None:
        result = result if isinstance(result, dict) else {}
        self.columns: List[str] = list(result.get("columns") or [])
        self._rows: List[tuple] = [tuple(row) for row in (result.get("rows") or [])]
        self._position = 0
        self.rowcount: int = result.get("rowcount", -1)
        self.lastrowid: Optional[int] = result.get("lastrowid")
        self.description = (
            tuple((name, None, None, None, None, None, None) for name in self.columns) if self.columns else None
        )

    def getdescription(self) -> Tuple[Tuple[str, None], ...]:
        return tuple((name, None) for name in self.columns)

    def fetchone(self) -> Optional[tuple]:
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return row

    def fetchmany(self, size: Optional[int] = None) -> List[tuple]:
        size = self.arraysize if size is None else size
        rows = self._rows[self._position:self._position + size]
        self._position += len(rows)
        return rows

    def fetchall(self) -> List[tuple]:
        rows = self._rows[self._position:]
        self._position = len(self._rows)
        return rows

    def __iter__(self) -> "Cursor":
        return self

    def __next__(self) -> tuple:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def close(self) -> None:
        self._position = len(self._rows)

    def __repr__(self) -> str:
        return f"<nanad_client.Cursor columns={self.columns!r} rows={len(self._rows)} rowcount={self.rowcount}>"


def check_batch_size(batch_size: Any) -> None:
    """``iter_items``' argument, as NanaSQLite checks it."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise NanaSQLiteValidationError("batch_size must be a positive integer")


def resolve_child_hooks(parent_hooks: List[Any], validator: Any, coerce: Any, hooks: Any,
                        parent_validator: Any, parent_coerce: bool) -> Tuple[List[Any], Any, bool]:
    """NanaSQLite's table() rules for a child's hooks (behaviour spec section 9)."""
    if hooks is UNSET and validator is UNSET and coerce is UNSET:
        return list(parent_hooks), parent_validator, parent_coerce
    new_validator = parent_validator if validator is UNSET else validator
    new_coerce = parent_coerce if coerce is UNSET else bool(coerce)
    if hooks is UNSET:
        base = [h for h in parent_hooks if not getattr(h, "_is_validkit_hook", False)]
    else:
        base = list(hooks or [])
    if new_validator is not None:
        base.append(ValidatorHook(new_validator, new_coerce))
    return base, new_validator, new_coerce


class Operations:
    """The operations, as generators (see module doc). Subclasses provide the drivers."""

    _hooks: List[Any]
    _table: str
    _db_path: Any
    _options: TableOptions
    # A table() child's cache settings for the wire's `table`, when they differ from its root's.
    _table_params: Dict[str, Any] = {}

    # ---------------------------------------------------------------- hooks

    def _init_hooks(self, hooks: Optional[Iterable[Any]], validator: Any, coerce: Any) -> None:
        self._validator = validator
        self._coerce = bool(coerce)
        self._hooks = list(hooks or [])
        if validator is not None:
            self._hooks.append(ValidatorHook(validator, coerce))
        self._refresh_hook_flags()

    def _refresh_hook_flags(self) -> None:
        hooks = self._hooks
        self._h_write = any(hasattr(h, "before_write") for h in hooks)
        self._h_read = any(hasattr(h, "after_read") for h in hooks)
        self._h_delete = any(hasattr(h, "before_delete") for h in hooks)
        self._h_write_success = any(hasattr(h, "on_write_success") for h in hooks)
        self._h_delete_success = any(hasattr(h, "on_delete_success") for h in hooks)
        self._h_batch_validate = any(hasattr(h, "validate_batch_write") for h in hooks)
        self._refresh_near_fast()

    def _refresh_near_fast(self) -> None:
        # The near-cache the hit fast path may use: none when hooks transform reads.
        near = getattr(self, "_near", None)
        self._near_fast = near.fast if near is not None and not self._h_read else None

    def _hook_db(self) -> Any:
        """The ``db`` a hook is called with: this instance (AsyncNanaSQLite: a sync one)."""
        return self

    def _before_write(self, key: str, value: Any) -> Any:
        for hook in self._hooks:
            fn = getattr(hook, "before_write", None)
            if fn is not None:
                value = fn(self._hook_db(), key, value)
        return value

    def _validate_batch(self, mapping: Dict[str, Any]) -> None:
        # NanaSQLite 1.6.2's optional cross-item check of a whole batch.
        for hook in self._hooks:
            fn = getattr(hook, "validate_batch_write", None)
            if fn is not None:
                fn(self._hook_db(), mapping)

    def _after_read(self, key: str, value: Any) -> Any:
        for hook in self._hooks:
            fn = getattr(hook, "after_read", None)
            if fn is not None:
                value = fn(self._hook_db(), key, value)
        return value

    def _before_delete(self, key: str) -> None:
        for hook in self._hooks:
            fn = getattr(hook, "before_delete", None)
            if fn is not None:
                fn(self._hook_db(), key)

    def _on_write_success(self, key: str, value: Any, old: Any) -> None:
        for hook in self._hooks:
            fn = getattr(hook, "on_write_success", None)
            if fn is not None:
                fn(self._hook_db(), key, value, old)

    def _on_delete_success(self, key: str, old: Any) -> None:
        for hook in self._hooks:
            fn = getattr(hook, "on_delete_success", None)
            if fn is not None:
                fn(self._hook_db(), key, old)

    def _in_hooks(self, fn: Callable[..., Any], *args: Any) -> Op:
        """Runs ``fn(*args)``, the hook calls of one step, where the driver runs hooks: inline
        in ``NanaSQLite``, on a worker thread in ``AsyncNanaSQLite`` (``IN_HOOKS``). The rest of
        an operation runs on the event loop, so a call pays a thread hand-off only where a hook
        of the instance runs (NanaSQLite pays one per call)."""
        return (yield (IN_HOOKS, (fn, args)))

    def _before_write_all(self, items: Dict[str, Any]) -> Dict[str, Any]:
        return {k: self._before_write(k, v) for k, v in items.items()}

    def _after_read_all(self, found: Dict[str, Any]) -> Dict[str, Any]:
        return {k: self._after_read(k, v) for k, v in found.items()}

    def _on_write_success_all(self, items: Dict[str, Any], old: Dict[str, Any], skip: Any = ()) -> None:
        for k, v in items.items():
            if k not in skip:
                self._on_write_success(k, v, old.get(k))

    def _before_delete_all(self, keys: Iterable[str]) -> None:
        for k in keys:
            self._before_delete(k)

    def _on_delete_success_all(self, existing: Dict[str, Any]) -> None:
        for k, v in existing.items():
            self._on_delete_success(k, v)

    # ---------------------------------------------------------------- near-cache

    def _init_near(self, kwargs: Dict[str, Any]) -> None:
        """Takes the near-cache's constructor options (not NanaSQLite's: ``near_cache=True``,
        ``near_cache_size`` entries, ``near_cache_bytes``) out of ``kwargs``."""
        # cache_consistency="auto" asks the daemon to look for writes made around it before
        # every call: a near-cache hit would not ask, so that instance keeps none.
        enabled = kwargs.pop("near_cache", True) and kwargs.get("cache_consistency", "manual") != "auto"
        size = kwargs.pop("near_cache_size", _near.DEFAULT_ENTRIES)
        limit = kwargs.pop("near_cache_bytes", _near.DEFAULT_BYTES)
        for name, number in (("near_cache_size", size), ("near_cache_bytes", limit)):
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {number!r}")
        self._tracking = bool(enabled) and size > 0 and limit > 0
        self._near_limits = (size, limit)
        self._near: Optional[_near.NearCache] = None
        self._near_fast: Optional[Any] = None  # its near-cache's hit (_near.HitIndex)

    def _inherit_near(self, parent: Any) -> None:
        self._tracking = parent._tracking
        self._near_limits = parent._near_limits
        self._near = None
        self._near_fast = None

    def _adopt_reply(self, reply: Dict[str, Any]) -> None:
        """After an ``open`` or ``table`` reply: this handle's near-cache (a new one each time),
        and NanaSQLite's warning when the encrypted table holds plaintext values it will read
        as legacy ones (``allow_legacy_plaintext=True``; NanaSQLite warns at each such read)."""
        self._near = _near.make(reply, self._conn, *self._near_limits) if self._tracking else None
        self._refresh_near_fast()
        if reply.get("legacy_plaintext"):
            _logger.warning(
                "AEAD encryption is enabled but received non-bytes data; treating it as an explicitly allowed "
                "unencrypted legacy value (table %r holds plaintext values, read as allowed by "
                "allow_legacy_plaintext=True)", self._table)

    def near_cache_stats(self) -> Optional[Dict[str, int]]:
        """This handle's near-cache counters (hits, misses, invalidations, entries, bytes), or
        None when it has none (turned off, or the daemon offered no board)."""
        return self._near.statistics() if self._near is not None else None

    def _closed_error(self) -> NanaSQLiteClosedError:
        if getattr(self, "_closed", False):
            return NanaSQLiteClosedError(f"Database connection is closed (table: '{self._table}').")
        return NanaSQLiteClosedError(
            f"Parent database connection is closed (table: '{self._table}'). If you obtained this "
            "instance via .table(), ensure the primary instance remains open during usage."
        )

    # ---------------------------------------------------------------- dict interface

    def _op_getitem(self, key: str) -> Op:
        value = yield ("get", {"key": key, "default": MISSING_WIRE})
        if is_missing(value):
            raise KeyError(key)
        if self._h_read:
            value = yield from self._in_hooks(self._after_read, key, value)
        return value

    def _op_get(self, key: str, default: Any = None) -> Op:
        if default is None and not self._h_read:
            return (yield ("get", {"key": key}))
        value = yield ("get", {"key": key, "default": MISSING_WIRE})
        if is_missing(value):
            return default  # the caller's own object, as NanaSQLite returns it
        if self._h_read:
            value = yield from self._in_hooks(self._after_read, key, value)
        return value

    def _op_set(self, key: str, value: Any) -> Op:
        if not self._hooks:
            yield ("set", {"key": key, "value": value})
            return None
        old = None
        if self._h_write_success:
            old = yield ("get", {"key": key})
        if self._h_write:
            value = yield from self._in_hooks(self._before_write, key, value)
        yield ("set", {"key": key, "value": value})
        if self._h_write_success:
            yield from self._in_hooks(self._on_write_success, key, value, old)
        return None

    def _op_delete(self, key: str) -> Op:
        if not (self._h_delete or self._h_delete_success):
            yield ("delete", {"key": key})
            return None
        if self._h_delete:
            exists = yield ("contains", {"key": key})
            if not exists:
                raise KeyError(key)
            yield from self._in_hooks(self._before_delete, key)
        old = yield ("pop", {"key": key})  # atomic; KeyError if it vanished meanwhile
        if self._h_delete_success:
            yield from self._in_hooks(self._on_delete_success, key, old)
        return None

    def _op_contains(self, key: str) -> Op:
        return (yield ("contains", {"key": key}))

    def _op_len(self) -> Op:
        return (yield ("len", {}))

    def _op_keys(self) -> Op:
        return (yield ("keys", {}))

    def _op_values(self) -> Op:
        return (yield ("values", {}))

    def _op_items(self) -> Op:
        pairs = yield ("items", {})
        return [(pair[0], pair[1]) for pair in pairs]

    def _op_pop(self, key: str, *args: Any) -> Op:
        has_default = len(args) > 0
        default = args[0] if has_default else None
        if self._h_delete:
            exists = yield ("contains", {"key": key})
            if not exists:
                if has_default:
                    return default
                raise KeyError(key)
            yield from self._in_hooks(self._before_delete, key)
        params: Dict[str, Any] = {"key": key}
        if has_default:
            params["default"] = MISSING_WIRE
        value = yield ("pop", params)
        if has_default and is_missing(value):
            return default
        if self._h_delete_success:
            yield from self._in_hooks(self._on_delete_success, key, value)
        if self._h_read:
            value = yield from self._in_hooks(self._after_read, key, value)
        return value

    def _op_update(self, mapping: Any = None, **kwargs: Any) -> Op:
        items: Dict[str, Any] = {}
        if mapping:
            if hasattr(mapping, "keys"):
                for k in mapping.keys():
                    items[k] = mapping[k]
            else:  # an iterable of (key, value) pairs, as dict.update takes
                for k, v in mapping:
                    items[k] = v
        items.update(kwargs)
        if not items:
            return None
        if self._h_write:
            items = yield from self._in_hooks(self._before_write_all, items)
        old: Dict[str, Any] = {}
        if self._h_write_success:
            old = yield ("batch_get", {"keys": list(items)})
        yield ("update", {"mapping": items})
        if self._h_write_success:
            yield from self._in_hooks(self._on_write_success_all, items, old)
        return None

    def _op_setdefault(self, key: str, default: Any = None) -> Op:
        if not self._hooks:
            return (yield ("setdefault", {"key": key, "default": default}))
        value = yield ("get", {"key": key, "default": MISSING_WIRE})
        if not is_missing(value):
            if self._h_read:
                value = yield from self._in_hooks(self._after_read, key, value)
            return value
        if self._h_write:
            default = yield from self._in_hooks(self._before_write, key, default)
        stored = yield ("setdefault", {"key": key, "default": default})
        if self._h_write_success:
            yield from self._in_hooks(self._on_write_success, key, stored, None)
        if self._h_read:
            stored = yield from self._in_hooks(self._after_read, key, stored)
        return stored

    def _op_clear(self) -> Op:
        yield ("clear", {})

    def _op_to_dict(self) -> Op:
        return (yield ("to_dict", {}))

    def _op_copy(self) -> Op:
        return (yield ("copy", {}))

    # ---------------------------------------------------------------- batches

    def _op_batch_get(self, keys: List[str]) -> Op:
        keys = list(keys)
        if not keys:
            return {}
        found = yield ("batch_get", {"keys": keys})
        if self._h_read:
            found = yield from self._in_hooks(self._after_read_all, found)
        return found

    def _op_items_page(self, after: Optional[str], batch_size: int) -> Op:
        """One page of ``iter_items``: the next ``batch_size`` keys after ``after`` in key
        order, read from the file (the daemon flushes staged writes first), then their values
        through ``batch_get``, decrypted by the daemon and passed through the ``after_read``
        hooks. A key deleted between the two reads is left out."""
        table = self._table  # an identifier: nanad refused any other name at open
        if after is None:
            rows = yield ("fetch_all", {"sql": f'SELECT key FROM "{table}" ORDER BY key LIMIT ?',
                                        "parameters": [batch_size]})
        else:
            rows = yield ("fetch_all", {"sql": f'SELECT key FROM "{table}" WHERE key > ? ORDER BY key LIMIT ?',
                                        "parameters": [after, batch_size]})
        keys = [row[0] for row in rows]
        if not keys:
            return [], None
        found = yield ("batch_get", {"keys": keys})
        if self._h_read:
            found = yield from self._in_hooks(self._after_read_all, found)
        return [(k, found[k]) for k in keys if k in found], keys[-1] if len(keys) == batch_size else None

    def _op_batch_update(self, mapping: Dict[str, Any]) -> Op:
        if not mapping:
            return None
        items = dict(mapping)
        if not self._hooks:
            yield ("batch_update", {"mapping": items})
            return None
        # NanaSQLite 1.6.2: old values, before_write per value, validate_batch_write(db, mapping)
        # on the whole batch, one atomic write, then on_write_success per key.
        old: Dict[str, Any] = {}
        if self._h_write_success:
            old = yield ("batch_get", {"keys": list(items)})
        if self._h_write:
            items = yield from self._in_hooks(self._before_write_all, items)
        if self._h_batch_validate:
            yield from self._in_hooks(self._validate_batch, items)
        yield ("batch_update", {"mapping": items})
        if self._h_write_success:
            yield from self._in_hooks(self._on_write_success_all, items, old)
        return None

    def _op_batch_update_partial(self, mapping: Dict[str, Any]) -> Op:
        if not mapping:
            return {}
        if self._hooks:
            refused, accepted = yield from self._in_hooks(self._partial_accept, mapping)
        else:
            refused, accepted = self._partial_accept(mapping)
        if accepted:
            old: Dict[str, Any] = {}
            if self._h_write_success:
                old = yield ("batch_get", {"keys": list(accepted)})
            refused_by_daemon = yield ("batch_update_partial", {"mapping": accepted})
            refused.update(refused_by_daemon)
            if self._h_write_success:
                yield from self._in_hooks(self._on_write_success_all, accepted, old, refused_by_daemon)
        return {k: refused[k] for k in mapping if k in refused}

    def _partial_accept(self, mapping: Dict[str, Any]) -> Tuple[Dict[str, str], Dict[str, Any]]:
        """``batch_update_partial``'s per-key part: the hooks' verdicts and the encoding check."""
        refused: Dict[str, str] = {}
        accepted: Dict[str, Any] = {}
        for k, v in mapping.items():
            if self._h_write:
                try:
                    v = self._before_write(k, v)
                except Exception as exc:
                    refused[k] = _validation_message(k, exc)
                    continue
            try:  # what would cost the connection is refused here, per key
                if not isinstance(k, str):
                    raise TypeError(f"Dict key must be str, not {type(k).__name__}")
                _wire.encode_request(0, "set", {"value": v})  # packs it: an object msgpack cannot is refused
            except Exception as exc:
                refused[k] = _skipped_message(k, exc)
                continue
            if self._h_batch_validate:
                try:
                    self._validate_batch({**accepted, k: v})
                except Exception as exc:
                    refused[k] = _validation_message(k, exc)
                    continue
            accepted[k] = v
        return refused, accepted

    def _op_batch_delete(self, keys: List[str]) -> Op:
        keys = list(keys)
        if not keys:
            return None
        if not (self._h_delete or self._h_delete_success):
            yield ("batch_delete", {"keys": keys})
            return None
        # NanaSQLite 1.6.2: before_delete for the keys that exist, one atomic delete, then
        # on_delete_success for those keys with their old values.
        existing = yield ("batch_get", {"keys": keys})
        if self._h_delete:
            yield from self._in_hooks(self._before_delete_all, list(existing))
        yield ("batch_delete", {"keys": keys})
        if self._h_delete_success:
            yield from self._in_hooks(self._on_delete_success_all, existing)
        return None

    # ---------------------------------------------------------------- cache control

    def _op_load_all(self) -> Op:
        yield ("load_all", {})

    def _op_refresh(self, key: Optional[str] = None) -> Op:
        yield ("refresh", _put({}, key=key))

    def _op_is_cached(self, key: str) -> Op:
        return (yield ("is_cached", {"key": key}))

    def _op_get_fresh(self, key: str, default: Any = None) -> Op:
        value = yield ("get_fresh", {"key": key, "default": MISSING_WIRE})
        if is_missing(value):
            return default
        if self._h_read:
            value = yield from self._in_hooks(self._after_read, key, value)
        return value

    def _op_clear_cache(self) -> Op:
        yield ("clear_cache", {})

    # ---------------------------------------------------------------- atomic updates

    def _op_increment(self, key: str, amount: Any = 1, *, field: Optional[str] = None, default: Any = None) -> Op:
        params = _put({"key": key, "amount": amount}, field=field, default=default)
        if not (self._h_write or self._h_write_success):
            return (yield ("increment", params))
        return (yield from self._hooked_atomic("increment", key, params))

    def _op_patch(self, key: str, changes: Dict[str, Any], *, create: bool = False) -> Op:
        params = {"key": key, "changes": changes, "create": create}
        if not (self._h_write or self._h_write_success):
            return (yield ("patch", params))
        return (yield from self._hooked_atomic("patch", key, params))

    def _hooked_atomic(self, method: str, key: str, params: Dict[str, Any]) -> Op:
        # The daemon computes the new value atomically; before_write hooks then see it inside a
        # transaction (this session's own, unless one is already open), so no other client can
        # write between the daemon's update and the hook's verdict, as in NanaSQLite.
        own = not (yield ("in_transaction", {}))
        if own:
            yield ("begin_transaction", {})
        try:
            old = None
            if self._h_write_success:
                old = yield ("get_fresh", {"key": key})
            value = yield (method, params)
            if self._h_write:
                hooked = yield from self._in_hooks(self._before_write, key, value)
                if hooked is not value:
                    yield ("set", {"key": key, "value": hooked})
                value = hooked
        except Exception:
            if own:
                try:
                    yield ("rollback", {})
                except Exception:
                    pass
            raise
        if own:
            yield ("commit", {})
        if self._h_write_success:
            yield from self._in_hooks(self._on_write_success, key, value, old)
        return value

    # ---------------------------------------------------------------- v2 mode (write-behind)

    # The daemon's write-behind engine belongs to the table and is shared by every session
    # using it (a NanaSQLite engine belongs to one connection and its children). An instance
    # opened without v2 mode answers here as NanaSQLite does in v1 mode, without asking the
    # daemon: the table is write-through while it is open (settings are fixed while in use).
    # Dead letters left from an earlier v2 period are seen by opening it in v2 mode again, or
    # with `nanactl dlq`.

    def _op_flush(self, wait: bool = False) -> Op:
        """Asks the daemon to flush this table's staged writes; with ``wait=True`` returns once
        everything staged before the call is committed to the file."""
        if self._options.v2_mode:
            yield ("flush", {"wait": bool(wait)})
        return None

    def _op_get_dlq(self) -> Op:
        """The table's dead letters in NanaSQLite's shape: ``{"error", "item", "timestamp"}`` with
        ``item == (('"<table>"', key), {"action": "set", "value": <JSON text>})`` or
        ``{"action": "delete"}``, oldest first."""
        if not self._options.v2_mode:
            return []
        entries = yield ("get_dlq", {})
        return [self._dlq_entry(entry) for entry in entries or []]

    def _dlq_entry(self, entry: Any) -> Dict[str, Any]:
        if not isinstance(entry, dict):
            return {"error": str(entry), "item": None, "timestamp": None}
        item = entry.get("item")
        if isinstance(item, dict) and "key" in item:
            op: Dict[str, Any] = {"action": item.get("action")}
            if "value" in item:
                # NanaSQLite keeps the serialized row value; so does this, as json.dumps writes it.
                op["value"] = json.dumps(item["value"], ensure_ascii=False)
            item = ((f'"{self._table}"', item["key"]), op)
        return {"error": entry.get("error"), "item": item, "timestamp": entry.get("timestamp")}

    def _op_retry_dlq(self) -> Op:
        """Stages the dead letters again (returns ``None`` like NanaSQLite; they are written by
        the next flush the table's flush mode makes, or by ``flush()``)."""
        if self._options.v2_mode:
            yield ("retry_dlq", {})
        return None

    def _op_clear_dlq(self) -> Op:
        if self._options.v2_mode:
            yield ("clear_dlq", {})
        return None

    def _op_get_dlq_summary(self) -> Op:
        """NanaSQLite 1.6.2's payload-free view of the dead letters."""
        if not self._options.v2_mode:
            return []
        entries = yield ("get_dlq", {})
        return [{"error": "write_failed", "timestamp": e.get("timestamp")} for e in entries or [] if isinstance(e, dict)]

    def _op_get_status(self) -> Op:
        """NanaSQLite's status snapshot. In v2 mode it comes from the daemon's statistics of
        this table (``stats``: staged and flushing keys, the oldest staged write's age, the
        last successful flush) and its dead-letter queue; nanad queues no SQL, so
        ``pending_sql_count`` is 0."""
        if not self._options.v2_mode:
            return {
                "mode": "immediate",
                "oldest_pending_age_seconds": None,
                "pending_kvs_count": 0,
                "flushing_kvs_count": 0,
                "pending_sql_count": 0,
                "flush_active": False,
                "failed_count": 0,
                "failure_count": 0,
                "dropped_failure_count": 0,
                "last_failure_time": None,
                "last_successful_flush_time": None,
            }
        entries = yield ("get_dlq", {})
        stats = yield ("stats", {})
        entry: Dict[str, Any] = {}
        table = self._table.strip('"')
        for database in (stats or {}).get("databases") or []:
            path = str(database.get("path", ""))
            if not (path == self._db_path or path.endswith("/" + str(self._db_path).lstrip("./"))):
                continue
            for t in database.get("tables") or []:
                if t.get("name") == table:
                    entry = t
        times = [e.get("timestamp") for e in entries or [] if isinstance(e, dict)]
        return {
            "mode": "write_back",
            "oldest_pending_age_seconds": entry.get("v2_oldest_pending_age_s"),
            "pending_kvs_count": int(entry.get("v2_pending", entry.get("v2_staged")) or 0),
            "flushing_kvs_count": int(entry.get("v2_flushing") or 0),
            "pending_sql_count": 0,
            "flush_active": bool(entry.get("v2_flush_active")),
            "failed_count": len(times),
            "failure_count": len(times),
            "dropped_failure_count": 0,
            "last_failure_time": max(times) if times else None,
            "last_successful_flush_time": entry.get("v2_last_successful_flush"),
        }

    def _op_get_v2_metrics(self) -> Op:
        """The table's write-behind metrics with NanaSQLite's names (``flush_count``,
        ``kvs_items_flushed``, ``strict_tasks_executed``, ``dlq_errors``, ``last_flush_time``,
        ``total_flush_time_ms``, ``current_staging_count``, ``current_strict_queue_size``);
        ``{}`` unless the table is in v2 mode with ``v2_enable_metrics``."""
        if not self._options.v2_mode:
            return {}
        return (yield ("get_v2_metrics", {}))

    # ---------------------------------------------------------------- constraints (nanad only)

    def _op_add_constraint(self, constraint: Dict[str, Any]) -> Op:
        """Declares a constraint the daemon enforces on every write to this table, from every
        process (not in NanaSQLite; docs/API.md). ``constraint`` is a dict: ``{"type":
        "unique", "field": f}``, ``{"type": "foreign_key", "field": f, "table": t}``, ``{"type":
        "check", "field": f, "op": "<", "value": v}`` or ``{"type": "required", "fields": [...]}``,
        each with optional ``key_prefix`` and ``message``. A violation is a
        NanaSQLiteValidationError. Returns whether it was added (False: already declared)."""
        return (yield ("add_constraint", {"constraint": dict(constraint)}))

    def _op_drop_constraint(self, constraint: Dict[str, Any]) -> Op:
        """Removes a declared constraint; returns whether it was declared."""
        return (yield ("drop_constraint", {"constraint": dict(constraint)}))

    def _op_list_constraints(self) -> Op:
        """The constraints declared on this table, as dicts."""
        return (yield ("list_constraints", {}))

    # ---------------------------------------------------------------- transactions

    def _op_begin_transaction(self) -> Op:
        yield ("begin_transaction", {})

    def _op_commit(self) -> Op:
        yield ("commit", {})

    def _op_rollback(self) -> Op:
        try:
            yield ("rollback", {})
        finally:
            # A hook's index (UniqueHook(use_index=True)) saw the rolled-back writes: rebuilt
            # at the next write, as NanaSQLite does.
            self._invalidate_hook_indexes()

    def _invalidate_hook_indexes(self) -> None:
        for hook in self._hooks:
            invalidate = getattr(hook, "invalidate_index", None)
            if callable(invalidate):
                invalidate()

    def _op_get_db_size(self) -> Op:
        """The main database file's size in bytes (the daemon stats it: the file is its own)."""
        return (yield ("get_db_size", {}))

    def _op_in_transaction(self) -> Op:
        return (yield ("in_transaction", {}))

    # ---------------------------------------------------------------- direct SQL

    def _op_execute(self, sql: str, parameters: Any = None) -> Op:
        result = yield ("execute", _put({"sql": sql}, parameters=_seq(parameters)))
        return Cursor(result)

    def _op_execute_many(self, sql: str, parameters_list: Any) -> Op:
        rows = [_seq(p) for p in parameters_list] if not isinstance(parameters_list, (str, dict)) else parameters_list
        yield ("execute_many", {"sql": sql, "parameters_list": rows})

    def _op_fetch_one(self, sql: str, parameters: Any = None) -> Op:
        row = yield ("fetch_one", _put({"sql": sql}, parameters=_seq(parameters)))
        return None if row is None else tuple(row)

    def _op_fetch_all(self, sql: str, parameters: Any = None) -> Op:
        rows = yield ("fetch_all", _put({"sql": sql}, parameters=_seq(parameters)))
        return [tuple(row) for row in rows]

    # ---------------------------------------------------------------- SQL helpers

    def _op_sql_insert(self, table_name: str, data: Dict[str, Any]) -> Op:
        return (yield ("sql_insert", {"table_name": table_name, "data": data}))

    def _op_sql_update(self, table_name: str, data: Dict[str, Any], where: str, parameters: Any = None) -> Op:
        params = {"table_name": table_name, "data": data, "where": where}
        return (yield ("sql_update", _put(params, parameters=_seq(parameters))))

    def _op_sql_delete(self, table_name: str, where: str, parameters: Any = None) -> Op:
        params = {"table_name": table_name, "where": where}
        return (yield ("sql_delete", _put(params, parameters=_seq(parameters))))

    def _op_upsert(self, table_name: Any = None, data: Any = None, conflict_columns: Optional[List[str]] = None) -> Op:
        if isinstance(table_name, str) and data is not None and not isinstance(data, dict) and self._hooks:
            # NanaSQLite's upsert(key, value): a plain set, hooks included (PROTOCOL.md 9.6c).
            yield from self._op_set(table_name, data)
            return None
        conflict = list(conflict_columns) if isinstance(conflict_columns, tuple) else conflict_columns
        return (yield ("upsert", _put({}, table_name=table_name, data=data, conflict_columns=conflict)))

    def _op_upsert_kw(self, table_name: Any = None, data: Any = None, *,
                      conflict_columns: Optional[List[str]] = None) -> Op:
        return (yield from self._op_upsert(table_name, data, conflict_columns))

    def _query_params(self, table_name: Any, columns: Any, where: Any, parameters: Any, order_by: Any,
                      limit: Any, strict_sql_validation: Any, allowed_sql_functions: Any,
                      forbidden_sql_functions: Any, override_allowed: Any) -> Dict[str, Any]:
        params = _put(
            {},
            table_name=table_name,
            columns=list(columns) if isinstance(columns, tuple) else columns,
            where=where,
            parameters=_seq(parameters),
            order_by=order_by,
            limit=limit,
            strict_sql_validation=strict_sql_validation,
            allowed_sql_functions=_seq(allowed_sql_functions),
            forbidden_sql_functions=_seq(forbidden_sql_functions),
        )
        if override_allowed:
            params["override_allowed"] = bool(override_allowed)
        return params

    def _op_query(self, table_name: Optional[str] = None, columns: Optional[List[str]] = None,
                  where: Optional[str] = None, parameters: Any = None, order_by: Optional[str] = None,
                  limit: Optional[int] = None, strict_sql_validation: Optional[bool] = None,
                  allowed_sql_functions: Optional[List[str]] = None,
                  forbidden_sql_functions: Optional[List[str]] = None, override_allowed: bool = False) -> Op:
        params = self._query_params(table_name, columns, where, parameters, order_by, limit, strict_sql_validation,
                                    allowed_sql_functions, forbidden_sql_functions, override_allowed)
        return (yield ("query", params))

    def _op_query_with_pagination(self, table_name: Optional[str] = None, columns: Optional[List[str]] = None,
                                  where: Optional[str] = None, parameters: Any = None,
                                  order_by: Optional[str] = None, limit: Optional[int] = None,
                                  offset: Optional[int] = None, group_by: Optional[str] = None,
                                  strict_sql_validation: Optional[bool] = None,
                                  allowed_sql_functions: Optional[List[str]] = None,
                                  forbidden_sql_functions: Optional[List[str]] = None,
                                  override_allowed: bool = False) -> Op:
        params = self._query_params(table_name, columns, where, parameters, order_by, limit, strict_sql_validation,
                                    allowed_sql_functions, forbidden_sql_functions, override_allowed)
        _put(params, offset=offset, group_by=group_by)
        return (yield ("query_with_pagination", params))

    def _op_count(self, table_name: Optional[str] = None, where: Optional[str] = None, parameters: Any = None,
                  strict_sql_validation: Optional[bool] = None, allowed_sql_functions: Optional[List[str]] = None,
                  forbidden_sql_functions: Optional[List[str]] = None, override_allowed: bool = False) -> Op:
        params = _put(
            {},
            table_name=table_name,
            where=where,
            parameters=_seq(parameters),
            strict_sql_validation=strict_sql_validation,
            allowed_sql_functions=_seq(allowed_sql_functions),
            forbidden_sql_functions=_seq(forbidden_sql_functions),
        )
        if override_allowed:
            params["override_allowed"] = bool(override_allowed)
        return (yield ("count", params))

    def _op_exists(self, table_name: str, where: str, parameters: Any = None) -> Op:
        params = {"table_name": table_name, "where": where}
        return (yield ("exists", _put(params, parameters=_seq(parameters))))

    def _op_get_by_path(self, key: str, path: str) -> Op:
        """``json_extract`` of one stored value, read from SQLite (NanaSQLite's get_by_path,
        quirk included: a string result that is valid JSON comes back decoded)."""
        if not path.startswith("$"):
            path = f"$.{path.lstrip('.')}"
        table = self._table.strip('"')
        row = yield ("fetch_one", {"sql": f'SELECT json_extract(value, ?) FROM "{table}" WHERE key = ?',
                                   "parameters": [path, key]})
        if not row or row[0] is None:
            return None
        value = row[0]
        if isinstance(value, (int, float, bool)):
            return value
        try:
            return json.loads(value)
        except (ValueError, TypeError):
            return value

    def _op_export_table_to_dict(self, table_name: str) -> Op:
        return (yield ("query", {"table_name": table_name}))

    def _op_import_from_dict_list(self, table_name: str, data_list: List[Dict[str, Any]]) -> Op:
        # One sql_insert per row, all in one transaction of this session unless one is open
        # (NanaSQLite inserts them with executemany in one transaction).
        if not data_list:
            return 0
        own = not (yield ("in_transaction", {}))
        if own:
            yield ("begin_transaction", {})
        try:
            for row in data_list:
                yield ("sql_insert", {"table_name": table_name, "data": row})
        except Exception:
            if own:
                try:
                    yield ("rollback", {})
                except Exception:
                    pass
            raise
        if own:
            yield ("commit", {})
        return len(data_list)

    # ---------------------------------------------------------------- schema

    def _op_create_table(self, table_name: str, columns: Dict[str, str], if_not_exists: bool = True,
                         primary_key: Optional[str] = None) -> Op:
        if isinstance(columns, dict):
            for name, column_type in columns.items():
                if not isinstance(column_type, str):  # NanaSQLite's check and message
                    raise NanaSQLiteValidationError(
                        f"Column type for '{name}' must be a string, not {type(column_type).__name__}"
                    )
        params = {"table_name": table_name, "columns": columns, "if_not_exists": if_not_exists}
        yield ("create_table", _put(params, primary_key=primary_key))

    def _op_create_index(self, index_name: str, table_name: str, columns: List[str], unique: bool = False,
                         if_not_exists: bool = True) -> Op:
        yield ("create_index", {"index_name": index_name, "table_name": table_name, "columns": _seq(columns),
                                "unique": unique, "if_not_exists": if_not_exists})

    def _op_drop_table(self, table_name: str, if_exists: bool = True) -> Op:
        yield ("drop_table", {"table_name": table_name, "if_exists": if_exists})

    def _op_drop_index(self, index_name: str, if_exists: bool = True) -> Op:
        yield ("drop_index", {"index_name": index_name, "if_exists": if_exists})

    def _op_alter_table_add_column(self, table_name: str, column_name: str, column_type: str, default: Any = None) -> Op:
        if default is not None and not isinstance(default, (str, int, float)):
            # Only a literal can travel and become SQL; NanaSQLite refuses the rest (its message).
            raise NanaSQLiteValidationError(
                "default must be a string, bool, int, or finite float; "
                f"arbitrary {type(default).__name__} objects are not accepted"
            )
        params = {"table_name": table_name, "column_name": column_name, "column_type": column_type}
        yield ("alter_table_add_column", _put(params, default=default))

    def _op_table_exists(self, table_name: str) -> Op:
        return (yield ("table_exists", {"table_name": table_name}))

    def _op_list_tables(self) -> Op:
        return (yield ("list_tables", {}))

    def _op_get_table_schema(self, table_name: Optional[str] = None) -> Op:
        return (yield ("get_table_schema", _put({}, table_name=table_name)))

    def _op_list_indexes(self, table_name: Optional[str] = None) -> Op:
        return (yield ("list_indexes", _put({}, table_name=table_name)))

    # ---------------------------------------------------------------- utilities

    def _op_vacuum(self) -> Op:
        yield ("vacuum", {})

    def _op_pragma(self, pragma_name: str, value: Any = None) -> Op:
        return (yield ("pragma", _put({"pragma_name": pragma_name}, value=value)))

    def _op_backup(self, dest_path: str, *, verify: bool = True, flush: bool = True,
                   allow_incomplete: bool = False) -> Op:
        yield ("backup", {"dest_path": dest_path, "verify": verify, "flush": flush,
                          "allow_incomplete": allow_incomplete})

    def _op_abackup(self, target_path: str, *, verify: bool = True, flush: bool = True,
                    allow_incomplete: bool = False) -> Op:
        yield from self._op_backup(target_path, verify=verify, flush=flush, allow_incomplete=allow_incomplete)

    def _op_restore(self, src_path: str) -> Op:
        yield ("restore", {"src_path": src_path})

    def _op_arestore(self, source_path: str) -> Op:
        yield ("restore", {"src_path": source_path})

    def _op_stats(self) -> Op:
        """nanad's counters for this database's file (not in NanaSQLite; PROTOCOL.md 9.7)."""
        return (yield ("stats", {}))

    # ---------------------------------------------------------------- Pydantic models

    def _op_set_model(self, key: str, model: Any) -> Op:
        try:
            if not hasattr(model, "model_dump"):
                raise TypeError(f"Object of type {type(model)} is not a Pydantic model")
            data = {
                "__pydantic_model__": f"{model.__class__.__module__}.{model.__class__.__qualname__}",
                "__pydantic_data__": model.model_dump(),
            }
            yield from self._op_set(key, data)
        except Exception as exc:
            raise TypeError(f"Failed to serialize Pydantic model: {exc}") from exc

    def _op_get_model(self, key: str, model_class: Optional[type] = None) -> Op:
        data = yield from self._op_getitem(key)
        if isinstance(data, dict) and "__pydantic_model__" in data and "__pydantic_data__" in data:
            if model_class is None:
                raise ValueError("model_class must be provided for get_model()")
            try:
                return model_class(**data["__pydantic_data__"])
            except Exception as exc:
                raise ValueError(f"Failed to deserialize Pydantic model: {exc}") from exc
        if model_class is not None:
            try:
                return model_class(**data)
            except Exception as exc:
                raise ValueError(f"Failed to create Pydantic model from data: {exc}") from exc
        raise ValueError("Data is not a Pydantic model and no model_class provided")


def _present(method: Any, op: Callable[..., Op], name: str, owner: str) -> Any:
    # The operation's parameters, without its generator return annotation.
    method.__name__ = name
    method.__qualname__ = f"{owner}.{name}"
    method.__signature__ = inspect.signature(op).replace(return_annotation=inspect.Signature.empty)
    method.__annotations__ = {k: v for k, v in getattr(op, "__annotations__", {}).items() if k != "return"}
    del method.__wrapped__
    return method


def sync_method(op: Callable[..., Op], name: str, owner: str) -> Callable[..., Any]:
    @functools.wraps(op)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._run(op(self, *args, **kwargs))

    return _present(method, op, name, owner)


def async_method(op: Callable[..., Op], name: str, owner: str) -> Callable[..., Any]:
    @functools.wraps(op)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await self._arun(op(self, *args, **kwargs))

    return _present(method, op, name, owner)
