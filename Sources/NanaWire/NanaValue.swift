import OrderedCollections

/// A value that crosses the wire and is stored in a key-value table.
///
/// It is the MessagePack data model restricted to what NanaSQLite can hold, plus binary:
/// maps have string keys and keep their order, integers stay distinct from doubles, and
/// `true` stays distinct from `1` through every round trip (client → daemon → SQLite JSON →
/// daemon → client).
///
/// ```swift
/// let profile: NanaValue = ["name": "Ada", "age": 36, "admin": true, "score": 5.0]
/// ```
public enum NanaValue: Sendable {
    case `nil`
    case bool(Bool)
    /// Signed integers, and unsigned ones up to `Int64.max` (the decoder normalises them here).
    case int(Int64)
    /// Only for unsigned integers above `Int64.max`.
    case uint(UInt64)
    case double(Double)
    case string(String)
    /// Raw bytes. They cross the wire but cannot be stored as a key-value value, because
    /// NanaSQLite stores JSON text (it raises `TypeError` for bytes too).
    case binary([UInt8])
    case array([NanaValue])
    /// Boxed (`indirect`): an `OrderedDictionary` is three words, so a value was three words and
    /// a copy of a map retained three buffers. Boxed, a value is 17 bytes and a copy retains
    /// one box: a near-cache hit, which copies its value out, went from 11.0 to 13.5 M/s
    /// (nanabench n, medians of 8 interleaved runs); nanad's CPU per request did not move.
    indirect case map(OrderedDictionary<NanaKey, NanaValue>)
}

extension NanaValue {
    /// The string, if this is a string.
    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The integer, if this is an integer that fits in `Int64`.
    public var int64Value: Int64? {
        switch self {
        case .int(let v): return v
        case .uint(let v): return v <= UInt64(Int64.max) ? Int64(v) : nil
        default: return nil
        }
    }

    /// The integer, if this is a non-negative integer (stamps and generations use all 64 bits).
    public var uint64Value: UInt64? {
        switch self {
        case .uint(let v): return v
        case .int(let v): return v >= 0 ? UInt64(v) : nil
        default: return nil
        }
    }

    /// The Boolean, if this is a Boolean (never an integer).
    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    /// The double, if this is a double (never an integer).
    public var doubleValue: Double? {
        if case .double(let d) = self { return d }
        return nil
    }

    /// The elements, if this is an array.
    public var arrayValue: [NanaValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    /// The entries, if this is a map.
    public var mapValue: OrderedDictionary<NanaKey, NanaValue>? {
        if case .map(let m) = self { return m }
        return nil
    }

    /// True for `.nil`.
    public var isNil: Bool {
        if case .nil = self { return true }
        return false
    }

    /// The element at `key` of a map, or `nil`.
    public subscript(key: String) -> NanaValue? {
        mapValue?[NanaKey(key)]
    }

    /// A short name for the kind of value, for error messages.
    public var typeName: String {
        switch self {
        case .nil: "nil"
        case .bool: "bool"
        case .int, .uint: "int"
        case .double: "float"
        case .string: "str"
        case .binary: "bytes"
        case .array: "list"
        case .map: "dict"
        }
    }
}

// Maps compare like Python dicts: the same pairs in any order are equal. (Order is still kept
// through every round trip; it just does not decide equality.)
extension NanaValue: Hashable {
    public static func == (lhs: NanaValue, rhs: NanaValue) -> Bool {
        switch (lhs, rhs) {
        case (.nil, .nil): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.uint(let a), .uint(let b)): a == b
        case (.double(let a), .double(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.binary(let a), .binary(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.map(let a), .map(let b)): a.count == b.count && a.allSatisfy { key, value in b[key] == value }
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .nil: hasher.combine(0)
        case .bool(let b): hasher.combine(1); hasher.combine(b)
        case .int(let i): hasher.combine(2); hasher.combine(i)
        case .uint(let u): hasher.combine(3); hasher.combine(u)
        case .double(let d): hasher.combine(4); hasher.combine(d)
        case .string(let s): hasher.combine(5); hasher.combine(s)
        case .binary(let b): hasher.combine(6); hasher.combine(b)
        case .array(let a): hasher.combine(7); hasher.combine(a)
        case .map(let m):
            hasher.combine(8)
            hasher.combine(m.count)
            // Order-independent, to agree with ==.
            var sum = 0
            for (key, value) in m {
                var entry = Hasher()
                entry.combine(key)
                entry.combine(value)
                sum &+= entry.finalize()
            }
            hasher.combine(sum)
        }
    }
}

extension NanaValue: ExpressibleByNilLiteral {
    public init(nilLiteral: ()) { self = .nil }
}

extension NanaValue: ExpressibleByBooleanLiteral {
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

extension NanaValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .int(value) }
}

extension NanaValue: ExpressibleByFloatLiteral {
    public init(floatLiteral value: Double) { self = .double(value) }
}

extension NanaValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
}

extension NanaValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: NanaValue...) { self = .array(elements) }
}

extension NanaValue: ExpressibleByDictionaryLiteral {
    public init(dictionaryLiteral elements: (NanaKey, NanaValue)...) {
        self = .map(OrderedDictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

extension NanaValue: CustomStringConvertible {
    /// JSON-like text, for logs and tests. Binary shows as `b"<hex>"`.
    public var description: String {
        var out = ""
        describe(into: &out)
        return out
    }

    private func describe(into out: inout String) {
        switch self {
        case .binary(let bytes):
            out += "b\""
            for b in bytes { out += String(b, radix: 16).count == 1 ? "0" + String(b, radix: 16) : String(b, radix: 16) }
            out += "\""
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.describe(into: &out)
            }
            out += "]"
        case .map(let entries):
            out += "{"
            for (i, (k, v)) in entries.enumerated() {
                if i > 0 { out += "," }
                JSONWriter.writeString(k.string, into: &out)
                out += ":"
                v.describe(into: &out)
            }
            out += "}"
        default:
            out += (try? JSONWriter.string(from: self)) ?? "?"
        }
    }
}
