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

    /// Writes and flushes whatever is waiting; `promise`, if any, completes when it is written.
    ///
    /// Without a promise no future is made: this runs once per read burst, and allocating and
    /// completing a future there was a visible share of a cache-hit `get` (perf, session 3).
    public mutating func flush(_ context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        flushScheduled = false
        guard buffer.readableBytes > 0 else {
            promise?.succeed()
            return
        }
        context.writeAndFlush(NIOAny(buffer), promise: promise)
        // The socket usually takes the bytes at once and NIO lets go of the buffer, so clearing
        // reuses its memory; if NIO still holds it, the next append copies, as a new one would.
        buffer.clear()
    }
}
