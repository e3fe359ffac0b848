import Foundation
import NanaStorage
import NanaWire

// The session's methods: `hello`, `open`, `table` and `close`, and the handles they hand out.
extension ConnectionHandler {
    func hello(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let version = try args.int("protocol")
        guard version == NanaProtocol.version else {
            throw NanaRemoteError(.protocolError, "unsupported protocol version \(version); this nanad speaks \(NanaProtocol.version)")
        }
        if let client = try args.optionalString("client") { logger[metadataKey: "nana.client"] = "\(client)" }
        reply(msgid, .value([
            "server": .string(NanadInfo.name), "version": .string(NanadInfo.version), "protocol": .int(NanaProtocol.version),
            "instance": .string(state.instance), "pid": .int(Int64(getpid())), "started_at": .double(state.startedAt),
            "repeatable": .array(WireMethod.repeatableNames.map(NanaValue.string)),
        ]))
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
        let nearCache = try args.bool("near_cache", default: false)
        let outsideWrites: Bool
        switch try args.optionalString("cache_consistency") ?? "manual" {
        case "manual": outsideWrites = false
        case "auto": outsideWrites = true
        default: throw NanaRemoteError(.validation, "cache_consistency must be 'manual' or 'auto'")  // NanaSQLite's
        }
        let request = try Self.tableRequest(args)
        let registry = state.registry
        let access = try accessRule(for: dbPath, to: .open)
        let mayWrite = !(access?.readOnly ?? false)
        // Opening another table of a file this session holds a transaction on runs inside it.
        let resolved = try? registry.resolve(dbPath)
        var openTransaction: (token: TransactionToken, database: Database)?
        if let database = machine.transaction(where: { $0.path == resolved }), let token = try transactionOwner(database) {
            openTransaction = (token, database)  // transactionOwner reports (once) and forgets one that ended
        }
        let inTransaction = openTransaction
        respondLater(msgid, { (finish: @escaping @Sendable (Result<(KeyValueTable, Bool), StorageError>) -> Void) in
            let done: @Sendable (Result<KeyValueTable, StorageError>) -> Void = { result in
                guard case .success(let table) = result else { return finish(result.map { ($0, false) }) }
                let owner = inTransaction.flatMap { $0.database === table.database ? $0.token : nil }
                Self.lookForLegacyPlaintext(table, request, owner: owner) { found in
                    if case .failure = found {
                        table.detach()
                        table.database.release()
                    }
                    finish(found.map { (table, $0) })
                }
            }
            registry.open(dbPath, options: options, create: mayWrite) { opened in
                switch opened {
                case .failure(let error): done(.failure(error))
                case .success(let database):
                    // Only inside the transaction's own open of the file: one the daemon
                    // retired (changed underneath) was replaced by a fresh open, where that
                    // token's work would wait forever for a BEGIN it never gets (found by
                    // nanafuzz-dispatch).
                    let owner = inTransaction.flatMap { $0.database === database ? $0.token : nil }
                    // The open holds the file until its handle closes; a failed open gives it back.
                    let fail: @Sendable (StorageError) -> Void = { error in
                        database.release()
                        done(.failure(error))
                    }
                    database.table(named: tableName, owner: owner, create: mayWrite) { result in
                        let table: KeyValueTable
                        switch result {
                        case .success(let opened): table = opened
                        case .failure(let error): return fail(error)
                        }
                        table.attach(request, owner: owner, mayChangeSettings: mayWrite) { attached in
                            if case .failure(let error) = attached { return fail(error) }
                            guard bulkLoad else { return done(.success(table)) }
                            table.items(owner: owner) { loaded in
                                switch loaded {
                                case .success: done(.success(table))
                                case .failure(let error):
                                    table.detach()
                                    fail(error)
                                }
                            }
                        }
                    }
                }
            }
        }, { _ in .value(.nil) }, then: { handler, opened in
            let (table, legacyPlaintext) = opened
            guard handler.isConnected else {
                table.detach()
                table.database.release()
                return nil
            }
            let id = handler.session.add(table, root: nil, policy: policy, access: access, request: request, tracking: nearCache, outsideWrites: outsideWrites)
            return .value(handler.openReply(id, table, tracking: nearCache, legacyPlaintext: legacyPlaintext))
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
        // too), not its constraints: those are rules about one table's data. The cache
        // settings it states replace its parent's, as NanaSQLite's table() arguments do.
        var childRequest = parent.request
        childRequest.constraints = []
        try Self.cacheRequest(args, into: &childRequest)
        let request = childRequest
        let owner = try transactionOwner(parent.table.database)
        let tracking = parent.tracking
        let outsideWrites = parent.outsideWrites
        respondLater(msgid, { (done: @escaping @Sendable (Result<(KeyValueTable, Bool), StorageError>) -> Void) in
            parent.table.database.table(named: name, owner: owner, create: mayWrite) { result in
                guard case .success(let table) = result else { return done(result.map { ($0, false) }) }
                table.attach(request, owner: owner, mayChangeSettings: mayWrite) { attached in
                    if case .failure(let error) = attached { return done(.failure(error)) }
                    Self.lookForLegacyPlaintext(table, request, owner: owner) { found in
                        if case .failure = found { table.detach() }
                        done(found.map { (table, $0) })
                    }
                }
            }
        }, { _ in .value(.nil) }, then: { handler, opened in
            let (table, legacyPlaintext) = opened
            guard handler.isConnected, handler.session.handles[root] != nil else {
                table.detach()
                return handler.isConnected ? .error(NanaRemoteError(.closed, "Parent database connection is closed (table: '\(name)').")) : nil
            }
            let id = handler.session.add(table, root: root, policy: policy, access: access, request: request, tracking: tracking, outsideWrites: outsideWrites)
            return .value(handler.openReply(id, table, tracking: tracking, legacyPlaintext: legacyPlaintext))
        })
    }

    /// Whether a table attached for an open that allows legacy plaintext holds any: the reply
    /// says so, so that the drop-in warns as NanaSQLite does when it reads one.
    private static func lookForLegacyPlaintext(_ table: KeyValueTable, _ request: TableRequest, owner: TransactionToken?,
                                               completion: @escaping @Sendable (Result<Bool, StorageError>) -> Void) {
        guard request.cipher?.readsLegacyPlaintext == true else { return completion(.success(false)) }
        table.holdsPlaintextValues(owner: owner, completion: completion)
    }

    func close(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let id = try args.int("db")
        var staged: KeyValueTable?
        if case .success(let handle) = session.table(id) {
            if machine.handleClosing(on: handle.table.database) == .refuseOpenTransaction {
                throw NanaRemoteError(.transaction, "Cannot close connection while transaction is in progress. Please commit or rollback first.")
            }
            // The flusher writes outside client transactions, so inside one it is not waited for.
            if handle.table.stagedWrites > 0, try transactionOwner(handle.table.database) == nil { staged = handle.table }
        }
        session.close(id)
        guard let staged else { return reply(msgid, .value(.nil)) }
        // As NanaSQLite's close(): what is staged is flushed, and the reply waits for its commit.
        respondLater(msgid, { (done: @escaping @Sendable (Result<Void, StorageError>) -> Void) in
            staged.flush { done(.success(())) }
        }) { _ in .value(.nil) }
    }

    func handle(_ id: Int64) throws(NanaRemoteError) -> Session.Handle {
        switch session.table(id) {
        case .success(let handle): return handle
        case .failure(let error): throw NanaRemoteError(error)
        }
    }

    func handle(for args: Arguments) throws(NanaRemoteError) -> Session.Handle {
        try handle(try args.int("db"))
    }

    func table(_ args: Arguments) throws(NanaRemoteError) -> KeyValueTable {
        try handle(try args.int("db")).table
    }
}
