import CSQLite
import Foundation

/// NanaSQLite 1.6's `backup` and `restore` (behaviour spec §3.7), done by the daemon that owns
/// the file: the caller resolves and confines the paths; these do the copying.
extension Database {
    /// Copies the whole database (every table, committed data only) to `destination` through
    /// SQLite's online-backup API: into a temporary file beside it, checked with
    /// `integrity_check` when `verify`, synced, then renamed over `destination` in one step.
    /// It runs on a reader, so writers are never blocked; the copy is one consistent snapshot.
    public func backup(to destination: String, verify: Bool, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        submitRead(ReadJob(
            run: { source in
                completion(Result { () throws(StorageError) in try Self.copy(from: source, to: destination, verify: verify) })
            },
            fail: { completion(.failure($0)) }
        ))
    }

    /// Replaces the database's contents with `source`'s, after checking `source` with
    /// `integrity_check` (nothing is touched if that fails). It runs on the writer, alone: the
    /// pages are copied into the live file through SQLite's backup API in one transaction, so
    /// readers move from the old data to the new atomically and no connection is reopened.
    /// Afterwards every table's shared cache is cleared and the open key-value tables exist.
    public func restore(from source: String, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        submit(WriteJob(
            mode: .exclusive,
            run: { connection throws(StorageError) in
                let input: SQLiteConnection
                do throws(StorageError) {
                    input = try SQLiteConnection(path: source, readOnly: true, busyTimeoutMilliseconds: self.options.busyTimeoutMilliseconds)
                    try Self.checkIntegrity(input, what: "restore source")
                } catch {
                    throw StorageError(.database, "Could not verify restore source: \(error.message)")  // NanaSQLite's wording
                }
                try Self.runBackup(from: input, into: connection, failure: "Restore failed")
                for table in self.openTables {
                    try connection.execute("CREATE TABLE IF NOT EXISTS \"\(table.name)\" (key TEXT PRIMARY KEY, value TEXT)")
                }
                return WriteOutcome(
                    publish: {
                        self.openTables.forEach { $0.clearCache() }
                        self.boardLink.current?.poison()  // every table of the file changed, open or not
                    },
                    complete: { completion(.success(())) }
                )
            },
            fail: { completion(.failure($0)) }
        ))
    }

    private static func copy(from source: SQLiteConnection, to destination: String, verify: Bool) throws(StorageError) {
        let url = URL(fileURLWithPath: destination)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).\(UInt64.random(in: 0...UInt64.max)).tmp").path
        var renamed = false
        defer { if !renamed { unlink(temporary) } }
        try withTemporaryCopy(of: source, at: temporary, verify: verify)

        var existing = stat()
        if stat(destination, &existing) == 0 { chmod(temporary, existing.st_mode & 0o7777) }
        if let file = FileHandle(forReadingAtPath: temporary) {
            try? file.synchronize()
            try? file.close()
        }
        guard rename(temporary, destination) == 0 else {
            throw StorageError(.database, "Backup failed: cannot move the copy into place: \(String(cString: strerror(errno)))")
        }
        renamed = true
    }

    /// Writes the copy; its connection is closed when this returns, before the rename.
    private static func withTemporaryCopy(of source: SQLiteConnection, at temporary: String, verify: Bool) throws(StorageError) {
        let output = try SQLiteConnection(path: temporary, readOnly: false, busyTimeoutMilliseconds: 5000)
        try runBackup(from: source, into: output, failure: "Backup failed")
        if verify { try checkIntegrity(output, what: "backup") }
    }

    private static func runBackup(from source: SQLiteConnection, into destination: SQLiteConnection, failure: String) throws(StorageError) {
        guard let backup = sqlite3_backup_init(destination.handle, "main", source.handle, "main") else {
            throw StorageError(.database, "\(failure): \(String(cString: sqlite3_errmsg(destination.handle)))")
        }
        let step = sqlite3_backup_step(backup, -1)  // every page in one step: one snapshot, no restarts
        let finish = sqlite3_backup_finish(backup)
        guard step == SQLITE_DONE, finish == SQLITE_OK else {
            throw StorageError(.database, "\(failure): \(String(cString: sqlite3_errstr(step == SQLITE_DONE ? finish : step)))", sqliteCode: step)
        }
    }

    static func checkIntegrity(_ connection: SQLiteConnection, what: String) throws(StorageError) {
        let statement = try Statement(connection: connection, sql: "PRAGMA integrity_check", persistent: false)
        let lines = try statement.withReset { (s) throws(StorageError) -> [String] in
            var lines: [String] = []
            while try s.step() { lines.append(s.columnString(0)) }
            return lines
        }
        guard lines.count == 1, lines[0].trimmingCharacters(in: .whitespaces).lowercased() == "ok" else {
            throw StorageError(.database, "Integrity check failed for \(what): \(lines.prefix(5).joined(separator: "; "))")
        }
    }
}
