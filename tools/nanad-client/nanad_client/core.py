"""``nanasqlite.core``'s public names, for programs that import them from there."""

from ._options import CacheType, V2Config
from .sync import NanaSQLite

__all__ = ["NanaSQLite", "V2Config", "CacheType"]
