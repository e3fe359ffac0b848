"""``nanasqlite.async_core``'s public name, for programs that import it from there."""

from .aio import AsyncNanaSQLite

__all__ = ["AsyncNanaSQLite"]
