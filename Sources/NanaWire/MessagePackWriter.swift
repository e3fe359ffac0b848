import CMsgPack
import CNanaMsgPack

/// Encodes MessagePack with msgpack-c's packer into a reusable buffer.
///
/// One writer belongs to one thread at a time (a connection's event loop, say); it is reused
/// for every message so that encoding allocates nothing once the buffer has grown.
public final class MessagePackWriter {
    private let buffer: UnsafeMutablePointer<msgpack_sbuffer>
    private let packer: UnsafeMutablePointer<msgpack_packer>

    public init(initialCapacity: Int = 4096) {
        buffer = .allocate(capacity: 1)
        packer = .allocate(capacity: 1)
        msgpack_sbuffer_init(buffer)
        nana_packer_init_sbuffer(packer, buffer)
        _ = msgpack_sbuffer_write(buffer, nil, 0)
        // Reserve the first chunk up front so small messages never realloc.
        if initialCapacity > 0, let data = realloc(buffer.pointee.data, initialCapacity) {
            buffer.pointee.data = data.assumingMemoryBound(to: CChar.self)
            buffer.pointee.alloc = initialCapacity
        }
    }

    deinit {
        msgpack_sbuffer_destroy(buffer)
        buffer.deallocate()
        packer.deallocate()
    }

    /// Forgets what was written, keeping the buffer's capacity.
    public func reset() { buffer.pointee.size = 0 }

    /// Bytes written since the last ``reset()``.
    public var count: Int { buffer.pointee.size }

    /// Calls `body` with the bytes written so far; they are valid only inside `body`.
    public func withBytes<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try body(UnsafeRawBufferPointer(start: buffer.pointee.data, count: buffer.pointee.size))
    }

    /// A copy of the bytes written so far.
    public var bytes: [UInt8] { withBytes { Array($0) } }

    // MARK: Values

    public func write(_ value: NanaValue) {
        switch value {
        case .nil: writeNil()
        case .bool(let b): writeBool(b)
        case .int(let i): writeInt(i)
        case .uint(let u): writeUInt(u)
        case .double(let d): _ = msgpack_pack_double(packer, d)
        case .string(let s): writeString(s)
        case .binary(let bytes):
            _ = msgpack_pack_bin(packer, bytes.count)
            bytes.withUnsafeBytes { _ = msgpack_pack_bin_body(packer, $0.baseAddress, $0.count) }
        case .array(let items):
            writeArrayHeader(items.count)
            for item in items { write(item) }
        case .map(let entries):
            writeMapHeader(entries.count)
            for (key, item) in entries {
                writeString(key.string)
                write(item)
            }
        }
    }

    public func writeNil() { _ = msgpack_pack_nil(packer) }

    public func writeBool(_ b: Bool) { _ = b ? msgpack_pack_true(packer) : msgpack_pack_false(packer) }

    public func writeInt(_ i: Int64) { _ = msgpack_pack_int64(packer, i) }

    public func writeUInt(_ u: UInt64) { _ = msgpack_pack_uint64(packer, u) }

    public func writeString(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            _ = msgpack_pack_str(packer, utf8.count)
            _ = msgpack_pack_str_body(packer, utf8.baseAddress, utf8.count)
        }
    }

    public func writeArrayHeader(_ count: Int) { _ = msgpack_pack_array(packer, count) }

    public func writeMapHeader(_ count: Int) { _ = msgpack_pack_map(packer, count) }

    /// Appends bytes that already hold one encoded MessagePack value (a cached value, say).
    public func writeEncoded(_ bytes: UnsafeRawBufferPointer) {
        _ = msgpack_sbuffer_write(buffer, bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count)
    }

    public func writeEncoded(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { writeEncoded($0) }
    }

    /// Encodes one value on its own, for a cache or a test.
    public static func encode(_ value: NanaValue) -> [UInt8] {
        let writer = MessagePackWriter(initialCapacity: 64)
        writer.write(value)
        return writer.bytes
    }
}

@available(*, unavailable)
extension MessagePackWriter: Sendable {}
