import NanaStorage

/// What one connection has opened: integer handles for tables, as `open` and `table` return.
/// Lives on the connection's event loop.
struct Session {
    struct Handle {
        let table: KeyValueTable
        /// The handle of the `open` this one descends from (itself for a root).
        let root: Int64
        /// The SQL-expression policy of the `open` (inherited by `table`, unlike NanaSQLite).
        let policy: SQLFunctionPolicy
        /// The access rule that admitted the `open`, if rules are configured.
        let access: AccessRule?
        /// The table settings the `open` asked for, which its `table()` children inherit.
        let request: TableRequest
    }

    private(set) var handles: [Int64: Handle] = [:]
    /// Open client transactions, one at most per database file.
    var transactions: [ObjectIdentifier: TransactionToken] = [:]
    /// The file of each open transaction, to roll it back if the connection drops.
    var transactionDatabases: [ObjectIdentifier: Database] = [:]
    private var nextHandle: Int64 = 1
    /// Why each closed handle is closed, in NanaSQLite's words.
    private var closed: [Int64: String] = [:]

    /// Forgets `token` as the session's transaction on `database`, unless another one has
    /// taken its place. (A reply to `commit`/`rollback`, or to a failed `begin_transaction`,
    /// can arrive after a pipelined `begin_transaction` opened the next transaction on the file;
    /// forgetting by file alone lost that one, which then held the writer until its timeout,
    /// even after the client disconnected. Found by nanafuzz-dispatch.)
    mutating func forget(_ token: TransactionToken, on database: Database) {
        let key = ObjectIdentifier(database)
        if transactions[key] === token {
            token.trace("forgotten by its session")
            transactions[key] = nil
        }
    }

    /// Records a table the session attached to (``KeyValueTable/attach(_:completion:)``); the
    /// session detaches when the handle closes.
    mutating func add(_ table: KeyValueTable, root: Int64?, policy: SQLFunctionPolicy, access: AccessRule?, request: TableRequest) -> Int64 {
        let id = nextHandle
        nextHandle += 1
        handles[id] = Handle(table: table, root: root ?? id, policy: policy, access: access, request: request)
        return id
    }

    func table(_ id: Int64) -> Result<Handle, StorageError> {
        if let handle = handles[id] { return .success(handle) }
        if let message = closed[id] {
            return .failure(StorageError(.closed, message))
        }
        return .failure(StorageError(.closed, "no open database with handle \(id) on this connection"))
    }

    /// Closes a handle; closing a root closes the tables opened from it too.
    mutating func close(_ id: Int64) {
        guard let handle = handles[id] else { return }
        let doomed = handle.root == id ? handles.filter { $0.value.root == id }.map(\.key) : [id]
        for h in doomed {
            let name = handles[h]?.table.name ?? "?"
            closed[h] = h == id
                ? "Database connection is closed (table: '\(name)')."
                : "Parent database connection is closed (table: '\(name)'). If you obtained this instance via .table(), ensure the primary NanaSQLite instance remains open during usage."
            handles[h]?.table.detach()
            handles[h] = nil
        }
    }

    /// Detaches from every table (the connection is gone).
    mutating func closeAll() {
        for handle in handles.values { handle.table.detach() }
        handles.removeAll()
    }
}
