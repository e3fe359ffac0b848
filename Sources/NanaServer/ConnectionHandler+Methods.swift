import Foundation
import NanaStorage
import NanaWire

// The handlers of the session, dict, batch, cache-control, counter, atomic-update and
// transaction methods. Each reads its arguments (already checked against its declaration in
// `WireMethod.all`), answers cache hits on the event loop, and sends the rest to storage.
extension ConnectionHandler {
    /// Runs one request: finds its declaration, checks its argument names and the handle's
    /// access rule against it, and calls its handler.
    func dispatch(msgid: UInt32, method name: String, arguments: Arguments) {
        guard let index = WireMethod.index[name] else {
            count(WireMethod.all.count)
            return reply(msgid, .error(NanaRemoteError(.protocolError, "unknown method '\(name)'")))
        }
        count(index)
        let method = WireMethod.all[index]
        do throws(NanaRemoteError) {
            let args = try arguments.checked(against: method)
            try checkAccess(method, args)
            try method.handler(self, msgid, args)
        } catch {
            reply(msgid, .error(error))
        }
    }

    // MARK: Session

    func hello(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let version = try args.int("protocol")
        guard version == NanaProtocol.version else {
            throw NanaRemoteError(.protocolError, "unsupported protocol version \(version); this nanad speaks \(NanaProtocol.version)")
        }
        if let client = try args.optionalString("client") { logger[metadataKey: "nana.client"] = "\(client)" }
        reply(msgid, .value(["server": .string(NanadInfo.name), "version": .string(NanadInfo.version), "protocol": .int(NanaProtocol.version)]))
    }

    func open(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
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
        let access = try accessRule(for: dbPath, to: .open)
        let mayWrite = !(access?.readOnly ?? false)
        // Opening another table of a file this session holds a transaction on runs inside it.
        let resolved = try? registry.resolve(dbPath)
        var openTransaction: TransactionToken?
        if let token = session.transactions.values.first(where: { session.transactionDatabases[ObjectIdentifier($0)]?.path == resolved }),
           let database = session.transactionDatabases[ObjectIdentifier(token)] {
            openTransaction = try transactionOwner(database)  // reports (once) and forgets one that ended
        }
        let owner = openTransaction
        respondLater(msgid, { (done: @escaping @Sendable (Result<KeyValueTable, StorageError>) -> Void) in
            registry.open(dbPath, options: options, create: mayWrite) { opened in
                switch opened {
                case .failure(let error): done(.failure(error))
                case .success(let database):
                    database.table(named: tableName, owner: owner, create: mayWrite) { result in
                        guard case .success(let table) = result else { return done(result) }
                        table.attach(request, owner: owner, mayChangeSettings: mayWrite) { attached in
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

    func subTable(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let parentID = try args.int("db")
        let parent = try handle(parentID)
        let name = try args.string("table_name")
        do { _ = try Identifier.validated(name) } catch { throw NanaRemoteError(error) }
        let root = parent.root
        let policy = parent.policy
        let access = parent.access
        let mayWrite = !(access?.readOnly ?? false)
        // A child inherits its parent's settings (NanaSQLite's do, except encryption: ours
        // too), not its constraints: those are rules about one table's data.
        let request = {
            var inherited = parent.request
            inherited.constraints = []
            return inherited
        }()
        let owner = try transactionOwner(parent.table.database)
        respondLater(msgid, { (done: @escaping @Sendable (Result<KeyValueTable, StorageError>) -> Void) in
            parent.table.database.table(named: name, owner: owner, create: mayWrite) { result in
                guard case .success(let table) = result else { return done(result) }
                table.attach(request, owner: owner, mayChangeSettings: mayWrite) { done($0.map { table }) }
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

    func close(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
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

    func get(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
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

    func set(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let value = try ValueCodec.storable(try args.value("value"), using: writer)
        respondLater(msgid, { table.set(key, value, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func delete(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        if owner == nil, case .absent = table.cached(key) { throw NanaRemoteError(.keyError, key) }
        respondLater(msgid, { table.delete(key, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func contains(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        switch owner == nil ? table.cached(key) : nil {
        case .present: reply(msgid, .value(true))
        case .absent: reply(msgid, .value(false))
        case nil: respondLater(msgid, { table.contains(key, owner: owner, missed: owner == nil, completion: $0) }) { .value(.bool($0)) }
        }
    }

    func len(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.count(owner: owner, completion: $0) }) { .value(.int(Int64($0))) }
    }

    func keys(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.keys(owner: owner, completion: $0) }) { keys in .value(.array(keys.map(NanaValue.string))) }
    }

    enum ScanShape: Sendable { case values, items, dictionary, nothing }

    func scan(_ msgid: UInt32, _ args: Arguments, as shape: ScanShape) throws(NanaRemoteError) {
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

    func pop(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
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

    func storableRows(_ mapping: NanaParams) throws(NanaRemoteError) -> [(String, StorableValue)] {
        var rows: [(String, StorableValue)] = []
        rows.reserveCapacity(mapping.count)
        for (key, value) in mapping { rows.append((key, try ValueCodec.storable(value, using: writer))) }
        return rows
    }

    func batchUpdate(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let rows = try storableRows(try args.map("mapping"))
        respondLater(msgid, { table.batchUpdate(rows, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func batchUpdatePartial(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
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

    func clear(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.clear(owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func setDefault(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
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

    func batchGet(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let keys = try args.strings("keys")
        respondLater(msgid, { table.batchGet(keys, owner: owner, completion: $0) }) { .encoded(Self.encode($0, as: .dictionary)) }
    }

    func batchDelete(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let keys = try args.strings("keys")
        respondLater(msgid, { table.batchDelete(keys, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func refresh(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        guard let key = try args.optionalString("key") else {
            table.clearCache()
            return reply(msgid, .value(.nil))
        }
        table.forget(key)
        respondLater(msgid, { table.get(key, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func clearCache(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try table(args).clearCache()
        reply(msgid, .value(.nil))
    }

    func isCached(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        reply(msgid, .value(.bool(table.isCached(try args.string("key")))))
    }

    func getFresh(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let fallback = args.params["default"] ?? .nil
        respondLater(msgid, { table.getFresh(key, owner: owner, completion: $0) }) { value in value.map(Reply.encoded) ?? .value(fallback) }
    }

    func stats(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
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
            "calls_by_method": .map(NanaParams(uniqueKeysWithValues: state.callsByMethod.map { ($0.0, NanaValue.int(Int64($0.1))) })),
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

    func increment(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
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

    func patch(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
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

    /// What a call does with a path it names.
    enum PathUse {
        /// `open`'s `db_path`: any rule admitting the peer to the file (read-only or not).
        case open
        /// `restore`'s source: the same.
        case read
        /// `backup`'s destination: a rule admitting the peer to the file that is not read-only.
        case write
    }

    /// The rule that admits this peer to `path` for `use`, or an error when rules exist and
    /// none does. The path is judged as the file it resolves to inside the data folder
    /// (symbolic links followed), so no name reaches a file its rules do not cover.
    func accessRule(for path: String, to use: PathUse) throws(NanaRemoteError) -> AccessRule? {
        let rules = state.configuration.rules
        guard !rules.isEmpty else { return nil }
        let relative: String
        do { relative = state.registry.relativePath(of: try state.registry.resolve(path)) } catch { throw NanaRemoteError(error) }
        let uid = peer?.uid ?? UInt32.max, gid = peer?.gid ?? UInt32.max
        guard let rule = rules.first(where: { $0.admits(uid: uid, gid: gid) && $0.covers(database: relative) }) else {
            throw NanaRemoteError(.connection, use == .write ? "uid \(uid) is not allowed to write '\(path)'" : "uid \(uid) is not allowed to open '\(path)'")
        }
        if use == .write, rule.readOnly {
            throw NanaRemoteError(.validation, "'\(path)' is read-only for this user; it cannot be written")
        }
        return rule
    }

    /// Refuses what the handle's rule does not admit: a method on its deny-list, and on a
    /// read-only rule every method whose access class it does not admit (deny by default: see
    /// ``AccessClass``). Raw SQL on a read-only handle is judged by SQLite, in `execute`.
    func checkAccess(_ method: WireMethod, _ args: Arguments) throws(NanaRemoteError) {
        guard !state.configuration.rules.isEmpty, method.takesHandle, let id = args.params["db"]?.int64Value,
              case .success(let handle) = session.table(id), let rule = handle.access else { return }
        if rule.deniedMethods.contains(method.name) {
            throw NanaRemoteError(.validation, "\(method.name)() is not allowed on this database for this user")
        }
        if rule.readOnly && !method.access.admittedReadOnly {
            throw NanaRemoteError(.validation, "this database is read-only for this user: \(method.name)() is a \(method.access.rawValue) method")
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

    func inTransaction(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        reply(msgid, .value(.bool(try transactionOwner(try table(args).database) != nil)))
    }

    func beginTransaction(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        // As NanaSQLite: a v2 table's writes are staged outside any transaction, so one
        // opened on it would refuse every write it was meant to hold.
        if table.settings.writeBehind != nil {
            throw NanaRemoteError(.transaction, "Explicit transactions are not supported in V2 mode (table '\(table.name)'): writes are staged and flushed in the background. Open the table with v2_mode=False for transactional operations.")
        }
        let database = table.database
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

    func endTransaction(_ msgid: UInt32, _ args: Arguments, commit: Bool) throws(NanaRemoteError) {
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
