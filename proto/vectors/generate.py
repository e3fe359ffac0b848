#!/usr/bin/env python3
"""Generates proto/vectors/vectors.json, the byte-exact test vectors of proto/PROTOCOL.md.

    python3 proto/vectors/generate.py            # writes vectors.json next to this file
    python3 proto/vectors/generate.py --check    # verifies vectors.json without rewriting it

Needs the `msgpack` PyPI package. Valid values are encoded with msgpack's packer
(`use_bin_type=True`), which picks the smallest encoding exactly as msgpack-c's packer in
nanad does (doubles always as float64 0xcb). Malformed inputs are written by hand; their
`error` is checked against `precheck()`, a Python model of what PROTOCOL.md section 3.4
requires of a frame (the model of Sources/CNanaMsgPack/check.c, counting empty containers
towards the nesting limit as PROTOCOL.md does).

After writing, the file is read back and every vector is verified (see `verify()`).
"""
import json
import math
import pathlib
import struct
import sys

import msgpack

HERE = pathlib.Path(__file__).resolve().parent
OUT = HERE / "vectors.json"

MAX_DEPTH = 260          # containers per frame (PROTOCOL.md 3.4)
JSON_FILE_DEPTH = 256    # vectors.json nests at most this deep (NanaWire's JSONReader can read it)
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
UINT32_MAX = 2**32 - 1
DEFAULT_MAX_FRAME = 16 * 1024 * 1024


def pack(value):
    return msgpack.packb(value, use_bin_type=True)


def frame(body):
    return struct.pack(">I", len(body)) + body


def nested_arrays(levels, innermost=None):
    """`levels` arrays nested in one another; the innermost holds `innermost` (or is empty)."""
    v = [] if innermost is None else [innermost]
    for _ in range(levels - 1):
        v = [v]
    return v


def has_bytes(v):
    if isinstance(v, (bytes, bytearray)):
        return True
    if isinstance(v, list):
        return any(has_bytes(x) for x in v)
    if isinstance(v, dict):
        return any(has_bytes(x) for x in v.values())
    return False


VECTORS = []


def add(name, kind, data, meaning, **extra):
    entry = {"name": name, "kind": kind, "hex": data.hex(), "meaning": meaning}
    entry.update(extra)
    VECTORS.append(entry)


def value(name, v, meaning, nested=None):
    """A value in its canonical (smallest) encoding.

    `nested`: the value is that many arrays nested in one another, the innermost empty. Its
    `json` is left out so that vectors.json itself nests at most JSON_FILE_DEPTH deep.
    """
    if nested is not None:
        assert v == nested_arrays(nested)
        extra = {"nested_arrays": nested}
    else:
        extra = {} if has_bytes(v) else {"json": v}
    add(name, "value", pack(v), meaning, **extra)


def decode_only(name, data, v, meaning):
    """A non-canonical encoding that decoders must accept; nanad re-encodes it canonically."""
    add(name, "value", data, meaning, json=v, decode_only=True, canonical_hex=pack(v).hex())


def message(name, v, meaning, nested=None, **extra):
    """A message. `nested`: its params' `value` is that many nested arrays (json left out)."""
    if nested is not None:
        assert v[3]["value"] == nested_arrays(nested)
        extra["nested_arrays"] = nested
    elif not has_bytes(v):
        extra["json"] = v
    add(name, "message", pack(v), meaning, **extra)


def malformed(name, data, error, meaning):
    extra = {"error": error}
    msgid = peek_request_id(data)
    if msgid is not None:
        extra["msgid"] = msgid
    add(name, "malformed", data, meaning, **extra)


# --- Reference model of the frame pre-check (PROTOCOL.md 3.4) ---------------------------

def precheck(data, max_depth=MAX_DEPTH):
    """Returns None when `data` is exactly one acceptable MessagePack value, else the error name."""
    n = len(data)
    pos = 0
    stack = []  # [items remaining, is_map]; a map counts 2 items (key, value) per entry
    while True:
        if pos >= n:
            return "truncated"
        expecting_key = bool(stack) and stack[-1][1] and stack[-1][0] % 2 == 0
        b = data[pos]
        header, payload, items, kind = 1, 0, 0, "scalar"

        def need(k):
            return n - pos >= k

        if b <= 0x7F or b >= 0xE0:
            pass
        elif 0x80 <= b <= 0x8F:
            kind, items = "map", (b & 0x0F) * 2
        elif 0x90 <= b <= 0x9F:
            kind, items = "array", b & 0x0F
        elif 0xA0 <= b <= 0xBF:
            kind, payload = "str", b & 0x1F
        elif b in (0xC0, 0xC2, 0xC3):
            pass
        elif b in (0xC4, 0xC5, 0xC6, 0xD9, 0xDA, 0xDB, 0xDC, 0xDD, 0xDE, 0xDF):
            width = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4,
                     0xDC: 2, 0xDD: 4, 0xDE: 2, 0xDF: 4}[b]
            if not need(1 + width):
                return "truncated"
            header = 1 + width
            length = int.from_bytes(data[pos + 1:pos + 1 + width], "big")
            if b in (0xC4, 0xC5, 0xC6):
                kind, payload = "bin", length
            elif b in (0xD9, 0xDA, 0xDB):
                kind, payload = "str", length
            elif b in (0xDC, 0xDD):
                kind, items = "array", length
            else:
                kind, items = "map", length * 2
        elif b in (0xCA, 0xCE, 0xD2):
            payload = 4
        elif b in (0xCB, 0xCF, 0xD3):
            payload = 8
        elif b in (0xCC, 0xD0):
            payload = 1
        elif b in (0xCD, 0xD1):
            payload = 2
        else:  # 0xc1, ext 0xc7-0xc9, fixext 0xd4-0xd8
            return "unsupportedType"
        if expecting_key and kind != "str":
            return "nonStringKey"
        after_header = n - pos - header
        if kind in ("str", "bin"):
            if payload > after_header:
                return "lengthExceedsInput"
            if kind == "str":
                try:
                    bytes(data[pos + header:pos + header + payload]).decode("utf-8", errors="strict")
                except UnicodeDecodeError:
                    return "invalidUTF8"
            pos += header + payload
        elif kind in ("array", "map"):
            if items > after_header:  # every item takes at least one byte
                return "lengthExceedsInput"
            if len(stack) >= max_depth:  # this container would be number max_depth + 1
                return "tooDeep"
            pos += header
            if items > 0:
                stack.append([items, kind == "map"])
                continue
        else:
            if not need(header + payload):
                return "truncated"
            pos += header + payload
        while stack:
            stack[-1][0] -= 1
            if stack[-1][0] > 0:
                break
            stack.pop()
        if not stack:
            break
    return None if pos == n else "trailingBytes"


def peek_request_id(data):
    """The msgid nanad reads from a frame starting `[0, msgid, ...` even if it is malformed later."""
    if len(data) < 3:
        return None
    if data[0] == 0x94:
        p = 1
    elif data[0] == 0xDC and int.from_bytes(data[1:3], "big") == 4:
        p = 3
    elif data[0] == 0xDD and len(data) >= 5 and int.from_bytes(data[1:5], "big") == 4:
        p = 5
    else:
        return None
    if p >= len(data) or data[p] != 0x00:
        return None
    p += 1
    if p >= len(data):
        return None
    b = data[p]
    rest = len(data) - p
    if b <= 0x7F:
        return b
    for tag, width in ((0xCC, 1), (0xCD, 2), (0xCE, 4)):
        if b == tag and rest >= 1 + width:
            return int.from_bytes(data[p + 1:p + 1 + width], "big")
    return None


# --- The vectors ------------------------------------------------------------------------

def build():
    # Scalars
    value("nil", None, "nil (JSON null)")
    value("true", True, "true: a Boolean, never the integer 1")
    value("false", False, "false: a Boolean, never the integer 0")
    for v, how in [
        (0, "positive fixint"), (1, "positive fixint"), (127, "largest positive fixint"),
        (128, "uint8"), (255, "largest uint8"), (256, "uint16"), (65535, "largest uint16"),
        (65536, "uint32"), (2**32, "uint64 (2^32)"),
        (INT64_MAX, "uint64 holding Int64.max; decodes as a signed int"),
    ]:
        value(f"int {v}", v, f"integer {v} ({how})")
    value("uint 2^63", 2**63, "2^63 = Int64.max + 1: uint64, the smallest integer kept unsigned")
    value("uint 2^64-1", UINT64_MAX, "2^64-1, the largest integer (uint64, kept unsigned)")
    for v, how in [
        (-1, "negative fixint"), (-32, "smallest negative fixint"), (-33, "int8"),
        (-128, "smallest int8"), (-129, "int16"), (-32768, "smallest int16"),
        (-32769, "int32"), (-(2**31), "smallest int32"), (-(2**31) - 1, "int64"),
        (INT64_MIN, "Int64.min (int64)"),
    ]:
        value(f"int {v}", v, f"integer {v} ({how})")
    value("double 5.0", 5.0, "the double 5.0: float64, distinct from the integer 5, written as 5.0 in JSON")
    value("double 1.5", 1.5, "the double 1.5 (float64)")
    value("double -0.0", -0.0, "negative zero (float64 with the sign bit set), distinct from 0 and from 0.0")
    value("double 1e16", 1e16, "a large double (float64); PROTOCOL.md 4.3 says how it is spelled in stored JSON")
    # Strings and binary
    value("str empty", "", "empty string (fixstr)")
    value("str héllo", "héllo", "UTF-8 string: 'é' is 2 bytes (c3 a9), so 6 bytes (fixstr)")
    value("str 31 bytes", "a" * 31, "31-byte string: the longest fixstr")
    value("str 32 bytes", "b" * 32, "32-byte string: str8 (0xd9)")
    value("str 256 bytes", "c" * 256, "256-byte string: str16 (0xda)")
    value("bin 3 bytes", b"\x01\x02\x03", "binary 01 02 03 (bin8). Crosses the wire but cannot be stored: set refuses it with TypeError")
    # Containers
    value("array empty", [], "empty array (fixarray)")
    value("array mixed", [1, "a", True], "array [1, \"a\", true]")
    value("array 16", list(range(16)), "16 elements: array16 (0xdc), the first count over fixarray")
    value("map empty", {}, "empty map (fixmap)")
    value("map ordered", {"a": 1, "b": [True, None]}, "map {\"a\": 1, \"b\": [true, null]}; keys keep their order")
    value("map order kept", {"b": 1, "a": 2}, "map whose keys are not sorted: {\"b\": 1, \"a\": 2} must come back in this order")
    value("map 16", {f"k{i:02d}": i for i in range(16)}, "16 entries: map16 (0xde)")
    value("nested 254 deep", nested_arrays(254),
          "254 nested arrays, the innermost empty: the deepest value NanaSQLite (orjson) can store, so the deepest set accepts",
          nested=254)
    value("nested 255 deep", nested_arrays(255),
          "255 nested arrays: a valid frame, but set refuses it with NanaSQLiteValidationError", nested=255)
    value("nested 260 deep", nested_arrays(260),
          "260 nested arrays: the deepest frame accepted (the innermost array is empty and counts)", nested=260)
    # Accepted non-canonical encodings
    decode_only("float32 1.5", bytes.fromhex("ca3fc00000"), 1.5,
                "float32 1.5: accepted and widened to the double 1.5; nanad writes it back as float64 (cb)")
    decode_only("uint16 holding 1", bytes.fromhex("cd0001"), 1,
                "the integer 1 in a longer encoding than needed: accepted; nanad writes it back as 01")
    decode_only("int8 holding 1", bytes.fromhex("d001"), 1,
                "a non-negative int8: the same integer 1 as 01")
    decode_only("uint64 holding 2", bytes.fromhex("cf0000000000000002"), 2,
                "uint64 holding 2: normalised to the signed integer 2")
    decode_only("array16 of one", bytes.fromhex("dc000101"), [1],
                "array16 declaring one element: the same as 91 01")
    decode_only("map repeated key", bytes.fromhex("82a16101a16102"), {"a": 2},
                "a key repeated in one map: the last value wins (at the first key's position)")

    # Messages
    get_request = [0, 1, "get", {"db": 1, "key": "k"}]
    message("request get", get_request, "request msgid 1: get key 'k' from handle 1")
    message("response value", [1, 1, None, "v"], "success response to msgid 1: result \"v\"")
    message("response nil", [1, 7, None, None], "success response to msgid 7 whose result is nil (set, close, ...)")
    message("error response KeyError", [1, 2, {"type": "KeyError", "message": "k"}, None],
            "error response to msgid 2: KeyError, message is the key; result is nil")
    message("error response closed", [1, 3, {"type": "NanaSQLiteClosedError",
                                             "message": "Database connection is closed (table: 'data')."}, None],
            "error response to msgid 3: the handle was closed")
    message("notification error", [2, "error", {"type": "ProtocolError",
                                                "message": "frame of 4294967295 bytes is over the maximum of 16777216 bytes"}],
            "the notification nanad sends when it cannot read a msgid (here: an oversized frame), just before it closes the connection")
    message("request hello", [0, 0, "hello", {"protocol": 1, "client": "vectors"}],
            "handshake: msgid 0, protocol version 1, optional client name")
    message("response hello", [1, 0, None, {"server": "nanad", "version": "0.1.0", "protocol": 1}],
            "handshake reply (the version string is the daemon's and changes between releases)")
    message("request open", [0, 2, "open", {"db_path": "app.db", "table": "users"}],
            "open table 'users' of the file app.db in the data folder")
    message("response open", [1, 2, None, {"db": 1, "table": "users"}],
            "open's result: handle 1 for table 'users'")
    message("request set", [0, 3, "set", {"db": 1, "key": "profile",
                                          "value": {"name": "Ada", "age": 36, "admin": True, "score": 5.0}}],
            "set a map value; stored as the JSON text {\"name\":\"Ada\",\"age\":36,\"admin\":true,\"score\":5.0}")
    # The near-cache (PROTOCOL.md section 10).
    token = bytes(range(0xA0, 0xB0))
    message("request open near_cache", [0, 20, "open", {"db_path": "app.db", "near_cache": True}],
            "request msgid 20: open app.db's data table as a tracking handle (10.2)")
    message("response open with board", [1, 20, None, {"db": 4, "table": "data", "board": {
                "socket": "nanad-data/nanad.sock.board", "token": token,
                "generation": 0xF8A66BE5B599BB38, "words": 65800, "table_word": 8}}],
            "success response to msgid 20: handle 4, and the board offer: fetch it from socket with token (16 bytes, single use); generation > Int64.max, so a uint64 (10.2, 10.3)")
    message("response open near_cache refused", [1, 21, None, {"db": 5, "table": "data", "near_cache_refused": "the near-cache is off on this nanad"}],
            "success response to msgid 21: a tracking handle without a board; its replies still have the tracked shapes (10.2)")
    message("response tracked get found", [1, 22, None, [True, {"theme": "dark"}, 10153, 3, 1, None]],
            "tracked get (10.4): found, the value, key_word 10153 with key_stamp 3, table_stamp 1, no expiry")
    message("response tracked get missing ttl", [1, 23, None, [False, None, 22379, 0, 0, 0.25]],
            "tracked get (10.4): missing (the client answers its default), stamps, and a TTL table's entry expires in 0.25 s")
    message("response tracked get in transaction", [1, 24, None, [True, "v", None, None, None, None]],
            "tracked get inside the session's transaction (10.4): no stamps, so nothing is cached")
    message("response tracked contains", [1, 25, None, [False, 51442, 0, 1, None]],
            "tracked contains (10.4): not there, key_word 51442, key_stamp 0, table_stamp 1")
    message("response tracked batch_get", [1, 26, None, [{"k": 1}, 1, [["k", 10153, 1, None], ["x", 22379, 0, None]]]],
            "tracked batch_get (10.4): the values found, the table stamp, and every key asked for with its word and stamp (x: absent)")
    message("request ping max msgid", [0, UINT32_MAX, "ping", {}],
            "the largest msgid, 4294967295 (uint32); params is an empty map, never omitted")
    message("response batch_update_partial",
            [1, 4, None, {"blob": "Skipped key 'blob' during partial batch update: Object of type bytes is not JSON serializable"}],
            "batch_update_partial's result: the refused keys with their reasons (empty map when all were written)")
    message("request set 254 deep", [0, 5, "set", {"db": 1, "key": "deep", "value": nested_arrays(254)}],
            "set whose value is 254 nested arrays: the envelope adds 2, the frame nests 256 deep, within the 260 limit",
            nested=254)
    message("error response to malformed request",
            [1, 1, {"type": "ProtocolError", "message": "malformed frame: MessagePack map key at byte 8 is not a string"}, None],
            "what nanad answers to the 'request with int key in params' malformed vector, before closing the connection")

    # Valid MessagePack that is not a valid client message: ProtocolError, then the connection closes.
    message("refused params not map", [0, 1, "get", ["k"]],
            "params must be a map: refused with an error response to msgid 1, then the connection is closed",
            refused="ProtocolError", msgid=1)
    message("refused method not str", [0, 1, 5, {}],
            "the method must be a string: error response to msgid 1, then close",
            refused="ProtocolError", msgid=1)
    message("refused msgid too large", [0, 2**32, "ping", {}],
            "msgid over 2^32-1: no msgid can be read, so an error notification, then close",
            refused="ProtocolError")
    message("refused request of 3", [0, 1, "ping"],
            "a request must have 4 elements: error notification, then close",
            refused="ProtocolError")
    message("refused not an array", {"method": "ping"},
            "a message must be an array: error notification, then close",
            refused="ProtocolError")
    message("refused unknown message type", [3, 1, "ping", {}],
            "message type 3 does not exist: error notification, then close",
            refused="ProtocolError")
    message("refused response from client", [1, 1, None, None],
            "clients send requests, not responses: error notification, then close",
            refused="ProtocolError")

    # Frames
    add("frame request get", "frame", frame(pack(get_request)),
        "the 'request get' message as a frame: 4-byte big-endian body length, then the body")
    add("frame response value", "frame", frame(pack([1, 1, None, "v"])),
        "the 'response value' message as a frame")
    add("frame notification error", "frame", frame(pack(VECTORS_BY_NAME("notification error"))),
        "the 'notification error' message as a frame")
    add("frame empty map", "frame", frame(pack({})),
        "a 1-byte body: the length prefix counts the body only")

    # Malformed frame bodies
    malformed("array32 declaring 4294967295", bytes.fromhex("ddffffffff"), "lengthExceedsInput",
              "5 bytes whose array header declares 4294967295 elements: refused before anything is allocated")
    malformed("map32 declaring 2^32-1 entries", bytes.fromhex("df") + b"\xff" * 4 + b"\x00" * 16, "lengthExceedsInput",
              "a map declaring 4294967295 entries (8589934590 items) with 16 bytes left")
    malformed("str declaring more than present", bytes.fromhex("a56865"), "lengthExceedsInput",
              "fixstr declaring 5 bytes with only 2 present ('he')")
    malformed("str8 declaring 255", bytes.fromhex("d9ff") + b"abc", "lengthExceedsInput",
              "str8 declaring 255 bytes with 3 present")
    malformed("bin32 declaring 2^32-1", bytes.fromhex("c6ffffffff00"), "lengthExceedsInput",
              "bin32 declaring 4294967295 bytes with 1 present")
    malformed("array declaring 3 with 2 left", bytes.fromhex("930101"), "lengthExceedsInput",
              "fixarray of 3 with only 2 bytes after it")
    malformed("empty body", b"", "truncated", "a frame of length 0: no value at all")
    malformed("str8 header cut", bytes.fromhex("d9"), "truncated", "str8 type byte without its length byte")
    malformed("float64 cut", bytes.fromhex("cb4014"), "truncated", "float64 with 2 of its 8 bytes")
    malformed("uint32 cut", bytes.fromhex("ce0001"), "truncated", "uint32 with 2 of its 4 bytes")
    malformed("nested items missing", bytes.fromhex("93920101"), "truncated",
              "[[1, 1], ...] where the outer array's 2nd and 3rd elements are missing")
    malformed("request cut inside params", pack(get_request)[:12], "truncated",
              "the 'request get' body cut after params' first entry (12 of 19 bytes): msgid 1 can still be read")
    malformed("map with int key", bytes.fromhex("810101"), "nonStringKey", "map {1: 1}: map keys must be strings")
    malformed("request with int key in params", bytes.fromhex("9400") + b"\x01" + pack("get") + bytes.fromhex("810101"),
              "nonStringKey", "[0, 1, \"get\", {1: 1}]: refused; msgid 1 is readable, so an error response, then close")
    malformed("nested map with nil key", bytes.fromhex("91") + bytes.fromhex("81c001"), "nonStringKey",
              "[{nil: 1}]: every map in the frame must have string keys, not only params")
    malformed("map with bin key", bytes.fromhex("81c401610001"), "nonStringKey",
              "map whose key is bin 'a': bin is not a string")
    malformed("invalid UTF-8", bytes.fromhex("a2c328"), "invalidUTF8", "str c3 28: c3 starts a 2-byte sequence that 28 does not continue")
    malformed("UTF-8 overlong", bytes.fromhex("a2c080"), "invalidUTF8", "str c0 80: overlong encoding of NUL")
    malformed("UTF-8 surrogate", bytes.fromhex("a3eda080"), "invalidUTF8", "str ed a0 80: the surrogate U+D800")
    malformed("UTF-8 over U+10FFFF", bytes.fromhex("a4f4908080"), "invalidUTF8", "str f4 90 80 80: U+110000")
    malformed("UTF-8 cut sequence", bytes.fromhex("a1e2"), "invalidUTF8", "str e2: a 3-byte sequence with 1 byte")
    malformed("invalid UTF-8 in map key", bytes.fromhex("81a1ff01"), "invalidUTF8", "map whose key is the str ff")
    malformed("fixext1", bytes.fromhex("d40100"), "unsupportedType", "fixext 1 (type 1, data 00): ext types are refused")
    malformed("ext8", bytes.fromhex("c70001"), "unsupportedType", "ext8 of 0 bytes, type 1")
    malformed("ext timestamp", bytes.fromhex("d6ff00000000"), "unsupportedType", "fixext 4 type -1 (timestamp): refused too")
    malformed("never used 0xc1", bytes.fromhex("c1"), "unsupportedType", "the byte 0xc1, which MessagePack never uses")
    malformed("ext inside request", bytes.fromhex("9400") + b"\x09" + pack("set") + bytes.fromhex("81a176d40100"),
              "unsupportedType", "[0, 9, \"set\", {\"v\": ext}]: msgid 9 readable, error response then close")
    malformed("two values", bytes.fromhex("c0c0"), "trailingBytes", "two nils: a frame holds exactly one value")
    malformed("request then extra byte", pack(get_request) + b"\x00", "trailingBytes",
              "the 'request get' body followed by one more byte")
    malformed("nested 261 deep", bytes([0x91]) * 260 + bytes([0x90]), "tooDeep",
              "261 nested arrays, the innermost empty: one level over the 260 limit")
    malformed("nested 261 deep, innermost nil", bytes([0x91]) * 261 + bytes([0xC0]), "tooDeep",
              "261 nested arrays around a nil")
    malformed("nested 300 deep", bytes([0x91]) * 299 + bytes([0x90]), "tooDeep", "300 nested arrays")
    malformed("nested maps 300 deep", b"".join([bytes.fromhex("81a16b")] * 300) + b"\xc0", "tooDeep",
              "{\"k\": {\"k\": ... nil}} 300 maps deep")
    malformed("request with value 300 deep",
              bytes.fromhex("9400") + b"\x06" + pack("set") + bytes.fromhex("83") + pack("db") + b"\x01"
              + pack("key") + pack("k") + pack("value") + bytes([0x91]) * 299 + bytes([0x90]),
              "tooDeep", "set whose value nests 300 deep: msgid 6 readable, error response then close")


def VECTORS_BY_NAME(name):
    for v in VECTORS:
        if v["name"] == name:
            return msgpack.unpackb(bytes.fromhex(v["hex"]))
    raise KeyError(name)


# --- Verification -----------------------------------------------------------------------

def same(a, b):
    """Strict equality: True is not 1, 5.0 is not 5, -0.0 is not 0.0, map order counts."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a.keys()) == list(b.keys()) and all(same(a[k], b[k]) for k in a)
    return a == b


def unpack(data):
    return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)


def json_depth(v):
    if isinstance(v, list):
        return 1 + max((json_depth(x) for x in v), default=0)
    if isinstance(v, dict):
        return 1 + max((json_depth(x) for x in v.values()), default=0)
    return 0


def verify(vectors):
    assert json_depth(vectors) <= JSON_FILE_DEPTH, "vectors.json nests too deep"
    names = set()
    for v in vectors:
        name = v["name"]
        assert name not in names, f"duplicate name {name}"
        names.add(name)
        assert v["kind"] in ("value", "message", "frame", "malformed"), name
        assert v["hex"] == v["hex"].lower(), name
        data = bytes.fromhex(v["hex"])
        if v["kind"] == "malformed":
            got = precheck(data)
            assert got == v["error"], f"{name}: precheck says {got}, vector says {v['error']}"
            assert peek_request_id(data) == v.get("msgid"), name
            continue
        body = data
        if v["kind"] == "frame":
            assert len(data) >= 4 and int.from_bytes(data[:4], "big") == len(data) - 4, name
            body = data[4:]
            assert len(body) <= DEFAULT_MAX_FRAME, name
        assert precheck(body) is None, f"{name}: precheck refuses a valid vector: {precheck(body)}"
        decoded = unpack(body)
        if "json" in v:
            assert same(decoded, v["json"]), f"{name}: decodes to {decoded!r}, json says {v['json']!r}"
        if "nested_arrays" in v:
            inner = decoded if v["kind"] == "value" else decoded[3]["value"]
            assert same(inner, nested_arrays(v["nested_arrays"])), name
        if v.get("decode_only"):
            assert pack(decoded).hex() == v["canonical_hex"], name
            assert v["canonical_hex"] != v["hex"], name
        else:
            assert pack(decoded) == body, f"{name}: not the canonical encoding"
        if v["kind"] in ("value", "message") and "json" not in v and "nested_arrays" not in v:
            assert has_bytes(decoded), f"{name}: json missing for a JSON-representable value"
        if "refused" in v:
            assert v["kind"] == "message" and v["refused"] == "ProtocolError", name
            assert peek_request_id(body) == v.get("msgid"), name
        if v["kind"] == "message" and "refused" not in v:
            assert isinstance(decoded, list) and decoded and decoded[0] in (0, 1, 2), name
    return len(vectors)


def main():
    if "--check" in sys.argv[1:]:
        vectors = json.loads(OUT.read_text(encoding="utf-8"))
        print(f"{verify(vectors)} vectors verified in {OUT}")
        return
    build()
    # One vector per line: easy to read and to diff.
    text = "[\n" + ",\n".join(json.dumps(v, ensure_ascii=False) for v in VECTORS) + "\n]\n"
    OUT.write_text(text, encoding="utf-8")
    vectors = json.loads(OUT.read_text(encoding="utf-8"))
    count = verify(vectors)
    kinds = {}
    for v in vectors:
        kinds[v["kind"]] = kinds.get(v["kind"], 0) + 1
    print(f"wrote {count} vectors to {OUT}: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))


if __name__ == "__main__":
    main()
