"""Client-side hooks and validation, as NanaSQLite runs them: in the calling process.

A hook is any object with some of these methods (NanaSQLite's ``NanaHook`` protocol; ``db`` is
the instance the call was made on, first, as in NanaSQLite):

- ``before_write(db, key, value) -> value``: may transform the value, or raise to refuse it;
- ``after_read(db, key, value) -> value``: transforms a value read by key;
- ``before_delete(db, key)``: raise to refuse a deletion;
- ``on_write_success(db, key, value, old_value)`` and ``on_delete_success(db, key, old_value)``;
- ``validate_batch_write(db, mapping)`` (NanaSQLite 1.6.2): a cross-item check of a whole batch
  (``batch_update``, and each growing candidate set of ``batch_update_partial``).

Hooks run in the order given (``hooks=[...]``, then ``add_hook``), and a validator given as
``validator=`` runs after them, as NanaSQLite appends its ``ValidkitHook``. Where each method
is called follows NanaSQLite 1.6 (see the README). A missing method is skipped, so a hook may
implement only the ones it needs. Hook objects from the ``nanasqlite`` package (``CheckHook``,
``UniqueHook``, ...) are duck-typed the same way and work with the synchronous class.

With ``AsyncNanaSQLite`` the hooks stay synchronous (as in NanaSQLite) and receive the
``AsyncNanaSQLite`` instance as ``db``; a hook that reads the database through ``db`` must
therefore not expect plain return values there.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
import weakref
from typing import Any, Callable, Optional

try:  # Python 3.8+: typing.Protocol
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore[assignment,misc]

from .compat import HAS_RE2, re2_module
from .exceptions import NanaSQLiteValidationError

_logger = logging.getLogger(__name__)


class NanaHook(Protocol):
    """The hook protocol (duck-typed: any object with some of these methods is a hook)."""

    def before_write(self, db: Any, key: str, value: Any) -> Any:
        return value

    def on_write_success(self, db: Any, key: str, value: Any, old_value: Any) -> None:
        pass

    def after_read(self, db: Any, key: str, value: Any) -> Any:
        return value

    def before_delete(self, db: Any, key: str) -> None:
        pass

    def on_delete_success(self, db: Any, key: str, old_value: Any) -> None:
        pass


class BaseHook:
    """Pass-through hook that runs only for keys matching ``key_pattern`` (searched) and
    ``key_filter(key)``, both optional. Subclasses override what they need and call
    ``self._should_run(key)``.

    As in NanaSQLite 1.6.2, a key pattern cannot make a write take exponential time: with
    google-re2 installed it is compiled with RE2 (linear time; a pattern or ``re`` flag RE2
    cannot express raises, or with ``re_fallback=True`` warns and uses ``re``); without it,
    ``re`` is used and a pattern with a repeat inside a repeat, or an alternation inside one
    (``(a+)+``, ``(a|aa)*``), is refused with ``NanaSQLiteValidationError``.
    """

    def __init__(self, key_pattern: Any = None, key_filter: Optional[Callable[[str], bool]] = None, re_fallback: bool = False):
        if HAS_RE2:
            if isinstance(key_pattern, str):
                key_pattern = _compile_re2(key_pattern, 0, re_fallback)
            elif isinstance(key_pattern, re.Pattern):
                key_pattern = _compile_re2(key_pattern.pattern, key_pattern.flags, re_fallback)
        elif isinstance(key_pattern, str):
            _refuse_catastrophic(key_pattern, 0)
            key_pattern = re.compile(key_pattern)
        elif isinstance(key_pattern, re.Pattern):
            # A compiled pattern is checked too: it must not be a way around the check.
            _refuse_catastrophic(key_pattern.pattern, key_pattern.flags)
        self._key_regex = key_pattern
        self._key_filter = key_filter

    def _should_run(self, key: str) -> bool:
        if self._key_regex is not None and not self._key_regex.search(key):
            return False
        if self._key_filter is not None and not self._key_filter(key):
            return False
        return True

    def before_write(self, db: Any, key: str, value: Any) -> Any:
        return value

    def after_read(self, db: Any, key: str, value: Any) -> Any:
        return value

    def before_delete(self, db: Any, key: str) -> None:
        pass


def _refuse_catastrophic(pattern: Any, flags: int) -> None:
    """Refuses a pattern Python's backtracking ``re`` may need exponential time for: a repeat
    of variable count inside a repeat that can run more than once, or an alternation inside
    such a repeat. Judged on the parsed pattern, so ``{1,}``, ``(?:…)`` and VERBOSE spellings
    are caught alike (a conservative check, not a proof of linear time)."""
    try:
        from re import _parser as parser  # type: ignore[attr-defined]
    except ImportError:  # Python < 3.11
        import sre_parse as parser  # type: ignore[no-redef]

    repeats = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}

    def dangerous(items: Any, repeated: bool) -> bool:
        for op, arg in items:
            name = str(op)
            if name in repeats:
                low, high, body = arg
                if low != high and repeated:
                    return True
                if dangerous(body, repeated or high > 1):
                    return True
            elif name == "BRANCH":
                if repeated or any(dangerous(branch, repeated) for branch in arg[1]):
                    return True
            elif name == "SUBPATTERN":
                if dangerous(arg[-1], repeated):
                    return True
            elif name in ("ASSERT", "ASSERT_NOT"):
                if dangerous(arg[1], repeated):
                    return True
            elif name == "GROUPREF_EXISTS":
                if dangerous(arg[1], repeated) or (arg[2] is not None and dangerous(arg[2], repeated)):
                    return True
            elif name == "ATOMIC_GROUP":
                if dangerous(arg, repeated):
                    return True
        return False

    if dangerous(parser.parse(pattern, flags), False):
        raise NanaSQLiteValidationError(
            f"Potentially dangerous regex pattern detected: {pattern}. "
            "This pattern may cause ReDoS (Regular Expression Denial of Service) attacks. "
            "Install google-re2 (pip install google-re2) for linear-time regex matching."
        )


def _compile_re2(pattern: str, flags: int, re_fallback: bool) -> Any:
    """`pattern` compiled with RE2, keeping the ``re`` flags RE2 can express (IGNORECASE,
    DOTALL, MULTILINE). A pattern or flag it cannot take raises, or with `re_fallback` warns
    and is compiled with ``re`` (no ReDoS protection for it)."""
    flags &= ~re.UNICODE  # implied for str patterns; RE2 matches Unicode anyway
    expressible = re.IGNORECASE | re.DOTALL | re.MULTILINE
    unsupported = flags & ~expressible
    if unsupported:
        names = [f"re.{n}" for n in ("VERBOSE", "LOCALE", "ASCII", "DEBUG", "TEMPLATE") if unsupported & getattr(re, n, 0)]
        described = ", ".join(names) or hex(unsupported)
        if not re_fallback:
            raise re.error(
                f"RE2 does not support Python re flags ({described}) for pattern {pattern!r}. "
                "Use re_fallback=True to fall back to the standard re engine (ReDoS protection will be disabled for this pattern)."
            )
        warnings.warn(
            f"RE2 cannot preserve Python re flags ({described}) for pattern {pattern!r}. "
            "Falling back to the standard re engine. ReDoS protection is disabled for this pattern.",
            stacklevel=4,
        )
        return re.compile(pattern, flags)
    options = None
    source = "(?m)" + pattern if flags & re.MULTILINE else pattern
    if flags & (re.IGNORECASE | re.DOTALL):
        options = re2_module.Options()
        if flags & re.IGNORECASE:
            options.case_sensitive = False
        if flags & re.DOTALL:
            options.dot_nl = True
    try:
        return re2_module.compile(source, options)
    except re2_module.error as exc:
        if not re_fallback:
            raise
        warnings.warn(
            f"RE2 cannot compile pattern {pattern!r}: {exc}. Falling back to the standard re engine. "
            "ReDoS protection is disabled for this pattern.",
            stacklevel=4,
        )
        return re.compile(pattern, flags)


class CheckHook(BaseHook):
    """Refuses a write when ``check_func(key, value)`` is falsy (NanaSQLite's ``CheckHook``)."""

    def __init__(self, check_func: Callable[[str, Any], Any], error_msg: str = "Check constraint failed", **kwargs: Any):
        super().__init__(**kwargs)
        self.check_func = check_func
        self.error_msg = error_msg

    def before_write(self, db: Any, key: str, value: Any) -> Any:
        if self._should_run(key) and not self.check_func(key, value):
            raise NanaSQLiteValidationError(self.error_msg)
        return value


class ValidatorHook:
    """The hook a ``validator=`` argument becomes (appended after ``hooks=``).

    - A **callable** validator is called as ``validator(value)``; it refuses the value by raising
      or by returning ``False``. With ``coerce=True`` its return value is what gets stored (so a
      coercing validator returns the converted value); with ``coerce=False`` the original value
      is stored.
    - Anything else is a **validkit schema** (``pip install validkit-py``), checked with
      ``validkit.validate(value, schema)`` exactly as NanaSQLite's ``ValidkitHook`` does.

    Every refusal is ``NanaSQLiteValidationError("Schema validation failed")``, with the cause
    chained (NanaSQLite keeps the details out of the message too).
    """

    _is_validkit_hook = True  # NanaSQLite's marker: table() replaces this hook, not the others

    def __init__(self, validator: Any, coerce: bool = False):
        self.schema = validator
        self.coerce = bool(coerce)
        self._callable = callable(validator)
        if not self._callable:
            # Looked up in compat when the hook is made, as NanaSQLite does (so a program, or a
            # test, that replaces compat.validkit_validate is obeyed).
            from . import compat

            if not compat.HAS_VALIDKIT:
                raise ImportError(
                    "validator= is a validkit schema, but validkit-py is not installed; "
                    "install it, or pass a callable validator(value)"
                )
            self._validate = compat.validkit_validate

    def before_write(self, db: Any, key: str, value: Any) -> Any:
        try:
            if self._callable:
                result = self.schema(value)
                if result is False:
                    raise ValueError("validator returned False")
                return result if self.coerce else value
            if self.coerce:
                return self._validate(value, self.schema)
            self._validate(value, self.schema)
            return value
        except (MemoryError, OSError):
            raise
        except Exception as exc:
            raise NanaSQLiteValidationError("Schema validation failed") from exc


class UniqueHook(BaseHook):
    """Refuses a write whose ``field`` value another key of the table already has
    (NanaSQLite's ``UniqueHook``): ``field`` is a key of dict values, or a callable
    ``field(key, value)``; values without it (``None``) are not checked.

    As in NanaSQLite, the check runs in this process, over the table's rows (``db.items()``),
    or, with ``use_index=True``, over an index of field value → key built on the first write
    and kept by this hook's own writes and deletes (``invalidate_index()`` after changing rows
    another way).

    The check-then-write race (NanaSQLite's SEC-03, fixed in its 1.5.4 as SEC-05) is closed as
    NanaSQLite closes it: an instance with hooks runs one call at a time, under an RLock shared
    with its ``table()`` children (AsyncNanaSQLite: an asyncio lock), from the hook's check to
    the daemon's acknowledgement of the write. That holds within one process; for uniqueness
    that holds across every process, give the table the daemon's constraint instead
    (``constraints=[{"type": "unique", ...}]``), checked on nanad's one writer.
    """

    _violation = "Unique constraint violation: duplicate value detected"

    def __init__(self, field: Any, use_index: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.field = field
        self.use_index = use_index
        self._value_to_key: dict = {}
        self._duplicate_field_values: set = set()
        self._index_built = False
        self._bound_db_ref: Any = None
        self._index_lock = threading.RLock()

    def invalidate_index(self) -> None:
        """Has the index rebuilt at the next write."""
        with self._index_lock:
            self._index_built = False
            self._value_to_key.clear()
            self._duplicate_field_values.clear()
            self._bound_db_ref = None

    def _extract_field(self, key: str, value: Any) -> Any:
        if callable(self.field):
            return self.field(key, value)
        return value.get(self.field) if isinstance(value, dict) else None

    def _field_name(self) -> str:
        return self.field.__name__ if callable(self.field) else str(self.field)

    def _unhashable(self) -> NanaSQLiteValidationError:
        return NanaSQLiteValidationError(
            f"UniqueHook: use_index=True requires hashable field values, but field '{self._field_name()}' returned an unhashable value."
        )

    def _taken_elsewhere(self, db: Any, key: str, wanted: Any) -> bool:
        return any(k != key and self._extract_field(k, v) == wanted for k, v in db.items())

    def _build_index(self, db: Any) -> None:
        self._value_to_key.clear()
        self._duplicate_field_values.clear()
        for k, v in db.items():
            found = self._extract_field(k, v)
            if found is None:
                continue
            try:
                if found in self._duplicate_field_values:
                    continue
                if found in self._value_to_key:
                    # Rows changed outside the hook already share it: those values are checked
                    # by scanning, which is exact.
                    self._duplicate_field_values.add(found)
                    del self._value_to_key[found]
                else:
                    self._value_to_key[found] = k
            except TypeError:
                pass  # unhashable: not indexed
        self._index_built = True
        self._bound_db_ref = weakref.ref(db)

    def before_write(self, db: Any, key: str, value: Any) -> Any:
        if not self._should_run(key):
            return value
        wanted = self._extract_field(key, value)
        if not self.use_index:
            if wanted is not None and self._taken_elsewhere(db, key, wanted):
                raise NanaSQLiteValidationError(self._violation)
            return value
        with self._index_lock:
            bound = self._bound_db_ref() if self._bound_db_ref is not None else None
            if self._index_built and bound is not db:
                self.invalidate_index()
            if not self._index_built:
                self._build_index(db)
            if wanted is None:
                return value
            try:
                known_duplicate = wanted in self._duplicate_field_values
                holder = None if known_duplicate else self._value_to_key.get(wanted)
            except TypeError as exc:
                raise self._unhashable() from exc
            if known_duplicate:
                if self._taken_elsewhere(db, key, wanted):
                    raise NanaSQLiteValidationError(self._violation)
            elif holder is not None and holder != key:
                raise NanaSQLiteValidationError(self._violation)
        return value

    def validate_batch_write(self, db: Any, mapping: dict) -> None:
        """A batch may not repeat a value, nor take one a key outside the batch has."""
        wanted: list = []
        for key, value in mapping.items():
            if not self._should_run(key):
                continue
            found = self._extract_field(key, value)
            if found is None:
                continue
            if self.use_index:
                try:
                    hash(found)
                except TypeError as exc:
                    raise self._unhashable() from exc
            if found in wanted:
                raise NanaSQLiteValidationError(self._violation)
            wanted.append(found)
        if not wanted:
            return
        for key, value in db.items():
            if key not in mapping and self._extract_field(key, value) in wanted:
                raise NanaSQLiteValidationError(self._violation)

    def on_write_success(self, db: Any, key: str, value: Any, old_value: Any) -> None:
        if not self.use_index or not self._should_run(key):
            return
        with self._index_lock:
            if not self._index_built:
                return
            self._forget(key, old_value)
            found = self._extract_field(key, value)
            if found is not None:
                try:
                    self._duplicate_field_values.discard(found)
                    self._value_to_key[found] = key
                except TypeError:
                    pass

    def on_delete_success(self, db: Any, key: str, old_value: Any) -> None:
        if not self.use_index or not self._should_run(key):
            return
        with self._index_lock:
            if self._index_built:
                self._forget(key, old_value)

    def _forget(self, key: str, old_value: Any) -> None:
        """Drops `key`'s old value from the index (if the index has it under `key`)."""
        if old_value is None:
            return
        found = self._extract_field(key, old_value)
        if found is None:
            return
        try:
            if self._value_to_key.get(found) == key:
                del self._value_to_key[found]
        except TypeError:
            pass


class ForeignKeyHook(BaseHook):
    """Refuses a write whose ``field`` value (a key of dict values, or a callable
    ``field(key, value)``) is not a key of ``target_db`` (NanaSQLite's ``ForeignKeyHook``);
    values without the field are not checked.

    WARNING: as in NanaSQLite (its advisory SEC-04), the check runs in this process before the
    write, a TOCTOU race condition: a referenced key deleted meanwhile, by this process or any
    other, is not noticed. The daemon's ``foreign_key`` constraint
    (``constraints=[{"type": "foreign_key", ...}]``) is checked inside the write and holds across
    processes."""

    def __init__(self, field: Any, target_db: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.field = field
        self.target_db = target_db

    def before_write(self, db: Any, key: str, value: Any) -> Any:
        if not self._should_run(key):
            return value
        if callable(self.field):
            reference = self.field(key, value)
        elif isinstance(value, dict) and self.field in value:
            reference = value[self.field]
        else:
            return value
        if reference is not None and reference not in self.target_db:
            field_name = self.field.__name__ if callable(self.field) else str(self.field)
            _logger.warning("Foreign key constraint violation for key '%s': field '%s' references non-existent key", key, field_name)
            raise NanaSQLiteValidationError("Foreign key constraint violation: referenced key not found")
        return value


class ValidkitHook(BaseHook):
    """Checks each written value against a validkit schema (NanaSQLite's ``ValidkitHook``); with
    ``coerce=True`` the validated (converted) value is what gets stored. Needs validkit-py."""

    _is_validkit_hook = True

    def __init__(self, schema: Any, coerce: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        from .compat import HAS_VALIDKIT, validkit_validate

        if not HAS_VALIDKIT:
            raise ImportError("The 'validkit-py' library is required for validation. Install it with: pip install validkit-py")
        self.schema = schema
        self.coerce = coerce
        self._validate = validkit_validate

    def before_write(self, db: Any, key: str, value: Any) -> Any:
        if not self._should_run(key):
            return value
        try:
            checked = self._validate(value, self.schema)
        except (MemoryError, OSError):
            raise
        except Exception as exc:
            raise NanaSQLiteValidationError("Schema validation failed") from exc
        return checked if self.coerce else value


class PydanticHook(BaseHook):
    """Stores a Pydantic model as its dict and reads it back as the model (NanaSQLite's
    ``PydanticHook``): a written value (a model or anything the model validates) is checked
    and stored dumped; a read value is validated into the model, or returned as it is when it
    does not fit. Works with Pydantic 2 (``model_validate``) and 1 (``parse_obj``)."""

    def __init__(self, model_class: type, **kwargs: Any):
        super().__init__(**kwargs)
        self.model_class = model_class

    def _validate(self, value: Any) -> Any:
        if hasattr(self.model_class, "model_validate"):
            return self.model_class.model_validate(value)
        if hasattr(self.model_class, "parse_obj"):
            return self.model_class.parse_obj(value)
        return None

    @staticmethod
    def _dump(model: Any) -> Any:
        return model.model_dump() if hasattr(model, "model_dump") else model.dict()

    def before_write(self, db: Any, key: str, value: Any) -> Any:
        if not self._should_run(key):
            return value
        if isinstance(value, self.model_class):
            return self._dump(value)
        try:
            model = self._validate(value)
        except (ValueError, TypeError, AttributeError) as exc:  # pydantic's ValidationError is a ValueError
            raise NanaSQLiteValidationError("Model validation failed") from exc
        return value if model is None else self._dump(model)

    def after_read(self, db: Any, key: str, value: Any) -> Any:
        if not self._should_run(key):
            return value
        try:
            model = self._validate(value)
        except (ValueError, TypeError, AttributeError):
            return value  # not this model's data: handed back as stored
        return value if model is None else model


__all__ = ["NanaHook", "BaseHook", "CheckHook", "UniqueHook", "ForeignKeyHook", "ValidatorHook", "ValidkitHook", "PydanticHook"]
