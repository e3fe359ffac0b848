import NanaStorage
import NanaWire

// NanaSQLite's row and query helpers (behaviour spec §7.2): each reads its arguments, checks
// its expressions with the handle's policy and the call's overrides, and has NanaStorage build
// the statement (`SQLHelperStatements`) with every value bound. They run as trusted SQL (see
// `UserSQLPolicy`): nothing they build is refused, and the caches of key-value tables they
// write are cleared after COMMIT, as for `execute`.
extension ConnectionHandler {
    // MARK: Rows

    func sqlInsert(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let data = try args.map("data")
        let tableName = try args.string("table_name")
        let sql = try storage { () throws(StorageError) in try SQLHelperStatements.insert(into: tableName, columns: data.keys.map(\.string)) }
        let parameters = try Self.sqlParameters(.array(Array(data.values)), method: args.method)
        runTrusted(msgid, database, sql, parameters) { .value(.int($0.lastInsertRowID)) }
    }

    func sqlUpdate(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let tableName = try args.string("table_name")
        let data = try args.map("data")
        let whereClause = try args.string("where")
        try guardExpression(whereClause, .whereClause, handle.policy, args)
        let sql = try storage { () throws(StorageError) in try SQLHelperStatements.update(tableName, setting: data.keys.map(\.string), where: whereClause) }
        let parameters = try Self.sqlParameters(.array(Array(data.values)), method: args.method)
            + Self.sqlParameters(args.params["parameters"], method: args.method)
        runTrusted(msgid, handle.table.database, sql, parameters) { .value(.int(Int64($0.changes))) }
    }

    func sqlDelete(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let tableName = try args.string("table_name")
        let whereClause = try args.string("where")
        try guardExpression(whereClause, .whereClause, handle.policy, args)
        let sql = try storage { () throws(StorageError) in try SQLHelperStatements.delete(from: tableName, where: whereClause) }
        let parameters = try Self.sqlParameters(args.params["parameters"], method: args.method)
        runTrusted(msgid, handle.table.database, sql, parameters) { .value(.int(Int64($0.changes))) }
    }

    /// NanaSQLite's forms, told apart by their arguments first: `{key, value}` is the key-value
    /// form; `{data: map}` (or a map as `table_name`) upserts into this handle's table;
    /// `{table_name: str, data: non-map}` is the key-value form of the positional
    /// `upsert(key, value)`. `{table_name: str, data: map}` is a row upsert when that table
    /// exists and otherwise stores `data` under the key `table_name`, as NanaSQLite 1.6 decides
    /// it; the writer decides (``KeyValueTable/upsert(into:sql:parameters:orStore:owner:completion:)``),
    /// so the answer cannot change between the question and the write.
    func upsert(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let table = handle.table
        let owner = try transactionOwner(table.database)
        func keyValueWrite(_ key: String, _ value: NanaValue) throws(NanaRemoteError) {
            let storable = try ValueCodec.storable(value, using: writer)
            respondLater(msgid, { table.set(key, storable, owner: owner, completion: $0) }) { _ in .value(.nil) }
        }
        if args.has("key") || args.has("value") {
            return try keyValueWrite(try args.string("key"), try args.value("value"))
        }
        let tableName: String
        let data: NanaParams
        let ownTable: Bool
        switch (args.params["table_name"] ?? .nil, args.params["data"] ?? .nil) {
        case (.nil, .map(let m)), (.map(let m), .nil):
            tableName = table.name
            data = m
            ownTable = true
        case (.string(let name), .map(let m)):
            // A name that is no identifier names no table: NanaSQLite stores under it.
            guard (try? Identifier.validated(name)) != nil else { return try keyValueWrite(name, .map(m)) }
            tableName = name
            data = m
            ownTable = false
        case (.string(let key), let value) where !value.isNil:
            return try keyValueWrite(key, value)
        default:
            throw NanaRemoteError(.valueError, "upsert() takes (table_name, data[, conflict_columns]), (data) or (key, value)")
        }
        let conflictColumns = args.params["conflict_columns"].flatMap { $0.isNil ? nil : $0 } == nil ? nil : try args.strings("conflict_columns")
        let sql = try storage { () throws(StorageError) in
            try SQLHelperStatements.upsert(into: tableName, columns: data.keys.map(\.string), conflictColumns: conflictColumns)
        }
        let parameters = try Self.sqlParameters(.array(Array(data.values)), method: args.method)
        if ownTable {
            // This handle's own table exists: a row upsert, with no key-value fallback.
            return runTrusted(msgid, table.database, sql, parameters) { result in
                .value(result.rows.first.flatMap { row -> NanaValue? in if case .integer(let id)? = row.first { return .int(id) }; return nil } ?? .int(0))
            }
        }
        let fallback = try ValueCodec.storable(.map(data), using: writer)
        respondLater(msgid, { table.upsert(into: tableName, sql: sql, parameters: parameters, orStore: fallback, owner: owner, completion: $0) }) { outcome in
            switch outcome {
            case .row(let rowid): .value(.int(rowid))
            case .storedUnderKey: .value(.nil)
            }
        }
    }

    // MARK: Queries

    func query(_ msgid: UInt32, _ args: Arguments, paginated: Bool) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        var columns: [SQLHelperStatements.Column]?
        if let given = args.params["columns"], !given.isNil {
            let list = try args.strings("columns")
            guard !list.isEmpty else { throw NanaRemoteError(.valueError, "\(args.method)(): columns must not be empty") }
            columns = try list.map { (c) throws(NanaRemoteError) -> SQLHelperStatements.Column in
                if (try? Identifier.validated(c)) != nil { return .name(c) }
                try guardExpression(c, .column, handle.policy, args)
                return .expression(c)
            }
        }
        let whereClause = try guarded(args, "where", .whereClause, handle.policy)
        let groupBy = paginated ? try guarded(args, "group_by", .groupBy, handle.policy) : nil
        let orderBy = try guarded(args, "order_by", .orderBy, handle.policy)
        let limit = try nonNegative(args, "limit")
        let offset = paginated ? try nonNegative(args, "offset") : nil
        let tableName = try args.optionalString("table_name") ?? handle.table.name
        let sql = try storage { () throws(StorageError) in
            try SQLHelperStatements.select(columns, from: tableName, where: whereClause, groupBy: groupBy, orderBy: orderBy, limit: limit, offset: offset)
        }
        let parameters = try Self.sqlParameters(args.params["parameters"], method: args.method)
        try fetchTrusted(msgid, args, handle.table.database, sql, parameters) { result in
            .value(.array(result.rows.map { row in
                var map = NanaParams(minimumCapacity: row.count)
                for (name, value) in zip(result.columns, Self.row(row).arrayValue ?? []) { map[NanaKey(name)] = value }
                return .map(map)
            }))
        }
    }

    func count(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let tableName = try args.optionalString("table_name") ?? handle.table.name
        let whereClause = try guarded(args, "where", .none, handle.policy)
        let sql = try storage { () throws(StorageError) in try SQLHelperStatements.count(in: tableName, where: whereClause) }
        let parameters = try Self.sqlParameters(args.params["parameters"], method: args.method)
        try fetchTrusted(msgid, args, handle.table.database, sql, parameters) { result in
            guard case .integer(let n)? = result.rows.first?.first else { return .value(0) }
            return .value(.int(n))
        }
    }

    func exists(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let tableName = try args.string("table_name")
        let whereClause = try args.string("where")
        try guardExpression(whereClause, .whereClause, handle.policy, args)
        let sql = try storage { () throws(StorageError) in try SQLHelperStatements.exists(in: tableName, where: whereClause) }
        let parameters = try Self.sqlParameters(args.params["parameters"], method: args.method)
        try fetchTrusted(msgid, args, handle.table.database, sql, parameters) { result in
            .value(.bool(result.rows.first?.first == .integer(1)))
        }
    }

    // MARK: Plumbing

    /// Runs a statement a helper built, as trusted SQL on the writer.
    func runTrusted(_ msgid: UInt32, _ database: Database, _ sql: String, _ parameters: [SQLValue], _ finish: @escaping @Sendable (SQLResult) -> Reply) {
        let owner: TransactionToken?
        do throws(NanaRemoteError) { owner = try transactionOwner(database) } catch { return reply(msgid, .error(error)) }
        respondLater(msgid, { database.execute(sql, parameters: parameters, trusted: true, owner: owner, completion: $0) }, finish)
    }

    /// Runs a query a helper built, as trusted SQL on a reader (on the writer inside the
    /// session's transaction), refused if it would write on a read-only handle.
    func fetchTrusted(_ msgid: UInt32, _ args: Arguments, _ database: Database, _ sql: String, _ parameters: [SQLValue], _ finish: @escaping @Sendable (SQLResult) -> Reply) throws(NanaRemoteError) {
        let owner = try transactionOwner(database)
        let readOnly = isReadOnly(args)
        respondLater(msgid, { database.fetch(sql, parameters: parameters, trusted: true, readOnly: readOnly, owner: owner, completion: $0) }, finish)
    }

    /// Runs a NanaStorage step whose errors are the client's (a bad name, an empty list).
    func storage<T>(_ body: () throws(StorageError) -> T) throws(NanaRemoteError) -> T {
        do { return try body() } catch { throw NanaRemoteError(error) }
    }

    private func nonNegative(_ args: Arguments, _ name: String) throws(NanaRemoteError) -> Int64? {
        guard let value = args.params[name], !value.isNil else { return nil }
        let n: Int64
        switch value {
        case .int(let i): n = i
        case .bool(let b): n = b ? 1 : 0  // Python's bool is an int; NanaSQLite accepts it
        default: throw NanaRemoteError(.valueError, "\(name) must be an integer, got \(value.typeName)")  // NanaSQLite's wording
        }
        guard n >= 0 else { throw NanaRemoteError(.valueError, "\(name) must be non-negative") }
        return n
    }

    /// An optional expression argument, checked; nil when absent or empty.
    private func guarded(_ args: Arguments, _ name: String, _ context: SQLExpressionContext, _ policy: SQLFunctionPolicy) throws(NanaRemoteError) -> String? {
        guard let expression = try args.optionalString(name), !expression.isEmpty else { return nil }
        try guardExpression(expression, context, policy, args)
        return expression
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
