import Foundation
import NanaWire
import Testing

/// The codec against the normative vectors in proto/vectors/vectors.json.
@Suite struct VectorTests {
    struct Vector: Sendable, CustomTestStringConvertible {
        let fields: NanaValue
        var name: String { fields["name"]?.stringValue ?? "?" }
        var kind: String { fields["kind"]?.stringValue ?? "?" }
        var bytes: [UInt8] { hexBytes(fields["hex"]?.stringValue ?? "") }
        var testDescription: String { "\(kind): \(name)" }
    }

    static let vectors: [Vector] = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("proto/vectors/vectors.json").path
        let data = FileManager.default.contents(atPath: path) ?? Data()
        // Read with NanaWire's own JSON reader: it keeps 5.0 apart from 5, as the vectors need.
        let all = (try? JSONReader.value(from: [UInt8](data), maximumDepth: 1000))?.arrayValue ?? []
        return all.map(Vector.init)
    }()

    @Test func vectorsArePresent() {
        #expect(Self.vectors.count >= 50)
        for kind in ["value", "message", "frame", "malformed"] {
            #expect(Self.vectors.contains { $0.kind == kind }, "no \(kind) vectors")
        }
    }

    @Test(arguments: vectors)
    func vector(_ vector: Vector) throws {
        switch vector.kind {
        case "value":
            let value = try MessagePackReader.decode(vector.bytes)
            if let expected = vector.fields["json"] { #expect(value == expected) }
            let canonical = vector.fields["canonical_hex"]?.stringValue.map(hexBytes) ?? vector.bytes
            #expect(MessagePackWriter.encode(value) == canonical, "msgpack-c encodes the smallest form")
        case "message":
            let value = try MessagePackReader.decode(vector.bytes)
            if let expected = vector.fields["json"] { #expect(value == expected) }
            let msgid = vector.bytes.withUnsafeBytes { MessagePackReader.peekRequestID($0) }
            if vector.fields["refused"] != nil {
                // Either the envelope is malformed, or it is a message a client must not send.
                if let message = try? NanaMessage(value), case .request = message {
                    Issue.record("a refused vector decoded as a request")
                }
                #expect(msgid == vector.fields["msgid"]?.int64Value.map(UInt32.init))
            } else {
                _ = try NanaMessage(value)
                #expect(MessagePackWriter.encode(value) == vector.bytes)
            }
        case "frame":
            let bytes = vector.bytes
            try #require(bytes.count >= 4)
            let length = Int(bytes[0]) << 24 | Int(bytes[1]) << 16 | Int(bytes[2]) << 8 | Int(bytes[3])
            #expect(length == bytes.count - 4)
            let value = try MessagePackReader.decode(Array(bytes.dropFirst(4)))
            if let expected = vector.fields["json"] { #expect(value == expected) }
        case "malformed":
            let expected = vector.fields["error"]?.stringValue ?? "?"
            do {
                let value = try MessagePackReader.decode(vector.bytes)
                Issue.record("decoded \(value) instead of refusing with \(expected)")
            } catch {
                #expect("\(error.kind)" == expected)
            }
            if let msgid = vector.fields["msgid"]?.int64Value {
                #expect(vector.bytes.withUnsafeBytes { MessagePackReader.peekRequestID($0) } == UInt32(msgid))
            }
        default:
            Issue.record("unknown vector kind \(vector.kind)")
        }
    }
}

func hexBytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var chars = Array(hex.utf8)[...]
    while chars.count >= 2 {
        out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16) ?? 0)
        chars = chars.dropFirst(2)
    }
    return out
}
