"""``AsyncNanaSQLite``'s ``max_pending_operations`` and ``admission_timeout`` (NanaSQLite 1.6.2).

NanaSQLite bounds the jobs an instance (and its ``table()`` children) has submitted to its
thread pool; a call waits for a slot, at most ``admission_timeout`` seconds
(``asyncio.TimeoutError``, and nothing was submitted). The drop-in has no pool: the bound is on
the calls the instance has in flight to the daemon, with the same errors and the same checks
of its arguments, made when the instance is constructed as NanaSQLite makes them.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Dict, Optional


class Admission:
    """At most ``limit`` calls in flight; a slot is waited for at most ``timeout`` seconds."""

    __slots__ = ("limit", "timeout", "_semaphore")

    def __init__(self, limit: int, timeout: Optional[float]) -> None:
        self.limit = limit
        self.timeout = timeout
        self._semaphore: Optional[asyncio.Semaphore] = None

    @classmethod
    def from_options(cls, kwargs: Dict[str, Any]) -> Optional["Admission"]:
        """The bound the constructor's keyword arguments ask for (``None``: unbounded), or
        ``ValueError`` with NanaSQLite's messages."""
        limit = kwargs.get("max_pending_operations")
        timeout = kwargs.get("admission_timeout")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0):
            raise ValueError("max_pending_operations must be a positive integer or None")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ValueError("admission_timeout must be a positive finite number or None")
        if timeout is not None and limit is None:
            raise ValueError("admission_timeout requires max_pending_operations")
        return None if limit is None else cls(limit, timeout)

    async def acquire(self) -> None:
        semaphore = self._semaphore
        if semaphore is None:  # made on first use, inside the running loop
            semaphore = self._semaphore = asyncio.Semaphore(self.limit)
        if self.timeout is None:
            await semaphore.acquire()
        else:
            await asyncio.wait_for(semaphore.acquire(), self.timeout)

    def release(self) -> None:
        assert self._semaphore is not None
        self._semaphore.release()
