"""``nanasqlite.protocols``'s hook protocol, for programs that import it from there."""

from .hooks import NanaHook

__all__ = ["NanaHook"]
