/// A client's connection to the daemon as states, events and actions, with no I/O: the
/// reconnecting loop (``NanaClient``) feeds it what happened and carries out what it answers,
/// the way valkey-swift's and postgres-nio's connection state machines are driven.
///
/// - `idle`: made, not yet running.
/// - `connecting`: no connection; the loop is trying (attempt 0 goes at once, later ones after
///   the backoff). Calls wait, each until its own deadline.
/// - `ready`: calls go on the connection.
/// - `closed`: by ``NanaClient/close()`` or the end of ``NanaClient/run()``; final.
///
/// Generic over the connection and the waiting call so that its tests need neither a socket
/// nor a task.
struct ClientStateMachine<Connection: AnyObject, Waiter> {
    enum State {
        case idle
        case connecting(attempt: Int, lastError: String?)
        case ready(Connection)
        case closed
    }

    private(set) var state: State = .idle
    private var waiters: [UInt64: Waiter] = [:]
    /// Connections made after the first.
    private(set) var reconnects = 0
    private var connectedOnce = false

    /// What ``NanaClient/connectionState`` shows.
    var publicState: NanaConnectionState {
        switch state {
        case .idle: .connecting
        case .connecting: connectedOnce ? .reconnecting : .connecting
        case .ready: .ready
        case .closed: .closed
        }
    }

    /// The connection calls go on now, if there is one.
    var connection: Connection? {
        if case .ready(let connection) = state { return connection }
        return nil
    }

    var waitingCount: Int { waiters.count }

    // MARK: Events from the loop

    /// The loop starts; false when it must not (already running, or closed).
    mutating func start() -> Bool {
        guard case .idle = state else { return false }
        state = .connecting(attempt: 0, lastError: nil)
        return true
    }

    enum ConnectedAction {
        /// Calls go on it now: resume the waiting ones with it.
        case resume([Waiter], Connection)
        /// The client closed meanwhile: close the new connection.
        case close(Connection)
    }

    mutating func connected(_ connection: Connection) -> ConnectedAction {
        switch state {
        case .connecting, .idle:
            state = .ready(connection)
            if connectedOnce { reconnects += 1 }
            connectedOnce = true
            let resumed = Array(waiters.values)
            waiters.removeAll()
            return .resume(resumed, connection)
        case .ready, .closed:
            return .close(connection)
        }
    }

    enum ConnectFailedAction {
        /// Try again, as attempt `attempt` (wait its backoff first).
        case retry(attempt: Int)
        /// The client closed: stop.
        case stop
    }

    mutating func connectFailed(_ reason: String) -> ConnectFailedAction {
        switch state {
        case .connecting(let attempt, _):
            state = .connecting(attempt: attempt + 1, lastError: reason)
            return .retry(attempt: attempt + 1)
        case .idle:
            state = .connecting(attempt: 1, lastError: reason)
            return .retry(attempt: 1)
        case .ready, .closed:
            return .stop
        }
    }

    enum LostAction {
        /// It was the current connection: connect again, at once.
        case reconnect
        /// An old connection, or the client closed: nothing to do.
        case none
    }

    mutating func connectionLost(_ connection: Connection, reason: String) -> LostAction {
        guard case .ready(let current) = state, current === connection else { return .none }
        state = .connecting(attempt: 0, lastError: reason)
        return .reconnect
    }

    // MARK: Events from calls

    enum WaitAction {
        case use(Connection)
        /// Stored: it is resumed by ``connected(_:)``, ``waiterLeft(_:)`` or ``close()``.
        case wait
        case closed
    }

    mutating func waitForConnection(_ id: UInt64, _ waiter: Waiter) -> WaitAction {
        switch state {
        case .ready(let connection): return .use(connection)
        case .idle, .connecting:
            waiters[id] = waiter
            return .wait
        case .closed: return .closed
        }
    }

    /// A waiting call's deadline passed, or its task was cancelled: the waiter to fail (nil
    /// when it was resumed already) and the last reason a connection attempt gave.
    mutating func waiterLeft(_ id: UInt64) -> (waiter: Waiter, lastError: String?)? {
        guard let waiter = waiters.removeValue(forKey: id) else { return nil }
        if case .connecting(_, let lastError) = state { return (waiter, lastError) }
        return (waiter, nil)
    }

    /// The client closes: the waiting calls to fail and the connection to close.
    mutating func close() -> (waiters: [Waiter], connection: Connection?) {
        let connection = self.connection
        state = .closed
        let failed = Array(waiters.values)
        waiters.removeAll()
        return (failed, connection)
    }
}
