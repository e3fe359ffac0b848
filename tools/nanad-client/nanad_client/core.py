"""``nanasqlite.core``'s public names, for programs that import them from there (the optional
libraries' flags included, as NanaSQLite's ``core`` re-exports them from ``compat``)."""

from ._options import CacheType, V2Config
from .compat import HAS_ORJSON, HAS_VALIDKIT
from .sync import NanaSQLite

__all__ = ["NanaSQLite", "V2Config", "CacheType", "HAS_ORJSON", "HAS_VALIDKIT"]
