#ifndef NANA_CSQLITE_SHIM_H
#define NANA_CSQLITE_SHIM_H
#include <sqlite3.h>

// SQLITE_TRANSIENT is a cast macro Swift cannot import; statements bind with it.
static inline sqlite3_destructor_type nana_sqlite_transient(void) { return SQLITE_TRANSIENT; }
#endif
