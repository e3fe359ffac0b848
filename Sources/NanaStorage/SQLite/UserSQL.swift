import CSQLite

/// The rule for SQL a client sends (`execute`, `execute_many`, `fetch_one`, `fetch_all`).
///
/// While a client's SQL is prepared, SQLite's authorizer is asked about every action the
/// statement (and any trigger it fires) would take. It refuses what would break the daemon's
/// ownership of the file — transaction control (the writer's group commit owns transactions;
/// clients use `begin_transaction`), savepoints, ATTACH/DETACH (a path outside the data
/// folder), PRAGMA (the `pragma` method has allow-lists; only the schema's description runs
/// here) and VACUUM — and records every table
/// the statement writes, so that the caches of key-value tables it touches can be cleared
/// after it commits. The authorizer is off for the daemon's own statements.
final class UserSQLPolicy {
    fileprivate(set) var active = false
    /// SQL the daemon built itself (the SQL helpers): writes are recorded, nothing is refused.
    fileprivate var trusted = false
    fileprivate var written = Set<String>()
    fileprivate var refusal: String?

    /// The PRAGMAs `execute` runs: they describe the schema and never change anything.
    static let schemaPragmas: Set<String> = ["table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"]

    init(connection: SQLiteConnection) {
        sqlite3_set_authorizer(connection.handle, { context, action, first, _, _, _ in
            let policy = Unmanaged<UserSQLPolicy>.fromOpaque(context!).takeUnretainedValue()
            guard policy.active else { return SQLITE_OK }
            let name = first.map { String(cString: $0) }
            if policy.trusted {
                if [SQLITE_INSERT, SQLITE_UPDATE, SQLITE_DELETE, SQLITE_DROP_TABLE, SQLITE_ALTER_TABLE].contains(action),
                   let name, !name.hasPrefix("sqlite_") {
                    policy.written.insert(name.lowercased())
                }
                return SQLITE_OK
            }
            switch action {
            case SQLITE_TRANSACTION, SQLITE_SAVEPOINT:
                policy.refusal = "transaction control is not allowed in execute(); use begin_transaction()/commit()/rollback()"
                return SQLITE_DENY
            case SQLITE_ATTACH, SQLITE_DETACH:
                policy.refusal = "ATTACH and DETACH are not allowed: nanad serves only files in its data folder"
                return SQLITE_DENY
            case SQLITE_PRAGMA:
                // The schema's description only reads, whatever its argument (a table or index
                // name); NanaSQLite's programs run `PRAGMA table_info(t)` through execute().
                if let name, UserSQLPolicy.schemaPragmas.contains(name.lowercased()) { return SQLITE_OK }
                policy.refusal = "PRAGMA is not allowed in execute(); use pragma() (execute() runs only \(UserSQLPolicy.schemaPragmas.sorted().joined(separator: ", ")))"
                return SQLITE_DENY
            case SQLITE_INSERT, SQLITE_UPDATE, SQLITE_DELETE, SQLITE_DROP_TABLE, SQLITE_ALTER_TABLE:
                if let name, !name.hasPrefix("sqlite_") { policy.written.insert(name.lowercased()) }
                return SQLITE_OK
            default:
                return SQLITE_OK
            }
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Prepares every statement of `sql` under the policy; returns them with the tables they write.
    func prepare(_ sql: String, on connection: SQLiteConnection, trusted: Bool = false) throws(StorageError) -> (statements: [Statement], writes: Set<String>) {
        active = true
        self.trusted = trusted
        written.removeAll()
        refusal = nil
        defer { active = false; self.trusted = false }
        var statements: [Statement] = []
        var remaining = Substring(sql)
        while true {
            let trimmed = remaining.drop { $0.isWhitespace || $0 == ";" }
            if trimmed.isEmpty { break }
            let (statement, rest) = try Statement.prepareFirst(String(trimmed), on: connection, refusal: { self.refusal })
            if let statement { statements.append(statement) }
            remaining = Substring(rest)
        }
        guard !statements.isEmpty else { throw StorageError(.valueError, "no SQL statement to run") }
        // VACUUM is not an authorizer action; it cannot run inside the writer's transactions.
        for s in statements where !trusted && s.sqlText.drop(while: \.isWhitespace).uppercased().hasPrefix("VACUUM") {
            throw StorageError(.validation, "VACUUM is not allowed in execute(); use vacuum()")
        }
        return (statements, written)
    }
}

extension Statement {
    /// Prepares the first statement of `sql` (not cached: client SQL is arbitrary) and returns
    /// the text after it. A comment-only remainder gives no statement.
    static func prepareFirst(_ sql: String, on connection: SQLiteConnection, refusal: () -> String?) throws(StorageError) -> (Statement?, String) {
        var stmt: OpaquePointer?
        var restText = ""
        let rc: Int32 = sql.withCString { base in
            var tail: UnsafePointer<CChar>?
            let rc = sqlite3_prepare_v3(connection.handle, base, -1, 0, &stmt, &tail)
            if let tail { restText = String(cString: tail) }
            return rc
        }
        guard rc == SQLITE_OK else {
            if rc == SQLITE_AUTH, let why = refusal() { throw StorageError(.validation, why) }
            throw StorageError(.database, "Failed to execute SQL: \(String(cString: sqlite3_errmsg(connection.handle)))", sqliteCode: rc)
        }
        guard let stmt else { return (nil, restText) }
        return (Statement(connection: connection, handle: stmt), restText)
    }
}
