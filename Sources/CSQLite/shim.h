#ifndef NANA_CSQLITE_SHIM_H
#define NANA_CSQLITE_SHIM_H
#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast macro Swift cannot import; statements bind with it.
static inline sqlite3_destructor_type nana_sqlite_transient(void) { return SQLITE_TRANSIENT; }

// sqlite3_db_config is variadic, which Swift cannot call. Closing a file that was replaced or
// whose -shm was truncated underneath must not checkpoint: that reads the mapped wal-index.
static inline int nana_sqlite_no_checkpoint_on_close(sqlite3 *db) {
    return sqlite3_db_config(db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)0);
}
#endif
