import CSQLite

/// A value SQLite stores in a column or binds to a parameter.
public enum SQLValue: Sendable, Hashable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])
}

/// What a raw SQL call returns: rows are materialised before the call completes (a cursor
/// cannot cross the wire).
public struct SQLResult: Sendable, Hashable {
    /// Column names of the last statement that returned rows.
    public var columns: [String] = []
    public var rows: [[SQLValue]] = []
    /// Rows changed by the last INSERT, UPDATE or DELETE (DB-API's `rowcount`).
    public var changes = 0

    public init(columns: [String] = [], rows: [[SQLValue]] = [], changes: Int = 0, lastInsertRowID: Int64 = 0) {
        self.columns = columns
        self.rows = rows
        self.changes = changes
        self.lastInsertRowID = lastInsertRowID
    }
    /// The rowid of the last INSERT on the connection (DB-API's `lastrowid`).
    public var lastInsertRowID: Int64 = 0
}

extension Statement {
    func bind(_ value: SQLValue, at index: Int32) {
        switch value {
        case .null: sqlite3_bind_null(handle, index)
        case .integer(let i): sqlite3_bind_int64(handle, index, i)
        case .real(let d): sqlite3_bind_double(handle, index, d)
        case .text(let s): bind(s, at: index)
        case .blob(let b):
            b.withUnsafeBytes { raw in
                _ = sqlite3_bind_blob(handle, index, raw.baseAddress, Int32(raw.count), nana_sqlite_transient())
            }
        }
    }

    /// Binds positional parameters, refusing a count that does not match the statement's.
    func bind(_ values: [SQLValue]) throws(StorageError) {
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard values.count == expected else {
            throw StorageError(.valueError, "Incorrect number of bindings supplied. The current statement uses \(expected), and there are \(values.count) supplied.")
        }
        for (i, value) in values.enumerated() { bind(value, at: Int32(i + 1)) }
    }

    var columnCount: Int32 { sqlite3_column_count(handle) }

    func columnName(_ index: Int32) -> String { String(cString: sqlite3_column_name(handle, index)) }

    func columnValue(_ index: Int32) -> SQLValue {
        switch sqlite3_column_type(handle, index) {
        case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, index))
        case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, index))
        case SQLITE_TEXT: return .text(columnString(index))
        case SQLITE_BLOB:
            let bytes = columnBytes(index)
            return .blob(Array(bytes))
        default: return .null
        }
    }

    var isReadOnly: Bool { sqlite3_stmt_readonly(handle) != 0 }
}
