import Foundation
import NIOCore
import NIOPosix
import NanaWire
import OrderedCollections
import Synchronization

/// Why a call got no answer from its connection: the two cases a client treats differently.
enum ConnectionFailure: Error {
    /// The connection was already gone when the call reached it: nothing was sent, so any call
    /// may go again on the next connection.
    case notSent(String)
    /// The connection went while the call was in flight: the daemon may or may not have run it.
    case lost(String)
}

/// One socket to the daemon, from `hello` until it closes: the multiplexing handler, the
/// near-cache boards mapped through it, and what `hello` said. ``NanaClient`` replaces it when
/// it is lost; a connection itself never reconnects.
final class ClientConnection: Sendable {
    /// Unique within the process: a table's handle and a transaction belong to one connection.
    let id: UInt64
    let channel: any Channel
    private let handler: NIOLoopBound<ClientChannelHandler>
    private let nextMsgid = Atomic<UInt32>(0)
    /// Up until the connection is lost; near-caches bound to it answer nothing after that.
    let liveness = ConnectionLiveness()
    /// What the daemon said about itself in `hello`.
    let serverInfo: NanaValue
    /// The methods the daemon says are safe to send again (`hello`'s `repeatable`, PROTOCOL §7.1).
    let repeatableMethods: Set<String>
    /// The near-cache boards mapped through this connection, by generation (weakly: a board
    /// goes when the last near-cache bound to it does).
    private let boards = Mutex<[UInt64: WeakBoard]>([:])
    /// Why it closed, once it has: the daemon's last word, what the socket said, or this
    /// client's own close.
    var closeReason: String { reason.value ?? "the connection to nanad was closed" }
    private let reason: ConnectionCloseReason

    /// The table holds the lease, not the board, weakly: a weakly referenced object gets a
    /// side table, which makes every retain and release of it the runtime's slow kind, and a
    /// near-cache hit retains the board (about 6 % of a hit, in a profile of nanabench n).
    private struct WeakBoard {
        weak var lease: BoardLease?
        var board: MappedBoard? { lease?.board }
    }
    private static let ids = Atomic<UInt64>(0)

    private init(channel: any Channel, handler: NIOLoopBound<ClientChannelHandler>, reason: ConnectionCloseReason, serverInfo: NanaValue) {
        self.reason = reason
        id = Self.ids.wrappingAdd(1, ordering: .relaxed).newValue
        self.channel = channel
        self.handler = handler
        self.serverInfo = serverInfo
        repeatableMethods = Set(serverInfo["repeatable"]?.arrayValue?.compactMap(\.stringValue) ?? [])
    }

    /// Connects on `eventLoop` and says `hello`; a daemon that accepts but does not answer
    /// within `handshakeTimeout` (stopped, say) counts as refusing.
    static func connect(socketPath path: String, clientName: String, maximumFrameLength: Int, handshakeTimeout: Duration, eventLoop: any EventLoop) async throws(NanaClientError) -> ClientConnection {
        let channel: any Channel
        let handler: NIOLoopBound<ClientChannelHandler>
        let reason = ConnectionCloseReason()
        do {
            // The handler is taken as it is added: the daemon may refuse the peer and close the
            // connection at once, and its reason must still reach the first call.
            (channel, handler) = try await ClientBootstrap(group: eventLoop)
                .connect(unixDomainSocketPath: path) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let handler = ClientChannelHandler(maximumFrameLength: maximumFrameLength, closeReason: reason)
                        try channel.pipeline.syncOperations.addHandler(handler)
                        return (channel, NIOLoopBound(handler, eventLoop: channel.eventLoop))
                    }
                }
        } catch {
            throw NanaClientError(.connectFailed, "cannot connect to nanad at \(path): \(error)")
        }
        let handshake = ClientConnection(channel: channel, handler: handler, reason: reason, serverInfo: .nil)
        let timeout = channel.eventLoop.scheduleTask(in: .nanoseconds(NanaClient.nanoseconds(handshakeTimeout))) {
            reason.keep("no answer to hello within \(handshakeTimeout)")
            channel.close(promise: nil)
        }
        defer { timeout.cancel() }
        let info: NanaValue
        do {
            info = try await handshake.call("hello", ["protocol": .int(NanaProtocol.version), "client": .string(clientName)])
        } catch {
            try? await channel.close()
            let reason = switch error {
            case let failure as ConnectionFailure: failure.reason
            default: "\(error)"
            }
            throw NanaClientError(.handshakeFailed, "nanad refused hello: \(reason)")
        }
        let connection = ClientConnection(channel: channel, handler: handler, reason: reason, serverInfo: info)
        channel.closeFuture.whenComplete { [liveness = connection.liveness] _ in liveness.lost() }
        return connection
    }

    /// Sends one call and waits for its answer.
    /// - Throws: ``ConnectionFailure`` when the connection fails it, ``NanaWire/NanaRemoteError``
    ///   when the daemon answers with an error, `CancellationError` when cancelled.
    func call(_ method: String, _ params: NanaParams) async throws -> NanaValue {
        try Task.checkCancellation()
        let msgid = nextMsgid.wrappingAdd(1, ordering: .relaxed).newValue
        let state = CallState()
        let handler = self.handler
        let loop = channel.eventLoop
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                // Already on the loop (a task preferring the client's executor): send now, no hop.
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

    /// The board an `open` reply offers, mapped once per connection and generation; nil when
    /// it cannot be fetched (the table then reads through the daemon). Its holders keep the
    /// lease as long as they keep the board.
    func board(_ offer: NanaValue) -> BoardLease? {
        guard let generation = offer["generation"]?.uint64Value else { return nil }
        if let known = boards.withLock({ $0[generation]?.lease }) { return known }  // the token goes unused and expires
        guard let fetched = try? MappedBoard.fetch(offer) else { return nil }
        return boards.withLock { boards in
            boards = boards.filter { $0.value.lease != nil }
            if let raced = boards[generation]?.lease { return raced }
            let lease = BoardLease(fetched)
            boards[generation] = WeakBoard(lease: lease)
            return lease
        }
    }

    /// Closes the socket; calls in flight fail with ``ConnectionFailure/lost(_:)``.
    func close(reason: String) async {
        liveness.lost()  // at once: the channel's close callbacks run a moment later
        self.reason.keep(reason)
        try? await channel.close()
    }
}

/// The first reason a connection gave for closing, kept by its handler (on the loop) and read
/// by the client (anywhere).
final class ConnectionCloseReason: Sendable {
    private let reason = Mutex<String?>(nil)

    /// Keeps `candidate` unless a reason was kept before; returns the one kept.
    @discardableResult
    func keep(_ candidate: String) -> String {
        reason.withLock { first in
            if first == nil { first = candidate }
            return first!
        }
    }

    var value: String? { reason.withLock { $0 } }
}

extension ConnectionFailure {
    var reason: String {
        switch self {
        case .notSent(let reason), .lost(let reason): reason
        }
    }
}
