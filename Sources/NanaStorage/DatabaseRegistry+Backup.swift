import Foundation

/// `backup` and `restore` as the daemon offers them: NanaSQLite's preconditions (behaviour
/// spec §3.7) and the daemon's own (no file it serves is replaced), then the copy
/// (``Database/backup(to:verify:completion:)``, ``Database/restore(from:completion:)``).
/// Paths are resolved by the caller (``resolve(_:)``), and judged by its access rules.
extension DatabaseRegistry {
    /// Copies `database` to `destination`.
    /// - Parameters:
    ///   - flushingStagedRows: write staged v2 rows first, so that the copy holds them (false
    ///     when the caller's own transaction holds the writer, or it may not write the file).
    ///   - allowIncomplete: copy even when a v2 dead-letter queue holds acknowledged rows that
    ///     are not in the file.
    public func backup(
        _ database: Database, to destination: String, verify: Bool, flushingStagedRows: Bool, allowIncomplete: Bool,
        completion: @escaping @Sendable (Result<Void, StorageError>) -> Void
    ) {
        guard destination != database.path else {
            return completion(.failure(StorageError(.validation, "dest_path must not be the same as the current database file")))
        }
        // Renaming over a file this daemon has open would pull it from under its connections.
        guard !databases.contains(where: { $0.path == destination }) else {
            return completion(.failure(StorageError(.validation, "dest_path names a database this nanad is serving; back up to a new file")))
        }
        if let refusal = Self.replacementRefusal(destination) { return completion(.failure(refusal)) }
        let copy: @Sendable () -> Void = {
            if !allowIncomplete, database.openTables.contains(where: { !$0.deadLetters.isEmpty }) {
                return completion(.failure(StorageError(.database, "Backup refused because the v2 dead-letter queue is not empty; retry or clear failed writes, or pass allow_incomplete=True")))
            }
            database.backup(to: destination, verify: verify, completion: completion)
        }
        if flushingStagedRows { database.afterStagedWrites(copy) } else { copy() }
    }

    /// Why the file at `destination` must not be replaced by a backup, if it must not:
    /// - Litestream replicates it (it keeps `.<name>-litestream` beside the file): it would go
    ///   on replicating the old file it holds open, and the replica would never show the copy.
    /// - A `-wal` with pages in it lies beside it: someone has the file open, or did not close
    ///   it cleanly, and SQLite would lay those pages over the copy at the next open.
    static func replacementRefusal(_ destination: String) -> StorageError? {
        let url = URL(fileURLWithPath: destination)
        let folder = url.deletingLastPathComponent().path
        let manager = FileManager.default
        if manager.fileExists(atPath: folder + "/." + url.lastPathComponent + "-litestream") {
            return StorageError(.validation, "dest_path names a file Litestream replicates: its replica would keep the old file. Back up to a name Litestream's pattern does not match (e.g. ending in .bak)")
        }
        // An empty one is harmless: it holds no pages (a read-only connection, a `restore`'s
        // source, leaves one behind).
        if let size = (try? manager.attributesOfItem(atPath: destination + "-wal"))?[.size] as? Int, size > 0 {
            return StorageError(.validation, "dest_path has a -wal file beside it (the file is open elsewhere, or was not closed cleanly): replacing it would pair the copy with that WAL. Back up to a new file")
        }
        return nil
    }

    /// Replaces `database`'s contents with `source`'s. Rows staged before it reach the old
    /// contents first and are replaced with them, as NanaSQLite flushes before restoring; none
    /// is written over the restored data.
    public func restore(_ database: Database, from source: String, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        guard source != database.path else {
            return completion(.failure(StorageError(.validation, "src_path must not be the database itself")))
        }
        guard FileManager.default.fileExists(atPath: source) else {
            return completion(.failure(StorageError(.database, "Could not verify restore source: no such file")))
        }
        database.afterStagedWrites { database.restore(from: source, completion: completion) }
    }
}
