import Logging
import NIOCore
import NanaStorage
import NanaWire
import Synchronization

/// What every connection of one server shares.
final class ServerState: Sendable {
    let configuration: ServerConfiguration
    let registry: DatabaseRegistry
    let logger: Logger
    let connections = Atomic<Int>(0)
    let totalConnections = Atomic<Int>(0)
    let requests = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    /// Requests waiting on storage, across all connections (shutdown drains them).
    let inFlight = Atomic<Int>(0)
    let nextConnectionID = Atomic<Int>(0)
    /// Calls by method (indexed as ``WireMethod/all``, then one for unknown names) and errors
    /// by type, merged in from each connection now and then.
    let callCounts = Mutex<[Int]>(Array(repeating: 0, count: WireMethod.all.count + 1))
    let errorCounts = Mutex<[String: Int]>([:])

    func merge(calls: inout [Int], errors: inout [String: Int]) {
        callCounts.withLock { total in
            for i in calls.indices where calls[i] != 0 {
                total[i] += calls[i]
                calls[i] = 0
            }
        }
        if !errors.isEmpty { errorCounts.withLock { total in for (k, v) in errors { total[k, default: 0] += v } } }
        errors.removeAll(keepingCapacity: true)
    }

    /// Calls so far by method name; unknown names are counted together as "(unknown)".
    var callsByMethod: [(String, Int)] {
        let counts = callCounts.withLock { $0 }
        return counts.indices.compactMap { i in
            guard counts[i] > 0 else { return nil }
            return (i < WireMethod.all.count ? WireMethod.all[i].name : "(unknown)", counts[i])
        }.sorted { $0.0 < $1.0 }
    }

    init(configuration: ServerConfiguration, registry: DatabaseRegistry, logger: Logger) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
    }
}

/// One client connection: decodes frames, runs calls, writes replies.
///
/// Everything here runs on the connection's event loop. It splits the byte stream into frames
/// itself (``FrameAccumulator``). Cache hits are answered right away in `channelRead`; other
/// calls go to the storage threads and their replies come back with `eventLoop.execute`. Replies are gathered in one buffer and flushed once per read burst
/// (`channelReadComplete`) or once per batch of storage completions.
final class ConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let state: ServerState
    var logger: Logger
    private let reader = MessagePackReader()
    let writer = MessagePackWriter()
    private var context: ChannelHandlerContext?
    private var out = FrameOutbox()
    private var frames = FrameAccumulator()
    private var closing = false
    /// Whether the channel is still open (a late storage callback may find it gone).
    var isConnected: Bool { context != nil }
    var session = Session()
    /// Counts not yet merged into the server's (kept here so the hot path takes no lock).
    private var callCounts = [Int](repeating: 0, count: WireMethod.all.count + 1)
    private var errorCounts: [String: Int] = [:]
    private var countedSinceMerge = 0

    /// Per-call timers, only when a request timeout is configured.
    private var requestTimers: [UInt32: Scheduled<Void>] = [:]
    private var timedOutCalls = Set<UInt32>()

    /// The peer, as SO_PEERCRED told (nil until read).
    var peer: PeerCredentials?
    /// Calls of this connection waiting on storage.
    private(set) var pendingCalls = 0
    /// Numbers the calls that wait on storage in the order they started, so that a
    /// `begin_transaction` can wait for exactly the calls started before it (see
    /// ``startAfterEarlierCalls(_:)``): each waiting start counts those still pending. A counter
    /// rather than a set of pending numbers keeps the common case (nothing waiting) free.
    private var nextCallNumber: UInt64 = 0
    private var waitingForEarlierCalls: [(after: UInt64, remaining: Int, start: () -> Void)] = []

    private let mailbox: LoopMailbox
    /// Numbers connections in the order the daemon accepted them, for logs and traces.
    let connectionID: Int

    init(state: ServerState, mailbox: LoopMailbox) {
        self.state = state
        self.mailbox = mailbox
        connectionID = state.nextConnectionID.wrappingAdd(1, ordering: .relaxed).newValue
        var logger = state.logger
        logger[metadataKey: "nana.conn.id"] = "\(connectionID)"
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func channelActive(context: ChannelHandlerContext) {
        state.connections.wrappingAdd(1, ordering: .relaxed)
        state.totalConnections.wrappingAdd(1, ordering: .relaxed)
        // Who is on the other end, as the kernel says (SO_PEERCRED), before any call runs: on
        // the event loop the option is read at once.
        if let provider = context.channel as? any SocketOptionProvider {
            let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
                level: SocketOptionLevel(PeerCredentials.socketLevel), name: SocketOptionName(PeerCredentials.option))
            let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
            credentials.whenComplete { result in
                switch result {
                case .success(let peer): bound.value.handler.admit(peer, context: bound.value.context)
                case .failure(let error):
                    bound.value.handler.logger.warning("cannot read the peer's credentials; closing", metadata: ["error": "\(error)"])
                    bound.value.context.close(promise: nil)
                }
            }
        }
        context.fireChannelActive()
    }

    /// Logs the peer and refuses it when an allow-list is configured and it is not on it.
    private func admit(_ peer: PeerCredentials, context: ChannelHandlerContext) {
        self.peer = peer
        logger[metadataKey: "nana.peer.uid"] = "\(peer.uid)"
        logger[metadataKey: "nana.peer.pid"] = "\(peer.pid)"
        logger.info("client connected", metadata: ["nana.peer.gid": "\(peer.gid)"])
        let configuration = state.configuration
        guard !configuration.allowedUIDs.isEmpty || !configuration.allowedGIDs.isEmpty else { return }
        if configuration.allowedUIDs.contains(peer.uid) || configuration.allowedGIDs.contains(peer.gid) { return }
        fail(msgid: nil, NanaRemoteError(.connection, "uid \(peer.uid) (gid \(peer.gid)) is not allowed to use this nanad"))
    }

    func channelInactive(context: ChannelHandlerContext) {
        state.connections.wrappingSubtract(1, ordering: .relaxed)
        // A client that is gone cannot commit: release the writer at once.
        abandonTransactions()
        session.closeAll()
        mergeCounts()
        logger.debug("client disconnected")
        self.context = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closing else { return }
        let maximumLength = state.configuration.maximumFrameLength
        let oversized = frames.receive(unwrapInboundIn(data), maximumLength: maximumLength) { frame in
            handle(frame)
            return !closing
        }
        if let length = oversized {
            fail(msgid: nil, NanaRemoteError(.protocolError, "frame of \(length) bytes is over the maximum of \(maximumLength) bytes"))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        flush()
    }

    /// The client is not reading its replies and they have piled up past the reply-buffer limit.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if !context.channel.isWritable {
            logger.info("closing a connection whose client does not read its replies",
                        metadata: ["limit": "\(state.configuration.maximumReplyBuffer)"])
            closing = true
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    /// The idle timeout passed with no request: close, unless calls or a transaction are open.
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if pendingCalls == 0 && session.transactions.isEmpty {
                logger.debug("closing an idle connection")
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("connection error", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    // MARK: Frames

    private func handle(_ frame: ByteBuffer) {
        state.requests.wrappingAdd(1, ordering: .relaxed)
        let decoded = frame.withUnsafeReadableBytes { bytes -> Result<DecodedFrame, MessagePackError> in
            Result { () throws(MessagePackError) in try reader.decodeFrame(bytes) }
        }
        let value: NanaValue
        switch decoded {
        case .success(.request(let msgid, let method, let params)):
            return dispatch(msgid: msgid, method: method, arguments: Arguments(method: method, params: params))
        case .success(.other(let v)): value = v
        case .failure(let error):
            let msgid = frame.withUnsafeReadableBytes { MessagePackReader.peekRequestID($0) }
            return fail(msgid: msgid, NanaRemoteError(.protocolError, "malformed frame: \(error)"))
        }
        let message: NanaMessage
        do { message = try NanaMessage(value) } catch {
            let msgid = frame.withUnsafeReadableBytes { MessagePackReader.peekRequestID($0) }
            return fail(msgid: msgid, error)
        }
        switch message {
        case .request(let msgid, let method, let params):
            // Well-formed requests took the fast path above; this one spelled its envelope
            // unusually (a signed type 0, say) and is just as valid.
            dispatch(msgid: msgid, method: method, arguments: Arguments(method: method, params: NanaParamList(params.map { ($0.key, $0.value) })))
        case .notification:
            break  // none defined yet; ignored, as MessagePack-RPC allows
        case .response:
            fail(msgid: nil, NanaRemoteError(.protocolError, "clients send requests, not responses"))
        }
    }

    /// Answers a protocol violation and closes the connection; other connections carry on.
    private func fail(msgid: UInt32?, _ error: NanaRemoteError) {
        state.errors.wrappingAdd(1, ordering: .relaxed)
        logger.info("closing connection after protocol error", metadata: ["error": "\(error.message)"])
        writer.reset()
        if let msgid {
            writer.writeFailure(msgid: msgid, error: error)
        } else {
            writer.writeNotification(method: "error", params: ["type": .string(error.type.rawValue), "message": .string(error.message)])
        }
        out.append(writer)
        closing = true
        guard let context else { return }
        let channel = context.channel
        let written = context.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenComplete { _ in channel.close(promise: nil) }
        out.flush(context, promise: written)
    }

    /// Counts a call of ``WireMethod/all``[`method`] (the index past the end: an unknown name).
    func count(_ method: Int) {
        callCounts[method] += 1
        countedSinceMerge += 1
        if countedSinceMerge >= 1024 { mergeCounts() }
    }

    /// Adds this connection's counts to the server's.
    func mergeCounts() {
        countedSinceMerge = 0
        state.merge(calls: &callCounts, errors: &errorCounts)
    }

    // MARK: Replies

    func reply(_ msgid: UInt32, _ reply: Reply) {
        writer.reset()
        switch reply {
        case .value(let v): writer.writeSuccess(msgid: msgid, result: v)
        case .encoded(let e):
            writer.writeSuccessHeader(msgid: msgid)
            writer.writeEncoded(e.bytes)
        case .error(let error):
            state.errors.wrappingAdd(1, ordering: .relaxed)
            errorCounts[error.type.rawValue, default: 0] += 1
            writer.writeFailure(msgid: msgid, error: error)
        }
        if writer.count > Int(UInt32.max) {
            // A frame's length prefix has 32 bits; a larger reply cannot be framed.
            writer.reset()
            writer.writeFailure(msgid: msgid, error: NanaRemoteError(.protocolError, "the reply would be over 4 GiB; ask for less at once"))
        }
        out.append(writer)
    }

    /// Starts a call that completes on a storage thread; `finish` turns its result into a
    /// reply there, and the reply is written back on this event loop.
    func respondLater<T: Sendable>(
        _ msgid: UInt32,
        _ operation: (@escaping @Sendable (Result<T, StorageError>) -> Void) -> Void,
        _ finish: @escaping @Sendable (T) throws(NanaRemoteError) -> Reply
    ) {
        respondLater(msgid, operation, finish, then: nil)
    }

    /// Like ``respondLater(_:_:_:)``, and runs `then` on the event loop with the result first
    /// (to update the session, say).
    func respondLater<T: Sendable>(
        _ msgid: UInt32,
        _ operation: (@escaping @Sendable (Result<T, StorageError>) -> Void) -> Void,
        _ finish: @escaping @Sendable (T) throws(NanaRemoteError) -> Reply,
        then: (@Sendable (ConnectionHandler, T) -> Reply?)?
    ) {
        guard let context else { return }
        pendingCalls += 1
        let number = nextCallNumber
        nextCallNumber += 1
        state.inFlight.wrappingAdd(1, ordering: .relaxed)
        if pendingCalls == state.configuration.maximumCallsInFlight {
            // Backpressure: stop reading this client until its calls drain.
            context.channel.setOption(.autoRead, value: false).whenFailure { _ in }
        }
        let loop = context.eventLoop
        let mailbox = self.mailbox
        let bound = NIOLoopBound(self, eventLoop: loop)
        if let timeout = state.configuration.requestTimeout {
            let nanoseconds = Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
            requestTimers[msgid] = loop.scheduleTask(in: .nanoseconds(nanoseconds)) { bound.value.timeOut(msgid) }
        }
        operation { result in
            let reply: Reply
            let value: T?
            switch result {
            case .success(let v):
                value = v
                do throws(NanaRemoteError) { reply = try finish(v) } catch { reply = .error(error) }
            case .failure(let error):
                value = nil
                reply = .error(NanaRemoteError(error))
            }
            let deliver: @Sendable () -> Void = {
                let handler = bound.value
                var final = reply
                if let then, let value, let override = then(handler, value) { final = override }
                handler.completeLater(msgid, final, number: number)
            }
            if mailbox.inEventLoop { deliver() } else { mailbox.post(deliver) }
        }
    }

    /// The request timeout passed: answer now; the late result will be dropped.
    private func timeOut(_ msgid: UInt32) {
        guard requestTimers.removeValue(forKey: msgid) != nil, context != nil, !closing else { return }
        timedOutCalls.insert(msgid)
        let seconds = state.configuration.requestTimeout.map { "\($0)" } ?? "?"
        reply(msgid, .error(NanaRemoteError(.lock, "no reply within the request timeout (\(seconds)); the call may still take effect")))
        scheduleFlush()
    }

    /// Runs `start` once every call this connection started so far has completed, at once if
    /// none is waiting. `begin_transaction` goes through here: a call received before it may
    /// still have writer work to queue in a later step (an `open` creating its table, then
    /// adding constraints; a scan waiting for staged v2 rows), which queued after the BEGIN
    /// would wait for the session's own COMMIT (found by nanafuzz-dispatch). The session's calls
    /// received after it are queued meanwhile; the writer holds them until the BEGIN runs.
    func startAfterEarlierCalls(_ start: @escaping () -> Void) {
        // Every pending call started before this one (numbers are handed out in order).
        if pendingCalls > 0 {
            waitingForEarlierCalls.append((nextCallNumber, pendingCalls, start))
        } else {
            start()
        }
    }

    /// Call `number` completed: counts it off the starts waiting for it and runs, in order,
    /// those with nothing left to wait for.
    private func startWhatEarlierCallsHeld(completed number: UInt64) {
        guard !waitingForEarlierCalls.isEmpty else { return }
        for i in waitingForEarlierCalls.indices where number < waitingForEarlierCalls[i].after {
            waitingForEarlierCalls[i].remaining -= 1
        }
        // A later start waits for everything an earlier one waits for, so they finish in order.
        while let first = waitingForEarlierCalls.first, first.remaining == 0 {
            waitingForEarlierCalls.removeFirst()
            first.start()
        }
    }

    private func completeLater(_ msgid: UInt32, _ reply: Reply, number: UInt64) {
        pendingCalls -= 1
        defer { startWhatEarlierCallsHeld(completed: number) }
        state.inFlight.wrappingSubtract(1, ordering: .relaxed)
        requestTimers.removeValue(forKey: msgid)?.cancel()
        if timedOutCalls.remove(msgid) != nil { return }  // already answered with the timeout
        if pendingCalls == state.configuration.maximumCallsInFlight / 2, let context, !closing {
            context.channel.setOption(.autoRead, value: true).whenFailure { _ in }
        }
        guard context != nil, !closing else { return }
        self.reply(msgid, reply)
        scheduleFlush()
    }

    private func scheduleFlush() {
        guard let context, out.needsFlushScheduled() else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        // Runs after every completion already queued on the loop: one flush for all of them.
        context.eventLoop.execute { bound.value.flush() }
    }

    private func flush() {
        guard let context else { return }
        out.flush(context)
    }
}

/// Linux's `struct ucred`, which Swift cannot see (glibc declares it only under _GNU_SOURCE);
/// the same three fields in the same order.
struct PeerCredentials: Sendable {
    /// SOL_SOCKET and SO_PEERCRED on Linux (Glibc's Swift module does not export them).
    static let socketLevel: Int32 = 1
    static let option: Int32 = 17

    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// How a call is answered.
enum Reply: Sendable {
    case value(NanaValue)
    /// A value already encoded as MessagePack (from the cache).
    case encoded(EncodedValue)
    case error(NanaRemoteError)
}

@available(*, unavailable)
extension ConnectionHandler: Sendable {}
