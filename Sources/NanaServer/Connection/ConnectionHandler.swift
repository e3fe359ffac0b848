import Logging
import NIOCore
import NanaStorage
import NanaWire
import Synchronization

/// One client connection: decodes frames, runs calls, writes replies.
///
/// Everything here runs on the connection's event loop. It splits the byte stream into frames
/// itself (``FrameAccumulator``). Cache hits are answered right away in `channelRead`; other
/// calls go to the storage threads and their replies come back with `eventLoop.execute`. Replies are gathered in one buffer and flushed once per read burst
/// (`channelReadComplete`) or once per batch of storage completions.
package final class ConnectionHandler: ChannelInboundHandler {
    package typealias InboundIn = ByteBuffer
    package typealias OutboundOut = ByteBuffer

    let state: ServerState
    var logger: Logger
    private let reader = MessagePackReader()
    let writer = MessagePackWriter()
    private var context: ChannelHandlerContext?
    private var out = FrameOutbox()
    private var frames = FrameAccumulator()
    /// Whether the connection is active, closing or closed; its calls in flight, their timers
    /// and held starts; the session's transactions.
    var machine: StateMachine
    /// Whether the channel is still open (a late storage callback may find it gone).
    var isConnected: Bool { machine.state != .closed }
    var session = Session()
    /// Counts not yet merged into the server's (kept here so the hot path takes no lock).
    private var callCounts = [Int](repeating: 0, count: WireMethod.all.count + 1)
    private var errorCounts: [String: Int] = [:]
    private var countedSinceMerge = 0

    /// Per-call timers, only when a request timeout is configured (the machine says when to
    /// arm and cancel them; this holds the loop's handles).
    private var requestTimers: [StateMachine.Call: Scheduled<Void>] = [:]

    /// The peer, as SO_PEERCRED told (nil until read).
    var peer: PeerCredentials?
    /// Calls of this connection waiting on storage.
    package var pendingCalls: Int { machine.callsInFlight }

    private let mailbox: LoopMailbox
    /// Numbers connections in the order the daemon accepted them, for logs and traces.
    let connectionID: Int

    package init(state: ServerState, mailbox: LoopMailbox) {
        self.state = state
        self.mailbox = mailbox
        connectionID = state.nextConnectionID.wrappingAdd(1, ordering: .relaxed).newValue
        var logger = state.logger
        logger[metadataKey: "nana.conn.id"] = "\(connectionID)"
        self.logger = logger
        machine = StateMachine(limits: .init(maximumCallsInFlight: state.configuration.maximumCallsInFlight,
                                             timesCalls: state.configuration.requestTimeout != nil))
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    package func channelActive(context: ChannelHandlerContext) {
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

    package func channelInactive(context: ChannelHandlerContext) {
        state.connections.wrappingSubtract(1, ordering: .relaxed)
        // A client that is gone cannot commit: release the writer at once.
        for (database, token) in machine.channelInactive() {
            token.trace("abandoned by its session")
            database.rollback(token) { _ in }
        }
        for timer in requestTimers.values { timer.cancel() }
        requestTimers.removeAll()
        session.closeAll()
        mergeCounts()
        logger.debug("client disconnected")
        self.context = nil
        context.fireChannelInactive()
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard machine.acceptsFrames else { return }
        let maximumLength = state.configuration.maximumFrameLength
        let oversized = frames.receive(unwrapInboundIn(data), maximumLength: maximumLength) { frame in
            handle(frame)
            return machine.acceptsFrames
        }
        if let length = oversized {
            fail(msgid: nil, NanaRemoteError(.protocolError, "frame of \(length) bytes is over the maximum of \(maximumLength) bytes"))
        }
    }

    package func channelReadComplete(context: ChannelHandlerContext) {
        flush()
    }

    /// The client is not reading its replies and they have piled up past the reply-buffer limit.
    package func channelWritabilityChanged(context: ChannelHandlerContext) {
        if machine.writabilityChanged(isWritable: context.channel.isWritable) == .close {
            logger.info("closing a connection whose client does not read its replies",
                        metadata: ["limit": "\(state.configuration.maximumReplyBuffer)"])
            context.close(promise: nil)
        }
        context.fireChannelWritabilityChanged()
    }

    /// The idle timeout passed with no request: close, unless calls or a transaction are open.
    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            if machine.idleTimeoutPassed() == .close {
                logger.debug("closing an idle connection")
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
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
            dispatch(msgid: msgid, method: method, arguments: Arguments(method: method, params: NanaParamList(params.map { ($0.key.string, $0.value) })))
        case .notification:
            break  // none defined yet; ignored, as MessagePack-RPC allows
        case .response:
            fail(msgid: nil, NanaRemoteError(.protocolError, "clients send requests, not responses"))
        }
    }

    /// Answers a protocol violation and closes the connection; other connections carry on.
    private func fail(msgid: UInt32?, _ error: NanaRemoteError) {
        guard machine.protocolViolation() == .answerAndCloseAfterFlush else { return }
        state.errors.wrappingAdd(1, ordering: .relaxed)
        logger.info("closing connection after protocol error", metadata: ["error": "\(error.message)"])
        writer.reset()
        if let msgid {
            writer.writeFailure(msgid: msgid, error: error)
        } else {
            writer.writeNotification(method: "error", params: ["type": .string(error.type.rawValue), "message": .string(error.message)])
        }
        out.append(writer)
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
        state.inFlight.wrappingAdd(1, ordering: .relaxed)
        let (call, start) = machine.callStarted()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        switch start {
        case .none: break
        case .armTimer: armTimer(call, msgid, bound)
        case .stopReading: setAutoRead(false)
        case .armTimerAndStopReading:
            armTimer(call, msgid, bound)
            setAutoRead(false)
        }
        let mailbox = self.mailbox
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
                handler.completeLater(msgid, final, call: call)
            }
            if mailbox.inEventLoop { deliver() } else { mailbox.post(deliver) }
        }
    }

    private func armTimer(_ call: StateMachine.Call, _ msgid: UInt32, _ bound: NIOLoopBound<ConnectionHandler>) {
        guard let timeout = state.configuration.requestTimeout, let context else { return }
        let nanoseconds = Int64(timeout.components.seconds) * 1_000_000_000 + timeout.components.attoseconds / 1_000_000_000
        requestTimers[call] = context.eventLoop.scheduleTask(in: .nanoseconds(nanoseconds)) { bound.value.timerFired(call, msgid) }
    }

    /// Backpressure: stop reading this client until its calls drain, then read again.
    private func setAutoRead(_ on: Bool) {
        context?.channel.setOption(.autoRead, value: on).whenFailure { _ in }
    }

    /// The request timeout passed: answer now; the late result will be dropped.
    private func timerFired(_ call: StateMachine.Call, _ msgid: UInt32) {
        requestTimers[call] = nil
        guard machine.timerFired(call) == .answerTimeout else { return }
        let seconds = state.configuration.requestTimeout.map { "\($0)" } ?? "?"
        reply(msgid, .error(NanaRemoteError(.lock, "no reply within the request timeout (\(seconds)); the call may still take effect")))
        scheduleFlush()
    }

    /// Runs `start` once every call this connection started so far has completed, at once if
    /// none is waiting (``ConnectionStateMachine/startAfterEarlierCalls(_:)``).
    func startAfterEarlierCalls(_ start: @escaping () -> Void) {
        machine.startAfterEarlierCalls(start)?()
    }

    private func completeLater(_ msgid: UInt32, _ reply: Reply, call: StateMachine.Call) {
        state.inFlight.wrappingSubtract(1, ordering: .relaxed)
        let completion = machine.callCompleted(call)
        if completion.cancelTimer { requestTimers.removeValue(forKey: call)?.cancel() }
        if completion.resumeReading { setAutoRead(true) }
        if completion.reply {
            self.reply(msgid, reply)
            scheduleFlush()
        }
        if completion.releasedStarts {
            while let start = machine.nextReleasedStart() { start() }
        }
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

extension ConnectionHandler {
    typealias StateMachine = ConnectionStateMachine<() -> Void, Database, TransactionToken>
}

extension TransactionToken: ClientTransactionToken {
    var phase: ClientTransactionPhase {
        switch currentState {  // one read: the writer moves it on its own thread
        case .pending, .active: .open
        case .committed, .rolledBack: .ended
        case .timedOut, .lost: .timedOut(message: endedError.message)
        }
    }
}

@available(*, unavailable)
extension ConnectionHandler: Sendable {}
