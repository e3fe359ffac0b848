"""``nanasqlite.async_core``'s public names, for programs that import them from there (the
optional libraries' flags included, as NanaSQLite's ``async_core`` imports them)."""

from .aio import AsyncNanaSQLite
from .compat import HAS_ORJSON, HAS_VALIDKIT

__all__ = ["AsyncNanaSQLite", "HAS_ORJSON", "HAS_VALIDKIT"]
