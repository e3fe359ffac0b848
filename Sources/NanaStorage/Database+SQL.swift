/// Clients' own SQL (`execute`, `execute_many`, `fetch_one`, `fetch_all`).
///
/// Statements that write run on the writer inside the group transaction, each call in its own
/// savepoint, so a failing call undoes only itself. Read-only statements run on a reader.
/// Rows are materialised before the call completes. The cache rule: after a call that wrote
/// key-value tables commits, those tables' caches are cleared, so no session reads a value the
/// SQL changed behind the cache (see ``UserSQLPolicy`` for how the written tables are known).
extension Database {
    /// Most rows one call may return; more is an error asking for LIMIT.
    public static let maximumResultRows = 1_000_000

    /// Runs `sql` (one or more `;`-separated statements; parameters only with one) on the writer.
    /// - Parameter trusted: SQL the daemon built itself from validated names and checked
    ///   expressions (the SQL helpers): nothing is refused, writes still clear caches.
    /// - Parameter owner: the caller's client transaction on this file, if any.
    /// - Parameter readOnly: refuse the call unless SQLite says every statement only reads.
    public func execute(_ sql: String, parameters: [SQLValue], trusted: Bool = false, readOnly: Bool = false, owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<SQLResult, StorageError>) -> Void) {
        submitAfterStagedWrites(WriteJob(
            mode: .savepoint,
            run: { connection throws(StorageError) in
                let (statements, writes) = try connection.userSQL.prepare(sql, on: connection, trusted: trusted)
                if readOnly, !statements.allSatisfy(\.isReadOnly) {
                    throw StorageError(.validation, "this database is read-only for this user: the SQL would write")
                }
                if !parameters.isEmpty && statements.count > 1 {
                    throw StorageError(.valueError, "parameters can only be used with a single SQL statement")
                }
                // rowcount and lastrowid describe this call only (the writer's connection is
                // shared, so its counters also hold other clients' writes): -1 and 0 when the
                // call changed nothing, as DB-API cursors say.
                var result = SQLResult(changes: -1)
                let rowidBefore = connection.lastInsertRowID
                try connection.withTimeLimit(milliseconds: self.options.statementTimeLimitMilliseconds) { () throws(StorageError) in
                    for statement in statements {
                        try statement.withReset { (s) throws(StorageError) in
                            if statements.count == 1 { try s.bind(parameters) }
                            try Self.collect(s, into: &result)
                        }
                        if !statement.isReadOnly { result.changes = connection.changes }
                    }
                }
                result.lastInsertRowID = connection.lastInsertRowID == rowidBefore ? 0 : connection.lastInsertRowID
                let done = UncheckedSendable(result)
                return WriteOutcome(publish: { self.invalidateCaches(of: writes) }, complete: { completion(.success(done.value)) })
            },
            fail: { completion(.failure($0)) }
        ).owned(by: owner))
    }

    /// Runs one statement once per parameter list, all in one transaction (all or nothing).
    public func executeMany(_ sql: String, parametersList: [[SQLValue]], owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<SQLResult, StorageError>) -> Void) {
        submitAfterStagedWrites(WriteJob(
            mode: .savepoint,
            run: { connection throws(StorageError) in
                let (statements, writes) = try connection.userSQL.prepare(sql, on: connection)
                guard statements.count == 1, let statement = statements.first else {
                    throw StorageError(.valueError, "execute_many takes exactly one SQL statement")
                }
                var result = SQLResult()
                let rowidBefore = connection.lastInsertRowID
                try connection.withTimeLimit(milliseconds: self.options.statementTimeLimitMilliseconds) { () throws(StorageError) in
                    for parameters in parametersList {
                        try statement.withReset { (s) throws(StorageError) in
                            try s.bind(parameters)
                            try s.run()
                        }
                        if !statement.isReadOnly { result.changes += connection.changes }
                    }
                }
                result.lastInsertRowID = connection.lastInsertRowID == rowidBefore ? 0 : connection.lastInsertRowID
                let done = UncheckedSendable(result)
                return WriteOutcome(publish: { self.invalidateCaches(of: writes) }, complete: { completion(.success(done.value)) })
            },
            fail: { completion(.failure($0)) }
        ).owned(by: owner))
    }

    /// Runs `sql` and returns its rows: on a reader when every statement is read-only, else
    /// as ``execute(_:parameters:completion:)``.
    /// Inside a client transaction (`owner`), it runs on the writer, to see the transaction's writes.
    public func fetch(_ sql: String, parameters: [SQLValue], trusted: Bool = false, readOnly: Bool = false, owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<SQLResult, StorageError>) -> Void) {
        if owner != nil { return execute(sql, parameters: parameters, trusted: trusted, readOnly: readOnly, owner: owner, completion: completion) }
        afterStagedWrites { self.submitRead(ReadJob(
            run: { connection in
                do throws(StorageError) {
                    let (statements, _) = try connection.userSQL.prepare(sql, on: connection, trusted: trusted)
                    guard statements.allSatisfy(\.isReadOnly) else {
                        return self.execute(sql, parameters: parameters, trusted: trusted, readOnly: readOnly, completion: completion)
                    }
                    if !parameters.isEmpty && statements.count > 1 {
                        throw StorageError(.valueError, "parameters can only be used with a single SQL statement")
                    }
                    var result = SQLResult()
                    // One snapshot for every statement of the call.
                    try connection.execute("BEGIN")
                    defer { try? connection.execute("COMMIT") }
                    try connection.withTimeLimit(milliseconds: self.options.statementTimeLimitMilliseconds) { () throws(StorageError) in
                        for statement in statements {
                            try statement.withReset { (s) throws(StorageError) in
                                if statements.count == 1 { try s.bind(parameters) }
                                try Self.collect(s, into: &result)
                            }
                        }
                    }
                    completion(.success(result))
                } catch {
                    completion(.failure(error))
                }
            },
            fail: { completion(.failure($0)) }
        )) }
    }

    /// Queues a client's SQL behind every write-behind row staged before it (outside a client
    /// transaction; inside one, v2 tables refuse writes, so nothing is staged that it must see).
    func submitAfterStagedWrites(_ job: WriteJob) {
        if job.owner != nil { return submit(job) }
        afterStagedWrites { self.submit(job) }
    }

    /// Steps a statement to the end; a statement with columns replaces the result's rows.
    private static func collect(_ s: Statement, into result: inout SQLResult) throws(StorageError) {
        let columns = s.columnCount
        if columns > 0 {
            result.columns = (0..<columns).map { s.columnName($0) }
            result.rows = []
        }
        while try s.step() {
            guard columns > 0 else { continue }
            guard result.rows.count < maximumResultRows else {
                throw StorageError(.valueError, "the result has more than \(maximumResultRows) rows; add a LIMIT")
            }
            result.rows.append((0..<columns).map { s.columnValue($0) })
        }
    }

    /// Clears the caches of the key-value tables a client's SQL wrote.
    func invalidateCaches(of writtenTables: Set<String>) {
        guard !writtenTables.isEmpty else { return }
        for table in openTables where writtenTables.contains(Identifier.canonical(table.name)) {
            table.clearCache()
        }
    }
}

extension Database {
    /// Runs VACUUM alone on the writer, outside the group transaction (SQLite cannot vacuum
    /// inside one). Every table's cache stays valid: VACUUM changes no row.
    public func vacuum(owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        submit(WriteJob(
            mode: .exclusive,
            run: { connection throws(StorageError) in
                do throws(StorageError) {
                    try connection.execute("VACUUM")
                } catch {
                    throw StorageError(.database, "VACUUM failed: \(error.message)", sqliteCode: error.sqliteCode)
                }
                return WriteOutcome { completion(.success(())) }
            },
            fail: { completion(.failure($0)) }
        ).owned(by: owner))
    }

    /// Runs a PRAGMA the caller has checked, alone on the writer, and returns the first column
    /// of its first row (nil when it returns none).
    public func pragma(_ sql: String, owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<SQLValue, StorageError>) -> Void) {
        submit(WriteJob(
            mode: .exclusive,
            run: { connection throws(StorageError) in
                let statement = try Statement(connection: connection, sql: sql, persistent: false)
                let value = try statement.withReset { (s) throws(StorageError) -> SQLValue in
                    guard try s.step(), s.columnCount > 0 else { return .null }
                    let value = s.columnValue(0)
                    while try s.step() {}
                    return value
                }
                return WriteOutcome { completion(.success(value)) }
            },
            fail: { completion(.failure($0)) }
        ).owned(by: owner))
    }
}
