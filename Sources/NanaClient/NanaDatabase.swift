import NanaWire
import OrderedCollections

/// What ``NanaDatabase/execute(_:_:)`` returns.
public struct NanaSQLResult: Sendable, Hashable {
    public var columns: [String]
    public var rows: [[NanaValue]]
    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var rowCount: Int
    /// The rowid of the last INSERT.
    public var lastInsertRowID: Int64
}

/// One open key-value table on the daemon: NanaSQLite's dict interface, async.
///
/// Every method is one round trip (with ``hooks``, some add a read first: see
/// ``NanaHook``). The cache lives in the daemon and is shared by every
/// process, so a value written by any client is what the next read anywhere returns.
/// Errors the daemon answers with are ``NanaWire/NanaRemoteError``s whose `type` is
/// NanaSQLite's exception name (`KeyError`, `NanaSQLiteValidationError`, …).
public struct NanaDatabase: Sendable {
    public let client: NanaClient
    /// How it was opened and its handle on the current connection: the same table goes on
    /// working after the client reconnects.
    let registration: TableRegistration
    /// Hooks run in this process around reads, writes and deletes, in order (``NanaHook``);
    /// none unless set with ``withHooks(_:)``. Tables opened with ``table(_:)`` inherit them.
    public let hooks: [any NanaHook]
    /// The near-cache limits asked for at `open`; when enabled the daemon answers `get`,
    /// `contains` and `batch_get` with stamps (a tracking handle, PROTOCOL §10).
    let nearCacheLimits: NanaNearCache

    /// The daemon's handle for this table on the client's current connection (it changes
    /// when the client reconnects); for ``NanaClient/call(_:_:)`` with methods the typed API
    /// does not cover.
    public var handle: Int64 { registration.lastHandle }
    /// The table's name.
    public var table: String { registration.table }
    /// This handle's near-cache; nil when off. (`registration.nearCache`, held here too: read
    /// from this struct, a hit does not retain it.)
    let nearCache: NearCacheTable?

    var isTracking: Bool { nearCacheLimits.isEnabled }

    init(client: NanaClient, registration: TableRegistration, hooks: [any NanaHook] = [], nearCache: NanaNearCache = .off) {
        self.client = client
        self.registration = registration
        self.nearCache = registration.nearCache
        self.hooks = hooks
        self.nearCacheLimits = nearCache
    }

    /// The same handle with other hooks (``withHooks(_:)``).
    init(_ database: NanaDatabase, hooks: [any NanaHook]) {
        self.client = database.client
        self.registration = database.registration
        self.nearCache = database.nearCache
        self.hooks = hooks
        self.nearCacheLimits = database.nearCacheLimits
    }

    func call(_ method: String, _ params: NanaParams = [:]) async throws -> NanaValue {
        try await client.send(method, params, table: registration).value
    }

    /// A call, and the connection that answered it (whose board a tracked reply's stamps are on).
    func callTracked(_ method: String, _ params: NanaParams) async throws -> (value: NanaValue, connection: ClientConnection) {
        try await client.send(method, params, table: registration)
    }

    // MARK: Dict interface

    /// The value of `key`, or `default` when the key is missing (`get`).
    ///
    /// Inlinable, with the near-cache's hit a synchronous call: a hit allocates no async frame
    /// and makes no executor check or switch (together about a fifth of a hit's time). It
    /// answers in a cancelled task too: it makes no call and does not wait.
    @inlinable
    nonisolated(nonsending) public func get(_ key: String, default defaultValue: NanaValue = .nil) async throws -> NanaValue {
        if let hit = nearCacheGet(key, default: defaultValue) { return hit }
        return try await getFromDaemon(key, default: defaultValue)
    }

    /// A near-cache hit's answer to `get` (the value, or `default` for a key known missing);
    /// nil for anything else: no near-cache, hooks to run, or a miss.
    @usableFromInline
    func nearCacheGet(_ key: String, default defaultValue: NanaValue) -> NanaValue? {
        guard hooks.isEmpty, let answer = nearCache?.lookup(key, needsValue: true) else { return nil }
        if case .value(let value) = answer { return value }
        return defaultValue
    }

    /// `get` past the near-cache: hooks, a tracked read that fills it, or a plain call.
    @usableFromInline
    nonisolated(nonsending) func getFromDaemon(_ key: String, default defaultValue: NanaValue) async throws -> NanaValue {
        if !hooks.isEmpty { return try await hookedGet("get", key, default: defaultValue) }
        if isTracking { return try await trackedGet(key, lookedUp: nearCache != nil) ?? defaultValue }
        return try await call("get", ["key": .string(key), "default": defaultValue])
    }

    /// The value of `key` decoded as `T`, or `nil` when the key is missing.
    nonisolated(nonsending) public func get<T: Decodable & Sendable>(_ key: String, as type: T.Type) async throws -> T? {
        guard let value = try await batchGet([key])[NanaKey(key)] else { return nil }
        return try value.decode(as: T.self)
    }

    /// Stores `value` under `key` (`set`, NanaSQLite's `db[key] = value`).
    public func set(_ key: String, _ value: NanaValue) async throws {
        if !hooks.isEmpty { return try await hookedSet("set", key, value) }
        _ = try await call("set", ["key": .string(key), "value": value])
    }

    /// Stores any `Encodable` under `key`, as the JSON `JSONEncoder` makes of it.
    public func set<T: Encodable>(_ key: String, _ value: T) async throws {
        try await set(key, try NanaValue(encoding: value))
    }

    /// Deletes `key`; throws a `KeyError` ``NanaWire/NanaRemoteError`` when it is missing.
    public func delete(_ key: String) async throws {
        if !hooks.isEmpty { return try await hookedDelete(key) }
        _ = try await call("delete", ["key": .string(key)])
    }

    /// Whether `key` exists (`contains`, NanaSQLite's `key in db`); a near-cache hit is
    /// synchronous, as `get`'s.
    @inlinable
    nonisolated(nonsending) public func contains(_ key: String) async throws -> Bool {
        if let hit = nearCacheContains(key) { return hit }
        return try await containsFromDaemon(key)
    }

    /// A near-cache hit's answer to `contains`; nil on a miss or without a near-cache.
    @usableFromInline
    func nearCacheContains(_ key: String) -> Bool? {
        guard let answer = nearCache?.lookup(key, needsValue: false) else { return nil }
        if case .absent = answer { return false }
        return true
    }

    @usableFromInline
    nonisolated(nonsending) func containsFromDaemon(_ key: String) async throws -> Bool {
        if isTracking { return try await trackedContains(key, lookedUp: nearCache != nil) }
        return try await call("contains", ["key": .string(key)]).boolValue ?? false
    }

    /// The number of rows (`len`).
    public func count() async throws -> Int {
        Int(try await call("len").int64Value ?? 0)
    }

    /// Every key, in SQLite's order.
    public func keys() async throws -> [String] {
        try await call("keys").arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// Every value, in SQLite's order.
    public func values() async throws -> [NanaValue] {
        try await call("values").arrayValue ?? []
    }

    /// Every row, in SQLite's order.
    public func items() async throws -> [(key: String, value: NanaValue)] {
        try await call("items").arrayValue?.compactMap { pair in
            guard let items = pair.arrayValue, items.count == 2, let key = items[0].stringValue else { return nil }
            return (key, items[1])
        } ?? []
    }

    /// Deletes `key` and returns its value; throws `KeyError` when it is missing.
    public func pop(_ key: String) async throws -> NanaValue {
        if !hooks.isEmpty { return try await hookedPop(key, default: nil) }
        return try await call("pop", ["key": .string(key)])
    }

    /// Deletes `key` and returns its value, or `default` when it is missing.
    public func pop(_ key: String, default defaultValue: NanaValue) async throws -> NanaValue {
        if !hooks.isEmpty { return try await hookedPop(key, default: defaultValue) }
        return try await call("pop", ["key": .string(key), "default": defaultValue])
    }

    /// Stores every pair, in one transaction.
    public func update(_ mapping: NanaParams) async throws {
        if !hooks.isEmpty { return try await hookedUpdate("update", mapping) }
        _ = try await call("update", ["mapping": .map(mapping)])
    }

    /// Deletes every row.
    public func clear() async throws {
        _ = try await call("clear")
    }

    /// The value of `key`, storing `default` first when the key is missing.
    public func setDefault(_ key: String, _ defaultValue: NanaValue = .nil) async throws -> NanaValue {
        if !hooks.isEmpty { return try await hookedSetDefault(key, defaultValue) }
        return try await call("setdefault", ["key": .string(key), "default": defaultValue])
    }

    /// Every row as a dictionary (`to_dict`).
    public func toDict() async throws -> NanaParams {
        try await call("to_dict").mapValue ?? [:]
    }

    /// Same as ``toDict()`` (`copy`).
    public func copy() async throws -> NanaParams {
        try await call("copy").mapValue ?? [:]
    }

    // MARK: Atomic updates

    /// Adds `amount` to the number stored under `key` and returns the new number, atomically
    /// for every client of the daemon. A missing key starts from `default` (or is a `KeyError`).
    /// With `field`, the stored value is a dict: that field is incremented and the whole dict
    /// is returned.
    @discardableResult
    public func increment(_ key: String, by amount: NanaValue = 1, field: String? = nil, default defaultValue: NanaValue? = nil) async throws -> NanaValue {
        var params: NanaParams = ["key": .string(key), "amount": amount]
        if let field { params["field"] = .string(field) }
        if let defaultValue { params["default"] = defaultValue }
        return try await call("increment", params)
    }

    /// Merges `changes` into the dict stored under `key` (top-level keys replace) and returns
    /// the result, atomically. A missing key is a `KeyError` unless `create` is true.
    @discardableResult
    public func patch(_ key: String, _ changes: NanaParams, create: Bool = false) async throws -> NanaValue {
        try await call("patch", ["key": .string(key), "changes": .map(changes), "create": .bool(create)])
    }

    // MARK: Transactions

    /// Starts a transaction on this file for this connection: until ``commit()`` or
    /// ``rollback()``, this connection's calls run inside it and see their own writes, other
    /// clients keep reading committed data, and their writes wait. The daemon rolls it back
    /// if this connection drops or the daemon's transaction timeout passes; after a dropped
    /// connection, the calls on this file fail with `NanaSQLiteTransactionError` until
    /// `rollback()` or `commit()` (which fail the same way, and end it).
    public func beginTransaction() async throws {
        // Reads from here to the end go to the daemon: they must see the transaction's own
        // writes, which change no stamp until COMMIT.
        let board = nearCache?.board
        board?.inTransaction.store(true, ordering: .releasing)
        do {
            let (_, connection) = try await callTracked("begin_transaction", [:])
            registration.root.noteTransaction(on: connection.id)
        } catch {
            board?.inTransaction.store(false, ordering: .releasing)
            throw error
        }
    }

    /// Commits the transaction; its writes become visible to every client.
    public func commit() async throws {
        try await endTransaction("commit")
    }

    /// Rolls the transaction back; nothing it wrote remains.
    public func rollback() async throws {
        try await endTransaction("rollback")
    }

    /// Whatever the answer (even none: the connection lost), the transaction is over.
    private func endTransaction(_ method: String) async throws {
        let board = nearCache?.board
        defer {
            registration.root.noteTransaction(on: nil)
            board?.inTransaction.store(false, ordering: .releasing)
        }
        _ = try await call(method)
    }

    /// Whether this connection has a transaction open on this file.
    public func inTransaction() async throws -> Bool {
        try await call("in_transaction").boolValue ?? false
    }

    /// Runs `body` in a transaction: commits when it returns, rolls back when it throws (and
    /// rethrows).
    public func transaction<T: Sendable>(_ body: (NanaDatabase) async throws -> T) async throws -> T {
        try await beginTransaction()
        let result: T
        do {
            result = try await body(self)
        } catch {
            try? await rollback()
            throw error
        }
        try await commit()
        return result
    }

    // MARK: Backup and restore

    /// Copies the whole file to `destination` (a file inside the daemon's data folder) with
    /// SQLite's online backup, checked with `integrity_check` when `verify`, then renamed into
    /// place; an existing destination is replaced only by a complete, checked copy.
    public func backup(to destination: String, verify: Bool = true) async throws {
        _ = try await call("backup", ["dest_path": .string(destination), "verify": .bool(verify)])
    }

    /// Replaces the file's contents with `source` (a file inside the data folder) after checking
    /// it; every client then reads the restored data. Only the handle from `open` may restore.
    public func restore(from source: String) async throws {
        _ = try await call("restore", ["src_path": .string(source)])
    }

    // MARK: Models

    /// Stores a `Codable` model the way NanaSQLite's `set_model` stores a Pydantic one:
    /// `{"__pydantic_model__": "<type name>", "__pydantic_data__": <the model's fields>}`, so
    /// Python's `get_model(key, ModelClass)` can read it back.
    public func setModel<T: Encodable>(_ key: String, _ model: T) async throws {
        let data = try NanaValue(encoding: model)
        try await set(key, ["__pydantic_model__": .string(String(describing: T.self)), "__pydantic_data__": data])
    }

    /// Reads a model stored by ``setModel(_:_:)`` or NanaSQLite's `set_model`, or a plain dict
    /// of its fields; throws `KeyError` when the key is missing.
    public func getModel<T: Decodable>(_ key: String, as type: T.Type) async throws -> T {
        let rows = try await batchGet([key])
        guard let stored = rows[NanaKey(key)] else { throw NanaRemoteError(.keyError, key) }
        if let data = stored["__pydantic_data__"], stored["__pydantic_model__"] != nil {
            return try data.decode(as: T.self)
        }
        return try stored.decode(as: T.self)
    }

    // MARK: Direct SQL

    /// Runs SQL on the daemon's writer (one statement, or several separated by `;` without
    /// parameters) and returns the rows of the last statement that has any. Transaction
    /// control, ATTACH, PRAGMA and VACUUM are refused; see `proto/PROTOCOL.md`.
    @discardableResult
    public func execute(_ sql: String, _ parameters: [NanaValue] = []) async throws -> NanaSQLResult {
        let reply = try await call("execute", ["sql": .string(sql), "parameters": .array(parameters)])
        return NanaSQLResult(
            columns: reply["columns"]?.arrayValue?.compactMap(\.stringValue) ?? [],
            rows: reply["rows"]?.arrayValue?.map { $0.arrayValue ?? [] } ?? [],
            rowCount: Int(reply["rowcount"]?.int64Value ?? 0),
            lastInsertRowID: reply["lastrowid"]?.int64Value ?? 0
        )
    }

    /// Runs one statement once per parameter list, in one transaction.
    public func executeMany(_ sql: String, _ parametersList: [[NanaValue]]) async throws {
        _ = try await call("execute_many", ["sql": .string(sql), "parameters_list": .array(parametersList.map(NanaValue.array))])
    }

    /// The first row of a query, or `nil`.
    public func fetchOne(_ sql: String, _ parameters: [NanaValue] = []) async throws -> [NanaValue]? {
        try await call("fetch_one", ["sql": .string(sql), "parameters": .array(parameters)]).arrayValue
    }

    /// Every row of a query.
    public func fetchAll(_ sql: String, _ parameters: [NanaValue] = []) async throws -> [[NanaValue]] {
        try await call("fetch_all", ["sql": .string(sql), "parameters": .array(parameters)]).arrayValue?.map { $0.arrayValue ?? [] } ?? []
    }

    // MARK: Batches

    /// Stores every pair in one transaction: all or nothing.
    public func batchUpdate(_ mapping: NanaParams) async throws {
        if !hooks.isEmpty { return try await hookedUpdate("batch_update", mapping) }
        _ = try await call("batch_update", ["mapping": .map(mapping)])
    }

    /// Stores the pairs that can be stored; returns the refused keys with the reason.
    public func batchUpdatePartial(_ mapping: NanaParams) async throws -> [NanaKey: String] {
        if !hooks.isEmpty { return try await hookedBatchUpdatePartial(mapping) }
        let rejected = try await call("batch_update_partial", ["mapping": .map(mapping)]).mapValue ?? [:]
        var out: [NanaKey: String] = [:]
        for (key, reason) in rejected { out[key] = reason.stringValue ?? "\(reason)" }
        return out
    }

    /// The values of the keys that exist; missing keys are left out.
    nonisolated(nonsending) public func batchGet(_ keys: [String]) async throws -> NanaParams {
        if !hooks.isEmpty { return try await hookedBatchGet(keys) }
        if isTracking { return try await trackedBatchGet(keys) }
        return try await call("batch_get", ["keys": .array(keys.map(NanaValue.string))]).mapValue ?? [:]
    }

    /// Deletes the keys in one transaction; missing keys are ignored.
    public func batchDelete(_ keys: [String]) async throws {
        if !hooks.isEmpty { return try await hookedBatchDelete(keys) }
        _ = try await call("batch_delete", ["keys": .array(keys.map(NanaValue.string))])
    }

    // MARK: Cache control

    /// Loads every row into the daemon's shared cache.
    public func loadAll() async throws {
        _ = try await call("load_all")
    }

    /// Forgets `key` in the shared cache and reloads it; with `nil`, drops the whole cache.
    public func refresh(_ key: String? = nil) async throws {
        _ = try await call("refresh", key.map { ["key": .string($0)] } ?? [:])
    }

    /// Whether the shared cache holds `key` (its value, or the knowledge that it is missing).
    public func isCached(_ key: String) async throws -> Bool {
        try await call("is_cached", ["key": .string(key)]).boolValue ?? false
    }

    /// Reads `key` from SQLite, bypassing the cache, and refreshes the cache with it.
    public func getFresh(_ key: String, default defaultValue: NanaValue = .nil) async throws -> NanaValue {
        if !hooks.isEmpty { return try await hookedGet("get_fresh", key, default: defaultValue) }
        return try await call("get_fresh", ["key": .string(key), "default": defaultValue])
    }

    /// Drops the table's shared cache; the file is untouched.
    public func clearCache() async throws {
        _ = try await call("clear_cache")
    }

    // MARK: Tables and lifecycle

    /// Another key-value table of the same file (`table`), with this handle's ``hooks``.
    public func table(_ name: String) async throws -> NanaDatabase {
        let child = TableRegistration(origin: .table(parent: registration, name: name), dbPath: registration.dbPath, table: name, nearCache: nearCacheLimits)
        try await client.bind(child)
        return NanaDatabase(client: client, registration: child, hooks: hooks, nearCache: nearCacheLimits)
    }

    /// Closes this handle (and the tables opened from it, if it came from `open`); it is not
    /// opened again when the client reconnects, and later calls on it fail with
    /// `NanaSQLiteClosedError`. Closing twice is not an error.
    public func close() async throws {
        try await client.close(registration)
    }
}
