"""NanaSQLite's exception classes (same names, same hierarchy), and the mapping from the
wire's error ``type`` (proto/PROTOCOL.md section 6) to them.

    Exception
    └── NanaSQLiteError
        ├── NanaSQLiteValidationError
        ├── NanaSQLiteDatabaseError          (attribute original_error)
        ├── NanaSQLiteTransactionError
        ├── NanaSQLiteConnectionError
        │   └── NanaSQLiteClosedError
        ├── NanaSQLiteLockError
        ├── NanaSQLiteCacheError             (defined, never raised, as in NanaSQLite)
        ├── NanaSQLiteProtocolError          (nanad only: wire type "ProtocolError")
        └── NanaSQLiteNotSupportedError      (nanad only: wire type "NotSupportedError")

The wire types ``KeyError``, ``TypeError`` and ``ValueError`` become Python's built-in
exceptions, as NanaSQLite raises them. An unknown wire type becomes ``NanaSQLiteError``
(PROTOCOL.md 6.1). Every exception made from a reply carries ``nanad_type`` (the wire type)
and ``nanad_details`` (the reserved ``details`` field, normally ``None``).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Optional


class NanaSQLiteError(Exception):
    """Base class of every NanaSQLite error."""


class NanaSQLiteValidationError(NanaSQLiteError):
    """Invalid input: identifiers, SQL expressions refused by the guard, values too deep, hooks."""


class NanaSQLiteDatabaseError(NanaSQLiteError):
    """SQLite failed (in the daemon), or a stored row cannot be read."""

    def __init__(self, message: str, original_error: Optional[BaseException] = None):
        super().__init__(message)
        self.original_error = original_error


class NanaSQLiteTransactionError(NanaSQLiteError):
    """Nested begin, commit/rollback outside a transaction, close or restore inside one."""


class NanaSQLiteConnectionError(NanaSQLiteError):
    """The database file cannot be opened, or the connection to nanad failed."""


class NanaSQLiteClosedError(NanaSQLiteConnectionError):
    """The instance (or the instance it was opened from) is closed."""


class NanaSQLiteLockError(NanaSQLiteError):
    """Reserved (NanaSQLite's lock_timeout); nanad does not send it today."""


class NanaSQLiteCacheError(NanaSQLiteError):
    """Defined for compatibility; never raised (as in NanaSQLite)."""


class NanaSQLiteProtocolError(NanaSQLiteError):
    """nanad refused the request as a protocol violation (unknown method, malformed frame...)."""


class NanaSQLiteNotSupportedError(NanaSQLiteError):
    """What nanad does not serve (":memory:", encryption_mode "fernet", a unique constraint in v2
    mode, table() children with settings of their own)."""


# Short aliases for the two nanad-only types.
ProtocolError = NanaSQLiteProtocolError
NotSupportedError = NanaSQLiteNotSupportedError

_BY_WIRE_TYPE = {
    "NanaSQLiteError": NanaSQLiteError,
    "NanaSQLiteValidationError": NanaSQLiteValidationError,
    "NanaSQLiteDatabaseError": NanaSQLiteDatabaseError,
    "NanaSQLiteTransactionError": NanaSQLiteTransactionError,
    "NanaSQLiteConnectionError": NanaSQLiteConnectionError,
    "NanaSQLiteClosedError": NanaSQLiteClosedError,
    "NanaSQLiteLockError": NanaSQLiteLockError,
    "NanaSQLiteCacheError": NanaSQLiteCacheError,
    "ProtocolError": NanaSQLiteProtocolError,
    "NotSupportedError": NanaSQLiteNotSupportedError,
    "KeyError": KeyError,
    "TypeError": TypeError,
    "ValueError": ValueError,
}


def error_from_wire(error: Any) -> BaseException:
    """The exception for a reply's error map (``{"type", "message", "details"?}``)."""
    if isinstance(error, dict):
        wire_type = error.get("type")
        message = error.get("message")
        details = error.get("details")
    else:  # not a map: still an error (PROTOCOL.md 6.1 says it is a map)
        wire_type, message, details = None, error, None
    if not isinstance(message, str):
        message = repr(message)
    cls = _BY_WIRE_TYPE.get(wire_type, NanaSQLiteError) if isinstance(wire_type, str) else NanaSQLiteError
    exc = cls(message)  # KeyError(message): the message is the key (or field), as NanaSQLite's KeyError(key)
    if cls is NanaSQLiteDatabaseError:
        # NanaSQLite keeps the SQLite binding's exception; the daemon's cannot cross the wire,
        # so this is the DB-API error of the same text (sqlite3's, which any program has).
        exc.original_error = sqlite3.DatabaseError(message)  # type: ignore[attr-defined]
    try:
        exc.nanad_type = wire_type  # type: ignore[attr-defined]
        exc.nanad_details = details  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - built-in exceptions accept attributes
        pass
    return exc


__all__ = [
    "NanaSQLiteError",
    "NanaSQLiteValidationError",
    "NanaSQLiteDatabaseError",
    "NanaSQLiteTransactionError",
    "NanaSQLiteConnectionError",
    "NanaSQLiteClosedError",
    "NanaSQLiteLockError",
    "NanaSQLiteCacheError",
    "NanaSQLiteProtocolError",
    "NanaSQLiteNotSupportedError",
    "ProtocolError",
    "NotSupportedError",
    "error_from_wire",
]
