import NanaStorage

/// What one connection has opened: integer handles for tables, as `open` and `table` return.
/// (Its transactions are states of the connection: ``ConnectionStateMachine``.)
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
        /// Whether `get`, `contains` and `batch_get` answer with near-cache stamps
        /// (`open`'s `near_cache`; PROTOCOL §10), inherited by `table()` children.
        let tracking: Bool
        /// Whether each call first looks for commits made around nanad (`open`'s
        /// `cache_consistency="auto"`), inherited by `table()` children.
        let outsideWrites: Bool
    }

    private(set) var handles: [Int64: Handle] = [:]
    private var nextHandle: Int64 = 1
    /// Why each closed handle is closed, in NanaSQLite's words.
    private var closed: [Int64: String] = [:]
    /// Whether any handle of the session ever asked for `cache_consistency="auto"`: until one
    /// does, calls skip looking their handle up for it.
    private(set) var watchesOutsideWrites = false

    /// Records a table the session attached to (``KeyValueTable/attach(_:completion:)``); the
    /// session detaches when the handle closes.
    mutating func add(_ table: KeyValueTable, root: Int64?, policy: SQLFunctionPolicy, access: AccessRule?, request: TableRequest,
                      tracking: Bool, outsideWrites: Bool = false) -> Int64 {
        let id = nextHandle
        nextHandle += 1
        handles[id] = Handle(table: table, root: root ?? id, policy: policy, access: access, request: request, tracking: tracking,
                             outsideWrites: outsideWrites)
        if outsideWrites { watchesOutsideWrites = true }
        return id
    }

    func table(_ id: Int64) -> Result<Handle, StorageError> {
        if let handle = handles[id] { return .success(handle) }
        if let message = closed[id] {
            return .failure(StorageError(.closed, message))
        }
        return .failure(StorageError(.closed, "no open database with handle \(id) on this connection"))
    }

    /// Closes a handle; closing a root closes the tables opened from it too, and gives back
    /// the root's hold on its file (each `open` holds one: ``DatabaseRegistry``).
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
        if handle.root == id { handle.table.database.release() }
    }

    /// Detaches from every table and gives back every hold (the connection is gone).
    mutating func closeAll() {
        for (id, handle) in handles {
            handle.table.detach()
            if handle.root == id { handle.table.database.release() }
        }
        handles.removeAll()
    }
}
