import CSQLite
import Glibc

/// Storage that fails under the writer.
///
/// A full disk: the writer makes what room the WAL holds, retries once, and otherwise refuses
/// the write with an error that says so. Writes resume by themselves at the first commit
/// that fits (there is no state to reset), and each episode is logged once at its start and
/// once at its end.
extension Database {
    /// How long the writer waits for readers of older snapshots before a TRUNCATE checkpoint
    /// gives up (it then leaves the WAL as it is, and the retry meets the full disk again).
    static let makeRoomWaitMilliseconds: Int32 = 100

    /// Copies the WAL into the file and truncates it, giving its space back; the WAL is
    /// usually what filled the disk. Not under `--external-checkpoints`: the tool that owns
    /// checkpoints (Litestream) must see every frame before the WAL restarts.
    func makeRoom(on connection: SQLiteConnection) {
        guard options.checkpointWhenIdlePages > 0 else { return }
        do {
            try connection.checkpoint(.truncate(waitMilliseconds: Self.makeRoomWaitMilliseconds))
            statistics.withLock { $0.checkpoints += 1 }
        } catch {
            logger.debug("checkpoint to make room failed", metadata: ["db.path": "\(path)", "error": "\(error)"])
        }
    }

    /// WAL growth (pages) between two looks at the disk's free space.
    static let spaceProbePages: Int32 = 64
    /// Free space under which the disk counts as short of room.
    static let lowSpaceBytes: UInt64 = 16 << 20

    /// Whether the disk has less room left than the WAL holds, or less than
    /// ``lowSpaceBytes``: then the WAL is checkpointed and truncated at once. Otherwise a WAL
    /// left to grow to the idle checkpoint's 1,000 pages (4 MB) takes space that rows need
    /// (3 MB of disk with 1.5 MB free took 167 writes of 500 bytes), and its pages can no
    /// longer be copied into the main file once the disk is full. The free space is looked up
    /// (statvfs) only every ``spaceProbePages`` of WAL growth.
    func isDiskLow(_ wal: WALMonitor) -> Bool {
        if wal.pages < wal.pagesAtSpaceProbe { wal.pagesAtSpaceProbe = 0 }  // the WAL restarted
        guard wal.pages >= wal.pagesAtSpaceProbe + Self.spaceProbePages else { return false }
        wal.pagesAtSpaceProbe = wal.pages
        var info = statvfs()
        guard statvfs(path, &info) == 0 else { return false }
        let free = UInt64(info.f_bavail) * UInt64(info.f_frsize)
        let walBytes = UInt64(wal.pages) * 4096
        return free < max(walBytes, Self.lowSpaceBytes)
    }

    /// Runs `body` (a transaction of the write-behind flusher); refused for lack of room, it
    /// runs once more after ``makeRoom(on:)``, and then fails with ``diskFullError(_:)``.
    func retryingOnceForRoom(on connection: SQLiteConnection, _ body: () throws(StorageError) -> Void) throws(StorageError) {
        do {
            return try body()
        } catch where error.isDiskFull {
            makeRoom(on: connection)
        }
        do {
            try body()
        } catch where error.isDiskFull {
            throw diskFullError(error)
        }
    }

    /// Counts writes refused for lack of room (and logs the start of an episode).
    func recordDiskFull(refused count: Int) {
        logDiskFull(statistics.withLock { $0.diskFull.refused(count) })
    }

    /// The error a write refused for lack of room fails with.
    func diskFullError(_ error: StorageError) -> StorageError {
        let retried = options.checkpointWhenIdlePages > 0 ? "nanad truncated the WAL and tried once more; " : ""
        return StorageError(.database, "database or disk is full: the disk holding '\(path)' has no room for this write, so it was not stored (\(retried)nothing else was lost). Writes succeed again by themselves once space is freed.", sqliteCode: error.sqliteCode ?? SQLITE_FULL)
    }

    func logDiskFull(_ transition: DiskFullEpisode.Transition) {
        switch transition {
        case .none: break
        case .started:
            logger.error("disk full: writes to this database are refused until space is freed", metadata: ["db.path": "\(path)"])
        case .ended(let refused):
            logger.notice("disk has room again: writes to this database are stored again", metadata: ["db.path": "\(path)", "refused": "\(refused)"])
        }
    }
}

extension Database {
    /// The error the calls of a transaction SQLite could not write (an I/O error) fail with:
    /// SQLite's words, and what became of the write. Other errors are left as they are.
    func writeFailedError(_ error: StorageError) -> StorageError {
        guard error.isIOError, let code = error.sqliteCode else { return error }
        return StorageError(.database, "\(error.message) (SQLite code \(code)) writing '\(path)': the transaction was rolled back, so nothing in it was stored", sqliteCode: code)
    }
}

extension StorageError {
    /// Whether SQLite met an I/O error (`SQLITE_IOERR` and its extended codes).
    var isIOError: Bool { sqliteCode.map { $0 & 0xff == SQLITE_IOERR } ?? false }

    /// Whether SQLite refused the write for lack of room (`SQLITE_FULL`: the disk, or the
    /// file's `max_page_count`).
    var isDiskFull: Bool { sqliteCode.map { $0 & 0xff == SQLITE_FULL } ?? false }
}
