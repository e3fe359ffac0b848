import Foundation
import NanaClient
import NanaWire
import Testing

/// `execute`, `execute_many`, `fetch_one`, `fetch_all` through the daemon.
@Suite(.serialized) struct DirectSQLTests {
    @Test func sqlRoundTripsWithTypedRows() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("sql.db")

        try await db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, score REAL, photo BLOB)")
        let inserted = try await db.execute("INSERT INTO users (name, score, photo) VALUES (?, ?, ?)", ["Ada", 9.5, .binary([1, 2, 3])])
        #expect(inserted.rowCount == 1)
        #expect(inserted.lastInsertRowID == 1)
        try await db.executeMany("INSERT INTO users (name, score) VALUES (?, ?)", (0..<1000).map { [.string("u\($0)"), .double(Double($0))] })
        #expect(try await db.fetchOne("SELECT COUNT(*) FROM users") == [1001])
        #expect(try await db.fetchOne("SELECT name, score, photo, NULL FROM users WHERE id = ?", [1]) == ["Ada", 9.5, .binary([1, 2, 3]), .nil])
        #expect(try await db.fetchOne("SELECT name FROM users WHERE id = ?", [-5]) == nil)
        let rows = try await db.fetchAll("SELECT id, name FROM users WHERE score < ? ORDER BY id", [3])
        #expect(rows == [[2, "u0"], [3, "u1"], [4, "u2"]])
        let selected = try await db.execute("SELECT name FROM users WHERE id <= 2 ORDER BY id")
        #expect(selected.columns == ["name"])
        #expect(selected.rows == [["Ada"], ["u0"]])
        let updated = try await db.execute("UPDATE users SET score = score + 1 WHERE score < 10")
        #expect(updated.rowCount == 11)
        // A read reports nothing of the writes that came before it, this client's or others'.
        try await db.batchUpdate(["a": 1, "b": 2, "c": 3])
        let read = try await db.execute("SELECT 1")
        #expect(read.rowCount == -1)
        #expect(read.lastInsertRowID == 0)
        await client.close()
        try await daemon.stop()
    }

    @Test func sqlThatBreaksTheDaemonsOwnershipIsRefused() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("guard.db")
        try await db.set("k", "v")
        for sql in ["BEGIN", "COMMIT", "SAVEPOINT x", "ATTACH DATABASE '/tmp/evil.db' AS evil", "PRAGMA journal_mode = DELETE",
                    "VACUUM", "  vacuum", "SELECT 1; BEGIN"] {
            await expectRemote(.validation) { try await db.execute(sql) }
        }
        await expectRemote(.database) { try await db.execute("SELEC nonsense") }
        await expectRemote(.database) { try await db.execute("INSERT INTO nosuchtable VALUES (1)") }
        await expectRemote(.valueError) { try await db.execute("SELECT ?", [1, 2]) }
        await expectRemote(.valueError) { try await db.execute("SELECT ?; SELECT ?", [1]) }
        await expectRemote(.typeError) { try await db.execute("SELECT ?", [[1]]) }
        await expectRemote(.valueError) { try await db.executeMany("SELECT 1; SELECT 2", [[]]) }
        // A failed execute_many writes nothing.
        try await db.execute("CREATE TABLE t (x INTEGER UNIQUE)")
        await expectRemote(.database) { try await db.executeMany("INSERT INTO t VALUES (?)", [[1], [2], [1]]) }
        #expect(try await db.fetchOne("SELECT COUNT(*) FROM t") == [0])
        #expect(!FileManager.default.fileExists(atPath: "/tmp/evil.db"))
        #expect(try await db.get("k") == "v")
        try await db.set("k2", "still works")
        await client.close()
        try await daemon.stop()
    }

    @Test func sqlThatChangesAKeyValueTableLeavesNoStaleCache() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let other = try await daemon.connect()
        let db = try await client.open("coherent.db")
        let otherView = try await other.open("coherent.db")
        try await db.set("k", "old")
        try await db.set("gone", 1)
        #expect(try await otherView.get("k") == "old")  // cached in the daemon now

        try await db.execute(#"UPDATE data SET value = '"new"' WHERE key = 'k'"#)
        #expect(try await otherView.get("k") == "new")
        try await db.execute("DELETE FROM data WHERE key = ?", ["gone"])
        #expect(try await otherView.contains("gone") == false)

        // Through a trigger fired by a write to another table.
        try await db.execute(#"CREATE TABLE audit (note TEXT)"#)
        try await db.execute(#"CREATE TRIGGER t AFTER INSERT ON audit BEGIN UPDATE data SET value = '"by trigger"' WHERE key = 'k'; END"#)
        #expect(try await otherView.get("k") == "new")
        try await db.execute("INSERT INTO audit VALUES ('x')")
        #expect(try await otherView.get("k") == "by trigger")

        // Reads through fetch see committed KV writes too.
        try await otherView.set("z", ["a": 1])
        #expect(try await db.fetchOne("SELECT value FROM data WHERE key = 'z'") == [#"{"a":1}"#])
        await client.close()
        await other.close()
        try await daemon.stop()
    }
}
