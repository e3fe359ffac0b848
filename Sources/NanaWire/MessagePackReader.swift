import CMsgPack
import CNanaMsgPack
import OrderedCollections

/// Why bytes could not be decoded as one MessagePack value.
public struct MessagePackError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        case truncated
        case lengthExceedsInput
        case tooDeep
        case invalidUTF8
        case nonStringKey
        case unsupportedType
        case trailingBytes
        case decoderFailed
    }

    public var kind: Kind
    /// Byte offset in the input where the problem was found.
    public var offset: Int

    public var description: String {
        switch kind {
        case .truncated: "MessagePack value is truncated at byte \(offset)"
        case .lengthExceedsInput: "MessagePack length at byte \(offset) is larger than the bytes that remain"
        case .tooDeep: "MessagePack value nests deeper than allowed at byte \(offset)"
        case .invalidUTF8: "MessagePack string at byte \(offset) is not valid UTF-8"
        case .nonStringKey: "MessagePack map key at byte \(offset) is not a string"
        case .unsupportedType: "MessagePack type at byte \(offset) is not supported (ext types and 0xc1)"
        case .trailingBytes: "extra bytes after the MessagePack value at byte \(offset)"
        case .decoderFailed: "msgpack-c could not decode the value"
        }
    }
}

/// Decodes untrusted MessagePack with msgpack-c, after checking it is safe to do so.
///
/// Before msgpack-c sees a byte, `nana_msgpack_check` walks the input without allocating and
/// refuses declared lengths larger than the bytes that remain, nesting deeper than
/// ``maximumDepth``, invalid UTF-8 in strings, non-string map keys and ext types. What msgpack-c
/// then allocates is proportional to the values actually present, never to declared counts.
/// A reader reuses its msgpack zone between calls; it belongs to one thread at a time.
public final class MessagePackReader {
    /// The deepest container nesting accepted (at most 260): values 254 levels deep fit inside
    /// a request or response envelope.
    public let maximumDepth: Int
    private let zone: UnsafeMutablePointer<msgpack_zone>

    public init(maximumDepth: Int = Int(NANA_MSGPACK_MAX_DEPTH)) {
        self.maximumDepth = min(maximumDepth, Int(NANA_MSGPACK_MAX_DEPTH))
        zone = .allocate(capacity: 1)
        _ = msgpack_zone_init(zone, 8192)
    }

    deinit {
        msgpack_zone_destroy(zone)
        zone.deallocate()
    }

    /// Checks `bytes`, decodes them with msgpack-c and hands the object tree (valid only inside
    /// `body`: it lives in the reader's zone) to `body`.
    private func withObject<R>(_ bytes: UnsafeRawBufferPointer, _ body: (msgpack_object) -> R) throws(MessagePackError) -> R {
        let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let check = nana_msgpack_check(base, bytes.count, UInt32(maximumDepth))
        guard check.status == NANA_CHECK_OK else {
            throw MessagePackError(kind: Self.kind(of: check.status), offset: Int(check.offset))
        }
        defer { msgpack_zone_clear(zone) }
        var object = msgpack_object()
        let rc = nana_msgpack_unpack(bytes.baseAddress?.assumingMemoryBound(to: CChar.self), bytes.count, zone, &object)
        guard rc == 1 else { throw MessagePackError(kind: .decoderFailed, offset: 0) }
        return body(object)
    }

    /// Decodes exactly one value that fills `bytes`.
    public func decode(_ bytes: UnsafeRawBufferPointer) throws(MessagePackError) -> NanaValue {
        try withObject(bytes, Self.value(of:))
    }

    public func decode(_ bytes: [UInt8]) throws(MessagePackError) -> NanaValue {
        let result = bytes.withUnsafeBytes { raw in Result { () throws(MessagePackError) in try decode(raw) } }
        return try result.get()
    }

    /// Decodes one frame, reading a request's envelope straight from msgpack-c's objects: the
    /// daemon's hot path builds no tree for `[0, msgid, method, {params}]`, only the values.
    /// Anything that is not a well-formed request comes back as `.other` for ``NanaMessage``.
    public func decodeFrame(_ bytes: UnsafeRawBufferPointer) throws(MessagePackError) -> DecodedFrame {
        try withObject(bytes, Self.frame(of:))
    }

    private static func frame(of object: msgpack_object) -> DecodedFrame {
        if object.type == MSGPACK_OBJECT_ARRAY, object.via.array.size == 4 {
            let items = object.via.array.ptr!
            if items[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER, items[0].via.u64 == 0,
               items[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER, items[1].via.u64 <= UInt64(UInt32.max),
               items[2].type == MSGPACK_OBJECT_STR, items[3].type == MSGPACK_OBJECT_MAP {
                let map = items[3].via.map
                var params: [(key: String, value: NanaValue)] = []
                params.reserveCapacity(Int(map.size))
                for i in 0..<Int(map.size) {
                    params.append((string(map.ptr[i].key.via.str), value(of: map.ptr[i].val)))
                }
                return .request(msgid: UInt32(items[1].via.u64), method: string(items[2].via.str), params: NanaParamList(params))
            }
        }
        return .other(value(of: object))
    }

    /// Decodes with a temporary reader.
    public static func decode(_ bytes: [UInt8], maximumDepth: Int = Int(NANA_MSGPACK_MAX_DEPTH)) throws(MessagePackError) -> NanaValue {
        try MessagePackReader(maximumDepth: maximumDepth).decode(bytes)
    }

    /// Reads the msgid of a request whose later bytes may be malformed.
    public static func peekRequestID(_ bytes: UnsafeRawBufferPointer) -> UInt32? {
        var msgid: UInt32 = 0
        guard nana_msgpack_peek_request_id(bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), bytes.count, &msgid) else {
            return nil
        }
        return msgid
    }

    private static func kind(of status: nana_check_status) -> MessagePackError.Kind {
        switch status {
        case NANA_CHECK_TRUNCATED: .truncated
        case NANA_CHECK_LENGTH_EXCEEDS_INPUT: .lengthExceedsInput
        case NANA_CHECK_TOO_DEEP: .tooDeep
        case NANA_CHECK_INVALID_UTF8: .invalidUTF8
        case NANA_CHECK_NON_STRING_KEY: .nonStringKey
        case NANA_CHECK_TRAILING_BYTES: .trailingBytes
        default: .unsupportedType
        }
    }

    private static func string(_ s: msgpack_object_str) -> String {
        String(decoding: UnsafeRawBufferPointer(start: s.ptr, count: Int(s.size)), as: UTF8.self)
    }

    // The pre-check bounds the depth, so this recursion is at most 260 frames deep.
    private static func value(of object: msgpack_object) -> NanaValue {
        switch object.type {
        case MSGPACK_OBJECT_NIL: return .nil
        case MSGPACK_OBJECT_BOOLEAN: return .bool(object.via.boolean)
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            let u = object.via.u64
            return u <= UInt64(Int64.max) ? .int(Int64(u)) : .uint(u)
        case MSGPACK_OBJECT_NEGATIVE_INTEGER: return .int(object.via.i64)
        case MSGPACK_OBJECT_FLOAT32, MSGPACK_OBJECT_FLOAT64: return .double(object.via.f64)
        case MSGPACK_OBJECT_STR: return .string(string(object.via.str))
        case MSGPACK_OBJECT_BIN:
            let bin = object.via.bin
            return .binary(Array(UnsafeRawBufferPointer(start: bin.ptr, count: Int(bin.size))))
        case MSGPACK_OBJECT_ARRAY:
            let array = object.via.array
            var items: [NanaValue] = []
            items.reserveCapacity(Int(array.size))
            for i in 0..<Int(array.size) { items.append(value(of: array.ptr[i])) }
            return .array(items)
        case MSGPACK_OBJECT_MAP:
            let map = object.via.map
            var entries = OrderedDictionary<NanaKey, NanaValue>(minimumCapacity: Int(map.size))
            for i in 0..<Int(map.size) {
                let kv = map.ptr[i]
                // The pre-check guarantees string keys; a repeated key keeps its last value.
                entries[NanaKey(string(kv.key.via.str))] = value(of: kv.val)
            }
            return .map(entries)
        default:
            return .nil
        }
    }
}

@available(*, unavailable)
extension MessagePackReader: Sendable {}
