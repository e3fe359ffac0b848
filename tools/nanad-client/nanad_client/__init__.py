"""nanad_client: NanaSQLite's API, served by nanad over its Unix socket.

    # before:  from nanasqlite import NanaSQLite, AsyncNanaSQLite
    from nanad_client import NanaSQLite, AsyncNanaSQLite

The classes keep NanaSQLite 1.6's names, signatures, value types and exceptions; every call is
a request to the daemon (proto/PROTOCOL.md), which owns the SQLite file and one cache per table
shared by every process. See README.md ("Coming from NanaSQLite") for what differs.
"""

from __future__ import annotations

from ._base import Cursor
from ._options import CacheType, V2Config
from .aio import AsyncNanaSQLite
from .compat import HAS_ORJSON, HAS_VALIDKIT
from .exceptions import (
    NanaSQLiteCacheError,
    NanaSQLiteClosedError,
    NanaSQLiteConnectionError,
    NanaSQLiteDatabaseError,
    NanaSQLiteError,
    NanaSQLiteLockError,
    NanaSQLiteNotSupportedError,
    NanaSQLiteProtocolError,
    NanaSQLiteTransactionError,
    NanaSQLiteValidationError,
    NotSupportedError,
    ProtocolError,
)
from .hooks import BaseHook, CheckHook, ForeignKeyHook, NanaHook, PydanticHook, UniqueHook, ValidatorHook, ValidkitHook
from .sync import NanaSQLite

__version__ = "0.1.0"

__all__ = [
    "NanaSQLite",
    "AsyncNanaSQLite",
    "Cursor",
    "V2Config",
    "CacheType",
    "HAS_ORJSON",
    "HAS_VALIDKIT",
    "NanaHook",
    "BaseHook",
    "CheckHook",
    "UniqueHook",
    "ForeignKeyHook",
    "ValidatorHook",
    "ValidkitHook",
    "PydanticHook",
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
]
