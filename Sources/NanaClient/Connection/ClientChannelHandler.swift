import NIOCore
import NanaWire
import Synchronization

/// Per-call state shared between the calling task and the event loop, so that a cancellation
/// that arrives before the call reached the loop is not lost.
final class CallState: Sendable {
    let cancelled = Atomic<Bool>(false)
}

/// The client's side of a connection: writes requests, matches responses to waiting calls by
/// msgid (in any order), and fails every waiting call when the connection ends (with
/// ``ConnectionFailure``: whether a call was sent decides whether it may go again).
///
/// Lives on the channel's event loop; the continuation table is touched only there, and
/// whoever removes an entry resumes it, exactly once.
final class ClientChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var pending: [UInt32: CheckedContinuation<NanaValue, any Error>] = [:]
    private var context: ChannelHandlerContext?
    /// Set once the connection can carry no more calls; its reason is what they fail with.
    private var failure: String?
    private let closeReason: ConnectionCloseReason
    private let reader = MessagePackReader()
    private let writer = MessagePackWriter()
    private var out = FrameOutbox()
    private var frames = FrameAccumulator()
    private let maximumFrameLength: Int

    init(maximumFrameLength: Int, closeReason: ConnectionCloseReason) {
        self.maximumFrameLength = maximumFrameLength
        self.closeReason = closeReason
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func send(msgid: UInt32, method: String, params: NanaParams, state: CallState, continuation: CheckedContinuation<NanaValue, any Error>) {
        if let failure { return continuation.resume(throwing: ConnectionFailure.notSent(failure)) }
        if state.cancelled.load(ordering: .relaxed) { return continuation.resume(throwing: CancellationError()) }
        pending[msgid] = continuation
        writer.reset()
        writer.writeRequest(msgid: msgid, method: method, params: params)
        out.append(writer)
        scheduleFlush()
    }

    func cancel(msgid: UInt32) {
        // A late response for this msgid finds no entry and is dropped.
        pending.removeValue(forKey: msgid)?.resume(throwing: CancellationError())
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var broken = false
        let oversized = frames.receive(unwrapInboundIn(data), maximumLength: maximumFrameLength) { frame in
            broken = !receive(frame)
            return !broken
        }
        if let length = oversized {
            failAll("the daemon sent a frame of \(length) bytes, over this client's maximum")
            broken = true
        }
        if broken { context.close(promise: nil) }
    }

    /// Handles one frame from the daemon; false when it was malformed (the connection is done).
    private func receive(_ frame: ByteBuffer) -> Bool {
        let decoded = frame.withUnsafeReadableBytes { bytes in
            Result { () throws(MessagePackError) in try reader.decode(bytes) }
        }
        guard case .success(let value) = decoded, let message = try? NanaMessage(value) else {
            failAll("the daemon sent a malformed frame")
            return false
        }
        switch message {
        case .response(let msgid, let result):
            guard let continuation = pending.removeValue(forKey: msgid) else { return true }
            switch result {
            case .success(let value): continuation.resume(returning: value)
            case .failure(let error): continuation.resume(throwing: error)
            }
        case .notification(let method, let params) where method == "error":
            // The daemon's last word before it closes the connection.
            let error = NanaRemoteError(wireValue: .map(params))
            setFailure("the daemon closed the connection: \(error)")
        case .notification, .request:
            break
        }
        return true
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll("the daemon closed the connection")
        self.context = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll("connection error: \(error)")
        context.close(promise: nil)
    }

    /// The first reason wins: the daemon's own last word (or this client's close) says more
    /// than the end of the stream that follows it.
    private func setFailure(_ reason: String) {
        guard failure == nil else { return }
        failure = closeReason.keep(reason)
    }

    private func failAll(_ reason: String) {
        setFailure(reason)
        let waiting = pending
        pending.removeAll()
        for (_, continuation) in waiting { continuation.resume(throwing: ConnectionFailure.lost(failure ?? reason)) }
    }

    private func scheduleFlush() {
        guard let context, out.needsFlushScheduled() else { return }
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        // One flush for every request queued on the loop in this tick.
        context.eventLoop.execute { bound.value.flush() }
    }

    private func flush() {
        guard let context else { return }
        out.flush(context)
    }
}

@available(*, unavailable)
extension ClientChannelHandler: Sendable {}
