import NanaWire
import OrderedCollections

/// NanaSQLite's SQL helpers, schema methods and utilities. Every name is validated and every
/// expression guarded by the daemon (`proto/PROTOCOL.md`); values are always bound.
extension NanaDatabase {
    /// Per-call overrides of the handle's SQL-function policy (NanaSQLite's keyword arguments).
    public struct SQLOverrides: Sendable {
        public var strict: Bool?
        public var allowedFunctions: [String]?
        public var forbiddenFunctions: [String]?
        public var overrideAllowed = false

        public init(strict: Bool? = nil, allowedFunctions: [String]? = nil, forbiddenFunctions: [String]? = nil, overrideAllowed: Bool = false) {
            self.strict = strict
            self.allowedFunctions = allowedFunctions
            self.forbiddenFunctions = forbiddenFunctions
            self.overrideAllowed = overrideAllowed
        }

        func add(to params: inout NanaParams) {
            if let strict { params["strict_sql_validation"] = .bool(strict) }
            if let allowedFunctions { params["allowed_sql_functions"] = .array(allowedFunctions.map(NanaValue.string)) }
            if let forbiddenFunctions { params["forbidden_sql_functions"] = .array(forbiddenFunctions.map(NanaValue.string)) }
            if overrideAllowed { params["override_allowed"] = true }
        }
    }

    private func helper(_ method: String, _ params: NanaParams) async throws -> NanaValue {
        try await call(method, params)
    }

    // MARK: Rows

    /// Inserts a row and returns its rowid.
    @discardableResult
    public func sqlInsert(_ table: String, _ data: NanaParams) async throws -> Int64 {
        try await helper("sql_insert", ["table_name": .string(table), "data": .map(data)]).int64Value ?? 0
    }

    /// Updates the rows matching `where` and returns how many changed.
    @discardableResult
    public func sqlUpdate(_ table: String, _ data: NanaParams, where condition: String, _ parameters: [NanaValue] = []) async throws -> Int {
        Int(try await helper("sql_update", ["table_name": .string(table), "data": .map(data), "where": .string(condition), "parameters": .array(parameters)]).int64Value ?? 0)
    }

    /// Deletes the rows matching `where` and returns how many.
    @discardableResult
    public func sqlDelete(_ table: String, where condition: String, _ parameters: [NanaValue] = []) async throws -> Int {
        Int(try await helper("sql_delete", ["table_name": .string(table), "where": .string(condition), "parameters": .array(parameters)]).int64Value ?? 0)
    }

    /// Inserts or replaces a row (or updates it on `conflictColumns`); returns the row's rowid.
    /// When no table named `table` exists, stores `data` under the key `table` in this handle's
    /// table instead and returns nil, as NanaSQLite does (the daemon decides it atomically).
    @discardableResult
    public func upsert(table: String, _ data: NanaParams, conflictColumns: [String]? = nil) async throws -> Int64? {
        var params: NanaParams = ["table_name": .string(table), "data": .map(data)]
        if let conflictColumns { params["conflict_columns"] = .array(conflictColumns.map(NanaValue.string)) }
        return try await helper("upsert", params).int64Value
    }

    /// NanaSQLite's key-value `upsert(key, value)`: the same as ``set(_:_:)-(String,NanaValue)``.
    public func upsert(key: String, _ value: NanaValue) async throws {
        if !hooks.isEmpty { return try await hookedSet("upsert", key, value) }
        _ = try await helper("upsert", ["key": .string(key), "value": value])
    }

    /// Rows of `table` (this handle's table by default) as maps keyed by column name.
    public func query(
        table: String? = nil, columns: [String]? = nil, where condition: String? = nil, _ parameters: [NanaValue] = [],
        orderBy: String? = nil, limit: Int? = nil, overrides: SQLOverrides = SQLOverrides()
    ) async throws -> [NanaParams] {
        var params = Self.queryParams(table, columns, condition, parameters, orderBy, limit)
        overrides.add(to: &params)
        return try await helper("query", params).arrayValue?.compactMap(\.mapValue) ?? []
    }

    /// ``query(table:columns:where:_:orderBy:limit:overrides:)`` with OFFSET and GROUP BY.
    public func queryWithPagination(
        table: String? = nil, columns: [String]? = nil, where condition: String? = nil, _ parameters: [NanaValue] = [],
        orderBy: String? = nil, limit: Int? = nil, offset: Int? = nil, groupBy: String? = nil, overrides: SQLOverrides = SQLOverrides()
    ) async throws -> [NanaParams] {
        var params = Self.queryParams(table, columns, condition, parameters, orderBy, limit)
        if let offset { params["offset"] = .int(Int64(offset)) }
        if let groupBy { params["group_by"] = .string(groupBy) }
        overrides.add(to: &params)
        return try await helper("query_with_pagination", params).arrayValue?.compactMap(\.mapValue) ?? []
    }

    private static func queryParams(_ table: String?, _ columns: [String]?, _ condition: String?, _ parameters: [NanaValue], _ orderBy: String?, _ limit: Int?) -> NanaParams {
        var params: NanaParams = ["parameters": .array(parameters)]
        if let table { params["table_name"] = .string(table) }
        if let columns { params["columns"] = .array(columns.map(NanaValue.string)) }
        if let condition { params["where"] = .string(condition) }
        if let orderBy { params["order_by"] = .string(orderBy) }
        if let limit { params["limit"] = .int(Int64(limit)) }
        return params
    }

    /// The number of rows of `table` (this handle's by default) matching `where`.
    public func count(table: String?, where condition: String? = nil, _ parameters: [NanaValue] = [], overrides: SQLOverrides = SQLOverrides()) async throws -> Int {
        var params: NanaParams = ["parameters": .array(parameters)]
        if let table { params["table_name"] = .string(table) }
        if let condition { params["where"] = .string(condition) }
        overrides.add(to: &params)
        return Int(try await helper("count", params).int64Value ?? 0)
    }

    /// Whether a row of `table` matches `where`.
    public func exists(_ table: String, where condition: String, _ parameters: [NanaValue] = []) async throws -> Bool {
        try await helper("exists", ["table_name": .string(table), "where": .string(condition), "parameters": .array(parameters)]).boolValue ?? false
    }

    // MARK: Schema

    /// Creates a table; `columns` maps names to SQL types (checked against a whitelist).
    public func createTable(_ table: String, columns: OrderedDictionary<String, String>, ifNotExists: Bool = true, primaryKey: String? = nil) async throws {
        var params: NanaParams = ["table_name": .string(table), "columns": .map(NanaParams(uniqueKeysWithValues: columns.map { (NanaKey($0.key), NanaValue.string($0.value)) })), "if_not_exists": .bool(ifNotExists)]
        if let primaryKey { params["primary_key"] = .string(primaryKey) }
        _ = try await helper("create_table", params)
    }

    public func createIndex(_ index: String, on table: String, columns: [String], unique: Bool = false, ifNotExists: Bool = true) async throws {
        _ = try await helper("create_index", ["index_name": .string(index), "table_name": .string(table), "columns": .array(columns.map(NanaValue.string)),
                                              "unique": .bool(unique), "if_not_exists": .bool(ifNotExists)])
    }

    public func dropTable(_ table: String, ifExists: Bool = true) async throws {
        _ = try await helper("drop_table", ["table_name": .string(table), "if_exists": .bool(ifExists)])
    }

    public func dropIndex(_ index: String, ifExists: Bool = true) async throws {
        _ = try await helper("drop_index", ["index_name": .string(index), "if_exists": .bool(ifExists)])
    }

    public func tableExists(_ table: String) async throws -> Bool {
        try await helper("table_exists", ["table_name": .string(table)]).boolValue ?? false
    }

    public func listTables() async throws -> [String] {
        try await helper("list_tables", [:]).arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// Columns of `table` (this handle's by default): `cid`, `name`, `type`, `notnull`, `default_value`, `pk`.
    public func tableSchema(_ table: String? = nil) async throws -> [NanaParams] {
        try await helper("get_table_schema", table.map { ["table_name": .string($0)] } ?? [:]).arrayValue?.compactMap(\.mapValue) ?? []
    }

    /// Indexes (optionally of one table): `name`, `table`, `sql`.
    public func listIndexes(_ table: String? = nil) async throws -> [NanaParams] {
        try await helper("list_indexes", table.map { ["table_name": .string($0)] } ?? [:]).arrayValue?.compactMap(\.mapValue) ?? []
    }

    public func alterTableAddColumn(_ table: String, column: String, type: String, default defaultValue: NanaValue = .nil) async throws {
        _ = try await helper("alter_table_add_column", ["table_name": .string(table), "column_name": .string(column), "column_type": .string(type), "default": defaultValue])
    }

    // MARK: Utilities

    public func vacuum() async throws {
        _ = try await helper("vacuum", [:])
    }

    /// Reads a PRAGMA (from the allow-list), or sets one when `value` is given.
    @discardableResult
    public func pragma(_ name: String, _ value: NanaValue = .nil) async throws -> NanaValue {
        try await helper("pragma", ["pragma_name": .string(name), "value": value])
    }
}
