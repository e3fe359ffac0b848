import CSQLite

/// Tracks the WAL's size in pages, as SQLite reports it after every commit (`sqlite3_wal_hook`).
final class WALMonitor {
    var pages: Int32 = 0
    /// ``pages`` when the writer last asked how much room the disk has left.
    var pagesAtSpaceProbe: Int32 = 0
    private let connection: SQLiteConnection

    init(_ connection: SQLiteConnection) {
        self.connection = connection
        sqlite3_wal_hook(connection.handle, { context, _, _, pages in
            Unmanaged<WALMonitor>.fromOpaque(context!).takeUnretainedValue().pages = pages
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Removes the hook; call it before the connection closes (the monitor must outlive it).
    func detach() {
        sqlite3_wal_hook(connection.handle, nil, nil)
    }
}

@available(*, unavailable)
extension WALMonitor: Sendable {}
