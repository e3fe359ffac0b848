import Foundation
import Logging
import NIOCore
import NIOPosix
import NanaWire
import OrderedCollections
import Synchronization

/// A client of `nanad`. Many tasks may call it at once: each call gets a msgid, travels as
/// one frame, and resumes when its response arrives, in whatever order responses come.
///
/// For a script, ``connect(socketPath:clientName:maximumFrameLength:eventLoopGroup:nearCache:)``:
///
/// ```swift
/// let client = try await NanaClient.connect()
/// let db = try await client.open("app.db")
/// try await db.set("config", ["theme": "dark"])
/// let config = try await db.get("config")
/// ```
///
/// For a long-running app, make it and run it as a swift-service-lifecycle `Service` beside
/// the rest of the app (``run()``):
///
/// ```swift
/// let client = NanaClient(configuration: NanaClientConfiguration(logger: logger))
/// let group = ServiceGroup(services: [client, httpServer], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
///
/// Either way it outlives the daemon's restarts: when the connection is lost it connects
/// again (with ``NanaClientConfiguration/reconnectBackoff``), says `hello`, and opens every
/// table it had open again (each on its first call), with the same settings and keys, so the
/// ``NanaDatabase`` values the app holds keep working. Meanwhile calls wait up to
/// ``NanaClientConfiguration/connectionTimeout``. Calls in flight at the loss go again when
/// ``NanaClientConfiguration/retry`` allows it (reads, by default); the others fail, a write
/// with ``NanaClientError/Code/outcomeUnknown``. A transaction open at the loss is over: the
/// daemon rolled it back, and the calls made in it fail with `NanaSQLiteTransactionError`
/// until `rollback()` or `commit()`. Near-caches start empty on the new connection.
///
/// A cancelled call throws `CancellationError` (its late response is dropped).
public final class NanaClient: Sendable {
    public let configuration: NanaClientConfiguration
    /// Every connection of this client is made on this loop, so ``executor`` stays valid.
    private let eventLoop: any EventLoop
    /// The connection's event loop as a task executor: sequential calls from a task that
    /// prefers it (`withTaskExecutorPreference`) skip two thread hops. See ``ConnectionExecutor``.
    public let executor: ConnectionExecutor

    typealias Waiter = CheckedContinuation<ClientConnection, any Error>
    private let lifecycle = Mutex(ClientStateMachine<ClientConnection, Waiter>())
    private let waiterIDs = Atomic<UInt64>(0)
    /// The tables handed out and not closed, weakly (for ``nearCacheStatistics``).
    private let registrations = Mutex<[ObjectIdentifier: WeakRegistration]>([:])
    private let counters = Mutex(NanaClientStatistics(reconnects: 0, failedCalls: 0, retriedCalls: 0))
    private let observers = Mutex<(published: NanaConnectionState, streams: [UInt64: AsyncStream<NanaConnectionState>.Continuation])>((.connecting, [:]))
    /// The wait between connection attempts, so that ``close()`` can end it.
    private let pause = Mutex<(closed: Bool, sleeper: Task<Void, Never>?)>((false, nil))
    private let lastServerInfo = Mutex<NanaValue>(.nil)

    private struct WeakRegistration { weak var registration: TableRegistration? }

    /// A client that connects once it runs (``run()``); calls made before then wait for the
    /// connection as they would during a reconnection.
    public init(configuration: NanaClientConfiguration = NanaClientConfiguration(), eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.configuration = configuration
        eventLoop = eventLoopGroup.next()
        executor = ConnectionExecutor(eventLoop: eventLoop)
    }

    /// The socket a client uses when none is named: `$NANAD_SOCKET`, else nanad's default.
    public static var defaultSocketPath: String {
        ProcessInfo.processInfo.environment[NanaProtocol.socketEnvironmentVariable] ?? NanaProtocol.defaultSocketPath
    }

    /// Connects, says `hello`, and keeps the connection (reconnecting after a loss) until
    /// ``close()``. For scripts and tests; a long-running app may run the client as a
    /// `Service` instead (``run()``).
    /// - Parameters:
    ///   - socketPath: the daemon's socket; ``defaultSocketPath`` when `nil`.
    ///   - clientName: how the daemon's logs name this client.
    ///   - maximumFrameLength: largest response frame accepted.
    ///   - nearCache: the near-cache each ``open(_:table:bulkLoad:optimize:cacheSizeMB:options:nearCache:)``
    ///     gets unless it says otherwise (``NanaNearCache/default``; ``NanaNearCache/off`` for none).
    /// - Throws: ``NanaClientError`` (`connectFailed`, `handshakeFailed`) when the first
    ///   connection cannot be made: a script learns at once that the daemon is not there.
    public static func connect(
        socketPath: String? = nil,
        clientName: String = "nana-swift",
        maximumFrameLength: Int = 256 * 1024 * 1024,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        nearCache: NanaNearCache = .default
    ) async throws -> NanaClient {
        try await connect(
            configuration: NanaClientConfiguration(socketPath: socketPath ?? defaultSocketPath, clientName: clientName, maximumFrameLength: maximumFrameLength, nearCache: nearCache),
            eventLoopGroup: eventLoopGroup)
    }

    /// Connects with a configuration of your own (reconnection, retries, timeouts, logging).
    public static func connect(configuration: NanaClientConfiguration, eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws -> NanaClient {
        let client = NanaClient(configuration: configuration, eventLoopGroup: eventLoopGroup)
        let first = try await client.makeConnection()
        guard client.start() else { preconditionFailure("a new client is idle") }
        client.adopt(first)
        // Ended by close(): the task then returns.
        Task { await client.maintain(from: first) }
        return client
    }

    /// What the daemon said about itself in its last `hello` (server, version, protocol,
    /// instance, pid, started_at: PROTOCOL §7.1).
    public var serverInfo: NanaValue { lastServerInfo.withLock { $0 } }

    /// The near-cache each `open` gets unless it says otherwise.
    public var defaultNearCache: NanaNearCache { configuration.nearCache }

    // MARK: Calls

    /// Sends one call and waits for its result. The typed methods of ``NanaDatabase`` are
    /// built on this; use it for methods they do not cover yet.
    /// - Throws: ``NanaWire/NanaRemoteError`` when the daemon answers with an error,
    ///   ``NanaClientError`` when there is no connection for it, `CancellationError` when
    ///   cancelled.
    public func call(_ method: String, _ params: NanaParams = [:]) async throws -> NanaValue {
        try await send(method, params, table: nil).value
    }

    /// One call, on `table`'s handle when given (opening it on this connection first if it
    /// has no handle there), and the connection it was answered on.
    func send(_ method: String, _ params: NanaParams, table: TableRegistration?) async throws -> (value: NanaValue, connection: ClientConnection) {
        try Task.checkCancellation()
        var retries = 0
        var deadline: NIODeadline?
        while true {
            let connection = try await readyConnection(deadline: &deadline)
            var params = params
            if let table {
                do {
                    params["db"] = .int(try await table.handle(on: connection, for: method))
                } catch let failure as ConnectionFailure {
                    // Lost while the table was being opened again: the call itself was not sent.
                    connectionFailed(connection)
                    _ = failure
                    continue
                }
            }
            do {
                return (try await connection.call(method, params), connection)
            } catch let failure as ConnectionFailure {
                connectionFailed(connection)
                if case .lost(let reason) = failure {
                    if lifecycle.withLock({ if case .closed = $0.state { true } else { false } }) {
                        counted()
                        throw NanaClientError(.connectionClosed, "the client was closed while \(method) was in flight")
                    }
                    let repeatable = connection.repeatableMethods.contains(method)
                    if retries < 3, configuration.retry.allows(method, repeatable: connection.repeatableMethods) {
                        retries += 1
                        counters.withLock { $0.retriedCalls += 1 }
                        continue
                    }
                    counted()
                    if repeatable {
                        throw NanaClientError(.connectionLost, "the connection to nanad was lost while \(method) was in flight (\(reason)); it changed nothing and may be sent again")
                    }
                    throw NanaClientError(.outcomeUnknown, "the connection to nanad was lost while \(method) was in flight (\(reason)): it may or may not have taken effect")
                }
                // Not sent: it goes on the next connection, whatever it is.
            }
        }
    }

    private func counted() { counters.withLock { $0.failedCalls += 1 } }

    /// The connection calls go on, waiting for one while there is none. `deadline` is the
    /// call's: set to the connection timeout from now when it first has to wait, and kept
    /// for the waits of its retries, so that a call lasts at most one timeout in waiting,
    /// however often it is lost and sent again.
    private func readyConnection(deadline: inout NIODeadline?) async throws -> ClientConnection {
        if let connection = lifecycle.withLock({ $0.connection }) { return connection }
        let until = deadline ?? .now() + .nanoseconds(Self.nanoseconds(configuration.connectionTimeout))
        deadline = until
        let id = waiterIDs.wrappingAdd(1, ordering: .relaxed).newValue
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (waiter: Waiter) in
                switch lifecycle.withLock({ $0.waitForConnection(id, waiter) }) {
                case .use(let connection):
                    waiter.resume(returning: connection)
                case .closed:
                    waiter.resume(throwing: NanaClientError(.connectionClosed, "the client was closed"))
                case .wait:
                    eventLoop.scheduleTask(deadline: until) { [self] in waiterLeft(id, cancelled: false) }
                    if Task.isCancelled { waiterLeft(id, cancelled: true) }
                }
            }
        } onCancel: {
            waiterLeft(id, cancelled: true)
        }
    }

    private func waiterLeft(_ id: UInt64, cancelled: Bool) {
        guard let (waiter, lastError) = lifecycle.withLock({ $0.waiterLeft(id) }) else { return }
        if cancelled { return waiter.resume(throwing: CancellationError()) }
        counted()
        waiter.resume(throwing: NanaClientError(.unavailable, "no connection to nanad at \(configuration.socketPath) within \(configuration.connectionTimeout)"
            + (lastError.map { " (last attempt: \($0))" } ?? "")))
    }

    /// A call found `connection` unusable: stop handing it out now rather than when its close
    /// callback runs (calls would meanwhile spin on it).
    private func connectionFailed(_ connection: ClientConnection) {
        if lifecycle.withLock({ $0.connectionLost(connection, reason: connection.closeReason) }) == .reconnect {
            publish()
            configuration.logger.warning("lost the connection to nanad", metadata: ["nana.reason": "\(connection.closeReason)"])
        }
    }

    // MARK: Tables

    /// Opens a database file inside the daemon's data folder (NanaSQLite's constructor).
    /// - Parameters:
    ///   - dbPath: a file name relative to the data folder; absolute paths and `..` are refused.
    ///   - table: the key-value table, `"data"` by default.
    ///   - bulkLoad: load every row into the shared cache now.
    ///   - optimize: NanaSQLite's PRAGMAs (WAL and friends); decided by the first open of a file.
    ///   - cacheSizeMB: SQLite's page cache; decided by the first open of a file.
    ///   - options: write-behind and the table's other shared settings (see ``NanaOpenOptions``).
    ///   - nearCache: how much this handle (and each table opened from it) keeps in this
    ///     process, ``defaultNearCache`` when nil; ``NanaNearCache/off`` sends every read to
    ///     the daemon.
    public func open(_ dbPath: String, table: String = "data", bulkLoad: Bool = false, optimize: Bool = true, cacheSizeMB: Int = 64, options: NanaOpenOptions = NanaOpenOptions(), nearCache: NanaNearCache? = nil) async throws -> NanaDatabase {
        let nearCache = nearCache ?? defaultNearCache
        var params: NanaParams = [
            "db_path": .string(dbPath), "table": .string(table), "bulk_load": .bool(bulkLoad),
            "optimize": .bool(optimize), "cache_size_mb": .int(Int64(cacheSizeMB)),
        ]
        for (name, value) in options.parameters { params[name] = value }
        if nearCache.isEnabled { params["near_cache"] = true }
        let registration = TableRegistration(origin: .open(params), dbPath: dbPath, table: table, nearCache: nearCache)
        try await bind(registration)
        return NanaDatabase(client: self, registration: registration, nearCache: nearCache)
    }

    /// Opens `registration` on the current connection and keeps it to open again after a
    /// reconnection.
    func bind(_ registration: TableRegistration) async throws {
        registrations.withLock { $0[ObjectIdentifier(registration)] = WeakRegistration(registration: registration) }
        do {
            var deadline: NIODeadline?
            while true {
                let connection = try await readyConnection(deadline: &deadline)
                do {
                    _ = try await registration.handle(on: connection, for: nil)
                    return
                } catch is ConnectionFailure {
                    connectionFailed(connection)  // opening is repeatable: go again on the next one
                }
            }
        } catch {
            forget(registration)
            throw error
        }
    }

    /// Closes `registration`'s handle if it has one on the current connection; it is then
    /// never opened again.
    func close(_ registration: TableRegistration) async throws {
        if let connection = lifecycle.withLock({ $0.connection }), let handle = registration.currentHandle(on: connection) {
            do {
                _ = try await connection.call("close", ["db": .int(handle)])
            } catch is ConnectionFailure {
                connectionFailed(connection)  // the daemon dropped the handle with the connection
            }
        }
        registration.markClosed()
        forget(registration)
    }

    private func forget(_ registration: TableRegistration) {
        registrations.withLock { $0[ObjectIdentifier(registration)] = nil }
    }

    /// The near-cache counters of every handle of this client still open, summed (per handle:
    /// ``NanaDatabase/nearCacheStatistics``).
    public var nearCacheStatistics: NanaNearCacheStatistics {
        let tables = registrations.withLock { $0.values.compactMap(\.registration?.nearCache) }
        return tables.reduce(into: NanaNearCacheStatistics(hits: 0, misses: 0, invalidations: 0, entries: 0, bytes: 0)) { total, table in
            let one = table.statistics
            total.hits += one.hits
            total.misses += one.misses
            total.invalidations += one.invalidations
            total.entries += one.entries
            total.bytes += one.bytes
        }
    }

    // MARK: The connection

    /// Where the connection stands now.
    public var connectionState: NanaConnectionState { lifecycle.withLock { $0.publicState } }

    /// The connection's states from now on, starting with the current one; ends when the
    /// client is closed. Each call makes a new sequence (several observers may watch).
    public func connectionStates() -> AsyncStream<NanaConnectionState> {
        let (stream, continuation) = AsyncStream<NanaConnectionState>.makeStream(bufferingPolicy: .bufferingNewest(64))
        let id = waiterIDs.wrappingAdd(1, ordering: .relaxed).newValue
        let current = observers.withLock { observers in
            observers.streams[id] = continuation
            return observers.published
        }
        continuation.onTermination = { [weak self] _ in _ = self?.observers.withLock { $0.streams.removeValue(forKey: id) } }
        continuation.yield(current)
        if current == .closed { continuation.finish() }
        return stream
    }

    /// Reconnections, and calls that failed for want of a connection, so far.
    public var statistics: NanaClientStatistics {
        var statistics = counters.withLock { $0 }
        statistics.reconnects = lifecycle.withLock { $0.reconnects }
        return statistics
    }

    /// Tells the observers about a change of state.
    private func publish() {
        let state = lifecycle.withLock { $0.publicState }
        let streams: [AsyncStream<NanaConnectionState>.Continuation] = observers.withLock { observers in
            guard observers.published != state else { return [] }
            observers.published = state
            return Array(observers.streams.values)
        }
        for stream in streams {
            stream.yield(state)
            if state == .closed { stream.finish() }
        }
    }

    private func makeConnection() async throws(NanaClientError) -> ClientConnection {
        try await ClientConnection.connect(socketPath: configuration.socketPath, clientName: configuration.clientName,
                                           maximumFrameLength: configuration.maximumFrameLength, handshakeTimeout: configuration.handshakeTimeout, eventLoop: eventLoop)
    }

    /// `connection` is the one calls go on now.
    private func adopt(_ connection: ClientConnection) {
        lastServerInfo.withLock { $0 = connection.serverInfo }
        switch lifecycle.withLock({ $0.connected(connection) }) {
        case .resume(let waiters, let connection):
            for waiter in waiters { waiter.resume(returning: connection) }
        case .close(let connection):
            Task { await connection.close(reason: "the client was closed") }
        }
        publish()
    }

    /// Keeps a connection until the client closes: waits for the current one to go, then
    /// connects again with backoff.
    ///
    /// Tables are opened again one by one, each by its first call on the new connection
    /// (``TableRegistration/handle(on:for:)``), not all at once here: a table nobody calls
    /// any more costs nothing, and a table's settings go to the first client that uses it
    /// again, as they went to the first that opened it. (Opening all of them eagerly let an
    /// idle reader that stated no settings claim a write-behind table with the defaults
    /// before its writer was back: the writer's open was then refused.)
    func maintain(from current: ClientConnection?) async {
        var next = current
        let logger = configuration.logger
        var lostAt: ContinuousClock.Instant?
        while true {
            if let connection = next {
                try? await connection.channel.closeFuture.get()
                connectionFailed(connection)  // no-op when a call saw it first
                guard !isClosed else { return }
                lostAt = .now
                next = nil
            }
            let connection: ClientConnection
            do {
                connection = try await makeConnection()
            } catch {
                switch lifecycle.withLock({ $0.connectFailed(error.message) }) {
                case .stop: return
                case .retry(let attempt):
                    logger.debug("cannot reach nanad", metadata: ["nana.attempt": "\(attempt)", "nana.error": "\(error.message)"])
                    await sleep(configuration.reconnectBackoff.delay(beforeAttempt: attempt, random: Double.random(in: 0..<1)))
                    continue
                }
            }
            adopt(connection)
            if isClosed { return }
            if let lostAt {
                logger.info("reconnected to nanad", metadata: ["nana.after": "\(ContinuousClock.now - lostAt)"])
            } else {
                logger.info("connected to nanad", metadata: ["nana.socket": "\(configuration.socketPath)"])
            }
            next = connection
        }
    }

    /// Marks the client running; false when it already is, or is closed.
    func start() -> Bool {
        guard lifecycle.withLock({ $0.start() }) else { return false }
        publish()
        return true
    }

    private var isClosed: Bool { lifecycle.withLock { if case .closed = $0.state { true } else { false } } }

    /// Waits `delay`, or less if the client closes meanwhile.
    private func sleep(_ delay: Duration) async {
        let sleeper = Task<Void, Never> { try? await Task.sleep(for: delay) }
        if pause.withLock({ pause in
            pause.sleeper = sleeper
            return pause.closed
        }) { sleeper.cancel() }
        await sleeper.value
    }

    /// `duration` in nanoseconds, held within a century either way: a `Duration` reaches far
    /// past what `Int64` nanoseconds (and a deadline added to now) can hold, and a timeout set
    /// to "forever" must not trap.
    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let century: Int64 = 100 * 365 * 86_400
        return min(max(seconds, -century), century) * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    // MARK: Shortcuts

    /// Round trip with no work: `"pong"`.
    public func ping() async throws {
        _ = try await call("ping")
    }

    /// The daemon's counters (connections, requests, per-database cache and writer figures).
    public func stats() async throws -> NanaValue {
        try await call("stats")
    }

    /// Closes the client: the connection, the reconnecting, every table. Calls in flight and
    /// waiting fail with ``NanaClientError/Code/connectionClosed``, and so do later ones.
    public func close() async {
        let (waiters, connection) = lifecycle.withLock { $0.close() }
        pause.withLock { pause in
            pause.closed = true
            pause.sleeper?.cancel()
        }
        for waiter in waiters { waiter.resume(throwing: NanaClientError(.connectionClosed, "the client was closed")) }
        publish()
        await connection?.close(reason: "the client was closed")
    }
}
