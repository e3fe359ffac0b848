@testable import NanaWire
import Testing

/// Keys are told apart by their bytes, as SQLite, MessagePack and Python tell them apart, where
/// Swift's `String` compares by canonical equivalence.
@Suite struct NanaKeyTests {
    static let composed = "caf\u{E9}"      // é as one code point
    static let decomposed = "cafe\u{301}"  // e and a combining acute accent

    @Test func canonicallyEquivalentStringsAreTwoKeys() {
        #expect(Self.composed == Self.decomposed, "the premise: Swift calls them equal")
        #expect(NanaKey(Self.composed) != NanaKey(Self.decomposed))
        var map: [NanaKey: Int] = [:]
        map[NanaKey(Self.composed)] = 1
        map[NanaKey(Self.decomposed)] = 2
        #expect(map.count == 2 && map[NanaKey(Self.composed)] == 1 && map[NanaKey(Self.decomposed)] == 2)
    }

    @Test func equalBytesAreOneKeyWithOneHash() {
        let built = String(["c", "a", "f", "\u{E9}"].map(Character.init).map { String($0) }.joined())
        #expect(NanaKey(built) == NanaKey(Self.composed))
        #expect(NanaKey(built).hash == NanaKey(Self.composed).hash)
        #expect(NanaKey(built).hashValue == NanaKey(Self.composed).hashValue)
        // Every length around the 8-byte steps, so that the tail and the words are both used.
        let strings = (0..<40).map { String(repeating: "k", count: $0) } + (0..<40).map { "key-\($0)" }
        #expect(Set(strings.map { NanaKey($0).hash }).count == strings.count, "distinct short keys, distinct hashes")
        let set = Set(strings.map(NanaKey.init(_:)))
        #expect(strings.allSatisfy { set.contains(NanaKey($0)) })
    }

    @Test func keysOfEveryLengthCompareByEveryByte() {
        // Lengths around the 8-byte words the comparison takes, and a difference in each place.
        let alphabet = Array("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH".utf8)
        for length in [0, 1, 7, 8, 9, 15, 16, 17, 40] {
            let bytes = Array(alphabet.prefix(length))
            #expect(bytesEqual(bytes, bytes))
            #expect(!bytesEqual(bytes, bytes + [0x5F]) && !bytesEqual(bytes + [0x5F], bytes))
            for place in 0..<length {
                var other = bytes
                other[place] = 0x2E
                #expect(!bytesEqual(bytes, other), "a difference at byte \(place) of \(length)")
            }
        }
    }

    private func bytesEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { y in NanaKey.bytesEqual(x, y) } }
    }

    @Test func mapsKeepBothKeysThroughMessagePackAndJSON() throws {
        let value: NanaValue = .map([NanaKey(Self.composed): 1, NanaKey(Self.decomposed): 2])
        let writer = MessagePackWriter()
        writer.write(value)
        let decoded = try MessagePackReader.decode(writer.bytes)
        #expect(decoded.mapValue?.count == 2)
        #expect(decoded.mapValue?[NanaKey(Self.decomposed)] == 2)
        let json = try JSONWriter.string(from: value)
        let parsed = try JSONReader.value(from: Array(json.utf8))
        #expect(parsed == value)
        #expect(parsed.mapValue?.keys.map(\.string.utf8.count) == [5, 6])
    }

    @Test func ordersByBytesAsSQLiteDoes() {
        #expect(NanaKey("B") < NanaKey("a"))
        #expect(NanaKey(Self.decomposed) < NanaKey(Self.composed), "e (0x65) before é (0xC3 0xA9)")
    }
}
