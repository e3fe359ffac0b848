import Foundation
import NIOCore
import NIOPosix
import NanaWire
import OrderedCollections
import Synchronization

/// A connection to `nanad`. Many tasks may call it at once: each call gets a msgid, travels as
/// one frame, and resumes when its response arrives, in whatever order responses come.
///
/// ```swift
/// let client = try await NanaClient.connect()
/// let db = try await client.open("app.db")
/// try await db.set("config", ["theme": "dark"])
/// let config = try await db.get("config")
/// ```
///
/// A cancelled call throws `CancellationError` (its late response is dropped). When the
/// connection is lost every call in flight fails with ``NanaClientError/Code/connectionClosed``
/// and later calls fail at once; this client does not reconnect by itself — connect again.
public final class NanaClient: Sendable {
    private let channel: any Channel
    private let handler: NIOLoopBound<ClientChannelHandler>
    private let nextMsgid = Atomic<UInt32>(0)
    /// What the daemon said about itself in `hello`.
    public let serverInfo: NanaValue
    /// The connection's event loop as a task executor: sequential calls from a task that
    /// prefers it (`withTaskExecutorPreference`) skip two thread hops. See ``ConnectionExecutor``.
    public let executor: ConnectionExecutor
    /// Up until the connection is lost; near-caches answer nothing after that.
    let liveness: ConnectionLiveness
    /// The near-cache boards this connection mapped, by generation (weakly: a board goes when
    /// the last handle using it does).
    private let boards = Mutex<[UInt64: WeakBoard]>([:])
    /// The near-caches of the handles this client opened, for ``nearCacheStatistics``.
    private let nearCaches = Mutex<[WeakNearCache]>([])
    /// What ``open(_:table:bulkLoad:optimize:cacheSizeMB:options:nearCache:)`` uses when it is
    /// not told.
    public let defaultNearCache: NanaNearCache

    private struct WeakBoard { weak var board: MappedBoard? }
    private struct WeakNearCache { weak var table: NearCacheTable? }

    private init(channel: any Channel, handler: NIOLoopBound<ClientChannelHandler>, serverInfo: NanaValue, liveness: ConnectionLiveness, nearCache: NanaNearCache) {
        self.channel = channel
        self.handler = handler
        self.serverInfo = serverInfo
        self.liveness = liveness
        self.defaultNearCache = nearCache
        executor = ConnectionExecutor(eventLoop: channel.eventLoop)
    }

    /// The socket a client uses when none is named: `$NANAD_SOCKET`, else nanad's default.
    public static var defaultSocketPath: String {
        ProcessInfo.processInfo.environment[NanaProtocol.socketEnvironmentVariable] ?? NanaProtocol.defaultSocketPath
    }

    /// Connects and says `hello`.
    /// - Parameters:
    ///   - socketPath: the daemon's socket; ``defaultSocketPath`` when `nil`.
    ///   - clientName: how the daemon's logs name this client.
    ///   - maximumFrameLength: largest response frame accepted.
    ///   - nearCache: the near-cache each ``open(_:table:bulkLoad:optimize:cacheSizeMB:options:nearCache:)``
    ///     gets unless it says otherwise (``NanaNearCache/default``; ``NanaNearCache/off`` for none).
    public static func connect(
        socketPath: String? = nil,
        clientName: String = "nana-swift",
        maximumFrameLength: Int = 256 * 1024 * 1024,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        nearCache: NanaNearCache = .default
    ) async throws -> NanaClient {
        let path = socketPath ?? defaultSocketPath
        let channel: any Channel
        let handler: NIOLoopBound<ClientChannelHandler>
        do {
            // The handler is taken as it is added: the daemon may refuse the peer and close the
            // connection at once, and its reason must still reach the first call.
            let connected = try await ClientBootstrap(group: eventLoopGroup)
                .connect(unixDomainSocketPath: path) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = ClientChannelHandler(maximumFrameLength: maximumFrameLength)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        return (channel, NIOLoopBound(handler, eventLoop: channel.eventLoop))
                    }
                }
            (channel, handler) = connected
        } catch {
            throw NanaClientError(.connectFailed, "cannot connect to nanad at \(path): \(error)")
        }
        let liveness = ConnectionLiveness()
        channel.closeFuture.whenComplete { _ in liveness.lost() }
        let client = NanaClient(channel: channel, handler: handler, serverInfo: .nil, liveness: liveness, nearCache: nearCache)
        let info: NanaValue
        do {
            info = try await client.call("hello", ["protocol": .int(NanaProtocol.version), "client": .string(clientName)])
        } catch {
            try? await channel.close()
            throw NanaClientError(.handshakeFailed, "nanad refused hello: \(error)")
        }
        return NanaClient(channel: channel, handler: handler, serverInfo: info, liveness: liveness, nearCache: nearCache)
    }

    /// Sends one call and waits for its result. The typed methods of ``NanaDatabase`` are
    /// built on this; use it for methods they do not cover yet.
    /// - Throws: ``NanaWire/NanaRemoteError`` when the daemon answers with an error,
    ///   ``NanaClientError`` when the connection fails, `CancellationError` when cancelled.
    public func call(_ method: String, _ params: NanaParams = [:]) async throws -> NanaValue {
        try Task.checkCancellation()
        let msgid = nextMsgid.wrappingAdd(1, ordering: .relaxed).newValue
        let state = CallState()
        let handler = self.handler
        let loop = channel.eventLoop
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // Already on the loop (a task preferring ``executor``): send now, no hop.
                if loop.inEventLoop {
                    handler.value.send(msgid: msgid, method: method, params: params, state: state, continuation: continuation)
                } else {
                    loop.execute {
                        handler.value.send(msgid: msgid, method: method, params: params, state: state, continuation: continuation)
                    }
                }
            }
        } onCancel: {
            state.cancelled.store(true, ordering: .relaxed)
            loop.execute { handler.value.cancel(msgid: msgid) }
        }
    }

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
        let reply = try await call("open", params)
        return try NanaDatabase(client: self, openReply: reply, nearCache: nearCache)
    }

    /// The near-cache of a tracking handle from its `open` (or `table`) reply, or nil when the
    /// daemon offered no board or it could not be mapped (the handle then reads through the
    /// daemon every time).
    func nearCacheTable(_ reply: NanaValue, limits: NanaNearCache) -> NearCacheTable? {
        guard let offer = reply["board"], let generation = offer["generation"]?.uint64Value,
              let tableWord = offer["table_word"]?.int64Value else { return nil }
        let board: MappedBoard
        if let known = boards.withLock({ $0[generation]?.board }) {
            board = known  // the token goes unused and expires
        } else {
            guard let fetched = try? MappedBoard.fetch(offer) else { return nil }
            board = boards.withLock { boards in
                boards = boards.filter { $0.value.board != nil }
                if let raced = boards[generation]?.board { return raced }
                boards[generation] = WeakBoard(board: fetched)
                return fetched
            }
        }
        guard board.load(Int(tableWord)) != nil else { return nil }
        let table = NearCacheTable(board: board, tableWord: Int(tableWord), connection: liveness, limits: limits)
        nearCaches.withLock { caches in
            caches.removeAll { $0.table == nil }
            caches.append(WeakNearCache(table: table))
        }
        return table
    }

    /// The near-cache counters of every handle of this client still open, summed (per handle:
    /// ``NanaDatabase/nearCacheStatistics``).
    public var nearCacheStatistics: NanaNearCacheStatistics {
        let tables = nearCaches.withLock { $0.compactMap(\.table) }
        return tables.reduce(into: NanaNearCacheStatistics(hits: 0, misses: 0, invalidations: 0, entries: 0, bytes: 0)) { total, table in
            let one = table.statistics
            total.hits += one.hits
            total.misses += one.misses
            total.invalidations += one.invalidations
            total.entries += one.entries
            total.bytes += one.bytes
        }
    }

    /// Round trip with no work: `"pong"`.
    public func ping() async throws {
        _ = try await call("ping")
    }

    /// The daemon's counters (connections, requests, per-database cache and writer figures).
    public func stats() async throws -> NanaValue {
        try await call("stats")
    }

    /// Closes the connection; calls in flight fail with ``NanaClientError/Code/connectionClosed``.
    public func close() async {
        liveness.lost()  // at once: the channel's close callbacks run a moment later
        try? await channel.close()
    }
}
