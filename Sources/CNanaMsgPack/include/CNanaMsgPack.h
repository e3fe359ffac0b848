#ifndef NANA_MSGPACK_H
#define NANA_MSGPACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

/// Deepest container nesting a frame may have. The decoder's stack is sized for it.
#define NANA_MSGPACK_MAX_DEPTH 260

typedef enum {
    NANA_CHECK_OK = 0,
    NANA_CHECK_TRUNCATED = 1,          // input ends inside a value
    NANA_CHECK_LENGTH_EXCEEDS_INPUT = 2, // a declared length/count is larger than the bytes that remain
    NANA_CHECK_TOO_DEEP = 3,           // containers nest deeper than max_depth
    NANA_CHECK_INVALID_UTF8 = 4,       // a str is not valid UTF-8
    NANA_CHECK_NON_STRING_KEY = 5,     // a map key is not a str
    NANA_CHECK_UNSUPPORTED_TYPE = 6,   // ext types and the never-used byte 0xc1
    NANA_CHECK_TRAILING_BYTES = 7,     // more than one value in the input
} nana_check_status;

typedef struct {
    nana_check_status status;
    size_t offset;      // where the problem was found
    size_t value_count; // values seen (containers and scalars): bounds what decoding allocates
} nana_check_result;

/// Walks one MessagePack value without allocating and checks it is safe to hand to msgpack-c.
nana_check_result nana_msgpack_check(const uint8_t *data, size_t len, unsigned max_depth);

/// Decodes one value with msgpack-c's unpack template, instantiated with a
/// NANA_MSGPACK_MAX_DEPTH-deep stack (the library build stops at 32).
/// Returns 1 on success, 0 if incomplete, negative on error. Run nana_msgpack_check first.
int nana_msgpack_unpack(const char *data, size_t len, msgpack_zone *zone, msgpack_object *out);

/// Best effort: reads the msgid of a request (`[0, msgid, ...]`) from the start of a frame
/// that may be malformed further on, so that its sender can get an error response.
bool nana_msgpack_peek_request_id(const uint8_t *data, size_t len, uint32_t *msgid);

/// Points a packer at an sbuffer (msgpack_sbuffer_write is inline, so Swift cannot take its address).
void nana_packer_init_sbuffer(msgpack_packer *packer, msgpack_sbuffer *buffer);

#endif
