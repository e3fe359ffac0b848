/// A table's handle as the table moves from connection to connection: the daemon's handles
/// are valid only on the connection that got them (PROTOCOL §7.2), so after a reconnection the
/// first call on the table opens it again, once, while any other call on it waits for that.
///
/// - `unbound`: no handle on any connection still up (new, or its open failed).
/// - `binding`: one call is opening it on `connection`; the others wait.
/// - `bound`: `handle` is its handle on `connection`.
/// - `closed`: closed by the application; final.
struct TableBinding<Waiter> {
    enum State {
        case unbound
        case binding(connection: UInt64, waiters: [Waiter])
        case bound(connection: UInt64, handle: Int64)
        case closed
    }

    private(set) var state: State = .unbound

    enum Need: Equatable {
        case handle(Int64)
        /// The caller opens it (the state is now `binding`), then reports ``opened(_:on:)`` or
        /// ``openFailed(on:)``.
        case open
        /// Another call is opening it on this connection: wait (``addWaiter(_:on:)``).
        case wait
        case closed
    }

    /// The handle on `connection` if it has one (no change of state).
    func handle(on connection: UInt64) -> Int64? {
        if case .bound(connection, let handle) = state { return handle }
        return nil
    }

    /// The handle it has now, on whichever connection.
    var lastHandle: Int64? {
        if case .bound(_, let handle) = state { return handle }
        return nil
    }

    mutating func need(on connection: UInt64) -> Need {
        switch state {
        case .bound(connection, let handle): return .handle(handle)
        case .binding(connection, _): return .wait
        case .closed: return .closed
        case .unbound, .bound, .binding:
            // A handle or an open on an older connection is worth nothing on this one (the
            // calls waiting for that open are failed by its end).
            state = .binding(connection: connection, waiters: [])
            return .open
        }
    }

    /// Queues `waiter` behind the open in progress on `connection`; false when there is none
    /// any more (ask ``need(on:)`` again).
    mutating func addWaiter(_ waiter: Waiter, on connection: UInt64) -> Bool {
        guard case .binding(connection, var waiters) = state else { return false }
        waiters.append(waiter)
        state = .binding(connection: connection, waiters: waiters)
        return true
    }

    /// The open on `connection` gave `handle`: the waiters to resume with it.
    mutating func opened(_ handle: Int64, on connection: UInt64) -> [Waiter] {
        guard case .binding(connection, let waiters) = state else { return [] }
        state = .bound(connection: connection, handle: handle)
        return waiters
    }

    /// The open on `connection` failed: the waiters to fail with its error.
    mutating func openFailed(on connection: UInt64) -> [Waiter] {
        guard case .binding(connection, let waiters) = state else { return [] }
        state = .unbound
        return waiters
    }

    /// Closed by the application: the waiters to fail.
    mutating func close() -> [Waiter] {
        let waiters: [Waiter]
        if case .binding(_, let queued) = state { waiters = queued } else { waiters = [] }
        state = .closed
        return waiters
    }
}

/// The client's view of the transaction a table's file has on this client's connection
/// (PROTOCOL §9.8: one per connection and file). When the connection it was opened on is
/// lost, the daemon has rolled it back: the calls that would have run inside it must not carry
/// on in autocommit, so each fails with `NanaSQLiteTransactionError` until `commit` or
/// `rollback` (which fail the same way, once, and end it), as in the Python drop-in.
enum TransactionMark: Equatable {
    case none
    case open(connection: UInt64)
    case lost

    /// Whether `method`, about to be sent on `connection`, must be refused; moves a mark whose
    /// connection is gone to `lost`, and a refused `commit` or `rollback` to `none`.
    mutating func refuses(_ method: String, on connection: UInt64) -> Bool {
        if case .open(let opened) = self, opened != connection { self = .lost }
        guard self == .lost else { return false }
        if method == "commit" || method == "rollback" { self = .none }
        return method != "close"
    }
}
