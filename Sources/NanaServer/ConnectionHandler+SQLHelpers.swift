import Foundation
import NanaStorage
import NanaWire

// NanaSQLite's SQL helpers (behaviour spec §7.2): statements built here from validated
// identifiers and guarded expressions, with every value bound. They run as trusted SQL (see
// `UserSQLPolicy`): nothing they build is refused, and the caches of key-value tables they
// write are cleared after COMMIT, as for `execute`.
extension ConnectionHandler {
    /// Writable PRAGMAs that would change the file for every client of the daemon in ways its
    /// design depends on (WAL for concurrent readers, the writer's own locking and checkpoints).
    static let daemonOwnedPragmas: Set<String> = ["journal_mode", "locking_mode", "query_only", "wal_autocheckpoint", "busy_timeout", "cache_size"]

    // MARK: Rows

    func sqlInsert(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let table = try quoted(try args.string("table_name"))
        let data = try args.map("data")
        guard !data.isEmpty else { throw NanaRemoteError(.valueError, "sql_insert(): data must not be empty") }
        let columns = try data.keys.map { (c) throws(NanaRemoteError) in try quoted(c) }
        let sql = "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(Array(repeating: "?", count: data.count).joined(separator: ", ")))"
        let parameters = try Self.sqlParameters(.array(Array(data.values)), method: args.method)
        runTrusted(msgid, database, sql, parameters) { .value(.int($0.lastInsertRowID)) }
    }

    func sqlUpdate(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let table = try quoted(try args.string("table_name"))
        let data = try args.map("data")
        guard !data.isEmpty else { throw NanaRemoteError(.valueError, "sql_update(): data must not be empty") }
        let whereClause = try args.string("where")
        try guardExpression(whereClause, .whereClause, handle.policy, args)
        let assignments = try data.keys.map { (c) throws(NanaRemoteError) in "\(try quoted(c)) = ?" }
        let sql = "UPDATE \(table) SET \(assignments.joined(separator: ", ")) WHERE \(whereClause)"
        let parameters = try Self.sqlParameters(.array(Array(data.values)), method: args.method)
            + Self.sqlParameters(args.params["parameters"], method: args.method)
        runTrusted(msgid, handle.table.database, sql, parameters) { .value(.int(Int64($0.changes))) }
    }

    func sqlDelete(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let table = try quoted(try args.string("table_name"))
        let whereClause = try args.string("where")
        try guardExpression(whereClause, .whereClause, handle.policy, args)
        let parameters = try Self.sqlParameters(args.params["parameters"], method: args.method)
        runTrusted(msgid, handle.table.database, "DELETE FROM \(table) WHERE \(whereClause)", parameters) { .value(.int(Int64($0.changes))) }
    }

    /// Both of NanaSQLite's forms, told apart by their arguments rather than by whether a table
    /// happens to exist (NanaSQLite silently turns a mistyped table name into a key-value
    /// write): `{key, value}` is the key-value form; `{table_name, data: map}` and `{data: map}`
    /// (this handle's table) are the table form; `{table_name: str, data: non-map}` is the
    /// key-value form as NanaSQLite's positional `upsert(key, value)`.
    func upsert(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let tableArgument = args.params["table_name"] ?? .nil
        let dataArgument = args.params["data"] ?? .nil
        func keyValueWrite(_ key: String, _ value: NanaValue) throws(NanaRemoteError) {
            let storable = try ValueCodec.storable(value, using: writer)
            let table = handle.table
            let owner = try transactionOwner(table.database)
            respondLater(msgid, { table.set(key, storable, owner: owner, completion: $0) }) { _ in .value(.nil) }
        }
        if args.has("key") || args.has("value") {
            return try keyValueWrite(try args.string("key"), try args.value("value"))
        }
        let tableName: String
        let data: NanaParams
        switch (tableArgument, dataArgument) {
        case (.nil, .map(let m)), (.map(let m), .nil):
            tableName = handle.table.name
            data = m
        case (.string(let name), .map(let m)):
            tableName = name
            data = m
        case (.string(let key), let value) where !value.isNil:
            return try keyValueWrite(key, value)
        default:
            throw NanaRemoteError(.valueError, "upsert() takes (table_name, data[, conflict_columns]), (data) or (key, value)")
        }
        guard !data.isEmpty else { throw NanaRemoteError(.valueError, "upsert(): data must not be empty") }
        let table = try quoted(tableName)
        let columns = try data.keys.map { (c) throws(NanaRemoteError) in try quoted(c) }
        let placeholders = Array(repeating: "?", count: data.count).joined(separator: ", ")
        var sql: String
        if let conflict = args.params["conflict_columns"], !conflict.isNil {
            let conflictColumns = try args.strings("conflict_columns")
            guard !conflictColumns.isEmpty else { throw NanaRemoteError(.valueError, "upsert(): conflict_columns must not be empty") }
            let quotedConflict = try conflictColumns.map { (c) throws(NanaRemoteError) in try quoted(c) }
            let conflictSet = Set(conflictColumns.map { $0.lowercased() })
            let updates = try data.keys.filter { !conflictSet.contains($0.lowercased()) }.map { (c) throws(NanaRemoteError) -> String in
                let q = try quoted(c)
                return "\(q) = excluded.\(q)"
            }
            sql = "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(placeholders)) ON CONFLICT(\(quotedConflict.joined(separator: ", "))) "
            sql += updates.isEmpty ? "DO NOTHING" : "DO UPDATE SET \(updates.joined(separator: ", "))"
        } else {
            sql = "INSERT OR REPLACE INTO \(table) (\(columns.joined(separator: ", "))) VALUES (\(placeholders))"
        }
        let parameters = try Self.sqlParameters(.array(Array(data.values)), method: args.method)
        // The rowid of the row written (NanaSQLite returns a stale one on the UPDATE path).
        runTrusted(msgid, handle.table.database, sql + " RETURNING rowid", parameters) { result in
            .value(result.rows.first.flatMap { row -> NanaValue? in if case .integer(let id)? = row.first { return .int(id) }; return nil } ?? .int(0))
        }
    }

    // MARK: Queries

    func query(_ msgid: UInt32, _ args: Arguments, paginated: Bool) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let table = try quoted(try args.optionalString("table_name") ?? handle.table.name)
        var columnsSQL = "*"
        if let columns = args.params["columns"], !columns.isNil {
            let list = try args.strings("columns")
            guard !list.isEmpty else { throw NanaRemoteError(.valueError, "\(args.method)(): columns must not be empty") }
            columnsSQL = try list.map { (c) throws(NanaRemoteError) -> String in
                if let q = try? Identifier.quoted(c) { return q }
                try guardExpression(c, .column, handle.policy, args)
                return c
            }.joined(separator: ", ")
        }
        var sql = "SELECT \(columnsSQL) FROM \(table)"
        if let whereClause = try args.optionalString("where").flatMap({ $0.isEmpty ? nil : $0 }) {
            try guardExpression(whereClause, .whereClause, handle.policy, args)
            sql += " WHERE \(whereClause)"
        }
        if paginated, let groupBy = try args.optionalString("group_by").flatMap({ $0.isEmpty ? nil : $0 }) {
            try guardExpression(groupBy, .groupBy, handle.policy, args)
            sql += " GROUP BY \(groupBy)"
        }
        if let orderBy = try args.optionalString("order_by").flatMap({ $0.isEmpty ? nil : $0 }) {
            try guardExpression(orderBy, .orderBy, handle.policy, args)
            sql += " ORDER BY \(orderBy)"
        }
        let limit = try nonNegative(args, "limit")
        let offset = paginated ? try nonNegative(args, "offset") : nil
        if limit != nil || offset != nil {
            // SQLite needs a LIMIT before OFFSET; -1 means none (NanaSQLite emits a syntax error here).
            sql += " LIMIT \(limit ?? -1)"
            if let offset { sql += " OFFSET \(offset)" }
        }
        let parameters = try Self.sqlParameters(args.params["parameters"], method: args.method)
        let database = handle.table.database
        let owner = try transactionOwner(database)
        let readOnly = isReadOnly(args)
        respondLater(msgid, { database.fetch(sql, parameters: parameters, trusted: true, readOnly: readOnly, owner: owner, completion: $0) }) { result in
            .value(.array(result.rows.map { row in
                var map = NanaParams(minimumCapacity: row.count)
                for (name, value) in zip(result.columns, Self.row(row).arrayValue ?? []) { map[name] = value }
                return .map(map)
            }))
        }
    }

    func count(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let table = try quoted(try args.optionalString("table_name") ?? handle.table.name)
        var sql = "SELECT COUNT(*) FROM \(table)"
        if let whereClause = try args.optionalString("where").flatMap({ $0.isEmpty ? nil : $0 }) {
            try guardExpression(whereClause, .none, handle.policy, args)
            sql += " WHERE \(whereClause)"
        }
        let parameters = try Self.sqlParameters(args.params["parameters"], method: args.method)
        let database = handle.table.database
        let owner = try transactionOwner(database)
        let readOnly = isReadOnly(args)
        respondLater(msgid, { database.fetch(sql, parameters: parameters, trusted: true, readOnly: readOnly, owner: owner, completion: $0) }) { result in
            guard case .integer(let n)? = result.rows.first?.first else { return .value(0) }
            return .value(.int(n))
        }
    }

    func exists(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let table = try quoted(try args.string("table_name"))
        let whereClause = try args.string("where")
        try guardExpression(whereClause, .whereClause, handle.policy, args)
        let parameters = try Self.sqlParameters(args.params["parameters"], method: args.method)
        let database = handle.table.database
        let owner = try transactionOwner(database)
        let readOnly = isReadOnly(args)
        respondLater(msgid, { database.fetch("SELECT EXISTS(SELECT 1 FROM \(table) WHERE \(whereClause))", parameters: parameters, trusted: true, readOnly: readOnly, owner: owner, completion: $0) }) { result in
            .value(.bool(result.rows.first?.first == .integer(1)))
        }
    }

    // MARK: Schema

    func createTable(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let table = try quoted(try args.string("table_name"))
        let columns = try args.map("columns")
        guard !columns.isEmpty else { throw NanaRemoteError(.valueError, "create_table(): columns must not be empty") }
        var definitions: [String] = []
        for (name, type) in columns {
            guard case .string(let typeSQL) = type else {
                throw NanaRemoteError(.typeError, "create_table(): the type of column '\(name)' must be str")
            }
            do throws(StorageError) { try SQLGuard.validateColumnType(typeSQL, column: name) } catch { throw NanaRemoteError(error) }
            definitions.append("\(try quoted(name)) \(typeSQL)")
        }
        if let primaryKey = try args.optionalString("primary_key") {
            let declared = columns.contains { name, type in
                name.lowercased() == primaryKey.lowercased() && (type.stringValue ?? "").uppercased().contains("PRIMARY KEY")
            }
            if !declared { definitions.append("PRIMARY KEY (\(try quoted(primaryKey)))") }
        }
        let ifNotExists = try args.bool("if_not_exists", default: true) ? "IF NOT EXISTS " : ""
        runTrusted(msgid, database, "CREATE TABLE \(ifNotExists)\(table) (\(definitions.joined(separator: ", ")))", []) { _ in .value(.nil) }
    }

    func createIndex(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let index = try quoted(try args.string("index_name"))
        let table = try quoted(try args.string("table_name"))
        let columns = try args.strings("columns").map { (c) throws(NanaRemoteError) in try quoted(c) }
        guard !columns.isEmpty else { throw NanaRemoteError(.valueError, "create_index(): columns must not be empty") }
        let unique = try args.bool("unique", default: false) ? "UNIQUE " : ""
        let ifNotExists = try args.bool("if_not_exists", default: true) ? "IF NOT EXISTS " : ""
        runTrusted(msgid, database, "CREATE \(unique)INDEX \(ifNotExists)\(index) ON \(table) (\(columns.joined(separator: ", ")))", []) { _ in .value(.nil) }
    }

    func dropObject(_ msgid: UInt32, _ args: Arguments, kind: String, nameParameter: String) throws(NanaRemoteError) {
        let database = try table(args).database
        let name = try quoted(try args.string(nameParameter))
        let ifExists = try args.bool("if_exists", default: true) ? "IF EXISTS " : ""
        runTrusted(msgid, database, "DROP \(kind) \(ifExists)\(name)", []) { _ in .value(.nil) }
    }

    func tableExists(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let owner = try transactionOwner(database)
        let name = try args.string("table_name")
        respondLater(msgid, { database.fetch("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", parameters: [.text(name)], trusted: true, owner: owner, completion: $0) }) {
            .value(.bool(!$0.rows.isEmpty))
        }
    }

    func listTables(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let owner = try transactionOwner(database)
        respondLater(msgid, { database.fetch("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", parameters: [], trusted: true, owner: owner, completion: $0) }) {
            .value(.array($0.rows.compactMap { row in if case .text(let n)? = row.first { return .string(n) }; return nil }))
        }
    }

    func tableSchema(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let name = try Self.validated(try args.optionalString("table_name") ?? handle.table.name)
        let database = handle.table.database
        let owner = try transactionOwner(database)
        let sql = #"SELECT cid, name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)"#
        respondLater(msgid, { database.fetch(sql, parameters: [.text(name)], trusted: true, owner: owner, completion: $0) }) { result in
            .value(.array(result.rows.map { row in
                let v = Self.row(row).arrayValue ?? []
                return [
                    "cid": v[0], "name": v[1], "type": v[2], "notnull": .bool(v[3] != .int(0)),
                    "default_value": v[4], "pk": .bool(v[5] != .int(0)),
                ]
            }))
        }
    }

    func listIndexes(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let owner = try transactionOwner(database)
        var sql = "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"
        var parameters: [SQLValue] = []
        if let tableName = try args.optionalString("table_name") {
            sql += " AND tbl_name = ?"
            parameters.append(.text(tableName))
        }
        sql += " ORDER BY name"
        let readOnly = isReadOnly(args)
        respondLater(msgid, { database.fetch(sql, parameters: parameters, trusted: true, readOnly: readOnly, owner: owner, completion: $0) }) { result in
            .value(.array(result.rows.map { row in
                let v = Self.row(row).arrayValue ?? []
                return ["name": v[0], "table": v[1], "sql": v[2]]
            }))
        }
    }

    func addColumn(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let table = try quoted(try args.string("table_name"))
        let column = try quoted(try args.string("column_name"))
        let type = try args.string("column_type")
        var sql = "ALTER TABLE \(table) ADD COLUMN \(column) \(type)"
        do throws(StorageError) {
            try SQLGuard.validateAddColumnType(type)
            if let value = args.params["default"], !value.isNil {
                let literal: SQLValue
                switch value {
                case .string(let s): literal = .text(s)
                case .int(let i): literal = .integer(i)
                case .double(let d): literal = .real(d)
                case .bool(let b): literal = .integer(b ? 1 : 0)
                default: throw StorageError(.valueError, "alter_table_add_column(): default must be str, int, float, bool or None")
                }
                if let text = try SQLGuard.defaultLiteral(literal) { sql += " DEFAULT \(text)" }
            }
        } catch { throw NanaRemoteError(error) }
        runTrusted(msgid, database, sql, []) { _ in .value(.nil) }
    }

    // MARK: Utilities

    func vacuum(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let owner = try transactionOwner(database)
        respondLater(msgid, { database.vacuum(owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func pragma(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let owner = try transactionOwner(database)
        let name = try args.string("pragma_name")
        let value: SQLValue?
        switch args.params["value"] ?? .nil {
        case .nil: value = nil
        case .int(let i): value = .integer(i)
        case .double(let d): value = .real(d)
        case .string(let s): value = .text(s)
        case let other: throw NanaRemoteError(.valueError, "PRAGMA value must be int, float or str, not \(other.typeName)")
        }
        if isReadOnly(args), value != nil {
            // Without a value every PRAGMA SQLGuard admits only reads (its list has no acting
            // one such as wal_checkpoint or optimize).
            throw NanaRemoteError(.validation, "this database is read-only for this user: pragma() would set '\(name)'")
        }
        if value != nil, Self.daemonOwnedPragmas.contains(name) {
            throw NanaRemoteError(.validation, "PRAGMA '\(name)' is managed by nanad for every client of the file and cannot be set through pragma()")
        }
        let sql: String
        do throws(StorageError) { sql = try SQLGuard.pragmaSQL(name, value: value) } catch { throw NanaRemoteError(error) }
        respondLater(msgid, { database.pragma(sql, owner: owner, completion: $0) }) { result in
            .value(value == nil ? (Self.row([result]).arrayValue?.first ?? .nil) : .nil)
        }
    }

    // MARK: Backup and restore

    /// Paths are files inside the data folder, like `db_path` (absolute paths and `..` refused).
    func backup(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let requested = try args.string("dest_path")
        if requested == ":memory:" || requested.hasPrefix("file::memory:") {
            throw NanaRemoteError(.validation, "dest_path must be a file, not an in-memory database")
        }
        let verify = try args.bool("verify", default: true)
        let flush = try args.bool("flush", default: true)
        let allowIncomplete = try args.bool("allow_incomplete", default: false)
        let destination = try resolvePath(requested)
        // The destination is judged as a write to that path: no peer replaces (or creates) a
        // file its rules do not let it write.
        _ = try accessRule(for: requested, to: .write)
        guard destination != database.path else {
            throw NanaRemoteError(.validation, "dest_path must not be the same as the current database file")
        }
        // Renaming over a file nanad has open would pull it from under its connections.
        guard !state.registry.databases.contains(where: { $0.path == destination }) else {
            throw NanaRemoteError(.validation, "dest_path names a database this nanad is serving; back up to a new file")
        }
        // Staged v2 rows are flushed first, unless the session's own transaction holds the
        // writer: the flush would wait for its COMMIT (found by nanafuzz-dispatch). The copy
        // is of committed data either way.
        // A read-only peer does not flush either: the flush would write the file it may only
        // read, so its backup holds what is committed.
        let flushFirst = flush && !holdsTransaction(on: database) && !isReadOnly(args)
        respondLater(msgid, { (done: @escaping @Sendable (Result<Void, StorageError>) -> Void) in
            let copy: @Sendable () -> Void = {
                // A failed write-behind row was acknowledged but is not in the file (spec §3.7).
                if !allowIncomplete, database.openTables.contains(where: { !$0.deadLetters.isEmpty }) {
                    return done(.failure(StorageError(.database, "Backup refused because the v2 dead-letter queue is not empty; retry or clear failed writes, or pass allow_incomplete=True")))
                }
                database.backup(to: destination, verify: verify, completion: done)
            }
            if flushFirst { database.afterStagedWrites(copy) } else { copy() }
        }) { _ in .value(.nil) }
    }

    func restore(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let id = try args.int("db")
        let handle = try self.handle(id)
        guard handle.root == id else {
            throw NanaRemoteError(.connection, "restore() can only be called on the instance that opened the database, not on a table() child")
        }
        let database = handle.table.database
        if try transactionOwner(database) != nil {
            throw NanaRemoteError(.transaction, "Cannot restore while a transaction is in progress. Please commit or rollback first.")
        }
        let requested = try args.string("src_path")
        let source = try resolvePath(requested)
        // The source is judged as an open of that path: no peer reads a file through restore
        // that it may not open.
        _ = try accessRule(for: requested, to: .read)
        guard source != database.path else { throw NanaRemoteError(.validation, "src_path must not be the database itself") }
        guard FileManager.default.fileExists(atPath: source) else {
            throw NanaRemoteError(.database, "Could not verify restore source: no such file")
        }
        // Rows staged before the restore reach the old contents first and are replaced with
        // them, as NanaSQLite flushes before restoring; none is written over the restored data.
        respondLater(msgid, { (done: @escaping @Sendable (Result<Void, StorageError>) -> Void) in
            database.afterStagedWrites { database.restore(from: source, completion: done) }
        }) { _ in .value(.nil) }
    }

    func resolvePath(_ path: String) throws(NanaRemoteError) -> String {
        do { return try state.registry.resolve(path) } catch { throw NanaRemoteError(error) }
    }

    // MARK: Plumbing

    func runTrusted(_ msgid: UInt32, _ database: Database, _ sql: String, _ parameters: [SQLValue], _ finish: @escaping @Sendable (SQLResult) -> Reply) {
        let owner: TransactionToken?
        do throws(NanaRemoteError) { owner = try transactionOwner(database) } catch { return reply(msgid, .error(error)) }
        respondLater(msgid, { database.execute(sql, parameters: parameters, trusted: true, owner: owner, completion: $0) }, finish)
    }

    func quoted(_ name: String) throws(NanaRemoteError) -> String {
        do { return try Identifier.quoted(name) } catch { throw NanaRemoteError(error) }
    }

    private static func validated(_ name: String) throws(NanaRemoteError) -> String {
        do { return try Identifier.validated(name) } catch { throw NanaRemoteError(error) }
    }

    func nonNegative(_ args: Arguments, _ name: String) throws(NanaRemoteError) -> Int64? {
        guard let value = args.params[name], !value.isNil else { return nil }
        let n: Int64
        switch value {
        case .int(let i): n = i
        case .bool(let b): n = b ? 1 : 0  // Python's bool is an int; NanaSQLite accepts it
        default: throw NanaRemoteError(.valueError, "\(name) must be an integer, not \(value.typeName)")
        }
        guard n >= 0 else { throw NanaRemoteError(.valueError, "\(name) must be a non-negative integer") }
        return n
    }

    /// Checks an expression with the handle's policy and the call's overrides.
    func guardExpression(_ expression: String, _ context: SQLExpressionContext, _ policy: SQLFunctionPolicy, _ args: Arguments) throws(NanaRemoteError) {
        let strict: Bool? = switch args.params["strict_sql_validation"] {
        case .bool(let b)?: b
        default: nil
        }
        let allowed = args.params["allowed_sql_functions"]?.arrayValue?.compactMap(\.stringValue)
        let forbidden = args.params["forbidden_sql_functions"]?.arrayValue?.compactMap(\.stringValue)
        let overrideAllowed = args.params["override_allowed"]?.boolValue ?? false
        do throws(StorageError) {
            let warnings = try SQLGuard.validate(expression, context: context, policy: policy, strict: strict, allowed: allowed,
                                                 forbidden: forbidden, overrideAllowed: overrideAllowed)
            for warning in warnings { logger.info("SQL expression accepted with a warning (strict_sql_validation is off)", metadata: ["warning": "\(warning)"]) }
        } catch {
            throw NanaRemoteError(error)
        }
    }
}
