import Foundation
import NanaClient
import NanaWire
import Testing

/// Transactions belong to a session (issue #3): isolation across OS processes, the writer
/// released when the owner dies or times out, and NanaSQLite's errors.
@Suite(.serialized) struct TransactionTests {
    @Test func uncommittedWritesAreInvisibleToOtherProcessesAndTheirWritesWait() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("tx.db")
        try await db.set("k", "old")
        #expect(try await db.get("k") == "old")

        try await db.beginTransaction()
        #expect(try await db.inTransaction())
        try await db.set("k", "new")
        try await db.batchUpdate(["a": 1, "b": 2])
        #expect(try await db.increment("n", default: 0) == 1)
        #expect(try await db.get("k") == "new")  // this session reads its own writes
        #expect(try await db.count() == 4)
        #expect(try await db.fetchOne("SELECT value FROM data WHERE key = 'k'") == [#""new""#])

        // Another process reads committed data only.
        let reader = try await runTool("nanactl", ["get", "--socket", daemon.socketPath, "--db", "tx.db", "k"])
        #expect(reader.stdout == "\"old\"\n")
        let missing = try await runTool("nanactl", ["get", "--socket", daemon.socketPath, "--db", "tx.db", "a"])
        #expect(missing.status == 1)

        // Another process's write waits for the commit.
        let writer = Task { try await runTool("nanactl", ["set", "--socket", daemon.socketPath, "--db", "tx.db", "k", "\"from B\""]) }
        try await Task.sleep(for: .milliseconds(400))
        let other = try await daemon.connect()
        let otherView = try await other.open("tx.db")
        #expect(try await otherView.get("k") == "old")
        #expect(try await otherView.get("a") == .nil)

        try await db.commit()
        #expect(try await !db.inTransaction())
        let wrote = try await writer.value
        #expect(wrote.status == 0, "\(wrote.stderr)")
        #expect(try await otherView.get("k") == "from B")  // B's write ran after the commit
        #expect(try await otherView.get("a") == 1)  // the committed writes are in the shared cache
        #expect(try await otherView.get("n") == 1)
        await other.close()
        await client.close()
        try await daemon.stop()
    }

    @Test func rollbackDiscardsEverythingAndClosureFormCommitsOrRollsBack() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("rb.db")
        try await db.set("k", "kept")

        try await db.beginTransaction()
        try await db.set("k", "discarded")
        try await db.delete("k")
        try await db.execute("CREATE TABLE t (x)")
        try await db.rollback()
        #expect(try await db.get("k") == "kept")
        #expect(try await db.fetchOne("SELECT COUNT(*) FROM sqlite_master WHERE name = 't'") == [0])

        try await db.transaction { tx in
            try await tx.set("x", 1)
            try await tx.set("y", 2)
        }
        #expect(try await db.batchGet(["x", "y"]) == ["x": 1, "y": 2])
        struct Abort: Error {}
        await #expect(throws: Abort.self) {
            try await db.transaction { tx in
                try await tx.set("x", 100)
                throw Abort()
            }
        }
        #expect(try await db.get("x") == 1)

        // NanaSQLite's errors.
        await expectRemote(.transaction) { try await db.commit() }
        await expectRemote(.transaction) { try await db.rollback() }
        try await db.beginTransaction()
        await expectRemote(.transaction) { try await db.beginTransaction() }
        await expectRemote(.transaction) { try await db.close() }
        // New tables of the same file open inside the transaction (no waiting on ourselves)...
        let fresh = try await db.table("fresh_in_tx")
        try await fresh.set("f", 1)
        let opened = try await client.open("rb.db", table: "opened_in_tx")
        try await opened.set("o", 2)
        #expect(try await fresh.get("f") == 1)
        try await db.rollback()
        // ...and are gone with it.
        #expect(try await db.fetchOne("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('fresh_in_tx', 'opened_in_tx')") == [0])
        let again = try await db.table("fresh_in_tx")
        #expect(try await again.get("f") == .nil)
        try await db.close()
        await client.close()
        try await daemon.stop()
    }

    @Test func aKilledClientReleasesTheWriterWithinOneSecond() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let holder = Process()
        holder.executableURL = binFolder.appendingPathComponent("nanabench")
        holder.arguments = ["hold-transaction", "--socket", daemon.socketPath, "--db", "kill.db", "--key", "held", "--seconds", "60"]
        let pipe = Pipe()
        holder.standardOutput = pipe
        try holder.run()
        let line = await blocking { String(decoding: pipe.fileHandleForReading.availableData, as: UTF8.self) }
        #expect(line.contains("holding"))

        let client = try await daemon.connect()
        let db = try await client.open("kill.db")
        kill(holder.processIdentifier, SIGKILL)
        await blocking { holder.waitUntilExit() }
        let start = ContinuousClock.now
        try await db.set("after", true)  // waits for the writer, which the daemon frees at once
        let waited = ContinuousClock.now - start
        #expect(waited < .seconds(1), "the writer was held \(waited) after the client died")
        #expect(try await db.get("held") == .nil)  // the dead client's write was rolled back
        #expect(try await db.get("after") == true)
        await client.close()
        try await daemon.stop()
    }

    @Test func aTransactionThatOutlivesTheTimeoutIsRolledBack() async throws {
        let daemon = try await Daemon.start(arguments: ["--transaction-timeout", "0.5"])
        defer { daemon.removeFolder() }
        let a = try await daemon.connect()
        let b = try await daemon.connect()
        let dbA = try await a.open("timeout.db")
        let dbB = try await b.open("timeout.db")
        try await dbA.beginTransaction()
        try await dbA.set("a", "uncommitted")
        let start = ContinuousClock.now
        try await dbB.set("b", "waited")  // proceeds once A's transaction is rolled back
        #expect(ContinuousClock.now - start >= .milliseconds(300))
        await expectRemote(.transaction) { try await dbA.set("a", "again") }
        #expect(try await dbA.inTransaction() == false)
        #expect(try await dbB.get("a") == .nil)
        #expect(try await dbB.get("b") == "waited")
        try await dbA.set("a", "later")  // the session works normally again
        #expect(try await dbB.get("a") == "later")
        await a.close()
        await b.close()
        try await daemon.stop()
    }

    @Test func tablesOpenedInsideATransactionStayOneSharedTable() async throws {
        // 1.5 s: the opens and writes inside each transaction took over 0.4 s once, with the
        // whole suite running on 2 cores.
        let daemon = try await Daemon.start(arguments: ["--transaction-timeout", "1.5"])
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let other = try await daemon.connect()
        let db = try await client.open("tables.db")
        try await db.execute("CREATE TABLE pre (key TEXT PRIMARY KEY, value TEXT)")  // in the file, not yet opened as a table

        try await db.beginTransaction()
        let first = try await db.table("dbl")
        let second = try await db.table("dbl")
        try await first.set("k", "v")
        #expect(try await second.get("k") == "v")
        let pre = try await db.table("pre")
        try await pre.set("p", 1)
        try await db.commit()
        let otherDbl = try await other.open("tables.db", table: "dbl")
        #expect(try await otherDbl.get("k") == "v")
        try await second.set("k", "v2")  // both handles are the shared table
        #expect(try await otherDbl.get("k") == "v2")

        try await db.beginTransaction()
        let preAgain = try await db.table("pre")
        try await preAgain.set("p", 2)
        try await db.rollback()
        let otherPre = try await other.open("tables.db", table: "pre")
        #expect(try await otherPre.get("p") == 1)
        try await otherPre.set("p", 3)
        #expect(try await pre.get("p") == 3)  // one cache for every handle of the table

        // A transaction the daemon ended on its own no longer blocks close.
        try await db.beginTransaction()
        try await Task.sleep(for: .milliseconds(2500))
        try await db.close()
        await client.close()
        await other.close()
        try await daemon.stop()
    }
}
