import NIOCore

/// Frames: a 4-byte big-endian length, then that many bytes holding one MessagePack value.
public enum NanaFrame {
    /// Default largest frame body accepted (16 MiB).
    public static let defaultMaximumLength = 16 * 1024 * 1024
    /// Length prefix size.
    public static let headerLength = 4

    /// Appends one frame holding `writer`'s bytes to `buffer`.
    public static func write(_ writer: MessagePackWriter, into buffer: inout ByteBuffer) {
        writer.withBytes { bytes in
            buffer.writeInteger(UInt32(bytes.count), endianness: .big)
            buffer.writeBytes(bytes)
        }
    }
}

/// What ``NanaFrame/next(from:maximumLength:)`` found at the front of a buffer.
public enum FrameSplit {
    /// A whole frame body, taken off the buffer.
    case frame(ByteBuffer)
    /// No whole frame yet; the buffer is untouched.
    case needMoreData
    /// A length prefix over the maximum; the buffer is untouched. The stream cannot be
    /// resynchronised after it.
    case oversized(length: UInt32)
}

extension NanaFrame {
    /// Takes the next whole frame's body off the front of `buffer`, refusing a length over
    /// `maximumLength` before reading any of it. The one place frames are split: the daemon's
    /// connection handler calls it directly, ``NanaFrameDecoder`` wraps it for pipelines.
    @inlinable
    public static func next(from buffer: inout ByteBuffer, maximumLength: Int) -> FrameSplit {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: UInt32.self) else {
            return .needMoreData
        }
        if Int(length) > maximumLength { return .oversized(length: length) }
        guard buffer.readableBytes >= headerLength + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: headerLength)
        return .frame(buffer.readSlice(length: Int(length))!)
    }
}

/// What the frame decoder passes on.
public enum InboundFrame {
    /// A whole frame body.
    case frame(ByteBuffer)
    /// A length prefix over the maximum: nothing of it was read, and the decoder has stopped.
    case oversized(length: UInt32)
}

/// Splits a byte stream into frames, refusing a length over the maximum before reading it.
///
/// After an oversized length the stream cannot be resynchronised, so the decoder reports it
/// once and discards everything that follows; the handler answers and closes the connection.
public struct NanaFrameDecoder: ByteToMessageDecoder {
    public typealias InboundOut = InboundFrame

    public let maximumLength: Int
    private var poisoned = false

    public init(maximumLength: Int = NanaFrame.defaultMaximumLength) {
        self.maximumLength = maximumLength
    }

    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        if poisoned {
            buffer.moveReaderIndex(to: buffer.writerIndex)
            return .needMoreData
        }
        switch NanaFrame.next(from: &buffer, maximumLength: maximumLength) {
        case .frame(let body):
            context.fireChannelRead(wrapInboundOut(.frame(body)))
            return .continue
        case .needMoreData:
            return .needMoreData
        case .oversized(let length):
            poisoned = true
            buffer.moveReaderIndex(to: buffer.writerIndex)
            context.fireChannelRead(wrapInboundOut(.oversized(length: length)))
            return .needMoreData
        }
    }

    public mutating func decodeLast(context: ChannelHandlerContext, buffer: inout ByteBuffer, seenEOF: Bool) throws -> DecodingState {
        while try decode(context: context, buffer: &buffer) == .continue {}
        buffer.moveReaderIndex(to: buffer.writerIndex)  // a partial frame at EOF is dropped
        return .needMoreData
    }
}
