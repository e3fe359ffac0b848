import Foundation
import NanaStorage
import NanaWire

/// The argument names each method takes, built once (a `Set` literal at each call would
/// allocate on the hot path).
extension Set<String> {
    static let none: Set<String> = []
    static let hello: Set<String> = ["protocol", "client"]
    static let handleOnly: Set<String> = ["db"]
    static let key: Set<String> = ["db", "key"]
    static let keyAndDefault: Set<String> = ["db", "key", "default"]
    static let keyAndValue: Set<String> = ["db", "key", "value"]
    static let keys: Set<String> = ["db", "keys"]
    static let mapping: Set<String> = ["db", "mapping"]
    static let tableName: Set<String> = ["db", "table_name"]
    static let increment: Set<String> = ["db", "key", "amount", "field", "default"]
    static let patch: Set<String> = ["db", "key", "changes", "create"]
}

// The methods of the protocol (proto/PROTOCOL.md), named as NanaSQLite's without the `a` prefix.
// Each reads its arguments, answers cache hits on the event loop, and sends the rest to storage.
extension ConnectionHandler {
    func dispatch(msgid: UInt32, method: String, arguments args: Arguments) {
        do throws(NanaRemoteError) {
            try checkAccess(method, args)
            switch method {
            case "hello": try hello(msgid, args)
            case "ping": try args.only(.none); reply(msgid, .value("pong"))
            case "open": try open(msgid, args)
            case "table": try subTable(msgid, args)
            case "close": try close(msgid, args)
            case "get": try get(msgid, args)
            case "set": try set(msgid, args)
            case "delete": try delete(msgid, args)
            case "contains": try contains(msgid, args)
            case "len": try len(msgid, args)
            case "keys": try keys(msgid, args)
            case "values": try scan(msgid, args, as: .values)
            case "items": try scan(msgid, args, as: .items)
            case "to_dict", "copy": try scan(msgid, args, as: .dictionary)
            case "load_all": try scan(msgid, args, as: .nothing)
            case "pop": try pop(msgid, args)
            case "update", "batch_update": try batchUpdate(msgid, args)
            case "batch_update_partial": try batchUpdatePartial(msgid, args)
            case "clear": try clear(msgid, args)
            case "setdefault": try setDefault(msgid, args)
            case "batch_get": try batchGet(msgid, args)
            case "batch_delete": try batchDelete(msgid, args)
            case "refresh": try refresh(msgid, args)
            case "is_cached": try isCached(msgid, args)
            case "get_fresh": try getFresh(msgid, args)
            case "clear_cache": try args.only(.handleOnly); try table(args).clearCache(); reply(msgid, .value(.nil))
            case "stats": try stats(msgid, args)
            case "increment": try increment(msgid, args)
            case "patch": try patch(msgid, args)
            case "begin_transaction": try beginTransaction(msgid, args)
            case "commit": try endTransaction(msgid, args, commit: true)
            case "rollback": try endTransaction(msgid, args, commit: false)
            case "in_transaction": try args.only(.handleOnly); reply(msgid, .value(.bool(try transactionOwner(try table(args).database) != nil)))
            case "execute": try execute(msgid, args)
            case "execute_many": try executeMany(msgid, args)
            case "fetch_one": try fetch(msgid, args, one: true)
            case "fetch_all": try fetch(msgid, args, one: false)
            default:
                if try dispatchWriteBehind(msgid, method, args) { break }
                if try dispatchConstraint(msgid, method, args) { break }
                guard try dispatchSQLHelper(msgid, method, args) else {
                    throw NanaRemoteError(.protocolError, "unknown method '\(method)'")
                }
            }
        } catch {
            reply(msgid, .error(error))
        }
    }

    // MARK: Session

    private func hello(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.hello)
        let version = try args.int("protocol")
        guard version == NanaProtocol.version else {
            throw NanaRemoteError(.protocolError, "unsupported protocol version \(version); this nanad speaks \(NanaProtocol.version)")
        }
        if let client = try args.optionalString("client") { logger[metadataKey: "nana.client"] = "\(client)" }
        reply(msgid, .value(["server": .string(NanadInfo.name), "version": .string(NanadInfo.version), "protocol": .int(NanaProtocol.version)]))
    }

    private static let openParameters: Set<String> = Set([
        "db_path", "table", "bulk_load", "optimize", "cache_size_mb", "strict_sql_validation", "max_workers",
        "lock_timeout", "warn_duplicate_table_instance",
        "allowed_sql_functions", "forbidden_sql_functions", "max_clause_length",
    ]).union(writeBehindParameters).union(tableOptionParameters)

    private func open(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(Self.openParameters)
        let dbPath = try args.string("db_path")
        let tableName = try args.optionalString("table") ?? "data"
        do { _ = try Identifier.validated(tableName) } catch { throw NanaRemoteError(error) }
        let bulkLoad = try args.bool("bulk_load", default: false)
        var options = state.configuration.databaseOptions
        options.optimize = try args.bool("optimize", default: true)
        let cacheSize = try args.int("cache_size_mb", default: 64)
        guard cacheSize > 0, cacheSize <= 1 << 20 else { throw NanaRemoteError(.valueError, "cache_size_mb must be a positive integer, got \(cacheSize)") }
        options.cacheSizeMB = Int(cacheSize)
        let policy = SQLFunctionPolicy(
            strict: try args.bool("strict_sql_validation", default: true),
            allowed: args.has("allowed_sql_functions") && !(args.params["allowed_sql_functions"]?.isNil ?? true) ? try args.strings("allowed_sql_functions") : [],
            forbidden: args.has("forbidden_sql_functions") && !(args.params["forbidden_sql_functions"]?.isNil ?? true) ? try args.strings("forbidden_sql_functions") : [],
            maximumClauseLength: try {
                () throws(NanaRemoteError) -> Int? in
                // NanaSQLite: a falsy length (None, 0) means unlimited; absent means 1000.
                if let given = args.params["max_clause_length"], given.isNil { return nil }
                let n = try args.int("max_clause_length", default: 1000)
                return n > 0 ? Int(n) : nil
            }())
        // Accepted for NanaSQLite compatibility and checked as it checks them; the daemon has no
        // client-side thread pool, and its writer queue, not a lock, orders writes.
        if let workers = args.params["max_workers"], !workers.isNil {
            guard let n = workers.int64Value, n >= 1 else { throw NanaRemoteError(.valueError, "max_workers must be a positive integer") }
        }
        if let timeout = args.params["lock_timeout"], !timeout.isNil {
            let seconds: Double? = switch timeout {
            case .int(let i): Double(i)
            case .double(let d): d
            default: nil
            }
            guard let seconds, seconds.isFinite, seconds >= 0 else {
                throw NanaRemoteError(.validation, "Invalid lock_timeout \(timeout): must be None or a non-negative finite number")
            }
        }
        _ = try args.bool("warn_duplicate_table_instance", default: true)
        let request = try Self.tableRequest(args)
        let registry = state.registry
        let access = try accessRule(for: dbPath)
        // Opening another table of a file this session holds a transaction on runs inside it.
        let resolved = try? registry.resolve(dbPath)
        var openTransaction: TransactionToken?
        if let token = session.transactions.values.first(where: { session.transactionDatabases[ObjectIdentifier($0)]?.path == resolved }),
           let database = session.transactionDatabases[ObjectIdentifier(token)] {
            openTransaction = try transactionOwner(database)  // reports (once) and forgets one that ended
        }
        let owner = openTransaction
        respondLater(msgid, { (done: @escaping @Sendable (Result<KeyValueTable, StorageError>) -> Void) in
            registry.open(dbPath, options: options) { opened in
                switch opened {
                case .failure(let error): done(.failure(error))
                case .success(let database):
                    database.table(named: tableName, owner: owner) { result in
                        guard case .success(let table) = result else { return done(result) }
                        table.attach(request, owner: owner) { attached in
                            if case .failure(let error) = attached { return done(.failure(error)) }
                            guard bulkLoad else { return done(.success(table)) }
                            table.items(owner: owner) { loaded in
                                if case .failure = loaded { table.detach() }
                                done(loaded.map { _ in table })
                            }
                        }
                    }
                }
            }
        }, { _ in .value(.nil) }, then: { handler, table in
            guard handler.isConnected else {
                table.detach()
                return nil
            }
            let id = handler.session.add(table, root: nil, policy: policy, access: access, request: request)
            return .value(["db": .int(id), "table": .string(table.name)])
        })
    }

    private func subTable(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.tableName)
        let parentID = try args.int("db")
        let parent = try handle(parentID)
        let name = try args.string("table_name")
        do { _ = try Identifier.validated(name) } catch { throw NanaRemoteError(error) }
        let root = parent.root
        let policy = parent.policy
        let access = parent.access
        // A child inherits its parent's settings (NanaSQLite's do, except encryption: ours
        // too), not its constraints: those are rules about one table's data.
        let request = {
            var inherited = parent.request
            inherited.constraints = []
            return inherited
        }()
        let owner = try transactionOwner(parent.table.database)
        respondLater(msgid, { (done: @escaping @Sendable (Result<KeyValueTable, StorageError>) -> Void) in
            parent.table.database.table(named: name, owner: owner) { result in
                guard case .success(let table) = result else { return done(result) }
                table.attach(request, owner: owner) { done($0.map { table }) }
            }
        }, { _ in .value(.nil) }, then: { handler, table in
            guard handler.isConnected, handler.session.handles[root] != nil else {
                table.detach()
                return handler.isConnected ? .error(NanaRemoteError(.closed, "Parent database connection is closed (table: '\(name)').")) : nil
            }
            let id = handler.session.add(table, root: root, policy: policy, access: access, request: request)
            return .value(["db": .int(id), "table": .string(table.name)])
        })
    }

    private func close(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.handleOnly)
        let id = try args.int("db")
        if case .success(let handle) = session.table(id), let token = session.transactions[ObjectIdentifier(handle.table.database)] {
            if token.isOpen {
                throw NanaRemoteError(.transaction, "Cannot close connection while transaction is in progress. Please commit or rollback first.")
            }
            session.transactions[ObjectIdentifier(handle.table.database)] = nil  // it ended on its own
        }
        session.close(id)
        reply(msgid, .value(.nil))
    }

    // MARK: Dict interface

    private func get(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.keyAndDefault)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let fallback = args.params["default"] ?? .nil
        switch owner == nil ? table.cached(key) : nil {
        case .present(let value): reply(msgid, .encoded(value))
        case .absent: reply(msgid, .value(fallback))
        case nil:
            respondLater(msgid, { table.get(key, owner: owner, missed: owner == nil, completion: $0) }) { value in value.map(Reply.encoded) ?? .value(fallback) }
        }
    }

    private func set(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.keyAndValue)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let value = try ValueCodec.storable(try args.value("value"), using: writer)
        respondLater(msgid, { table.set(key, value, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    private func delete(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.key)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        if owner == nil, case .absent = table.cached(key) { throw NanaRemoteError(.keyError, key) }
        respondLater(msgid, { table.delete(key, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    private func contains(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.key)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        switch owner == nil ? table.cached(key) : nil {
        case .present: reply(msgid, .value(true))
        case .absent: reply(msgid, .value(false))
        case nil: respondLater(msgid, { table.contains(key, owner: owner, missed: owner == nil, completion: $0) }) { .value(.bool($0)) }
        }
    }

    private func len(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.handleOnly)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.count(owner: owner, completion: $0) }) { .value(.int(Int64($0))) }
    }

    private func keys(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.handleOnly)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.keys(owner: owner, completion: $0) }) { keys in .value(.array(keys.map(NanaValue.string))) }
    }

    enum ScanShape: Sendable { case values, items, dictionary, nothing }

    private func scan(_ msgid: UInt32, _ args: Arguments, as shape: ScanShape) throws(NanaRemoteError) {
        try args.only(.handleOnly)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.items(owner: owner, completion: $0) }) { rows in
            if shape == .nothing { return .value(.nil) }
            return .encoded(Self.encode(rows, as: shape))
        }
    }

    /// Builds a list or map reply from cached bytes without decoding them.
    static func encode(_ rows: [(String, EncodedValue)], as shape: ScanShape) -> EncodedValue {
        let writer = MessagePackWriter(initialCapacity: 256 + rows.count * 32)
        switch shape {
        case .values:
            writer.writeArrayHeader(rows.count)
            for (_, value) in rows { writer.writeEncoded(value.bytes) }
        case .items:
            writer.writeArrayHeader(rows.count)
            for (key, value) in rows {
                writer.writeArrayHeader(2)
                writer.writeString(key)
                writer.writeEncoded(value.bytes)
            }
        case .dictionary, .nothing:
            // A key can appear twice only if the table was built outside NanaSQLite's schema.
            writer.writeMapHeader(rows.count)
            for (key, value) in rows {
                writer.writeString(key)
                writer.writeEncoded(value.bytes)
            }
        }
        return EncodedValue(bytes: writer.bytes)
    }

    private func pop(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.keyAndDefault)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let fallback = args.params["default"]
        respondLater(msgid, { table.pop(key, owner: owner, completion: $0) }) { (old) throws(NanaRemoteError) -> Reply in
            if let old { return .encoded(old) }
            guard let fallback else { throw NanaRemoteError(.keyError, key) }
            return .value(fallback)
        }
    }

    private func storableRows(_ mapping: NanaParams) throws(NanaRemoteError) -> [(String, StorableValue)] {
        var rows: [(String, StorableValue)] = []
        rows.reserveCapacity(mapping.count)
        for (key, value) in mapping { rows.append((key, try ValueCodec.storable(value, using: writer))) }
        return rows
    }

    private func batchUpdate(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.mapping)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let rows = try storableRows(try args.map("mapping"))
        respondLater(msgid, { table.batchUpdate(rows, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    private func batchUpdatePartial(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.mapping)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        var rows: [(String, StorableValue)] = []
        var rejected = NanaParams()
        // NanaSQLite's message, both halves.
        let skipped: @Sendable (String, String) -> NanaValue = { key, why in
            NanaValue.string("Skipped key '\(key)' during partial batch update: \(why) / 部分一括更新でキー '\(key)' をスキップしました: \(why)")
        }
        for (key, value) in try args.map("mapping") {
            do throws(NanaRemoteError) {
                rows.append((key, try ValueCodec.storable(value)))
            } catch {
                rejected[key] = skipped(key, error.message)
            }
        }
        let unstorable = rejected
        let storable = rows
        respondLater(msgid, { table.batchUpdatePartial(storable, owner: owner, completion: $0) }) { refused in
            // Keys a constraint refused, in the order they were given.
            var all = unstorable
            for (key, _) in storable { if let why = refused[key] { all[key] = skipped(key, why) } }
            return .value(.map(all))
        }
    }

    private func clear(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.handleOnly)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.clear(owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    private func setDefault(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.keyAndDefault)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        if owner == nil, case .present(let value) = table.cached(key) { return reply(msgid, .encoded(value)) }
        let value: StorableValue
        do throws(NanaRemoteError) {
            value = try ValueCodec.storable(args.params["default"] ?? .nil)
        } catch {
            // The default cannot be stored; that matters only if the key is missing.
            return respondLater(msgid, { table.get(key, owner: owner, completion: $0) }) { (existing) throws(NanaRemoteError) -> Reply in
                guard let existing else { throw error }
                return .encoded(existing)
            }
        }
        respondLater(msgid, { table.setDefault(key, value, owner: owner, completion: $0) }) { .encoded($0) }
    }

    // MARK: Batches and cache control

    private func batchGet(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.keys)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let keys = try args.strings("keys")
        respondLater(msgid, { table.batchGet(keys, owner: owner, completion: $0) }) { .encoded(Self.encode($0, as: .dictionary)) }
    }

    private func batchDelete(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.keys)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let keys = try args.strings("keys")
        respondLater(msgid, { table.batchDelete(keys, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    private func refresh(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.key)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        guard let key = try args.optionalString("key") else {
            table.clearCache()
            return reply(msgid, .value(.nil))
        }
        table.forget(key)
        respondLater(msgid, { table.get(key, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    private func isCached(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.key)
        let table = try table(args)
        reply(msgid, .value(.bool(table.isCached(try args.string("key")))))
    }

    private func getFresh(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.keyAndDefault)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let fallback = args.params["default"] ?? .nil
        respondLater(msgid, { table.getFresh(key, owner: owner, completion: $0) }) { value in value.map(Reply.encoded) ?? .value(fallback) }
    }

    private func stats(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.handleOnly)
        mergeCounts()
        var databases = state.registry.databases
        if let db = args.params["db"], !db.isNil {
            let path = try table(args).path
            databases = databases.filter { $0.path == path }
        }
        let server: NanaValue = [
            "name": .string(NanadInfo.name),
            "version": .string(NanadInfo.version),
            "connections": .int(Int64(state.connections.load(ordering: .relaxed))),
            "total_connections": .int(Int64(state.totalConnections.load(ordering: .relaxed))),
            "requests": .int(Int64(state.requests.load(ordering: .relaxed))),
            "errors": .int(Int64(state.errors.load(ordering: .relaxed))),
            "in_flight": .int(Int64(state.inFlight.load(ordering: .relaxed))),
            "calls_by_method": .map(NanaParams(uniqueKeysWithValues: state.callCounts.withLock { $0 }.sorted { $0.key < $1.key }.map { ($0.key, NanaValue.int(Int64($0.value))) })),
            "errors_by_type": .map(NanaParams(uniqueKeysWithValues: state.errorCounts.withLock { $0 }.sorted { $0.key < $1.key }.map { ($0.key, NanaValue.int(Int64($0.value))) })),
            "resident_bytes": .int(Int64(Self.residentBytes())),
        ]
        let dbs: [NanaValue] = databases.sorted { $0.path < $1.path }.map { db in
            let w = db.writerStatistics
            let tables: [NanaValue] = db.openTables.sorted { $0.name < $1.name }.map { t in
                let c = t.cacheStatistics
                return ["name": .string(t.name), "cached": .int(Int64(c.entries)), "absent_keys": .int(Int64(c.absentKeys)),
                        "hits": .int(Int64(c.hits)), "misses": .int(Int64(c.misses)),
                        "evictions": .int(Int64(c.evictions)), "expirations": .int(Int64(c.expirations)),
                        "capacity": c.capacity.map { .int(Int64($0)) } ?? .nil,
                        "handles": .int(Int64(t.users)), "v2_mode": .bool(t.settings.writeBehind != nil),
                        "v2_staged": .int(Int64(t.stagedWrites)), "dlq": .int(Int64(t.deadLetters.count))]
            }
            return [
                "path": .string(db.path), "commits": .int(Int64(w.commits)), "writes": .int(Int64(w.writes)),
                "failed_writes": .int(Int64(w.failedWrites)), "largest_batch": .int(Int64(w.largestBatch)),
                "checkpoints": .int(Int64(w.checkpoints)),
                "batch_sizes": .map(NanaParams(uniqueKeysWithValues: zip(WriterStatistics.batchSizeBounds, w.batchSizes).map { bound, count in
                    (bound == .max ? "more" : "<=\(bound)", NanaValue.int(Int64(count)))
                })),
                "client_transactions": .int(Int64(w.clientTransactions)),
                "client_transaction_ms": .double(w.clientTransactionMilliseconds),
                "writes_delayed_by_transactions": .int(Int64(w.writesDelayedByTransactions)),
                "v2_staged": .int(Int64(db.openTables.reduce(0) { $0 + $1.stagedWrites })),
                "dlq": .int(Int64(db.openTables.reduce(0) { $0 + $1.deadLetters.count })),
                "write_queue": .int(Int64(db.writeQueueDepth)), "tables": .array(tables),
            ]
        }
        reply(msgid, .value(["server": server, "databases": .array(dbs)]))
    }

    // MARK: Atomic updates

    private func increment(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.increment)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let field = try args.optionalString("field")
        let transform: @Sendable (NanaValue?) throws(StorageError) -> NanaValue
        do throws(StorageError) {
            transform = try AtomicUpdates.increment(
                key: key, amount: args.params["amount"] ?? 1, field: field,
                defaultValue: args.params["default"].flatMap { $0.isNil ? nil : $0 })
        } catch { throw NanaRemoteError(error) }
        // With `field` the reply is the whole dict; without, the number.
        respondLater(msgid, { AtomicUpdates.run(on: table, key: key, owner: owner, transform, completion: $0) }) { .encoded($0) }
    }

    private func patch(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.patch)
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let changes = try args.value("changes")
        let create = try args.bool("create", default: false)
        let transform: @Sendable (NanaValue?) throws(StorageError) -> NanaValue
        do throws(StorageError) {
            transform = try AtomicUpdates.patch(key: key, changes: changes, create: create)
        } catch { throw NanaRemoteError(error) }
        respondLater(msgid, { AtomicUpdates.run(on: table, key: key, owner: owner, transform, completion: $0) }) { .encoded($0) }
    }

    /// This process's resident memory, from /proc (0 where there is none).
    static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return 0 }
        return kb * 1024
    }

    // MARK: Helpers

    func handle(_ id: Int64) throws(NanaRemoteError) -> Session.Handle {
        switch session.table(id) {
        case .success(let handle): return handle
        case .failure(let error): throw NanaRemoteError(error)
        }
    }

    // MARK: Access rules

    /// The rule that lets this peer open `path`, or an error when rules exist and none does.
    private func accessRule(for path: String) throws(NanaRemoteError) -> AccessRule? {
        let rules = state.configuration.rules
        guard !rules.isEmpty else { return nil }
        let normalized = path.split(separator: "/").filter { $0 != "." }.joined(separator: "/")
        let uid = peer?.uid ?? UInt32.max, gid = peer?.gid ?? UInt32.max
        guard let rule = rules.first(where: { $0.admits(uid: uid, gid: gid) && $0.covers(database: normalized) }) else {
            throw NanaRemoteError(.connection, "uid \(uid) is not allowed to open '\(path)'")
        }
        return rule
    }

    /// Refuses a method the handle's rule denies, and writes on a read-only handle. Raw SQL on
    /// a read-only handle is judged by SQLite (`sqlite3_stmt_readonly`), in `execute`.
    private func checkAccess(_ method: String, _ args: Arguments) throws(NanaRemoteError) {
        guard !state.configuration.rules.isEmpty, let id = args.params["db"]?.int64Value,
              case .success(let handle) = session.table(id), let rule = handle.access else { return }
        if rule.deniedMethods.contains(method) {
            throw NanaRemoteError(.validation, "\(method)() is not allowed on this database for this user")
        }
        let setsPragma = method == "pragma" && !(args.params["value"]?.isNil ?? true)
        if rule.readOnly && (AccessRule.writeMethods.contains(method) || setsPragma) {
            throw NanaRemoteError(.validation, "this database is read-only for this user: \(method)() would write")
        }
    }

    /// Whether raw SQL on this handle must only read.
    func isReadOnly(_ args: Arguments) -> Bool {
        guard let id = args.params["db"]?.int64Value, case .success(let handle) = session.table(id) else { return false }
        return handle.access?.readOnly ?? false
    }

    // MARK: Transactions

    /// The session's open transaction on `database`, if any. One that the daemon rolled back
    /// after its timeout is reported once, to the next call that would have run inside it.
    func transactionOwner(_ database: Database) throws(NanaRemoteError) -> TransactionToken? {
        let key = ObjectIdentifier(database)
        guard let token = session.transactions[key] else { return nil }
        switch token.currentState {
        case .pending, .active:
            return token
        case .timedOut:
            session.transactions[key] = nil
            throw NanaRemoteError(.transaction, token.endedError.message)
        case .committed, .rolledBack:
            session.transactions[key] = nil
            return nil
        }
    }

    private func beginTransaction(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try args.only(.handleOnly)
        let database = try table(args).database
        guard try transactionOwner(database) == nil else {
            throw NanaRemoteError(.transaction, "Transaction already in progress. SQLite does not support nested transactions. Please commit or rollback the current transaction first.")
        }
        let token = TransactionToken(timeout: state.configuration.transactionTimeout)
        session.transactions[ObjectIdentifier(database)] = token
        session.transactionDatabases[ObjectIdentifier(token)] = database
        token.trace("begin_transaction msgid \(msgid) on connection \(connectionID), \(pendingCalls) calls pending")
        startAfterEarlierCalls { [self] in
            token.trace("earlier calls done; connected \(isConnected)")
            guard isConnected else {
                // Gone meanwhile: the BEGIN still runs, so that the ROLLBACK the disconnect
                // queued for this transaction (held by the writer until then) ends it.
                return database.begin(token) { _ in }
            }
            respondLater(msgid, { database.begin(token, completion: $0) }, { _ in .value(.nil) }, then: { handler, _ in
                if token.currentState != .active { handler.session.forget(token, on: database) }
                return nil
            })
        }
    }

    private func endTransaction(_ msgid: UInt32, _ args: Arguments, commit: Bool) throws(NanaRemoteError) {
        try args.only(.handleOnly)
        let database = try table(args).database
        guard let token = try transactionOwner(database) else {
            throw NanaRemoteError(.transaction, "No transaction in progress. Call begin_transaction() first.")
        }
        respondLater(msgid, { commit ? database.commit(token, completion: $0) : database.rollback(token, completion: $0) }, { _ in .value(.nil) }, then: { handler, _ in
            handler.session.forget(token, on: database)
            return nil
        })
    }

    /// Whether the session has a transaction open (or being opened) on `database`, without
    /// reporting one the daemon ended (as ``transactionOwner(_:)`` does, once).
    func holdsTransaction(on database: Database) -> Bool {
        guard let token = session.transactions[ObjectIdentifier(database)] else { return false }
        return token.isOpen
    }

    /// Rolls back every transaction of this session (the connection is gone).
    func abandonTransactions() {
        for token in session.transactions.values where token.isOpen {
            token.trace("abandoned by its session")
            session.transactionDatabases[ObjectIdentifier(token)]?.rollback(token) { _ in }
        }
        session.transactions.removeAll()
        session.transactionDatabases.removeAll()
    }

    func handle(for args: Arguments) throws(NanaRemoteError) -> Session.Handle {
        try handle(try args.int("db"))
    }

    func table(_ args: Arguments) throws(NanaRemoteError) -> KeyValueTable {
        try handle(try args.int("db")).table
    }
}
