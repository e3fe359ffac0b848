import NanaWire
import OrderedCollections
import Testing

@Suite struct MessagePackTests {
    static let samples: [NanaValue] = [
        .nil, true, false, 0, 1, -1, 127, 128, -32, -33, 255, 256, 65535, 65536, .int(Int64.max), .int(Int64.min),
        .uint(UInt64.max), 5.0, 1.5, -0.0, .double(.greatestFiniteMagnitude), "", "héllo 🌍",
        .string(String(repeating: "x", count: 70000)), .binary([0, 1, 255]), [], [1, "a", true, .nil],
        [:], ["b": 1, "a": [true, .nil, 2.5], "nested": ["deep": ["x": "y"]]],
    ]

    @Test(arguments: samples)
    func roundTripKeepsTypeAndValue(_ value: NanaValue) throws {
        let bytes = MessagePackWriter.encode(value)
        let back = try MessagePackReader.decode(bytes)
        #expect(back == value)
    }

    @Test func trueStaysDistinctFromOneAndDoubleFromInt() throws {
        #expect(try MessagePackReader.decode(MessagePackWriter.encode(true)) != .int(1))
        #expect(try MessagePackReader.decode(MessagePackWriter.encode(5.0)) == .double(5.0))
        #expect(try MessagePackReader.decode(MessagePackWriter.encode(5.0)) != .int(5))
        #expect(MessagePackWriter.encode(5.0) == [0xcb, 0x40, 0x14, 0, 0, 0, 0, 0, 0])
        #expect(MessagePackWriter.encode(5) == [0x05])
    }

    @Test func mapKeepsKeyOrder() throws {
        let value: NanaValue = ["z": 1, "a": 2, "m": 3]
        let back = try MessagePackReader.decode(MessagePackWriter.encode(value))
        #expect(back.mapValue.map { Array($0.keys) } == ["z", "a", "m"])
    }

    @Test func depthOf254InsideAnEnvelopeRoundTrips() throws {
        var value: NanaValue = "leaf"
        for _ in 0..<254 { value = [value] }
        let writer = MessagePackWriter()
        writer.writeRequest(msgid: 1, method: "set", params: ["value": value])
        let decoded = try MessagePackReader().decode(writer.bytes)
        guard case .request(_, _, let params) = try NanaMessage(decoded) else { Issue.record("not a request"); return }
        #expect(params["value"] == value)
    }

    // MARK: Malformed input: refused before msgpack-c allocates anything

    func expectRefused(_ bytes: [UInt8], _ kind: MessagePackError.Kind, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(throws: MessagePackError.self, sourceLocation: sourceLocation) { try MessagePackReader.decode(bytes) }
        do { _ = try MessagePackReader.decode(bytes) } catch { #expect(error.kind == kind, sourceLocation: sourceLocation) }
    }

    @Test func arrayHeaderDeclaringFourBillionElementsIsRefused() {
        expectRefused([0xdd, 0xff, 0xff, 0xff, 0xff], .lengthExceedsInput)
        expectRefused([0xdf, 0xff, 0xff, 0xff, 0xff], .lengthExceedsInput)
        expectRefused([0xdb, 0xff, 0xff, 0xff, 0xff], .lengthExceedsInput)
        expectRefused([0xc6, 0x7f, 0xff, 0xff, 0xff, 0x00], .lengthExceedsInput)
    }

    @Test func truncatedValuesAreRefused() {
        let full = MessagePackWriter.encode(["key": "value", "n": 123456789])
        for cut in 0..<full.count {
            #expect(throws: MessagePackError.self) { try MessagePackReader.decode(Array(full.prefix(cut))) }
        }
    }

    @Test func nonStringMapKeysAreRefused() {
        expectRefused([0x81, 0x01, 0x01], .nonStringKey)
        expectRefused([0x81, 0xc0, 0x01], .nonStringKey)
    }

    @Test func invalidUTF8IsRefused() {
        expectRefused([0xa2, 0xc3, 0x28], .invalidUTF8)
        expectRefused([0xa3, 0xed, 0xa0, 0x80], .invalidUTF8)  // a UTF-16 surrogate
        expectRefused([0xa2, 0xc0, 0x80], .invalidUTF8)  // overlong
    }

    @Test func extTypesAndNeverUsedAreRefused() {
        expectRefused([0xd4, 0x01, 0x00], .unsupportedType)
        expectRefused([0xc1], .unsupportedType)
    }

    @Test func trailingBytesAreRefused() {
        expectRefused([0x01, 0x02], .trailingBytes)
    }

    @Test func nesting10000DeepIsRefusedWithoutCrashing() {
        let bytes = [UInt8](repeating: 0x91, count: 10000) + [0xc0]
        expectRefused(bytes, .tooDeep)
        let maps = Array([[UInt8]](repeating: [0x81, 0xa1, 0x61], count: 10000).joined()) + [0xc0]
        expectRefused(maps, .tooDeep)
    }

    @Test func peekFindsTheMsgidOfABrokenRequest() {
        let bytes: [UInt8] = [0x94, 0x00, 0xcd, 0x12, 0x34, 0xff, 0xff]
        #expect(bytes.withUnsafeBytes { MessagePackReader.peekRequestID($0) } == 0x1234)
        #expect([UInt8]([0x93, 0x01]).withUnsafeBytes { MessagePackReader.peekRequestID($0) } == nil)
        let wide: [UInt8] = [0x94, 0x00, 0xcf, 0, 0, 0, 0, 0, 0, 0x01, 0x02, 0xc1]
        #expect(wide.withUnsafeBytes { MessagePackReader.peekRequestID($0) } == 0x0102)
        let signed: [UInt8] = [0x94, 0x00, 0xd0, 0x05, 0xc1]
        #expect(signed.withUnsafeBytes { MessagePackReader.peekRequestID($0) } == 5)
        let negative: [UInt8] = [0x94, 0x00, 0xd0, 0xff, 0xc1]
        #expect(negative.withUnsafeBytes { MessagePackReader.peekRequestID($0) } == nil)
    }

    /// Random bytes must never crash the decoder; each input either decodes or is refused.
    @Test func randomBytesNeverCrash() {
        var generator = SystemRandomNumberGenerator()
        let reader = MessagePackReader()
        for _ in 0..<20000 {
            let count = Int.random(in: 0..<48, using: &generator)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if let value = try? reader.decode(bytes) {
                #expect(MessagePackWriter.encode(value).count > 0)
            }
        }
    }
}

@Suite struct MessageTests {
    @Test func requestRoundTrip() throws {
        let writer = MessagePackWriter()
        writer.writeRequest(msgid: 42, method: "get", params: ["db": 1, "key": "k"])
        let message = try NanaMessage(try MessagePackReader.decode(writer.bytes))
        #expect(message == .request(msgid: 42, method: "get", params: ["db": 1, "key": "k"]))
    }

    @Test func errorResponseRoundTrip() throws {
        let writer = MessagePackWriter()
        writer.writeFailure(msgid: 7, error: NanaRemoteError(.keyError, "k"))
        let message = try NanaMessage(try MessagePackReader.decode(writer.bytes))
        #expect(message == .response(msgid: 7, result: .failure(NanaRemoteError(.keyError, "k"))))
    }

    @Test func envelopesOfTheWrongShapeAreProtocolErrors() {
        let bad: [NanaValue] = [1, [], [0, 1, "get"], [0, -1, "get", [:]], [0, 1, 5, [:]], [0, 1, "get", [1]], [9, 1, 2], "x"]
        for value in bad {
            #expect(throws: NanaRemoteError.self) { try NanaMessage(value) }
        }
    }
}
