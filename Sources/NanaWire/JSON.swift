import OrderedCollections

// NanaSQLite stores values as JSON text, so the daemon reads and writes JSON. This codec is
// written by hand because Foundation's JSONSerialization goes through NSNumber, which loses the
// difference between `true`, `1` and `1.0` and the order of object keys; the wire promises both.

/// Why a value could not be written as JSON, or JSON text could not be read.
public struct NanaJSONError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// Bytes have no JSON form (NanaSQLite raises `TypeError` for them).
        case notSerializable
        /// NaN and infinities are not JSON.
        case nonFiniteNumber
        /// Containers nest deeper than NanaSQLite can write (orjson stops at 254).
        case tooDeep
        /// The text is not valid JSON.
        case invalidJSON
    }

    public var kind: Kind
    public var message: String

    public init(kind: Kind, message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}

/// Writes ``NanaValue`` as compact UTF-8 JSON, the form orjson (NanaSQLite's default) writes.
public enum JSONWriter {
    /// The deepest nesting NanaSQLite can write and therefore read back.
    public static let maximumDepth = 254

    public static func bytes(from value: NanaValue) throws(NanaJSONError) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(32)
        try write(value, depth: 0, into: &out)
        return out
    }

    public static func string(from value: NanaValue) throws(NanaJSONError) -> String {
        String(decoding: try bytes(from: value), as: UTF8.self)
    }

    static func writeString(_ s: String, into out: inout String) {
        var bytes: [UInt8] = []
        writeString(s, into: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }

    private static func write(_ value: NanaValue, depth: Int, into out: inout [UInt8]) throws(NanaJSONError) {
        switch value {
        case .nil: out.append(contentsOf: "null".utf8)
        case .bool(let b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case .int(let i): out.append(contentsOf: String(i).utf8)
        case .uint(let u): out.append(contentsOf: String(u).utf8)
        case .double(let d):
            guard d.isFinite else {
                throw NanaJSONError(kind: .nonFiniteNumber, message: "Out of range float values are not JSON compliant: \(d)")
            }
            // Swift prints the shortest text that reads back to the same double and keeps ".0".
            out.append(contentsOf: d.description.utf8)
        case .string(let s): writeString(s, into: &out)
        case .binary:
            throw NanaJSONError(kind: .notSerializable, message: "Object of type bytes is not JSON serializable")
        case .array(let items):
            guard depth < maximumDepth else { throw tooDeep() }
            out.append(UInt8(ascii: "["))
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                try write(item, depth: depth + 1, into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .map(let entries):
            guard depth < maximumDepth else { throw tooDeep() }
            out.append(UInt8(ascii: "{"))
            var first = true
            for (key, item) in entries {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                writeString(key.string, into: &out)
                out.append(UInt8(ascii: ":"))
                try write(item, depth: depth + 1, into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static func tooDeep() -> NanaJSONError {
        NanaJSONError(kind: .tooDeep, message: "value nests deeper than \(maximumDepth) levels, which NanaSQLite cannot store")
    }

    private static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in s.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.append(UInt8(ascii: "\\")); out.append(byte)
            case UInt8(ascii: "\\"): out.append(UInt8(ascii: "\\")); out.append(byte)
            case 0x0A: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "t"))
            case 0x08: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(UInt8(ascii: "\\")); out.append(UInt8(ascii: "f"))
            case 0..<0x20:
                out.append(contentsOf: "\\u00".utf8)
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0xF)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Reads JSON text as written by orjson or Python's `json` module (including the `NaN` and
/// `Infinity` literals the latter writes) into ``NanaValue``.
public enum JSONReader {
    /// Nesting accepted when reading; a little above what NanaSQLite writes.
    public static let maximumDepth = 256

    public static func value(from bytes: some Collection<UInt8>, maximumDepth: Int = maximumDepth) throws(NanaJSONError) -> NanaValue {
        let array = bytes as? [UInt8] ?? Array(bytes)
        let result = array.withUnsafeBytes { raw in Result { () throws(NanaJSONError) in try value(from: raw, maximumDepth: maximumDepth) } }
        return try result.get()
    }

    public static func value(from buffer: UnsafeRawBufferPointer, maximumDepth: Int = maximumDepth) throws(NanaJSONError) -> NanaValue {
        var parser = Parser(bytes: buffer.bindMemory(to: UInt8.self), maximumDepth: maximumDepth)
        parser.skipWhitespace()
        let v = try parser.parseValue(depth: 0)
        parser.skipWhitespace()
        guard parser.pos == parser.bytes.count else { throw parser.error("extra data after the JSON value") }
        return v
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        let maximumDepth: Int
        var pos = 0

        init(bytes: UnsafeBufferPointer<UInt8>, maximumDepth: Int) {
            self.bytes = bytes
            self.maximumDepth = maximumDepth
        }

        func error(_ what: String) -> NanaJSONError {
            NanaJSONError(kind: .invalidJSON, message: "invalid JSON at byte \(pos): \(what)")
        }

        mutating func skipWhitespace() {
            while pos < bytes.count {
                switch bytes[pos] {
                case 0x20, 0x0A, 0x0D, 0x09: pos += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: StaticString) throws(NanaJSONError) {
            let n = literal.utf8CodeUnitCount
            guard bytes.count - pos >= n else { throw error("unexpected end") }
            let lit = UnsafeBufferPointer(start: literal.utf8Start, count: n)
            for i in 0..<n where bytes[pos + i] != lit[i] { throw error("unexpected character") }
            pos += n
        }

        mutating func parseValue(depth: Int) throws(NanaJSONError) -> NanaValue {
            guard pos < bytes.count else { throw error("unexpected end") }
            switch bytes[pos] {
            case UInt8(ascii: "{"):
                guard depth < maximumDepth else { throw NanaJSONError(kind: .tooDeep, message: "JSON nests deeper than \(maximumDepth) levels") }
                pos += 1
                var entries = OrderedDictionary<NanaKey, NanaValue>()
                skipWhitespace()
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .map(entries) }
                while true {
                    skipWhitespace()
                    guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                    let key = try parseString()
                    skipWhitespace()
                    guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw error("expected ':'") }
                    pos += 1
                    skipWhitespace()
                    entries[NanaKey(key)] = try parseValue(depth: depth + 1)
                    skipWhitespace()
                    guard pos < bytes.count else { throw error("unexpected end") }
                    if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if bytes[pos] == UInt8(ascii: "}") { pos += 1; return .map(entries) }
                    throw error("expected ',' or '}'")
                }
            case UInt8(ascii: "["):
                guard depth < maximumDepth else { throw NanaJSONError(kind: .tooDeep, message: "JSON nests deeper than \(maximumDepth) levels") }
                pos += 1
                var items: [NanaValue] = []
                skipWhitespace()
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                while true {
                    skipWhitespace()
                    items.append(try parseValue(depth: depth + 1))
                    skipWhitespace()
                    guard pos < bytes.count else { throw error("unexpected end") }
                    if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                    if bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
                    throw error("expected ',' or ']'")
                }
            case UInt8(ascii: "\""): return .string(try parseString())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .nil
            case UInt8(ascii: "N"): try expect("NaN"); return .double(.nan)
            case UInt8(ascii: "I"): try expect("Infinity"); return .double(.infinity)
            default: return try parseNumber()
            }
        }

        mutating func parseNumber() throws(NanaJSONError) -> NanaValue {
            let start = pos
            var negative = false
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "-") {
                negative = true
                pos += 1
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "I") { try expect("Infinity"); return .double(-.infinity) }
            }
            let digitsStart = pos
            var magnitude: UInt64 = 0
            var overflow = false
            while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 {
                let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (m2, o2) = m1.addingReportingOverflow(UInt64(bytes[pos] - 0x30))
                magnitude = m2
                overflow = overflow || o1 || o2
                pos += 1
            }
            guard pos > digitsStart else { throw error("unexpected character") }
            var isDouble = false
            if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
                isDouble = true
                pos += 1
                let fracStart = pos
                while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 { pos += 1 }
                guard pos > fracStart else { throw error("expected digits after '.'") }
            }
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
                isDouble = true
                pos += 1
                if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
                let expStart = pos
                while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 { pos += 1 }
                guard pos > expStart else { throw error("expected exponent digits") }
            }
            if !isDouble && !overflow {
                if negative {
                    if magnitude <= UInt64(Int64.max) { return .int(-Int64(magnitude)) }
                    if magnitude == UInt64(Int64.max) + 1 { return .int(Int64.min) }
                } else if magnitude <= UInt64(Int64.max) {
                    return .int(Int64(magnitude))
                } else {
                    return .uint(magnitude)
                }
                throw NanaJSONError(kind: .invalidJSON, message: "integer out of the 64-bit range at byte \(start)")
            }
            if !isDouble {
                throw NanaJSONError(kind: .invalidJSON, message: "integer out of the 64-bit range at byte \(start)")
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
            guard let d = Double(text) else { throw error("bad number") }
            return .double(d)
        }

        mutating func parseString() throws(NanaJSONError) -> String {
            pos += 1  // opening quote
            let start = pos
            // Fast path: no escapes.
            while pos < bytes.count {
                let b = bytes[pos]
                if b == UInt8(ascii: "\"") {
                    let s = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<pos]), as: UTF8.self)
                    pos += 1
                    return s
                }
                if b == UInt8(ascii: "\\") { break }
                pos += 1
            }
            var out = Array(UnsafeBufferPointer(rebasing: bytes[start..<pos]))
            while pos < bytes.count {
                let b = bytes[pos]
                if b == UInt8(ascii: "\"") {
                    pos += 1
                    return String(decoding: out, as: UTF8.self)
                }
                if b != UInt8(ascii: "\\") { out.append(b); pos += 1; continue }
                pos += 1
                guard pos < bytes.count else { break }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800..<0xDC00).contains(scalar), bytes.count - pos >= 6,
                       bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                        let save = pos
                        pos += 2
                        let low = try parseHex4()
                        if (0xDC00..<0xE000).contains(low) {
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else {
                            pos = save
                        }
                    }
                    // A lone surrogate (Python's json allows one) has no UTF-8 form.
                    let u = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw error("bad escape")
                }
            }
            throw error("unterminated string")
        }

        mutating func parseHex4() throws(NanaJSONError) -> UInt32 {
            guard bytes.count - pos >= 4 else { throw error("short \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[pos]
                let d: UInt32
                switch c {
                case 0x30...0x39: d = UInt32(c - 0x30)
                case 0x41...0x46: d = UInt32(c - 0x41 + 10)
                case 0x61...0x66: d = UInt32(c - 0x61 + 10)
                default: throw error("bad \\u escape")
                }
                v = v << 4 | d
                pos += 1
            }
            return v
        }
    }
}
