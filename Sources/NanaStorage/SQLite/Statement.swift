import CSQLite

/// A prepared statement. Finalized when released; reset after every use by ``withReset(_:)``.
final class Statement {
    let handle: OpaquePointer
    unowned let connection: SQLiteConnection

    init(connection: SQLiteConnection, sql: String, persistent: Bool) throws(StorageError) {
        var stmt: OpaquePointer?
        let flags: UInt32 = persistent ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
        let rc = sqlite3_prepare_v3(connection.handle, sql, -1, flags, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw connection.error(rc, context: sql) }
        handle = stmt
        self.connection = connection
    }

    /// Adopts a statement prepared elsewhere.
    init(connection: SQLiteConnection, handle: OpaquePointer) {
        self.handle = handle
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    /// The statement's SQL text.
    var sqlText: String { sqlite3_sql(handle).map { String(cString: $0) } ?? "" }

    /// Runs `body`, then resets the statement and clears its bindings whatever happened.
    func withReset<R, E: Error>(_ body: (Statement) throws(E) -> R) throws(E) -> R {
        defer {
            sqlite3_reset(handle)
            sqlite3_clear_bindings(handle)
        }
        return try body(self)
    }

    /// Binds text with its length, so that a key holding U+0000 is stored whole.
    func bind(_ text: String, at index: Int32) {
        var text = text
        text.withUTF8 { utf8 in
            let empty: StaticString = ""
            let base = utf8.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(empty.utf8Start)
            sqlite3_bind_text(handle, index, base.assumingMemoryBound(to: CChar.self), Int32(utf8.count), nana_sqlite_transient())
        }
    }

    func bind(utf8 bytes: [UInt8], at index: Int32) {
        bytes.withUnsafeBufferPointer { buffer in
            // An empty buffer has no base address; SQLite needs a non-NULL pointer for ''.
            let empty: StaticString = ""
            let base = buffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(empty.utf8Start)
            sqlite3_bind_text(handle, index, base.assumingMemoryBound(to: CChar.self), Int32(buffer.count), nana_sqlite_transient())
        }
    }

    /// Steps once: true when a row is ready, false when the statement is done.
    func step() throws(StorageError) -> Bool {
        let rc = sqlite3_step(handle)
        switch rc {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        default: throw connection.error(rc)
        }
    }

    /// Steps to completion, ignoring rows.
    func run() throws(StorageError) {
        while try step() {}
    }

    func columnIsNull(_ index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_NULL }

    func columnIsBlob(_ index: Int32) -> Bool { sqlite3_column_type(handle, index) == SQLITE_BLOB }

    func columnInt64(_ index: Int32) -> Int64 { sqlite3_column_int64(handle, index) }

    func columnString(_ index: Int32) -> String {
        guard let text = sqlite3_column_text(handle, index) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: text, count: Int(sqlite3_column_bytes(handle, index))), as: UTF8.self)
    }

    /// The column's bytes as text (valid until the next step or reset).
    func columnBytes(_ index: Int32) -> UnsafeRawBufferPointer {
        let isBlob = columnIsBlob(index)
        let base: UnsafeRawPointer? = isBlob ? sqlite3_column_blob(handle, index) : sqlite3_column_text(handle, index).map { UnsafeRawPointer($0) }
        return UnsafeRawBufferPointer(start: base, count: Int(sqlite3_column_bytes(handle, index)))
    }
}

@available(*, unavailable)
extension Statement: Sendable {}
