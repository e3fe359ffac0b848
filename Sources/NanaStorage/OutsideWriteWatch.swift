import Synchronization

/// Notices commits made to a file by SQLite connections that are not nanad's
/// (`cache_consistency="auto"`, PROTOCOL 9.2): another program writing the file with sqlite3.
///
/// nanad's caches follow the writes it makes itself; a write made around it leaves them stale.
/// The watch keeps one read-only connection of its own and reads `PRAGMA data_version`, which
/// changes when any *other* connection has committed to the file. That includes nanad's writer,
/// which the watch cannot tell apart, so a change after nanad's own commits costs a cache
/// clear too (a refill from SQLite), never a stale read. The pragma reads the WAL index in
/// shared memory: microseconds, no file I/O in the steady state.
final class OutsideWriteWatch: Sendable {
    private struct State: @unchecked Sendable {  // the connection is used only under the lock
        var connection: SQLiteConnection?
        var version: Int64?
    }
    private let state = Mutex(State())

    /// Whether another connection committed since the previous call (false on the first).
    func changed(path: String, busyTimeoutMilliseconds: Int32) throws(StorageError) -> Bool {
        try state.withLock { (state) throws(StorageError) -> Bool in
            if state.connection == nil {
                state.connection = try SQLiteConnection(path: path, readOnly: true, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
            }
            // Prepared once: preparing it at every call cost about as much as reading it.
            let statement = try state.connection!.cachedStatement("PRAGMA data_version")
            let version = try statement.withReset { (s) throws(StorageError) -> Int64 in
                _ = try s.step()
                return s.columnInt64(0)
            }
            defer { state.version = version }
            return state.version.map { $0 != version } ?? false
        }
    }

    func close() {
        state.withLock { state in
            state.connection?.close()
            state.connection = nil
            state.version = nil
        }
    }
}

extension Database {
    /// For a session that asked for `cache_consistency="auto"`, before each of its calls: if
    /// the file was committed to by another connection since the last look, every cache of
    /// the file is cleared and its near-cache board poisoned, before the call reads anything.
    public func noticeOutsideWrites() throws(StorageError) {
        guard try outsideWrites.changed(path: path, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds) else { return }
        for table in openTables { table.clearCache() }
        boardLink.current?.poison()
    }
}
