"""NanaSQLite's ``nanasqlite.utils``: ``ExpiringDict``, a dict whose keys expire.

Pure Python with no database in it, so the drop-in offers it at the same module path. Written
for the drop-in to NanaSQLite 1.6.2's documented behaviour:

- every key expires ``expiration_time`` seconds after it was last set;
- an expired key is never returned or iterated, whatever the mode (``len()`` counts the keys
  held, as NanaSQLite's does: in ``LAZY`` mode also expired ones not removed yet);
- ``on_expire(key, value)`` is called once for a key that expired (not for one deleted,
  popped or cleared first);
- the mode decides who removes expired keys: ``LAZY`` the next access, ``SCHEDULER`` one
  background thread for the whole dict, ``TIMER`` one timer per key (``asyncio``'s
  ``call_later`` when set from a running event loop, a ``threading.Timer`` otherwise).

Expiry times are wall-clock (``time.time()``), as NanaSQLite's are.
"""

from __future__ import annotations

import asyncio
import collections.abc
import logging
import threading
import time
import weakref
from enum import Enum
from typing import Any, Callable, Dict, Iterator, Optional

_logger = logging.getLogger(__name__)


class ExpirationMode(str, Enum):
    """Who removes expired keys."""

    LAZY = "lazy"
    SCHEDULER = "scheduler"
    TIMER = "timer"


class ExpiringDict(collections.abc.MutableMapping):
    """A mapping whose keys expire ``expiration_time`` seconds after they were set."""

    def __init__(
        self,
        expiration_time: float,
        mode: ExpirationMode = ExpirationMode.SCHEDULER,
        on_expire: Optional[Callable[[str, Any], None]] = None,
    ):
        self._data: Dict[str, Any] = {}
        self._exptimes: Dict[str, float] = {}  # key -> when it expires (time.time())
        self._expiration_time = expiration_time
        self._mode = ExpirationMode(mode)
        self._on_expire = on_expire
        self._lock = threading.RLock()
        self._timers: Dict[str, Any] = {}  # TIMER: threading.Timer or asyncio.TimerHandle per key
        self._wake = threading.Event()
        self._scheduler_running = False
        self._scheduler_thread: Optional[threading.Thread] = None
        if self._mode == ExpirationMode.SCHEDULER:
            self._start_scheduler()

    # -- removal ---------------------------------------------------------------------------

    def _start_scheduler(self) -> None:
        with self._lock:
            if self._scheduler_running:
                return
            self._scheduler_running = True
            self._wake.clear()
            # The thread holds the dict weakly: a dict nobody uses any more is freed, and its
            # thread ends.
            thread = threading.Thread(target=ExpiringDict._run_scheduler, args=(weakref.ref(self), self._wake), name="ExpiringDict", daemon=True)
            self._scheduler_thread = thread
        thread.start()

    @staticmethod
    def _run_scheduler(ref: "weakref.ref[ExpiringDict]", wake: threading.Event) -> None:
        """Evicts every key that is due, then sleeps until the next one is (or a change)."""
        while True:
            expiring = ref()
            if expiring is None or not expiring._scheduler_running:
                return
            wait = expiring._evict_due()
            del expiring
            wake.wait(wait)
            wake.clear()

    def _evict_due(self) -> float:
        """Evicts the keys that are due; returns how long until the next one is (at most 1 s)."""
        now = time.time()
        with self._lock:
            due = [k for k, t in self._exptimes.items() if t <= now]
        for key in due:
            self._evict(key, now=now)
        with self._lock:
            soonest = min(self._exptimes.values(), default=None)
        return 1.0 if soonest is None else min(max(soonest - time.time(), 0.005), 1.0)

    def _evict(self, key: str, now: Optional[float] = None) -> None:
        """Removes `key` if it has expired by `now`, and tells ``on_expire`` (outside the lock)."""
        now = time.time() if now is None else now
        with self._lock:
            expires = self._exptimes.get(key)
            if expires is None or expires > now:
                return  # set again meanwhile, or already gone
            value = self._data.pop(key, None)
            del self._exptimes[key]
            self._timers.pop(key, None)
        if self._on_expire is not None:
            try:
                self._on_expire(key, value)
            except Exception:  # a callback's failure must not stop expiry
                _logger.exception("ExpiringDict on_expire callback failed for key %r", key)

    def _set_timer(self, key: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            handle: Any = loop.call_later(self._expiration_time, self._evict, key)
        else:
            handle = threading.Timer(self._expiration_time, self._evict, args=(key,))
            handle.daemon = True
            handle.start()
        self._timers[key] = handle

    def _cancel_timer(self, key: str) -> None:
        handle = self._timers.pop(key, None)
        if handle is not None:
            handle.cancel()

    def _expired(self, key: str, now: float) -> bool:
        """Whether `key` is present but past its time (called with the lock held)."""
        expires = self._exptimes.get(key)
        return expires is not None and expires <= now

    # -- mapping ---------------------------------------------------------------------------

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            if self._mode == ExpirationMode.TIMER and key in self._timers:
                self._cancel_timer(key)
            self._data[key] = value
            self._exptimes[key] = time.time() + self._expiration_time
            if self._mode == ExpirationMode.TIMER:
                self._set_timer(key)
        if self._mode == ExpirationMode.SCHEDULER:
            self._wake.set()

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            if key not in self._data:
                raise KeyError(key)
            if not self._expired(key, time.time()):
                return self._data[key]
        self._evict(key)
        raise KeyError(key)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            if key not in self._data:
                raise KeyError(key)
            if self._mode == ExpirationMode.TIMER:
                self._cancel_timer(key)
            del self._data[key]
            del self._exptimes[key]

    def __iter__(self) -> Iterator[str]:
        now = time.time()
        with self._lock:
            live = [k for k in self._data if not self._expired(k, now)]
            expired = [k for k in self._data if self._expired(k, now)]
        for key in expired:
            self._evict(key, now=now)
        return iter(live)

    def __len__(self) -> int:
        # As NanaSQLite's: the keys held, so in LAZY mode (or between scheduler passes) also
        # keys that expired and were not removed yet. Iterating removes them.
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self[key]
        except KeyError:
            return False
        return True

    def set_on_expire_callback(self, callback: Optional[Callable[[str, Any], None]]) -> None:
        self._on_expire = callback

    def clear(self) -> None:
        """Drops every key (no ``on_expire``); the scheduler keeps running for new keys."""
        with self._lock:
            for key in list(self._timers):
                self._cancel_timer(key)
            self._data.clear()
            self._exptimes.clear()
        if self._mode == ExpirationMode.SCHEDULER:
            self._start_scheduler()
            self._wake.set()

    def close(self) -> None:
        """Drops every key and stops the scheduler thread or the timers."""
        with self._lock:
            self._scheduler_running = False
            for key in list(self._timers):
                self._cancel_timer(key)
            self._data.clear()
            self._exptimes.clear()
        self._wake.set()

    def __del__(self) -> None:
        try:
            self._scheduler_running = False
            self._wake.set()
        except Exception:
            pass


__all__ = ["ExpirationMode", "ExpiringDict"]
