extension KeyValueTable {
    /// What ``upsert(into:sql:parameters:orStore:owner:completion:)`` did.
    public enum UpsertOutcome: Sendable, Equatable {
        /// A row was written to the table of that name; its rowid (0 when `DO NOTHING` wrote none).
        case row(Int64)
        /// No table of that name exists: the data was stored under that name as a key of this
        /// key-value table.
        case storedUnderKey
    }

    /// NanaSQLite 1.6's overloaded `upsert(table_name, data)` (behaviour spec §7.2): when a table
    /// named `name` exists, runs `sql` (an upsert into it, from
    /// ``SQLHelperStatements/upsert(into:columns:conflictColumns:)``); otherwise stores `value`
    /// under the key `name` in this table, as `db[name] = data`.
    ///
    /// The question is answered on the writer, in the same job as the write that follows from
    /// it, so no other client's `CREATE TABLE` or `DROP TABLE` comes between them. A v2 table
    /// stages the key-value write in that job too.
    public func upsert(
        into name: String, sql: String, parameters: [SQLValue], orStore value: StorableValue,
        owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<UpsertOutcome, StorageError>) -> Void
    ) {
        database.submitAfterStagedWrites(WriteJob(
            mode: .savepoint, owner: owner,
            run: { connection throws(StorageError) in
                let exists = try connection.cachedStatement(SQLHelperStatements.tableExists).withReset { (s) throws(StorageError) -> Bool in
                    s.bind(name, at: 1)
                    return try s.step()
                }
                if exists {
                    let (rowid, written) = try self.runUpsert(sql, parameters, on: connection)
                    return WriteOutcome(publish: { self.database.invalidateCaches(of: written) }, complete: { completion(.success(.row(rowid))) })
                }
                if self.writeBehind.isActive {
                    if let owner { throw Self.insideTransaction(owner) }
                    try self.constraints.check(name, value, table: self, on: connection)
                    try self.writeBehind.stage(CollectionOfOne((name, .set(value))))
                    return WriteOutcome { completion(.success(.storedUnderKey)) }
                }
                try self.writeRow(name, value, on: connection)
                let encoded = value.encoded
                return WriteOutcome(publish: { self.cache.apply([.set(name, encoded)]) }, complete: { completion(.success(.storedUnderKey)) })
            },
            fail: { completion(.failure($0)) }
        ))
    }

    /// Runs the one upsert statement, which returns the rowid it wrote (no row for DO NOTHING).
    private func runUpsert(_ sql: String, _ parameters: [SQLValue], on connection: SQLiteConnection) throws(StorageError) -> (Int64, Set<String>) {
        let (statements, written) = try connection.userSQL.prepare(sql, on: connection, trusted: true)
        guard statements.count == 1, let statement = statements.first else {
            throw StorageError(.valueError, "upsert takes exactly one SQL statement")
        }
        let rowid = try connection.withTimeLimit(milliseconds: database.options.statementTimeLimitMilliseconds) { () throws(StorageError) -> Int64 in
            try statement.withReset { (s) throws(StorageError) -> Int64 in
                try s.bind(parameters)
                var rowid: Int64 = 0
                while try s.step() { rowid = s.columnInt64(0) }
                return rowid
            }
        }
        return (rowid, written)
    }
}
