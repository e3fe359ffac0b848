// A fault-injecting SQLite VFS for the tests, loaded into a real nanad with LD_PRELOAD
// (see fault_vfs.c). Nothing here is linked into nanad itself.
#ifndef CNANA_FAULT_VFS_H
#define CNANA_FAULT_VFS_H

/// Registers the fault VFS as SQLite's default; 0 on success. Runs by itself when the
/// library is loaded with NANA_FAULT_CONTROL set.
int nana_fault_vfs_register(const char *control_path);

#endif
