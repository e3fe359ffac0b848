import NanaWire
import Synchronization

/// What a ``NanaDatabase`` needs to go on working across reconnections: how it was opened (to
/// open it again, with the same settings and encryption key), its handle on the current
/// connection, and, for a root, its file's transaction.
final class TableRegistration: Sendable {
    enum Origin: Sendable {
        /// `open` with these parameters.
        case open(NanaParams)
        /// `table` of another table.
        case table(parent: TableRegistration, name: String)
    }

    let origin: Origin
    let dbPath: String
    let table: String
    /// This table's near-cache, for the table's whole life (bound to each connection's board
    /// in turn); nil when off.
    let nearCache: NearCacheTable?
    private let state = Mutex<(binding: TableBinding<CheckedContinuation<Int64?, any Error>>, transaction: TransactionMark)>((TableBinding(), .none))

    init(origin: Origin, dbPath: String, table: String, nearCache: NanaNearCache) {
        self.origin = origin
        self.dbPath = dbPath
        self.table = table
        self.nearCache = nearCache.isEnabled ? NearCacheTable(limits: nearCache) : nil
    }

    /// The table `open` made, which this one descends from (itself for a root): it holds the
    /// file's transaction mark.
    var root: TableRegistration {
        if case .table(let parent, _) = origin { return parent.root }
        return self
    }

    var isClosed: Bool { state.withLock { if case .closed = $0.binding.state { true } else { false } } }

    /// The handle it has now (on whichever connection), for ``NanaDatabase/handle``.
    var lastHandle: Int64 { state.withLock { $0.binding.lastHandle } ?? 0 }

    /// Its handle on `connection` if it has one there now (no open).
    func currentHandle(on connection: ClientConnection) -> Int64? {
        state.withLock { $0.binding.handle(on: connection.id) }
    }

    /// Its handle on `connection`, opening it there first when it has none: the first call
    /// after a reconnection opens it, the calls made meanwhile wait for that open.
    /// - Parameter method: the call it is for; nil for the client's own opens.
    /// - Throws: `NanaSQLiteTransactionError` when `method` would run in a transaction the
    ///   connection's loss ended; `NanaSQLiteClosedError` once closed; what the open throws.
    func handle(on connection: ClientConnection, for method: String?) async throws -> Int64 {
        if let method, root.refuses(method, on: connection.id) {
            throw NanaRemoteError(.transaction, "The transaction was rolled back by nanad: the connection to it was lost (\(connection.closeReason)). "
                + (method == "commit" || method == "rollback" ? "It is over now." : "Call rollback() (or leave the transaction block) before using the database again."))
        }
        if let handle = state.withLock({ $0.binding.handle(on: connection.id) }) { return handle }
        while true {
            switch state.withLock({ $0.binding.need(on: connection.id) }) {
            case .handle(let handle):
                return handle
            case .closed:
                throw NanaRemoteError(.closed, "Database connection is closed (table: '\(table)').")
            case .open:
                do {
                    let handle = try await open(on: connection)
                    for waiter in state.withLock({ $0.binding.opened(handle, on: connection.id) }) { waiter.resume(returning: handle) }
                    return handle
                } catch {
                    // The opener's own cancellation is not the waiters': one of them opens instead.
                    let waiters = state.withLock { $0.binding.openFailed(on: connection.id) }
                    for waiter in waiters {
                        if error is CancellationError { waiter.resume(returning: nil) } else { waiter.resume(throwing: error) }
                    }
                    throw error
                }
            case .wait:
                let handle: Int64? = try await withCheckedThrowingContinuation { waiter in
                    if !state.withLock({ $0.binding.addWaiter(waiter, on: connection.id) }) { waiter.resume(returning: nil) }
                }
                if let handle { return handle }  // else the open ended meanwhile: ask again
            }
        }
    }

    private func open(on connection: ClientConnection) async throws -> Int64 {
        let reply: NanaValue
        switch origin {
        case .open(let params):
            reply = try await connection.call("open", params)
        case .table(let parent, let name):
            let parentHandle = try await parent.handle(on: connection, for: nil)
            reply = try await connection.call("table", ["db": .int(parentHandle), "table_name": .string(name)])
        }
        guard let handle = reply["db"]?.int64Value else {
            throw NanaClientError(.protocolViolation, "unexpected reply to open: \(reply)")
        }
        if let nearCache { nearCache.bind(Self.binding(reply, on: connection)) }
        return handle
    }

    /// The near-cache binding an `open` reply offers, or nil when it offers no board or the
    /// board cannot be mapped (the table then reads through the daemon).
    private static func binding(_ reply: NanaValue, on connection: ClientConnection) -> NearCacheBinding? {
        guard let offer = reply["board"], let tableWord = offer["table_word"]?.int64Value,
              let lease = connection.board(offer), lease.board.load(Int(tableWord)) != nil else { return nil }
        return NearCacheBinding(lease: lease, board: lease.board, stamps: lease.board.stamps, tableWord: Int(tableWord),
                                connection: connection.liveness, connectionID: connection.id)
    }

    /// Whether a call of `method` on `connection` must be refused (see ``TransactionMark``).
    private func refuses(_ method: String, on connection: UInt64) -> Bool {
        state.withLock { $0.transaction.refuses(method, on: connection) }
    }

    /// A `begin_transaction` on this root's file succeeded on `connection`; a `commit` or
    /// `rollback` ended it (`connection` nil).
    func noteTransaction(on connection: UInt64?) {
        state.withLock { $0.transaction = connection.map { .open(connection: $0) } ?? .none }
    }

    /// Closed by the application: never opened again; calls on it fail.
    func markClosed() {
        nearCache?.bind(nil)
        let waiters = state.withLock { $0.binding.close() }
        for waiter in waiters { waiter.resume(throwing: NanaRemoteError(.closed, "Database connection is closed (table: '\(table)').")) }
    }
}
