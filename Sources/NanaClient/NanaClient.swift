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

    private init(channel: any Channel, handler: NIOLoopBound<ClientChannelHandler>, serverInfo: NanaValue) {
        self.channel = channel
        self.handler = handler
        self.serverInfo = serverInfo
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
    public static func connect(
        socketPath: String? = nil,
        clientName: String = "nana-swift",
        maximumFrameLength: Int = 256 * 1024 * 1024,
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
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
        let client = NanaClient(channel: channel, handler: handler, serverInfo: .nil)
        let info: NanaValue
        do {
            info = try await client.call("hello", ["protocol": .int(NanaProtocol.version), "client": .string(clientName)])
        } catch {
            try? await channel.close()
            throw NanaClientError(.handshakeFailed, "nanad refused hello: \(error)")
        }
        return NanaClient(channel: channel, handler: handler, serverInfo: info)
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
    public func open(_ dbPath: String, table: String = "data", bulkLoad: Bool = false, optimize: Bool = true, cacheSizeMB: Int = 64, options: NanaOpenOptions = NanaOpenOptions()) async throws -> NanaDatabase {
        var params: NanaParams = [
            "db_path": .string(dbPath), "table": .string(table), "bulk_load": .bool(bulkLoad),
            "optimize": .bool(optimize), "cache_size_mb": .int(Int64(cacheSizeMB)),
        ]
        for (name, value) in options.parameters { params[name] = value }
        let reply = try await call("open", params)
        return try NanaDatabase(client: self, openReply: reply)
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
        try? await channel.close()
    }
}
