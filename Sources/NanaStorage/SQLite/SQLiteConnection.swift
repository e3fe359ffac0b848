import CSQLite
import Dispatch

/// The deadline the progress handler checks (uptime nanoseconds; 0: none).
private final class ProgressDeadline {
    var nanoseconds: UInt64 = 0
}

/// One SQLite connection, used by exactly one thread at a time (the writer's or a reader's).
///
/// It is opened with `SQLITE_OPEN_NOMUTEX` because the thread that owns it already serialises
/// every call; that is also why it is not `Sendable`.
final class SQLiteConnection {
    let handle: OpaquePointer
    let path: String
    private let busyTimeoutMilliseconds: Int32
    private let deadline = ProgressDeadline()
    private var statements: [String: Statement] = [:]
    /// The authorizer rule for clients' SQL on this connection (created on first use).
    private var userSQLPolicy: UserSQLPolicy?
    var userSQL: UserSQLPolicy! {
        get {
            if userSQLPolicy == nil { userSQLPolicy = UserSQLPolicy(connection: self) }
            return userSQLPolicy
        }
        set { userSQLPolicy = newValue }
    }

    /// Opens `path`. A read-only connection never creates the file.
    init(path: String, readOnly: Bool, busyTimeoutMilliseconds: Int32) throws(StorageError) {
        var db: OpaquePointer?
        // NOFOLLOW: the registry hands over resolved paths; a link swapped in later is refused.
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close_v2(db)
            throw StorageError(.connection, "Failed to connect to database: \(message)", sqliteCode: rc)
        }
        handle = db
        self.path = path
        self.busyTimeoutMilliseconds = busyTimeoutMilliseconds
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, busyTimeoutMilliseconds)
        // Every 10,000 virtual-machine steps: past the deadline, interrupt (see withTimeLimit).
        sqlite3_progress_handler(db, 10_000, { context in
            guard let context else { return 0 }
            let deadline = Unmanaged<ProgressDeadline>.fromOpaque(context).takeUnretainedValue().nanoseconds
            return deadline != 0 && DispatchTime.now().uptimeNanoseconds > deadline ? 1 : 0
        }, Unmanaged.passUnretained(deadline).toOpaque())
    }

    /// Runs `body` (clients' SQL) with SQLite interrupting it once `milliseconds` have passed
    /// (0: no limit); the interruption is reported as such.
    func withTimeLimit<T>(milliseconds: Int64, _ body: () throws(StorageError) -> T) throws(StorageError) -> T {
        guard milliseconds > 0 else { return try body() }
        deadline.nanoseconds = DispatchTime.now().uptimeNanoseconds &+ UInt64(milliseconds) &* 1_000_000
        defer { deadline.nanoseconds = 0 }
        do {
            return try body()
        } catch {
            if let code = error.sqliteCode, code & 0xff == SQLITE_INTERRUPT {
                let seconds = Double(milliseconds) / 1000
                throw StorageError(.database, "Failed to execute SQL: interrupted: the statement ran longer than nanad's statement time limit (\(seconds) s)", sqliteCode: code)
            }
            throw error
        }
    }

    private var isClosed = false

    /// Finalizes the cached statements and closes the connection (the last connection to a
    /// WAL file checkpoints and removes the WAL). Safe to call twice; `deinit` calls it too.
    /// Closing will not checkpoint: the file or its `-shm` changed underneath, and a
    /// checkpoint reads the mapped wal-index (a SIGBUS if someone truncated it).
    func skipCheckpointOnClose() {
        _ = nana_sqlite_no_checkpoint_on_close(handle)
    }

    func close() {
        guard !isClosed else { return }
        isClosed = true
        statements.removeAll()  // finalize before closing
        userSQL = nil
        sqlite3_close_v2(handle)
    }

    deinit { close() }

    /// Runs one or more statements that return no rows.
    func execute(_ sql: String) throws(StorageError) {
        let rc = sqlite3_exec(handle, sql, nil, nil, nil)
        guard rc == SQLITE_OK else { throw error(rc, context: sql) }
    }

    /// Runs one statement without parameters, prepared once (BEGIN and COMMIT run for every
    /// write batch).
    func executePrepared(_ sql: String) throws(StorageError) {
        try cachedStatement(sql).withReset { (s) throws(StorageError) in try s.run() }
    }

    /// A prepared statement from this connection's cache, reset and ready to bind.
    func cachedStatement(_ sql: String) throws(StorageError) -> Statement {
        if let statement = statements[sql] {
            return statement
        }
        let statement = try Statement(connection: self, sql: sql, persistent: true)
        statements[sql] = statement
        return statement
    }

    enum CheckpointMode {
        /// Copies what it can without waiting for readers.
        case passive
        /// Copies all of the WAL and truncates it to nothing, waiting at most
        /// `waitMilliseconds` for readers of older snapshots (then SQLITE_BUSY).
        case truncate(waitMilliseconds: Int32)
    }

    /// Copies the WAL into the database file.
    func checkpoint(_ mode: CheckpointMode = .passive) throws(StorageError) {
        var logPages: Int32 = 0, checkpointed: Int32 = 0
        let rc: Int32
        switch mode {
        case .passive:
            rc = sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_PASSIVE, &logPages, &checkpointed)
        case .truncate(let wait):
            // The connection's own busy timeout (seconds) would hold the writer that long
            // behind a reader's long query.
            sqlite3_busy_timeout(handle, wait)
            rc = sqlite3_wal_checkpoint_v2(handle, nil, SQLITE_CHECKPOINT_TRUNCATE, &logPages, &checkpointed)
            sqlite3_busy_timeout(handle, busyTimeoutMilliseconds)
        }
        guard rc == SQLITE_OK else { throw error(rc) }
    }

    /// Whether a table of this name exists (SQLite names are case-insensitive).
    func tableExists(_ name: String) throws(StorageError) -> Bool {
        let statement = try cachedStatement("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE")
        return try statement.withReset { (s) throws(StorageError) -> Bool in
            s.bind(name, at: 1)
            return try s.step()
        }
    }

    /// Whether no transaction is open (SQLite rolls a transaction back by itself on some errors).
    var isAutocommit: Bool { sqlite3_get_autocommit(handle) != 0 }

    /// The rowid of the last successful INSERT on this connection.
    var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    var changes: Int { Int(sqlite3_changes(handle)) }

    func error(_ rc: Int32, context: String? = nil) -> StorageError {
        let message = String(cString: sqlite3_errmsg(handle))
        return StorageError(.database, message, sqliteCode: rc)
    }
}

@available(*, unavailable)
extension SQLiteConnection: Sendable {}
