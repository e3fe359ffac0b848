import OrderedCollections

/// A string compared by its UTF-8 bytes: a row's key, or a key of a ``NanaValue/map(_:)``.
///
/// Swift's `String` compares by Unicode canonical equivalence, so `"\u{E9}"` (é) and
/// `"e\u{301}"` (e and a combining acute accent) are one dictionary key. SQLite, MessagePack,
/// JSON and Python (NanaSQLite) compare code points: they are two keys there, two rows, two
/// entries of one dict. Keyed by `String`, nanad's shared cache answered a read of one with the
/// other's value. Every dictionary of keys that clients name is keyed by this type instead.
///
/// It also carries its hash, computed once from the bytes: a lookup hashes the key once (and
/// the shard it picks comes from the same hash), cheaper than SipHash over a `String`.
public struct NanaKey: Sendable {
    public let string: String
    /// A 64-bit hash of the UTF-8 bytes (not seeded per process: the keys come from the
    /// process's own callers and the daemon's own clients, which may already name any key).
    public let hash: UInt64

    @inlinable
    public init(_ string: String) {
        self.string = string
        hash = NanaKey.withBytes(of: string) { NanaKey.hash($0) }
    }

    /// The string's UTF-8 bytes, in place for a native string (every string on Linux).
    @inlinable
    static func withBytes<R>(of string: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        if let result = string.utf8.withContiguousStorageIfAvailable(body) { return result }
        return Array(string.utf8).withUnsafeBufferPointer(body)
    }

    /// A multiply-and-fold hash of 8 bytes at a time (in the manner of wyhash); a hash table
    /// needs only that the low bits of distinct keys spread.
    @inlinable
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(bytes.count)
        var i = 0
        let raw = UnsafeRawBufferPointer(bytes)
        while i + 8 <= bytes.count {
            let word = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
            h = (h ^ word) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 31
            i += 8
        }
        if i < bytes.count {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < bytes.count {
                tail |= UInt64(bytes[i]) << shift
                shift += 8
                i += 1
            }
            h = (h ^ tail) &* 0x94D0_49BB_1331_11EB
        }
        h ^= h >> 29
        h = h &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 32
        return h
    }
}

extension NanaKey: Hashable {
    @inlinable
    public static func == (a: NanaKey, b: NanaKey) -> Bool {
        guard a.hash == b.hash else { return false }
        return withBytes(of: a.string) { x in withBytes(of: b.string) { y in bytesEqual(x, y) } }
    }

    /// 8 bytes at a time (a generic `elementsEqual` over the bytes was a twentieth of a
    /// near-cache hit).
    @inlinable
    static func bytesEqual(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Bool {
        guard x.count == y.count else { return false }
        let a = UnsafeRawBufferPointer(x), b = UnsafeRawBufferPointer(y)
        var i = 0
        while i + 8 <= a.count {
            if a.loadUnaligned(fromByteOffset: i, as: UInt64.self) != b.loadUnaligned(fromByteOffset: i, as: UInt64.self) { return false }
            i += 8
        }
        while i < a.count {
            if a[i] != b[i] { return false }
            i += 1
        }
        return true
    }

    @inlinable
    public func hash(into hasher: inout Hasher) { hasher.combine(hash) }

    /// The stored hash, mixed with the table's seed, without a pass of SipHash: a hash table's
    /// lookup is most of a near-cache hit (docs/BENCHMARKS.md, session 17).
    @inlinable
    public func _rawHashValue(seed: Int) -> Int {
        // Folded after the seed, so that tables with different seeds order the keys differently
        // in their low bits too (what Swift's per-table seeds are for).
        var h = hash ^ UInt64(truncatingIfNeeded: seed)
        h ^= h >> 32
        h = h &* 0x9E37_79B9_7F4A_7C15
        h ^= h >> 29
        return Int(truncatingIfNeeded: h)
    }
}

extension NanaKey: ExpressibleByStringInterpolation, CustomStringConvertible, Comparable {
    @inlinable
    public init(stringLiteral value: String) { self.init(value) }
    @inlinable
    public init(stringInterpolation: DefaultStringInterpolation) { self.init(String(stringInterpolation: stringInterpolation)) }
    public var description: String { string }
    /// By bytes, as SQLite's default collation orders keys.
    public static func < (a: NanaKey, b: NanaKey) -> Bool { a.string.utf8.lexicographicallyPrecedes(b.string.utf8) }
}
