// What a near-cache board needs from C, because Swift cannot express it:
// - acquire loads and release stores on 64-bit words of a shared mapping (Swift's
//   Synchronization.Atomic lives only in Swift-owned storage, not in memory another process
//   maps, and swift-atomics is not among this project's dependencies);
// - passing a descriptor over a Unix socket (SCM_RIGHTS): the CMSG_* accessors are macros
//   Swift does not import, and SwiftNIO carries no ancillary data on stream sockets;
// - connecting and listening on the board's side socket, so that the daemon, the client and
//   the tools fill a `sockaddr_un` (a fixed C array in Swift) in one place.
#ifndef CNANABOARD_H
#define CNANABOARD_H

#include <stddef.h>
#include <stdint.h>

/// A board's layout (proto/PROTOCOL.md §10): 64-bit little-endian words. The header, then
/// the table stamps, then the key stamps; replies name stamps by word index.
enum {
    NANA_BOARD_MAGIC_WORD = 0,
    NANA_BOARD_VERSION_WORD = 1,
    NANA_BOARD_GENERATION_WORD = 2,
    NANA_BOARD_TABLE_SLOTS_WORD = 3,
    NANA_BOARD_KEY_SLOTS_WORD = 4,
    NANA_BOARD_HEADER_WORDS = 8,
    NANA_BOARD_LAYOUT_VERSION = 1,
};
/// "NANABRD1" as the bytes of a little-endian word.
#define NANA_BOARD_MAGIC 0x31445242414E414EULL

static inline uint64_t nana_board_load(const uint64_t *word) {
    return __atomic_load_n(word, __ATOMIC_ACQUIRE);
}

static inline void nana_board_store(uint64_t *word, uint64_t value) {
    __atomic_store_n(word, value, __ATOMIC_RELEASE);
}

static inline uint64_t nana_board_increment(uint64_t *word) {
    return __atomic_add_fetch(word, 1, __ATOMIC_RELEASE);
}

/// A Unix stream socket connected to `path` (close-on-exec), or -1 with errno set
/// (ENAMETOOLONG for a path that does not fit `sun_path`).
int nana_unix_connect(const char *path);

/// A Unix stream socket bound to `path` (created with permissions `0777 & ~mask`, the mask set
/// only around bind) and listening, close-on-exec; or -1 with errno set.
int nana_unix_listen(const char *path, unsigned mask, int backlog);

/// Sends `length` bytes of `data` with descriptor `fd` attached (SCM_RIGHTS), or without one
/// when `fd` < 0. Returns the bytes sent, or -1 with errno set.
long nana_send_with_descriptor(int socket, const void *data, size_t length, int fd);

/// Receives up to `capacity` bytes into `data`; a descriptor that came with them is stored in
/// `*fd` (else -1); a message whose descriptors were cut short (MSG_CTRUNC) closes what did
/// arrive and fails with EMSGSIZE. Returns the bytes received, or -1 with errno set.
long nana_receive_with_descriptor(int socket, void *data, size_t capacity, int *fd);

#endif
