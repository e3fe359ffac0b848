// A fault-injecting SQLite VFS: a thin shim over the default unix VFS, in the spirit of
// SQLite's own test_vfs.c and test_vfstrace.c, for nanad's I/O-error tests.
//
// Loaded into a real nanad with LD_PRELOAD and NANA_FAULT_CONTROL=<control file>, it
// registers itself as SQLite's default VFS before nanad opens anything. Every file operation
// then goes to the unix VFS unchanged, except that the control file can arm one fault:
//
//     <op> <nth> <code> <repeat> <file>
//
//   op      read | write | sync | lock | shmlock | truncate
//           (in WAL mode a transaction's locks are shmlock calls on the main file; lock is
//           the file lock, taken as a connection first reads)
//   nth     the fault fires on the nth matching call after the rule was written (1: the next)
//   code    ioerr (the op's SQLITE_IOERR_* code) | full (SQLITE_FULL)
//   repeat  once | always (every matching call from the nth on, until the rule changes)
//   file    a suffix the file's name must end with: ".db", "-wal", "-shm" or "*" for any
//
// An empty or missing control file injects nothing. The file is looked at (stat) on every
// intercepted call, and read again when it changed, which resets the count. Each injected
// fault appends "<op> <code> <file name>" to <control file>.log, so that a test can tell a
// fault it armed from one that never fired.
//
// Written by hand: no maintained library offers a loadable fault VFS for a stock libsqlite3
// (SQLite's test_vfs.c needs Tcl and a testfixture build).
#define _GNU_SOURCE
#include "CNanaFaultVFS.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum fault_op { OP_NONE, OP_READ, OP_WRITE, OP_SYNC, OP_LOCK, OP_SHMLOCK, OP_TRUNCATE };

struct fault_rule {
    enum fault_op op;
    long nth;
    int full;
    int always;
    char suffix[64];
};

static struct {
    pthread_mutex_t lock;
    char control[4096];
    char log[4200];
    struct timespec mtime;
    off_t size;
    ino_t inode;
    struct fault_rule rule;
    long seen;
} state = { .lock = PTHREAD_MUTEX_INITIALIZER };

static sqlite3_vfs *base_vfs;
static sqlite3_vfs fault_vfs;

typedef struct {
    sqlite3_file file;
    sqlite3_file *real;
    char name[512];
} fault_file;

static enum fault_op parse_op(const char *word) {
    if (strcmp(word, "read") == 0) return OP_READ;
    if (strcmp(word, "write") == 0) return OP_WRITE;
    if (strcmp(word, "sync") == 0) return OP_SYNC;
    if (strcmp(word, "lock") == 0) return OP_LOCK;
    if (strcmp(word, "shmlock") == 0) return OP_SHMLOCK;
    if (strcmp(word, "truncate") == 0) return OP_TRUNCATE;
    return OP_NONE;
}

static const char *op_name(enum fault_op op) {
    switch (op) {
    case OP_READ: return "read";
    case OP_WRITE: return "write";
    case OP_SYNC: return "sync";
    case OP_LOCK: return "lock";
    case OP_SHMLOCK: return "shmlock";
    case OP_TRUNCATE: return "truncate";
    default: return "none";
    }
}

// Reads the control file again if it changed. Called with the lock held.
static void reload_if_changed(void) {
    struct stat info;
    if (stat(state.control, &info) != 0) {
        state.rule.op = OP_NONE;
        state.inode = 0;
        return;
    }
    if (info.st_ino == state.inode && info.st_size == state.size
        && info.st_mtim.tv_sec == state.mtime.tv_sec && info.st_mtim.tv_nsec == state.mtime.tv_nsec) return;
    state.inode = info.st_ino;
    state.size = info.st_size;
    state.mtime = info.st_mtim;
    state.seen = 0;
    memset(&state.rule, 0, sizeof state.rule);
    FILE *file = fopen(state.control, "r");
    if (!file) return;
    char op[16] = "", code[16] = "", repeat[16] = "", suffix[64] = "";
    long nth = 0;
    if (fscanf(file, "%15s %ld %15s %15s %63s", op, &nth, code, repeat, suffix) == 5 && nth >= 1) {
        state.rule.op = parse_op(op);
        state.rule.nth = nth;
        state.rule.full = strcmp(code, "full") == 0;
        state.rule.always = strcmp(repeat, "always") == 0;
        snprintf(state.rule.suffix, sizeof state.rule.suffix, "%s", suffix);
    }
    fclose(file);
}

static int name_matches(const char *name, const char *suffix) {
    if (strcmp(suffix, "*") == 0) return 1;
    size_t n = strlen(name), s = strlen(suffix);
    return n >= s && strcmp(name + n - s, suffix) == 0;
}

// SQLITE_OK, or the error this call of `op` on `file` is to fail with.
static int injected(enum fault_op op, fault_file *file, int ioerr) {
    pthread_mutex_lock(&state.lock);
    reload_if_changed();
    int rc = SQLITE_OK;
    if (state.rule.op == op && name_matches(file->name, state.rule.suffix)) {
        state.seen += 1;
        if (state.seen == state.rule.nth || (state.rule.always && state.seen > state.rule.nth)) {
            rc = state.rule.full ? SQLITE_FULL : ioerr;
            FILE *log = fopen(state.log, "a");
            if (log) {
                fprintf(log, "%s %s %s\n", op_name(op), state.rule.full ? "full" : "ioerr", file->name);
                fclose(log);
            }
        }
    }
    pthread_mutex_unlock(&state.lock);
    return rc;
}

#define REAL(f) (((fault_file *)(f))->real)

static int fault_close(sqlite3_file *f) {
    int rc = REAL(f)->pMethods->xClose(REAL(f));
    return rc;
}

static int fault_read(sqlite3_file *f, void *buffer, int amount, sqlite3_int64 offset) {
    int rc = injected(OP_READ, (fault_file *)f, SQLITE_IOERR_READ);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xRead(REAL(f), buffer, amount, offset);
}

static int fault_write(sqlite3_file *f, const void *buffer, int amount, sqlite3_int64 offset) {
    int rc = injected(OP_WRITE, (fault_file *)f, SQLITE_IOERR_WRITE);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xWrite(REAL(f), buffer, amount, offset);
}

static int fault_truncate(sqlite3_file *f, sqlite3_int64 size) {
    int rc = injected(OP_TRUNCATE, (fault_file *)f, SQLITE_IOERR_TRUNCATE);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int fault_sync(sqlite3_file *f, int flags) {
    int rc = injected(OP_SYNC, (fault_file *)f, SQLITE_IOERR_FSYNC);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int fault_file_size(sqlite3_file *f, sqlite3_int64 *size) { return REAL(f)->pMethods->xFileSize(REAL(f), size); }

static int fault_lock(sqlite3_file *f, int level) {
    int rc = injected(OP_LOCK, (fault_file *)f, SQLITE_IOERR_LOCK);
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xLock(REAL(f), level);
}

static int fault_unlock(sqlite3_file *f, int level) { return REAL(f)->pMethods->xUnlock(REAL(f), level); }
static int fault_check_reserved_lock(sqlite3_file *f, int *out) { return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out); }
static int fault_file_control(sqlite3_file *f, int op, void *arg) { return REAL(f)->pMethods->xFileControl(REAL(f), op, arg); }
static int fault_sector_size(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int fault_device_characteristics(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }

static int fault_shm_map(sqlite3_file *f, int page, int size, int extend, void volatile **out) {
    return REAL(f)->pMethods->xShmMap(REAL(f), page, size, extend, out);
}
static int fault_shm_lock(sqlite3_file *f, int offset, int n, int flags) {
    // Only taking a lock fails: a failed release would leave SQLite's idea of the locks wrong.
    int rc = (flags & SQLITE_SHM_LOCK) ? injected(OP_SHMLOCK, (fault_file *)f, SQLITE_IOERR_SHMLOCK) : SQLITE_OK;
    return rc != SQLITE_OK ? rc : REAL(f)->pMethods->xShmLock(REAL(f), offset, n, flags);
}
static void fault_shm_barrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int fault_shm_unmap(sqlite3_file *f, int delete_flag) { return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag); }
static int fault_fetch(sqlite3_file *f, sqlite3_int64 offset, int amount, void **out) { return REAL(f)->pMethods->xFetch(REAL(f), offset, amount, out); }
static int fault_unfetch(sqlite3_file *f, sqlite3_int64 offset, void *page) { return REAL(f)->pMethods->xUnfetch(REAL(f), offset, page); }

static const sqlite3_io_methods fault_methods = {
    3,
    fault_close, fault_read, fault_write, fault_truncate, fault_sync, fault_file_size,
    fault_lock, fault_unlock, fault_check_reserved_lock, fault_file_control,
    fault_sector_size, fault_device_characteristics,
    fault_shm_map, fault_shm_lock, fault_shm_barrier, fault_shm_unmap,
    fault_fetch, fault_unfetch,
};

static int fault_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out_flags) {
    (void)vfs;
    fault_file *file = (fault_file *)f;
    file->real = (sqlite3_file *)&file[1];
    snprintf(file->name, sizeof file->name, "%s", name ? name : "");
    int rc = base_vfs->xOpen(base_vfs, name, file->real, flags, out_flags);
    // The unix VFS's methods are version 3 (WAL needs the shm calls); ours forward to them.
    f->pMethods = file->real->pMethods ? &fault_methods : NULL;
    return rc;
}

int nana_fault_vfs_register(const char *control_path) {
    base_vfs = sqlite3_vfs_find(NULL);
    if (!base_vfs) return SQLITE_ERROR;
    snprintf(state.control, sizeof state.control, "%s", control_path);
    snprintf(state.log, sizeof state.log, "%s.log", control_path);
    fault_vfs = *base_vfs;
    fault_vfs.zName = "nanafault";
    fault_vfs.szOsFile = (int)sizeof(fault_file) + base_vfs->szOsFile;
    fault_vfs.xOpen = fault_open;
    fault_vfs.pNext = NULL;
    return sqlite3_vfs_register(&fault_vfs, 1);
}

__attribute__((constructor)) static void nana_fault_vfs_load(void) {
    const char *control = getenv("NANA_FAULT_CONTROL");
    if (control && *control) {
        if (nana_fault_vfs_register(control) != SQLITE_OK) fprintf(stderr, "nanafault: could not register the fault VFS\n");
    }
}
