"""The near-cache (PROTOCOL.md section 10): reads answered in this process while the daemon's
stamps vouch for them.

A tracking handle's ``open`` reply offers its file's *board*: a small file of 64-bit stamps the
daemon bumps after every change and before it answers anyone. This module fetches the board
(a read-only descriptor over the side socket, ``socket.recv_fds``), maps it read-only, and keeps
per handle a bounded table of ``[value, key_word, key_stamp, table_stamp, slow, size, deadline,
used]``. A hit is a dict lookup, two reads of the mapping that compare equal and one store (the
entry's ``used`` mark); anything else is a miss, one round trip, whose reply fills the entry.

Eviction is CLOCK (second chance), the usual approximation of LRU: entries sit in insertion
order, a hit marks its entry used, and eviction takes the oldest entry, except that a used one
loses its mark and goes to the back instead. An exact LRU moves the entry on every hit
(``OrderedDict.move_to_end``), which measured about 50 ns of a 340 ns hit; the mark is a list
store of a few ns.

Reads of the mapping are plain loads: on x86-64 every load has acquire ordering, and on other
machines the read that matters comes after the system call that delivered the news of the
write (a reply, a pipe), which orders it.
"""

from __future__ import annotations

import mmap
import os
import socket as _socket
import struct
import time
from collections import OrderedDict
from typing import Any, Dict, Generator, List, Optional

from .exceptions import NanaSQLiteConnectionError

MAGIC = 0x31445242414E414E  # "NANABRD1"
LAYOUT_VERSION = 1
HEADER_WORDS = 8

#: The methods whose replies a tracking handle gets in the tracked shapes.
TRACKED = frozenset(("get", "contains", "batch_get"))

#: Defaults: entries and bytes one handle keeps.
DEFAULT_ENTRIES = 10_000
DEFAULT_BYTES = 8 << 20

ABSENT = object()  # the key is known to be missing
EXISTS = object()  # the key is known to exist (from contains); its value is not known
MISS = object()    # the near-cache cannot answer

_monotonic = time.monotonic


class Board:
    """One database file's board, mapped read-only."""

    __slots__ = ("generation", "words", "_mm", "__weakref__")

    def __init__(self, generation: int, words: Any, mm: Any) -> None:
        self.generation = generation
        self.words = words
        self._mm = mm

    @classmethod
    def fetch(cls, offer: Dict[str, Any]) -> "Board":
        """Redeems an ``open`` reply's offer: the side socket, the token, the descriptor."""
        path, token = offer["socket"], offer["token"]
        generation, words = offer["generation"], offer["words"]
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            sock.settimeout(1.0)
            sock.connect(path)
            sock.sendall(b"NBRD" + bytes(token))
            message, fds, _flags, _address = _socket.recv_fds(sock, 256, 1)
        except OSError as exc:
            raise NanaSQLiteConnectionError(f"cannot fetch the near-cache board from {path}: {exc}") from None
        finally:
            sock.close()
        if not message or message[0] != 0 or not fds:
            for fd in fds:
                os.close(fd)
            text = message[1:].decode("utf-8", "replace") if message else "no reply"
            raise NanaSQLiteConnectionError(f"nanad refused the near-cache board: {text}")
        fd = fds[0]
        for extra in fds[1:]:
            os.close(extra)
        try:
            if os.fstat(fd).st_size != words * 8:
                raise NanaSQLiteConnectionError("the near-cache board is not the size its offer says")
            mm = mmap.mmap(fd, words * 8, mmap.MAP_SHARED, mmap.PROT_READ)
        finally:
            os.close(fd)
        view = memoryview(mm).cast("Q")
        magic, version, board_generation, tables, keys = struct.unpack_from("<5Q", mm, 0)
        if magic != MAGIC or version != LAYOUT_VERSION or board_generation != generation or HEADER_WORDS + tables + keys != words:
            view.release()
            mm.close()
            raise NanaSQLiteConnectionError("the near-cache board's header does not match its offer")
        return cls(generation, view, mm)


def _size(value: Any) -> int:
    """A value's rough size in bytes, for the byte limit (computed on a fill, never on a hit)."""
    if isinstance(value, str):
        return 50 + len(value)
    if isinstance(value, (bytes, bytearray)):
        return 33 + len(value)
    if isinstance(value, dict):
        return 64 + sum(_size(k) + _size(v) for k, v in value.items())
    if isinstance(value, list):
        return 56 + sum(8 + _size(v) for v in value)
    return 32


class _Bypassed:
    """What a near-cache reads instead of its board while its connection has a transaction
    open: no word matches any stamp, so every read misses, and the hit path needs no check."""

    __slots__ = ()

    def __getitem__(self, word: int) -> int:
        return -1


BYPASSED = _Bypassed()


class PyHitIndex:
    """The hit of a near-cache, in Python: what ``_hit.Index`` (C) does, used where that module
    was not built. ``index(key)`` is the entry's value (perhaps ``ABSENT``) while the entry is
    good and answers every read (no deadline, a known value), else ``MISS``; it counts hits only
    (the full path, ``NearCache.lookup``, counts the miss)."""

    __slots__ = ("entries", "words", "table_word", "miss", "bypassed", "hits")

    def __init__(self, entries: Dict[str, List[Any]], words: Any, table_word: int, miss: Any) -> None:
        if not (0 <= table_word < len(words)):
            raise ValueError("table_word is outside the board")
        self.entries, self.words, self.table_word, self.miss = entries, words, table_word, miss
        self.bypassed = False
        self.hits = 0

    def __call__(self, key: Any) -> Any:
        try:
            entry = self.entries[key]
        except (KeyError, TypeError):
            return self.miss
        words = self.words
        try:
            if self.bypassed or entry[4] or words[entry[1]] != entry[2] or words[self.table_word] != entry[3]:
                return self.miss
        except (IndexError, TypeError):  # not an entry fill() made
            return self.miss
        entry[7] = True  # used: CLOCK's mark
        self.hits += 1
        return entry[0]


try:
    # The same, in C (_hit.c): a hit at about a third of the Python one's cost.
    from ._hit import Index as HitIndex
except ImportError:  # built without a C compiler
    HitIndex = PyHitIndex  # type: ignore[misc,assignment]


class NearCache:
    """One tracking handle's entries, oldest first, evicted by CLOCK (see the module's doc).

    An entry is a list ``[value, key_word, key_stamp, table_stamp, slow, size, deadline, used]``;
    ``slow`` is true for the entries the fast path (``db[key]``, ``get``, ``aget``) must leave to
    ``lookup``: those with a deadline (TTL tables) and those that know only that a key exists;
    ``used`` is set by every hit and cleared when eviction passes the entry over."""

    __slots__ = ("board", "words", "live_words", "table_word", "entries", "max_entries", "max_bytes", "bytes",
                 "hits", "misses", "invalidations", "fast", "__weakref__")

    def __init__(self, board: Board, table_word: int, bypassed: bool, max_entries: int, max_bytes: int) -> None:
        self.board = board
        self.live_words = board.words
        self.words = BYPASSED if bypassed else board.words
        self.table_word = table_word
        self.entries: "OrderedDict[str, List[Any]]" = OrderedDict()
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.invalidations = 0
        #: The hit the handles' fast paths (``db[key]``, ``get``, ``in``, ``aget``) call.
        self.fast = HitIndex(self.entries, board.words, table_word, MISS)
        self.fast.bypassed = bypassed

    def bypass(self, bypassed: bool) -> None:
        self.words = BYPASSED if bypassed else self.live_words
        self.fast.bypassed = bypassed

    def lookup(self, key: str, need_value: bool = True) -> Any:
        """The cached value, ABSENT or EXISTS, or MISS (the full path, counting)."""
        entry = self.entries.get(key)
        if entry is None:
            self.misses += 1
            return MISS
        words = self.words
        if words[entry[1]] != entry[2] or words[self.table_word] != entry[3] or (entry[6] and entry[6] <= _monotonic()):
            if words is not BYPASSED:
                self._drop(key, entry)
                self.invalidations += 1
            self.misses += 1
            return MISS
        value = entry[0]
        if need_value and value is EXISTS:
            self.misses += 1
            return MISS
        entry[7] = True
        self.hits += 1
        return value

    def _drop(self, key: str, entry: Any) -> None:
        del self.entries[key]
        self.bytes -= entry[5]

    def fill(self, key: str, value: Any, key_word: Any, key_stamp: Any, table_stamp: Any, expires_in: Any, sent_at: float) -> None:
        if key_word is None or key_stamp is None or table_stamp is None:
            return  # inside a transaction: not to be cached
        words = self.words
        if not (HEADER_WORDS <= key_word < len(self.live_words)) or words[key_word] != key_stamp or words[self.table_word] != table_stamp:
            return
        deadline = 0.0
        if expires_in is not None:
            if expires_in <= 0:
                return
            deadline = sent_at + expires_in
        entries = self.entries
        old = entries.get(key)
        if old is not None:
            if value is EXISTS and old[0] is not EXISTS and old[2] == key_stamp and old[3] == table_stamp:
                return  # the value says more
            self._drop(key, old)
        size = 96 + len(key) + (_size(value) if value is not ABSENT and value is not EXISTS else 0)
        if size > self.max_bytes or self.max_entries <= 0:
            return
        # Room is made before the entry goes in, so that the new entry is never the one evicted.
        while entries and (len(entries) >= self.max_entries or self.bytes + size > self.max_bytes):
            oldest, entry = entries.popitem(last=False)
            if entry[7]:
                entry[7] = False  # a second chance: to the back, unmarked
                entries[oldest] = entry
            else:
                self.bytes -= entry[5]
        entries[key] = [value, key_word, key_stamp, table_stamp, bool(deadline) or value is EXISTS, size, deadline, False]
        self.bytes += size

    def clear(self) -> None:
        self.entries.clear()
        self.bytes = 0

    def statistics(self) -> Dict[str, int]:
        return {"hits": self.hits + self.fast.hits, "misses": self.misses, "invalidations": self.invalidations,
                "entries": len(self.entries), "bytes": self.bytes}


def make(reply: Dict[str, Any], conn: Any, max_entries: int, max_bytes: int) -> Optional[NearCache]:
    """The near-cache of a tracking handle from its ``open``/``table`` reply, or None when the
    daemon offered no board or it cannot be mapped (the handle then reads through the daemon)."""
    offer = reply.get("board")
    if not isinstance(offer, dict):
        return None
    boards = conn.near_boards
    generation = offer.get("generation")
    board = boards.get(generation)
    if board is None:
        try:
            board = Board.fetch(offer)
        except (NanaSQLiteConnectionError, KeyError, TypeError, ValueError):
            return None
        boards[generation] = board
    table_word = offer.get("table_word")
    if not isinstance(table_word, int) or not (HEADER_WORDS <= table_word < len(board.words)):
        return None
    near = NearCache(board, table_word, conn.near_bypass, max_entries, max_bytes)
    conn.near_caches.add(near)
    return near


def operation(near: Optional[NearCache], method: str, params: Dict[str, Any]) -> Generator:
    """A tracked ``get``, ``contains`` or ``batch_get`` as a generator of plain requests (driven
    like the operations of _base.py), returning what the untracked method would have.

    ``near`` is the handle's near-cache when the operation began, and the reply fills that one
    even if the handle reconnected meanwhile (and got a new one): stamps are only ever compared
    with words of the board they were read from, and a replaced near-cache is never read again."""
    if method == "get":
        key = params["key"]
        default = params.get("default")
        if near is not None:
            value = near.lookup(key)
            if value is not MISS:
                return default if value is ABSENT else value
        sent_at = _monotonic()
        reply = yield ("get", {"key": key})
        found, value, key_word, key_stamp, table_stamp, expires_in = reply
        if near is not None:
            near.fill(key, value if found else ABSENT, key_word, key_stamp, table_stamp, expires_in, sent_at)
        return value if found else default
    if method == "contains":
        key = params["key"]
        if near is not None:
            value = near.lookup(key, need_value=False)
            if value is not MISS:
                return value is not ABSENT
        sent_at = _monotonic()
        found, key_word, key_stamp, table_stamp, expires_in = yield ("contains", {"key": key})
        if near is not None:
            near.fill(key, EXISTS if found else ABSENT, key_word, key_stamp, table_stamp, expires_in, sent_at)
        return found
    # batch_get
    keys: List[str] = list(params["keys"])
    known: Dict[str, Any] = {}
    missing: List[str] = []
    for key in keys:
        if key in known or key in missing:
            continue
        value = near.lookup(key) if near is not None else MISS
        if value is MISS:
            missing.append(key)
        else:
            known[key] = value
    if missing:
        sent_at = _monotonic()
        values, table_stamp, per_key = yield ("batch_get", {"keys": missing})
        for key in missing:
            known[key] = values[key] if key in values else ABSENT
        if near is not None:
            for key, key_word, key_stamp, expires_in in per_key:
                if key in known:
                    near.fill(key, known[key], key_word, key_stamp, table_stamp, expires_in, sent_at)
    result: Dict[str, Any] = {}
    for key in keys:
        value = known.get(key, ABSENT)
        if value is not ABSENT and key not in result:
            result[key] = value
    return result
