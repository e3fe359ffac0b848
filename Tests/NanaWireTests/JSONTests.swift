import NanaWire
import Testing

@Suite struct JSONTests {
    @Test func writesCompactJSONLikeOrjson() throws {
        let value: NanaValue = ["a": 1, "b": [1.0, .nil, true], "s": "é\"\\\n\u{01}"]
        #expect(try JSONWriter.string(from: value) == #"{"a":1,"b":[1.0,null,true],"s":"é\"\\\n\u0001"}"#)
    }

    @Test func readsStdlibJSONWithSpacesAndKeepsTypes() throws {
        let value = try JSONReader.value(from: Array(#"{"a": 1, "b": [1.0, null, true], "c": -5e-3, "d": 18446744073709551615}"#.utf8))
        #expect(value == ["a": 1, "b": [1.0, .nil, true], "c": -0.005, "d": .uint(UInt64.max)])
    }

    @Test func readsPythonNonStandardLiterals() throws {
        let value = try JSONReader.value(from: Array("[NaN, Infinity, -Infinity]".utf8))
        guard case .array(let items) = value, items.count == 3 else { Issue.record("not an array"); return }
        #expect(items[0].doubleValue?.isNaN == true)
        #expect(items[1] == .double(.infinity))
        #expect(items[2] == .double(-.infinity))
    }

    @Test func escapesAndSurrogatePairs() throws {
        let value = try JSONReader.value(from: Array(#""\u00e9\ud83c\udf0d\n\/""#.utf8))
        #expect(value == "é🌍\n/")
    }

    @Test func roundTripsThroughJSONKeepTypes() throws {
        let value: NanaValue = ["t": true, "one": 1, "five": 5.0, "neg": -7, "big": .int(Int64.min), "list": [[], [:]], "s": ""]
        let back = try JSONReader.value(from: try JSONWriter.bytes(from: value))
        #expect(back == value)
    }

    @Test func refusesWhatNanaSQLiteCannotStore() {
        #expect(throws: NanaJSONError(kind: .notSerializable, message: "Object of type bytes is not JSON serializable")) {
            try JSONWriter.bytes(from: ["b": .binary([1])])
        }
        #expect(throws: NanaJSONError.self) { try JSONWriter.bytes(from: .double(.nan)) }
        var deep: NanaValue = 1
        for _ in 0..<255 { deep = [deep] }
        #expect(throws: NanaJSONError.self) { try JSONWriter.bytes(from: deep) }
    }

    @Test func depth254IsWritable() throws {
        var deep: NanaValue = 1
        for _ in 0..<254 { deep = [deep] }
        let back = try JSONReader.value(from: try JSONWriter.bytes(from: deep))
        #expect(back == deep)
    }

    @Test func invalidJSONIsAnErrorNotACrash() {
        for text in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "01x", "1 2", "-", "[\"\\u12\"]", String(repeating: "[", count: 5000)] {
            #expect(throws: NanaJSONError.self) { try JSONReader.value(from: Array(text.utf8)) }
        }
    }
}
