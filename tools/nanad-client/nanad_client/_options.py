"""NanaSQLite's table-behaviour options: ``V2Config``, ``CacheType``, and how a constructor call
(or a ``table()`` call) turns them into the settings nanad's ``open`` states.

In nanad these settings belong to the table, which every session shares (docs/API.md): while
another session uses the table, an ``open`` that states different settings is refused with
``ValueError``, and one that states none inherits the current ones. The drop-in therefore
always states them, defaults included, as the Swift client does (NanaOpenOptions), so that a
program never silently gets write-behind (or write-through) it did not ask for.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, Dict, Literal, Optional

from .exceptions import NanaSQLiteNotSupportedError, NanaSQLiteValidationError


class CacheType(str, enum.Enum):
    """NanaSQLite's cache strategies (a str-enum: ``CacheType.LRU == "lru"``)."""

    UNBOUNDED = "unbounded"
    LRU = "lru"
    TTL = "ttl"


@dataclass
class V2Config:
    """NanaSQLite 1.6.2's v2 (write-behind) settings, passed as ``v2_config=``.

    The fields override the flat keyword arguments (``flush_mode``, ``flush_interval``,
    ``flush_count``, ``v2_chunk_size``, ``v2_max_dlq_size``, ``v2_enable_metrics``). Invalid
    values raise ``ValueError`` when the object is made, with NanaSQLite's messages.
    """

    flush_mode: Literal["immediate", "count", "time", "manual"] = "immediate"
    flush_interval: float = 3.0
    flush_count: int = 100
    chunk_size: int = 1000
    max_dlq_size: Optional[int] = 1000
    enable_metrics: bool = False

    def __post_init__(self) -> None:
        if self.flush_mode not in ("immediate", "count", "time", "manual"):
            raise ValueError(f"Invalid flush_mode: {self.flush_mode}")
        if (
            isinstance(self.flush_interval, bool)
            or not isinstance(self.flush_interval, (int, float))
            or not math.isfinite(self.flush_interval)
            or self.flush_interval <= 0
        ):
            raise ValueError("flush_interval must be a positive finite number")
        if isinstance(self.flush_count, bool) or not isinstance(self.flush_count, int) or self.flush_count <= 0:
            raise ValueError("flush_count must be a positive integer")
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int) or self.chunk_size <= 0:
            raise ValueError("chunk_size must be a positive integer")
        if self.max_dlq_size is not None and (
            isinstance(self.max_dlq_size, bool) or not isinstance(self.max_dlq_size, int) or self.max_dlq_size <= 0
        ):
            raise ValueError("max_dlq_size must be None or a positive integer")

    def wire(self) -> Dict[str, Any]:
        """The ``v2_config`` map of nanad's ``open``."""
        return {
            "flush_mode": self.flush_mode,
            "flush_interval": float(self.flush_interval),
            "flush_count": self.flush_count,
            "chunk_size": self.chunk_size,
            "max_dlq_size": self.max_dlq_size,
            "enable_metrics": bool(self.enable_metrics),
        }


def plain(value: Any) -> Any:
    """CacheType and other str-enums travel as their value."""
    if isinstance(value, enum.Enum):
        return value.value
    return value


class TableOptions:
    """The table settings one instance states, resolved as NanaSQLite resolves its constructor
    arguments (behaviour spec 1.6: memory_first first, then v2_config over the flat ones)."""

    __slots__ = ("v2", "memory_first", "memory_flush_interval", "cache_strategy", "cache_size",
                 "cache_ttl", "cache_persistence_ttl", "encryption_key", "encryption_mode", "allow_legacy_plaintext",
                 "constraints")

    def __init__(self) -> None:
        self.v2: Optional[V2Config] = None
        self.memory_first = False
        self.memory_flush_interval = 5.0
        self.cache_strategy = "unbounded"
        self.cache_size: Optional[int] = None
        self.cache_ttl: Optional[float] = None
        self.cache_persistence_ttl = False
        self.encryption_key: Any = None
        self.encryption_mode = "aes-gcm"
        self.allow_legacy_plaintext = False
        self.constraints: Optional[list] = None

    @classmethod
    def from_constructor(cls, v2_mode: Any, v2_config: Any, kwargs: Dict[str, Any]) -> "TableOptions":
        o = cls()
        o.cache_strategy = plain(kwargs.get("cache_strategy", "unbounded"))
        if o.cache_strategy is None:
            o.cache_strategy = "unbounded"
        o.cache_size = kwargs.get("cache_size")
        o.cache_ttl = kwargs.get("cache_ttl")
        o.cache_persistence_ttl = bool(kwargs.get("cache_persistence_ttl", False))
        o.encryption_key = kwargs.get("encryption_key")
        o.encryption_mode = plain(kwargs.get("encryption_mode", "aes-gcm"))
        o.allow_legacy_plaintext = bool(kwargs.get("allow_legacy_plaintext", False))  # NanaSQLite's bool()
        if o.encryption_key is not None and (not isinstance(o.encryption_key, (str, bytes)) or not o.encryption_key):
            raise NanaSQLiteValidationError("encryption_key must be a non-empty str or bytes value")
        constraints = kwargs.get("constraints")
        if constraints is not None:
            o.constraints = [dict(c) for c in constraints]
        o.memory_first = bool(kwargs.get("memory_first", False))
        o.memory_flush_interval = kwargs.get("memory_flush_interval", 5.0)
        flush_mode = kwargs.get("flush_mode", "immediate")
        flush_interval = kwargs.get("flush_interval", 3.0)
        if o.memory_first:
            if o.cache_strategy != "unbounded" or o.cache_size is not None:
                raise NanaSQLiteValidationError("memory_first=True requires the default unbounded cache without cache_size")
            if o.cache_persistence_ttl:
                raise NanaSQLiteValidationError("memory_first=True cannot be combined with cache_persistence_ttl")
            v2_mode = True
            if "flush_mode" not in kwargs:
                flush_mode = "time"
            if "flush_interval" not in kwargs:
                flush_interval = o.memory_flush_interval
        if v2_mode:
            if v2_config is not None:
                o.v2 = V2Config(
                    flush_mode=v2_config.flush_mode,
                    flush_interval=v2_config.flush_interval,
                    flush_count=v2_config.flush_count,
                    chunk_size=v2_config.chunk_size,
                    max_dlq_size=v2_config.max_dlq_size,
                    enable_metrics=v2_config.enable_metrics,
                )
            else:
                o.v2 = V2Config(
                    flush_mode=flush_mode,
                    flush_interval=flush_interval,
                    flush_count=kwargs.get("flush_count", 100),
                    chunk_size=kwargs.get("v2_chunk_size", 1000),
                    max_dlq_size=kwargs.get("v2_max_dlq_size", 1000),
                    enable_metrics=kwargs.get("v2_enable_metrics", False),
                )
        return o

    @property
    def v2_mode(self) -> bool:
        return self.v2 is not None

    def open_params(self) -> Dict[str, Any]:
        """What ``open`` states about the table's behaviour: every setting, defaults included
        (as the Swift client's NanaOpenOptions). ``cache_ttl`` and ``cache_persistence_ttl``
        mean something only with the TTL strategy (NanaSQLite ignores them otherwise), and
        ``encryption_mode`` only with a key."""
        params: Dict[str, Any] = {"v2_mode": self.v2 is not None}
        if self.v2 is not None:
            params["v2_config"] = self.v2.wire()
        if self.memory_first:
            params["memory_first"] = True
            params["memory_flush_interval"] = self.memory_flush_interval
        params.update(self.cache_params())
        if self.encryption_key is not None:
            params["encryption_key"] = self.encryption_key
            params["encryption_mode"] = self.encryption_mode
            if self.allow_legacy_plaintext:
                params["allow_legacy_plaintext"] = True
        if self.constraints:
            params["constraints"] = self.constraints
        return params

    def cache_params(self) -> Dict[str, Any]:
        """The cache settings as ``open`` and ``table`` state them (9.11)."""
        ttl = self.cache_strategy == "ttl"
        params: Dict[str, Any] = {"cache_strategy": self.cache_strategy, "cache_size": self.cache_size}
        if ttl:
            params["cache_ttl"] = self.cache_ttl
        params["cache_persistence_ttl"] = bool(self.cache_persistence_ttl) and ttl
        return params

    def child(self, cache_strategy: Any, cache_size: Any, cache_ttl: Any, cache_persistence_ttl: Any,
              v2_enable_metrics: Any, memory_first: Any, unset: Any) -> "TableOptions":
        """A ``table()`` child's settings: its cache settings, each the parent's unless given (as
        NanaSQLite resolves them; nanad checks them, as an ``open``'s). Its write-behind
        settings are the file's one writer's, so ``v2_enable_metrics`` and ``memory_first`` may
        repeat the parent's but not change them (NanaSQLiteNotSupportedError)."""
        changed = []
        if v2_enable_metrics is not unset and self.v2 is not None and bool(v2_enable_metrics) != self.v2.enable_metrics:
            changed.append(f"v2_enable_metrics={v2_enable_metrics!r}")
        if memory_first is not unset and bool(memory_first) != self.memory_first:
            changed.append(f"memory_first={memory_first!r}")
        if changed:
            raise NanaSQLiteNotSupportedError(
                f"table() children use their parent's write-behind settings in nanad; {', '.join(changed)} differs. "
                "Open that table with NanaSQLite(db_path, table=..., ...) to give it other settings."
            )
        o = TableOptions()
        for name in self.__slots__:
            setattr(o, name, getattr(self, name))
        o.constraints = None  # rules about the parent's data, not the child's
        if cache_strategy is not None:
            o.cache_strategy = plain(cache_strategy)
        if cache_size is not None:
            o.cache_size = cache_size
        if cache_ttl is not None:
            o.cache_ttl = cache_ttl
        if cache_persistence_ttl is not None:
            o.cache_persistence_ttl = bool(cache_persistence_ttl)
        return o
