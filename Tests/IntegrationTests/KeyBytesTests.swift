import Foundation
import NanaClient
import NanaWire
import Testing

/// Keys and files whose names are canonically equivalent but differ in their bytes
/// ("é" and "e\u{301}") are two of each, as in SQLite and NanaSQLite. Keyed by Swift `String`,
/// nanad's shared cache answered a read of one key with the other's value.
@Suite(.serialized) struct KeyBytesTests {
    static let composed = "caf\u{E9}"
    static let decomposed = "cafe\u{301}"

    /// Every read path of one handle sees each key's own value: the daemon's cache, the
    /// near-cache, a batch, a scan, and a delete of one.
    private func expectTwoKeys(_ db: NanaDatabase, _ what: String) async throws {
        try await db.set(Self.composed, 1)
        try await db.set(Self.decomposed, 2)
        for _ in 0..<2 {  // the second round reads from the caches
            #expect(try await db.get(Self.composed) == 1, "\(what): get")
            #expect(try await db.get(Self.decomposed) == 2, "\(what): get")
        }
        let both = try await db.batchGet([Self.composed, Self.decomposed])
        #expect(both.count == 2 && both[NanaKey(Self.composed)] == 1 && both[NanaKey(Self.decomposed)] == 2, "\(what): batch_get \(both)")
        #expect(try await db.toDict().count == 2, "\(what): to_dict")
        #expect(try await db.count() == 2, "\(what): count")
        try await db.batchUpdate([NanaKey(Self.composed): 10, NanaKey(Self.decomposed): 20])
        #expect(try await db.get(Self.composed) == 10, "\(what): batch_update")
        #expect(try await db.get(Self.decomposed) == 20, "\(what): batch_update")
        try await db.delete(Self.composed)
        #expect(try await db.get(Self.composed) == .nil, "\(what): deleted")
        #expect(try await db.get(Self.decomposed) == 20, "\(what): the other survives the delete")
        #expect(try await db.contains(Self.decomposed), "\(what): contains")
        #expect(try await !db.contains(Self.composed), "\(what): contains")
    }

    @Test func keysAreToldApartByTheirBytes() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        try await expectTwoKeys(try await client.open("plain.db", nearCache: .off), "shared cache")
        try await expectTwoKeys(try await client.open("near.db", nearCache: .default), "near-cache")
        let staged = try await client.open("v2.db", options: NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .manual)), nearCache: .off)
        try await expectTwoKeys(staged, "v2 staging")
        try await staged.flush(wait: true)
        // With the shared cache dropped, SQLite answers: the file holds what was acknowledged.
        let fresh = try await daemon.connect()
        for name in ["plain.db", "near.db", "v2.db"] {
            let db = try await fresh.open(name, options: name == "v2.db" ? NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .manual)) : NanaOpenOptions(), nearCache: .off)
            try await db.clearCache()
            #expect(try await db.get(Self.decomposed) == 20, "\(name) in the file")
            #expect(try await db.get(Self.composed) == .nil, "\(name) in the file")
        }
    }

    @Test func filesAreToldApartByTheirBytes() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let fileA = try await client.open("\(Self.composed).db")
        let fileB = try await client.open("\(Self.decomposed).db")
        try await fileA.set("k", "a")
        try await fileB.set("k", "b")
        #expect(try await fileA.get("k") == "a")
        #expect(try await fileB.get("k") == "b")
        let names = try FileManager.default.contentsOfDirectory(atPath: daemon.dataDirectory).filter { $0.hasSuffix(".db") }
        #expect(names.count == 2, "\(names)")
    }
}
