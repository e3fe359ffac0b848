import NIOCore

/// Frames waiting to go out on one connection, written with a single flush: once per read
/// burst, or once for all the replies the event loop completes in one turn. Both ends use it;
/// it lives on the connection's event loop.
public struct FrameOutbox {
    private var buffer = ByteBuffer()
    private var flushScheduled = false

    public init() {}

    /// Appends one frame holding `writer`'s bytes.
    public mutating func append(_ writer: MessagePackWriter) {
        NanaFrame.write(writer, into: &buffer)
    }

    /// True the first time it is asked after a flush: the caller then schedules one flush task
    /// on the loop, which runs after every completion already queued there.
    public mutating func needsFlushScheduled() -> Bool {
        if flushScheduled { return false }
        flushScheduled = true
        return true
    }

    /// Writes and flushes whatever is waiting; the future completes when it is written.
    @discardableResult
    public mutating func flush(_ context: ChannelHandlerContext) -> EventLoopFuture<Void> {
        flushScheduled = false
        guard buffer.readableBytes > 0 else { return context.eventLoop.makeSucceededVoidFuture() }
        let written = context.writeAndFlush(NIOAny(buffer))
        // The socket usually takes the bytes at once and NIO lets go of the buffer, so clearing
        // reuses its memory; if NIO still holds it, the next append copies, as a new one would.
        buffer.clear()
        return written
    }
}
