// The bounds pre-check. msgpack-c trusts its input: an array header that declares 4 billion
// elements makes it allocate gigabytes before it reads one element, and its decoder does not
// validate UTF-8. No library on this machine checks a MessagePack buffer without decoding it,
// so this walker is written by hand: iterative (no recursion), allocation-free, and it touches
// each byte once.
#include "CNanaMsgPack.h"
#include <string.h>

static inline uint16_t be16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static bool valid_utf8(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t need; uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; }
        else return false;
        if (n - i <= need) return false;
        for (size_t k = 1; k <= need; k++) {
            uint8_t cc = s[i + k];
            if ((cc & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3F);
        }
        if (need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) return false;
        if (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)) return false;
        i += need + 1;
    }
    return true;
}

typedef struct {
    uint64_t remaining; // items still expected in this container (map: keys and values)
    bool is_map;
} frame_t;

nana_check_result nana_msgpack_check(const uint8_t *data, size_t len, unsigned max_depth) {
    nana_check_result r = { NANA_CHECK_OK, 0, 0 };
    if (max_depth > NANA_MSGPACK_MAX_DEPTH) max_depth = NANA_MSGPACK_MAX_DEPTH;
    frame_t stack[NANA_MSGPACK_MAX_DEPTH + 1];
    unsigned depth = 0;
    size_t pos = 0;
    bool done = false;

#define FAIL(st) do { r.status = (st); r.offset = pos; return r; } while (0)
#define NEED(n) do { if (len - pos < (size_t)(n)) FAIL(NANA_CHECK_TRUNCATED); } while (0)

    while (!done) {
        if (pos >= len) FAIL(NANA_CHECK_TRUNCATED);
        // A map's keys sit at even positions counted from the end of its item count.
        bool expecting_key = depth > 0 && stack[depth - 1].is_map && (stack[depth - 1].remaining % 2 == 0);
        uint8_t b = data[pos];
        size_t header = 1;
        uint64_t payload = 0;      // bytes of str/bin/number body after the header
        uint64_t items = 0;        // container items (map: 2 per entry)
        int kind = 0;              // 0 scalar, 1 str, 2 bin, 3 array, 4 map
        r.value_count++;

        if (b <= 0x7f || b >= 0xe0) { /* fixint */ }
        else if (b >= 0x80 && b <= 0x8f) { kind = 4; items = (uint64_t)(b & 0x0f) * 2; }
        else if (b >= 0x90 && b <= 0x9f) { kind = 3; items = b & 0x0f; }
        else if (b >= 0xa0 && b <= 0xbf) { kind = 1; payload = b & 0x1f; }
        else switch (b) {
            case 0xc0: case 0xc2: case 0xc3: break;
            case 0xc4: NEED(2); kind = 2; header = 2; payload = data[pos + 1]; break;
            case 0xc5: NEED(3); kind = 2; header = 3; payload = be16(data + pos + 1); break;
            case 0xc6: NEED(5); kind = 2; header = 5; payload = be32(data + pos + 1); break;
            case 0xca: payload = 4; break;
            case 0xcb: payload = 8; break;
            case 0xcc: case 0xd0: payload = 1; break;
            case 0xcd: case 0xd1: payload = 2; break;
            case 0xce: case 0xd2: payload = 4; break;
            case 0xcf: case 0xd3: payload = 8; break;
            case 0xd9: NEED(2); kind = 1; header = 2; payload = data[pos + 1]; break;
            case 0xda: NEED(3); kind = 1; header = 3; payload = be16(data + pos + 1); break;
            case 0xdb: NEED(5); kind = 1; header = 5; payload = be32(data + pos + 1); break;
            case 0xdc: NEED(3); kind = 3; header = 3; items = be16(data + pos + 1); break;
            case 0xdd: NEED(5); kind = 3; header = 5; items = be32(data + pos + 1); break;
            case 0xde: NEED(3); kind = 4; header = 3; items = (uint64_t)be16(data + pos + 1) * 2; break;
            case 0xdf: NEED(5); kind = 4; header = 5; items = (uint64_t)be32(data + pos + 1) * 2; break;
            default: FAIL(NANA_CHECK_UNSUPPORTED_TYPE); // 0xc1, ext 0xc7-0xc9, fixext 0xd4-0xd8
        }
        if (expecting_key && kind != 1) FAIL(NANA_CHECK_NON_STRING_KEY);

        if (len - pos < header) FAIL(NANA_CHECK_TRUNCATED);
        size_t after_header = len - pos - header;
        if (kind == 1 || kind == 2) {
            if (payload > after_header) FAIL(NANA_CHECK_LENGTH_EXCEEDS_INPUT);
            if (kind == 1 && !valid_utf8(data + pos + header, (size_t)payload)) FAIL(NANA_CHECK_INVALID_UTF8);
            pos += header + (size_t)payload;
        } else if (kind == 3 || kind == 4) {
            // Every item takes at least one byte, so a count larger than what remains is a lie.
            if (items > after_header) FAIL(NANA_CHECK_LENGTH_EXCEEDS_INPUT);
            // Empty containers count as a level too (msgpack-c's decoder stacks them).
            if (depth >= max_depth) FAIL(NANA_CHECK_TOO_DEEP);
            pos += header;
            if (items > 0) {
                stack[depth].remaining = items;
                stack[depth].is_map = (kind == 4);
                depth++;
                continue; // the container is counted as consumed when its last item is
            }
        } else {
            NEED(header + payload);
            pos += header + (size_t)payload;
        }
        // One value finished: pop every container it completes.
        for (;;) {
            if (depth == 0) { done = true; break; }
            if (--stack[depth - 1].remaining > 0) break;
            depth--;
        }
    }
    if (pos != len) FAIL(NANA_CHECK_TRAILING_BYTES);
    r.offset = pos;
    return r;
#undef FAIL
#undef NEED
}

bool nana_msgpack_peek_request_id(const uint8_t *data, size_t len, uint32_t *msgid) {
    if (len < 3) return false;
    // fixarray of 4 (or array16/32 declaring 4), then type 0, then msgid as an unsigned int
    size_t p;
    if (data[0] == 0x94) p = 1;
    else if (data[0] == 0xdc && len >= 3 && be16(data + 1) == 4) p = 3;
    else if (data[0] == 0xdd && len >= 5 && be32(data + 1) == 4) p = 5;
    else return false;
    if (p >= len || data[p] != 0x00) return false;
    p++;
    if (p >= len) return false;
    // Any integer encoding of a value in 0 ... 2^32-1, as the message parser accepts.
    uint8_t b = data[p];
    size_t rest = len - p - 1;
    const uint8_t *v = data + p + 1;
    uint64_t u; int64_t s;
    if (b <= 0x7f) { *msgid = b; return true; }
    switch (b) {
        case 0xcc: if (rest < 1) return false; *msgid = v[0]; return true;
        case 0xcd: if (rest < 2) return false; *msgid = be16(v); return true;
        case 0xce: if (rest < 4) return false; *msgid = be32(v); return true;
        case 0xcf: if (rest < 8) return false; u = ((uint64_t)be32(v) << 32) | be32(v + 4);
                   if (u > 0xffffffffu) return false; *msgid = (uint32_t)u; return true;
        case 0xd0: if (rest < 1) return false; s = (int8_t)v[0]; break;
        case 0xd1: if (rest < 2) return false; s = (int16_t)be16(v); break;
        case 0xd2: if (rest < 4) return false; s = (int32_t)be32(v); break;
        case 0xd3: if (rest < 8) return false; s = (int64_t)(((uint64_t)be32(v) << 32) | be32(v + 4)); break;
        default: return false;
    }
    if (s < 0 || s > 0xffffffffLL) return false;
    *msgid = (uint32_t)s;
    return true;
}

void nana_packer_init_sbuffer(msgpack_packer *packer, msgpack_sbuffer *buffer) {
    msgpack_packer_init(packer, buffer, msgpack_sbuffer_write);
}
