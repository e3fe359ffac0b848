import Foundation
import NanaClient
import NanaWire
import Testing

/// Cache strategies, encryption at rest and daemon-side constraints, through the real nanad.
@Suite(.serialized) struct TableOptionsTests {
    static let fixtureKey = Array(UInt8(0x20)..<UInt8(0x40))
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("NanaStorageTests/Fixtures")

    static func sql(_ daemon: Daemon, _ db: String, _ query: String) async throws -> String {
        try await runShell("sqlite3", [daemon.dataDirectory + "/" + db, query])
    }

    static func cached(_ db: NanaDatabase) async throws -> Int { try await tableStat(db, "cached") }

    static func tableStat(_ db: NanaDatabase, _ name: String) async throws -> Int {
        let stats = try await db.client.stats()
        let tables = stats["databases"]?.arrayValue?.flatMap { $0["tables"]?.arrayValue ?? [] } ?? []
        return Int(tables.first { $0["name"] == .string(db.table) }?[name]?.int64Value ?? -1)
    }

    // MARK: Cache strategies

    @Test func lruKeepsTheMostRecentlyUsedAndFullScansStayComplete() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("lru.db", options: NanaOpenOptions(cache: .lru(capacity: 3)))
        for key in ["a", "b", "c"] { try await db.set(key, .string(key)) }
        _ = try await db.get("a")  // a is now the most recently used
        try await db.set("d", "d")  // evicts b, the least recently used
        #expect(try await db.isCached("a"))
        #expect(try await db.isCached("b") == false)
        #expect(try await db.isCached("d"))
        #expect(try await Self.cached(db) == 3)
        // Evicted values are still in the file, and scans read the file, not the cache.
        let missesBefore = try await Self.tableStat(db, "misses")
        #expect(try await db.get("b") == "b")
        #expect(try await Self.tableStat(db, "misses") == missesBefore + 1)  // one get, one miss
        #expect(try await Self.tableStat(db, "evictions") >= 2)
        try await db.set("e", "e")
        try await db.loadAll()
        #expect(try await db.toDict() == ["a": "a", "b": "b", "c": "c", "d": "d", "e": "e"])
        #expect(try await Self.cached(db) == 3)
        await client.close()
        #expect(try await daemon.stop() == 0)
    }

    @Test func ttlEntriesExpireAndUnboundedLimitIsFIFO() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let ttl = try await client.open("ttl.db", options: NanaOpenOptions(cache: .ttl(seconds: 2)))
        try await ttl.set("k", "v")
        #expect(try await ttl.isCached("k"))
        try await Task.sleep(for: .milliseconds(2500))
        #expect(try await ttl.isCached("k") == false)  // NanaSQLite still says true here
        #expect(try await ttl.get("k") == "v")  // the row stays; only the cache entry expired

        let fifo = try await client.open("fifo.db", options: NanaOpenOptions(cache: .unbounded(limit: 2)))
        try await fifo.set("first", 1)
        try await fifo.set("second", 2)
        try await fifo.set("first", 11)  // an update does not move it
        try await fifo.set("third", 3)
        #expect(try await fifo.isCached("first") == false)
        #expect(try await fifo.isCached("second"))
        #expect(try await fifo.values().count == 3)
        await client.close()
        #expect(try await daemon.stop() == 0)
    }

    @Test func persistentTTLDeletesRowsNoProcessReadEvenAcrossARestart() async throws {
        let first = try await Daemon.start()
        defer { first.removeFolder() }
        let options = NanaOpenOptions(cache: .ttl(seconds: 1, persistent: true))
        let client = try await first.connect()
        let db = try await client.open("ttl.db", options: options)
        try await db.set("while-running", 1)
        try await db.set("across-restart", 2)
        #expect(try await Self.sql(first, "ttl.db", "SELECT COUNT(*) FROM _nanad_expiry") == "2")
        await client.close()
        #expect(try await first.stop() == 0)
        #expect(try await Self.sql(first, "ttl.db", "SELECT COUNT(*) FROM data") == "2")
        try await Task.sleep(for: .milliseconds(1200))
        // A new nanad; nobody reads either key. Opening the table deletes what has expired.
        let second = try await Daemon.start(folder: first.folder)
        let again = try await second.connect()
        let reopened = try await again.open("ttl.db", options: options)
        #expect(try await Self.sql(second, "ttl.db", "SELECT COUNT(*) FROM data") == "0")
        // And while it runs, by time alone.
        try await reopened.set("fresh", 3)
        #expect(try await Self.sql(second, "ttl.db", "SELECT COUNT(*) FROM data") == "1")
        #expect(try await WriteBehindTests.eventually { try await Self.sql(second, "ttl.db", "SELECT COUNT(*) FROM data") == "0" })
        #expect(try await reopened.get("fresh") == .nil)
        await again.close()
        #expect(try await second.stop() == 0)
    }

    @Test func invalidOrConflictingCacheSettingsAreRefused() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let open = { (params: NanaParams) async throws -> NanaValue in
            var p = params
            p["db_path"] = "c.db"
            return try await client.call("open", p)
        }
        for bad: NanaParams in [["cache_strategy": "lru"], ["cache_strategy": "lru", "cache_size": 0], ["cache_strategy": "ttl"],
                                ["cache_strategy": "ttl", "cache_ttl": -1], ["cache_strategy": "fastest"], ["cache_size": "big"],
                                ["cache_persistence_ttl": true]] {
            do {
                _ = try await open(bad)
                Issue.record("\(bad) was accepted")
            } catch let error as NanaRemoteError {
                #expect(error.type == .valueError, "\(bad): \(error)")
            }
        }
        let lru = try await client.open("c.db", options: NanaOpenOptions(cache: .lru(capacity: 10)))
        try await lru.set("x", 1)
        let other = try await daemon.connect()
        await #expect(throws: NanaRemoteError.self) { _ = try await other.open("c.db", options: NanaOpenOptions(cache: .lru(capacity: 20))) }
        await #expect(throws: NanaRemoteError.self) { _ = try await other.open("c.db") }  // states unbounded
        #expect(try await other.open("c.db", options: NanaOpenOptions(cache: .lru(capacity: 10))).get("x") == 1)
        await client.close()
        await other.close()
        #expect(try await daemon.stop() == 0)
    }

    // MARK: Encryption

    @Test func encryptedValuesAreNanaSQLiteBlobsAndSubTablesInheritTheKey() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let key = NanaEncryption(key: Self.fixtureKey)
        let db = try await client.open("enc.db", options: NanaOpenOptions(encryption: key))
        try await db.set("secret", ["card": "4111-1111"])
        let child = try await db.table("child")
        try await child.set("also", "hidden")
        #expect(try await Self.sql(daemon, "enc.db", "SELECT typeof(value), length(value) FROM data") == "blob|48")  // 12 + 20 + 16
        #expect(try await Self.sql(daemon, "enc.db", "SELECT typeof(value) FROM child") == "blob")
        let raw = try await Self.sql(daemon, "enc.db", "SELECT hex(value) FROM data")
        #expect(!raw.contains(Data("4111".utf8).map { String(format: "%02X", $0) }.joined()))
        #expect(try await db.get("secret") == ["card": "4111-1111"])

        // While it is open: a second client without the key, or with another, is refused.
        let other = try await daemon.connect()
        await #expect(throws: NanaRemoteError.self) { _ = try await other.open("enc.db", options: NanaOpenOptions(encryption: nil)) }
        await #expect(throws: NanaRemoteError.self) {
            _ = try await other.open("enc.db", options: NanaOpenOptions(encryption: NanaEncryption(key: Array(repeating: 7, count: 32))))
        }
        #expect(try await other.open("enc.db", options: NanaOpenOptions(encryption: key)).get("secret") == ["card": "4111-1111"])
        await client.close()
        await other.close()
        try await Task.sleep(for: .milliseconds(100))

        // Nobody has it open: a wrong key fails the open itself (a stored row is tried).
        let late = try await daemon.connect()
        await #expect(throws: NanaRemoteError.self) {
            _ = try await late.open("enc.db", options: NanaOpenOptions(encryption: NanaEncryption(key: Array(repeating: 7, count: 32))))
        }
        // Without a key the open is refused: the rows are never shown, not even as garbage.
        do {
            _ = try await late.open("enc.db")
            Issue.record("an encrypted table was opened without its key")
        } catch let error as NanaRemoteError {
            #expect(error.message.contains("encryption_key"))
        }
        await late.close()
        #expect(try await daemon.stop() == 0)
    }

    @Test func aPlaintextTableMigratesToAKeyAsNanaSQLitesDoes() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let key = NanaEncryption(key: Self.fixtureKey)
        let plain = try await client.open("migrate.db")
        try await plain.set("old", ["v": 1])
        try await plain.set("older", "text")
        _ = try await client.call("close", ["db": .int(plain.handle)])

        // With a key, the table opens; its plaintext rows are refused at each read, in
        // NanaSQLite 1.6.2's words, and the open says nothing about them.
        let keyed = try await client.open("migrate.db", options: NanaOpenOptions(encryption: key))
        do {
            _ = try await keyed.get("old")
            Issue.record("a plaintext row was read from an encrypted table")
        } catch let error as NanaRemoteError {
            #expect(error.type == .database)
            #expect(error.message.contains("legacy plaintext value"))
        }
        try await keyed.set("new", 3)  // encrypted
        #expect(try await Self.sql(daemon, "migrate.db", "SELECT key, typeof(value) FROM data ORDER BY key") == "new|blob\nold|text\nolder|text")
        // Another session may not read them while this one refuses them (the cache is shared).
        let other = try await daemon.connect()
        await #expect(throws: NanaRemoteError.self) {
            _ = try await other.open("migrate.db", options: NanaOpenOptions(encryption: NanaEncryption(key: Self.fixtureKey, allowsLegacyPlaintext: true)))
        }
        _ = try await client.call("close", ["db": .int(keyed.handle)])

        // allow_legacy_plaintext: the open's reply says the table holds some; they read as
        // they are, beside the encrypted ones; rewriting them encrypts them.
        let migrating = NanaOpenOptions(encryption: NanaEncryption(key: Self.fixtureKey, allowsLegacyPlaintext: true))
        let rawOpen: NanaParams = ["db_path": "migrate.db", "encryption_key": .binary(Self.fixtureKey), "allow_legacy_plaintext": true]
        let reply = try await other.call("open", rawOpen)
        #expect(reply["legacy_plaintext"] == true)
        let migrator = try await other.open("migrate.db", options: migrating)
        #expect(try await migrator.get("old") == ["v": 1])
        #expect(try await migrator.get("new") == 3)
        for (k, v) in try await migrator.items() { try await migrator.set(k, v) }
        #expect(try await Self.sql(daemon, "migrate.db", "SELECT DISTINCT typeof(value) FROM data") == "blob")
        await other.close()
        await client.close()

        // Migrated: a later open says nothing, and a keyless one is refused.
        let late = try await daemon.connect()
        let lateReply = try await late.call("open", rawOpen)
        #expect(lateReply["legacy_plaintext"] == nil)
        #expect(lateReply["db"] != nil)
        await #expect(throws: NanaRemoteError.self) { _ = try await late.open("migrate.db") }
        await late.close()
        #expect(try await daemon.stop() == 0)
    }

    @Test func aTamperedValueIsAnErrorNotGarbage() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let options = NanaOpenOptions(encryption: NanaEncryption(key: Self.fixtureKey, mode: .chacha20))
        let db = try await client.open("tamper.db", options: options)
        try await db.set("k", "original")
        // Flip one ciphertext byte behind nanad's back, then make it read the row again.
        var hex = Array(try await Self.sql(daemon, "tamper.db", "SELECT hex(value) FROM data WHERE key = 'k'"))
        let position = 2 * 14  // the third byte of the ciphertext, after the 12-byte nonce
        hex[position] = hex[position] == "0" ? "1" : "0"
        _ = try await Self.sql(daemon, "tamper.db", "UPDATE data SET value = X'\(String(hex))' WHERE key = 'k'")
        #expect(try await Self.sql(daemon, "tamper.db", "SELECT typeof(value) FROM data") == "blob")
        try await db.refresh()  // clears the cache
        do {
            _ = try await db.get("k")
            Issue.record("a tampered value was returned")
        } catch let error as NanaRemoteError {
            #expect(error.type == .database)
            #expect(error.message.contains("authentication tag mismatch"))
        }
        await client.close()
        #expect(try await daemon.stop() == 0)
    }

    @Test(arguments: [("nanasqlite-1.6.2-aesgcm.db", NanaEncryption.Mode.aesGCM), ("nanasqlite-1.6.2-chacha20.db", .chacha20)])
    func filesEncryptedByNanaSQLiteReadInNanad(file: String, mode: NanaEncryption.Mode) async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        try FileManager.default.copyItem(atPath: Self.fixtures.appendingPathComponent(file).path, toPath: daemon.dataDirectory + "/fixture.db")
        let client = try await daemon.connect()
        let db = try await client.open("fixture.db", options: NanaOpenOptions(encryption: NanaEncryption(key: Self.fixtureKey, mode: mode)))
        let all = try await db.toDict()
        #expect(all["dict"] == ["name": "Zoë", "greeting": "こんにちは", "emoji": "🔐", "nested": ["n": [1, 2.5, true]]])
        #expect(all["list"] == [1, "two", 3.0, .nil, false, ["k": "v"]])
        #expect(all["int"] == 42)
        #expect(all["string"] == "héllo wörld")
        #expect(all["none"] == .nil)
        #expect(all.count == 5)
        await client.close()
        #expect(try await daemon.stop() == 0)
    }

    // MARK: Constraints

    @Test func aUniqueConstraintRacedByFourProcessesHasExactlyOneWinner() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("users.db", options: NanaOpenOptions(constraints: [.unique("email")]))
        for round in 0..<3 {
            let runs = try await withThrowingTaskGroup(of: ToolRun.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        try await runTool("nanactl", ["set", "--socket", daemon.socketPath, "--db", "users.db",
                                                      "user-\(round)-\(worker)", "{\"email\": \"same-\(round)@example.com\"}"])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(runs.filter { $0.status == 0 }.count == 1, "\(runs.map(\.stderr))")
            #expect(runs.filter { $0.status == 3 && $0.stderr.contains("Unique constraint violation") }.count == 3)
        }
        #expect(try await Self.sql(daemon, "users.db", "SELECT COUNT(*) FROM data") == "3")
        // The index that makes each check a lookup.
        #expect(try await Self.sql(daemon, "users.db", "SELECT COUNT(*) FROM sqlite_master WHERE name = 'nanad_unique_data_email'") == "1")
        // The index looks only into JSON text: raw SQL storing something else still works.
        _ = try await db.execute("INSERT INTO data (key, value) VALUES ('raw', 'not json')")
        // Updating a row with its own value is not a duplicate; rows without the field are free.
        let winner = try #require(try await db.keys().first { $0.hasPrefix("user-") })
        try await db.set(winner, try await db.get(winner))
        try await db.set("no-email-1", ["name": "a"])
        try await db.set("no-email-2", ["name": "b"])
        await client.close()
        #expect(try await daemon.stop() == 0)
    }

    @Test func batchesHonourConstraintsAndViolationsWriteNothing() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let users = try await client.open("shop.db", table: "users")
        try await users.set("u1", ["name": "Ann"])
        let orders = try await client.open("shop.db", table: "orders", options: NanaOpenOptions(constraints: [
            .foreignKey("user", references: "users"),
            .check("total", ">=", 0, message: "total must not be negative"),
            .required(["user", "total"], keyPrefix: "order:"),
            .unique("ref"),
        ]))
        try await orders.set("order:1", ["user": "u1", "total": 10, "ref": "A"])
        func refused(_ body: () async throws -> Void) async -> String? {
            do { try await body(); return nil } catch let error as NanaRemoteError {
                #expect(error.type == .validation)
                return error.message
            } catch { return "\(error)" }
        }
        #expect(await refused { try await orders.set("order:2", ["user": "ghost", "total": 1]) }?.contains("Foreign key") == true)
        #expect(await refused { try await orders.set("order:3", ["user": "u1", "total": -5]) } == "total must not be negative")
        #expect(await refused { try await orders.set("order:4", ["user": "u1"]) }?.contains("total") == true)
        #expect(try await orders.count() == 1)
        // Keys outside the prefix skip `required`, not the others.
        try await orders.set("note", ["total": 0])
        // A batch whose rows clash with each other or break a rule writes nothing.
        #expect(await refused { try await orders.batchUpdate(["order:5": ["user": "u1", "total": 1, "ref": "B"], "order:6": ["user": "u1", "total": 2, "ref": "B"]]) }?.contains("Unique") == true)
        #expect(await refused { try await orders.batchUpdate(["order:7": ["user": "u1", "total": 1], "order:8": ["user": "nobody", "total": 2]]) }?.contains("Foreign key") == true)
        #expect(await refused { _ = try await orders.setDefault("order:9", ["user": "u1", "total": -1]) } == "total must not be negative")
        #expect(Set(try await orders.keys()) == ["order:1", "note"])
        // The partial batch skips the rows a constraint refuses, with NanaSQLite's message.
        let skipped = try await orders.batchUpdatePartial(["order:11": ["user": "u1", "total": 1], "order:12": ["user": "ghost", "total": 1]])
        #expect(skipped.keys.sorted() == ["order:12"])
        #expect(skipped["order:12"]?.contains("Foreign key") == true)
        #expect(try await orders.get("order:11") == ["user": "u1", "total": 1])
        try await orders.delete("order:11")
        #expect(try await orders.constraints().count == 4)
        // Existing duplicates stop a new unique constraint; dropping one lifts it.
        try await users.set("u2", ["name": "Ann"])
        #expect(await refused { try await users.addConstraint(.unique("name")) } != nil)
        await #expect(throws: NanaRemoteError.self) { try await users.addConstraint(.foreignKey("boss", references: "users")) }
        #expect(try await orders.dropConstraint(.unique("ref")))
        try await orders.set("order:10", ["user": "u2", "total": 3, "ref": "A"])
        // Unique constraints and v2 mode do not mix; the refusal is clear.
        await #expect(throws: NanaRemoteError.self) {
            _ = try await client.open("v2.db", options: NanaOpenOptions(writeBehind: NanaWriteBehind(), constraints: [.unique("email")]))
        }
        // v2 tables keep the other constraints.
        let staged = try await client.open("v2c.db", options: NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .manual), constraints: [.check("n", ">", 0)]))
        #expect(await refused { try await staged.set("bad", ["n": 0]) } != nil)
        try await staged.set("good", ["n": 1])
        #expect(try await staged.get("good") == ["n": 1])
        await client.close()
        #expect(try await daemon.stop() == 0)
    }
}
