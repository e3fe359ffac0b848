"""Frames and values of nanad's wire protocol (proto/PROTOCOL.md sections 2-5).

A frame is a 4-byte big-endian body length followed by one MessagePack value. Requests are
``[0, msgid, method, params]``; the daemon answers ``[1, msgid, error, result]`` and, just
before it closes a connection over a protocol error, sends ``[2, "error", {...}]``.

Values are packed with ``use_bin_type=True`` (``bytes`` travel as bin, ``str`` as str) and
unpacked with ``raw=False``; ``True`` stays a bool and ``5.0`` a float in both directions, and
tuples go out as arrays. Before a request is packed, :func:`check_params` refuses what the
daemon would answer by *closing the connection* (section 3.4) rather than with an error reply:
map keys that are not ``str`` and values nested past the frame's depth budget. Those become
local exceptions, so one bad value never costs the other calls sharing the connection.
"""

from __future__ import annotations

import os
import struct
import uuid
from typing import Any, Dict, List, Tuple

import msgpack

from .exceptions import NanaSQLiteProtocolError, NanaSQLiteValidationError

PROTOCOL_VERSION = 1
CLIENT_NAME = "nanad-client-python"
DEFAULT_SOCKET = "nanad-data/nanad.sock"
SOCKET_ENV = "NANAD_SOCKET"
MAX_FRAME_ENV = "NANAD_MAX_FRAME_SIZE"
DEFAULT_MAX_FRAME = 16 * 1024 * 1024  # nanad's default --max-frame-size (2.2)

REQUEST, RESPONSE, NOTIFICATION = 0, 1, 2
MSGID_LIMIT = 2**32  # msgids are in [0, 2^32-1] (5.1)

# Containers a frame may nest (3.4) is 260: the request array and the params map take two,
# so a parameter's value may nest 258 deep. Values deeper than 254 cannot be stored (4.2);
# the daemon answers those up to 258 with NanaSQLiteValidationError, and this client answers
# the deeper ones the same way without sending them.
_MAX_PARAM_DEPTH = 258
_DEPTH_MESSAGE = "value nests deeper than 254 levels, which NanaSQLite cannot store"

_HEADER = struct.Struct(">I")
_CONTAINERS = (dict, list, tuple)


def socket_path(explicit: Any = None) -> str:
    """The socket: the ``socket`` argument, else ``$NANAD_SOCKET``, else nanad's default."""
    if explicit is not None:
        return os.fspath(explicit)
    env = os.environ.get(SOCKET_ENV)
    if env:
        return env
    return DEFAULT_SOCKET


def max_frame_size() -> int:
    """The largest request body this client sends: ``$NANAD_MAX_FRAME_SIZE`` (set it when the
    daemon runs with another ``--max-frame-size``), else nanad's default of 16 MiB."""
    try:
        return int(os.environ.get(MAX_FRAME_ENV, "")) or DEFAULT_MAX_FRAME
    except ValueError:
        return DEFAULT_MAX_FRAME


_limits = [max_frame_size()]  # read once, at import


def check_params(params: Dict[str, Any]) -> None:
    """Refuses locally what would make the daemon close the connection (see module doc)."""
    for value in params.values():
        if isinstance(value, _CONTAINERS):
            _check_container(value)


def _check_container(root: Any) -> None:
    stack: List[Tuple[Any, int]] = [(root, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        if depth > _MAX_PARAM_DEPTH:
            raise NanaSQLiteValidationError(_DEPTH_MESSAGE)
        if isinstance(value, dict):
            for k, item in value.items():
                if not isinstance(k, str):
                    raise TypeError(f"Dict key must be str, not {type(k).__name__}")
                if isinstance(item, _CONTAINERS):
                    push((item, depth + 1))
        else:
            for item in value:
                if isinstance(item, _CONTAINERS):
                    push((item, depth + 1))


def encode_request(msgid: int, method: str, params: Dict[str, Any]) -> bytes:
    """One request frame (length prefix and body). Raises TypeError/ValidationError locally."""
    check_params(params)
    try:
        body = msgpack.packb([REQUEST, msgid, method, params], use_bin_type=True)
    except OverflowError as exc:  # an int outside [-2^63, 2^64-1]; orjson raises TypeError too
        raise TypeError(f"Integer exceeds 64-bit range: {exc}") from None
    except UnicodeEncodeError as exc:  # a str with lone surrogates is not UTF-8 (3.4)
        raise TypeError(f"str is not valid UTF-8: {exc}") from None
    except ValueError as exc:  # msgpack's own nesting limit (not reached after check_params)
        raise NanaSQLiteValidationError(str(exc)) from None
    if len(body) > _limits[0]:
        # The daemon would answer by closing the connection (2.2): refuse it here instead.
        raise NanaSQLiteProtocolError(
            f"frame of {len(body)} bytes is over the maximum of {_limits[0]} bytes "
            f"(nanad's --max-frame-size; set ${MAX_FRAME_ENV} if the daemon allows more)"
        )
    return _HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Any:
    return msgpack.unpackb(body, raw=False, strict_map_key=False, use_list=True)


class FrameBuffer:
    """Accumulates received bytes and yields complete frame bodies."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> List[bytes]:
        buf = self._buf
        buf += data
        bodies: List[bytes] = []
        start = 0
        size = len(buf)
        while size - start >= 4:
            (length,) = _HEADER.unpack_from(buf, start)
            end = start + 4 + length
            if end > size:
                break
            bodies.append(bytes(buf[start + 4:end]))
            start = end
        if start:
            del buf[:start]
        return bodies

    def pending_bytes(self) -> int:
        return len(self._buf)


# A `default` the daemon hands back when a key is missing (get, get_fresh, pop), so that the
# client can tell "missing" from a stored value and return the caller's own default object.
# It is a map no program stores by accident: a fixed key holding a per-process random token.
_MISSING_KEY = "__nanad_client_missing__"
MISSING_WIRE: Dict[str, str] = {_MISSING_KEY: uuid.uuid4().hex}


def is_missing(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and value.get(_MISSING_KEY) == MISSING_WIRE[_MISSING_KEY]
