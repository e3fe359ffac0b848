import Foundation
import NanaClient
import NanaWire
import Testing

/// v2 (write-behind) mode in the daemon: staged writes shared by every process, flush policies,
/// the dead-letter queue, metrics and the shutdown flush.
@Suite(.serialized) struct WriteBehindTests {
    static let manual = NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .manual))

    /// Rows the file holds, as another process (the sqlite3 shell) sees it.
    static func rowsInFile(_ daemon: Daemon, _ db: String, _ table: String = "data") async throws -> Int {
        Int(try await runShell("sqlite3", [daemon.dataDirectory + "/" + db, "SELECT COUNT(*) FROM \(table)"])) ?? -1
    }

    @Test func fourProcessesReadEachOthersStagedWritesAndSIGTERMFlushesThemAll() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        // Manual flushing: nothing reaches the file until the daemon is told to stop, so every
        // read below is served from the shared staging buffer.
        let runs = try await withThrowingTaskGroup(of: ToolRun.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    try await runTool("nanabench", ["worker", "--socket", daemon.socketPath, "--db", "v2.db",
                                                    "--prefix", "w\(worker)", "--peer", "w\((worker + 1) % 4)",
                                                    "--count", "500", "--concurrency", "4", "--v2", "manual"])
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for run in runs {
            #expect(run.status == 0, "worker failed: \(run.stderr)")
            #expect(run.stdout.contains("\"errors\": 0"), "\(run.stdout) \(run.stderr)")
        }
        let client = try await daemon.connect()
        let db = try await client.open("v2.db", options: Self.manual)
        #expect(try await Self.rowsInFile(daemon, "v2.db") == 0)
        for worker in 0..<4 {
            #expect(try await db.get("counter-w\(worker)") == 496)
            #expect(try await db.get("w\(worker)-499") == ["worker": .string("w\(worker)"), "i": 499])
        }
        #expect(try await Self.rowsInFile(daemon, "v2.db") == 0)
        await client.close()
        #expect(try await daemon.stop() == 0)
        #expect(try await Self.rowsInFile(daemon, "v2.db") == 2004)
        let last = try await runShell("sqlite3", [daemon.dataDirectory + "/v2.db", "SELECT value FROM data WHERE key = 'counter-w3'"])
        #expect(last == "496")
    }

    @Test func stagedWritesAreInTheFileAfterSIGTERM() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("term.db", options: Self.manual)
        var batch = NanaParams()
        for i in 0..<3000 { batch["k\(i)"] = .int(Int64(i)) }
        try await db.batchUpdate(batch)
        try await db.set("single", "value")
        try await db.delete("k0")
        #expect(try await Self.rowsInFile(daemon, "term.db") == 0)
        #expect(try await db.get("k2999") == 2999)
        #expect(try await db.contains("k0") == false)
        #expect(try await daemon.stop() == 0)
        #expect(try await Self.rowsInFile(daemon, "term.db") == 3000)
        #expect(try await runShell("sqlite3", [daemon.dataDirectory + "/term.db", "SELECT value FROM data WHERE key = 'single'"]) == "\"value\"")
    }

    @Test func everyReadPathSeesStagedWrites() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let writer = try await daemon.connect()
        let reader = try await daemon.connect()
        let w = try await writer.open("reads.db", options: Self.manual)
        try await w.set("a", ["n": 1])
        try await w.set("b", ["n": 2])
        let r = try await reader.open("reads.db", options: Self.manual)
        // Point reads come from staging without a flush.
        #expect(try await r.get("a") == ["n": 1])
        #expect(try await r.contains("b"))
        #expect(try await r.batchGet(["a", "b", "zz"]) == ["a": ["n": 1], "b": ["n": 2]])
        #expect(try await r.getFresh("b") == ["n": 2])
        #expect(try await Self.rowsInFile(daemon, "reads.db") == 0)
        // Counts, scans and SQL run after the staged writes reach the file.
        #expect(try await r.count() == 2)
        try await w.set("c", ["n": 3])
        #expect(Set(try await r.keys()) == ["a", "b", "c"])
        try await w.delete("a")
        #expect(try await r.toDict() == ["b": ["n": 2], "c": ["n": 3]])
        try await w.set("d", ["n": 4])
        let rows = try await r.query(where: "key >= ?", ["c"], orderBy: "key")
        #expect(rows.map { $0["key"] } == [.string("c"), .string("d")])
        try await w.set("e", ["n": 5])
        #expect(try await r.fetchOne("SELECT COUNT(*) FROM data") == [4])
        // Read-modify-writes see staged values and stay atomic.
        try await w.set("counter", 10)
        #expect(try await r.increment("counter", by: 5) == 15)
        #expect(try await w.pop("counter") == 15)
        #expect(try await w.setDefault("fresh", "first") == "first")
        #expect(try await r.setDefault("fresh", "second") == "first")
        await #expect(throws: NanaRemoteError.self) { try await r.delete("never-written") }
        await writer.close()
        await reader.close()
        #expect(try await daemon.stop() == 0)
        #expect(try await runShell("sqlite3", [daemon.dataDirectory + "/reads.db", "SELECT group_concat(key) FROM (SELECT key FROM data ORDER BY key)"]) == "b,c,d,e,fresh")
    }

    @Test func flushPolicies() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()

        let count = try await client.open("count.db", options: NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .count, flushCount: 5)))
        for i in 0..<4 { try await count.set("k\(i)", .int(Int64(i))) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(try await Self.rowsInFile(daemon, "count.db") == 0)
        try await count.set("k4", 4)  // the fifth write triggers the flush
        #expect(try await Self.eventually { try await Self.rowsInFile(daemon, "count.db") == 5 })

        let time = try await client.open("time.db", options: NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .time, flushInterval: 0.3)))
        try await time.set("t", 1)
        #expect(try await Self.rowsInFile(daemon, "time.db") == 0)
        #expect(try await Self.eventually { try await Self.rowsInFile(daemon, "time.db") == 1 })

        let immediate = try await client.open("immediate.db", options: NanaOpenOptions(writeBehind: NanaWriteBehind()))
        try await immediate.set("i", 1)
        #expect(try await Self.eventually { try await Self.rowsInFile(daemon, "immediate.db") == 1 })

        let manual = try await client.open("manual.db", options: Self.manual)
        try await manual.set("m", 1)
        try await Task.sleep(for: .milliseconds(300))
        #expect(try await Self.rowsInFile(daemon, "manual.db") == 0)
        try await manual.flush(wait: true)
        #expect(try await Self.rowsInFile(daemon, "manual.db") == 1)
        try await manual.set("m2", 2)
        let flushed = try await runTool("nanactl", ["flush", "--socket", daemon.socketPath, "--db", "manual.db"])
        #expect(flushed.status == 0, "\(flushed.stderr)")
        #expect(try await Self.rowsInFile(daemon, "manual.db") == 2)
        await client.close()
        #expect(try await daemon.stop() == 0)
    }

    @Test func stagingBeyondItsLimitFlushesEvenInManualMode() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("big.db", options: Self.manual)
        var batch = NanaParams()
        for i in 0..<250_000 { batch["k\(i)"] = .int(Int64(i)) }  // the limit, in distinct keys
        try await db.batchUpdate(batch)
        #expect(try await Self.eventually(within: .seconds(60)) { try await Self.rowsInFile(daemon, "big.db") == 250_000 })
        await client.close()
        #expect(try await daemon.stop() == 0)
    }

    @Test func aRowThatFailsGoesToTheDeadLetterQueueWithoutItsValueInTheLog() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let options = NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .manual, enableMetrics: true))
        let db = try await client.open("dlq.db", options: options)
        // A constraint the daemon does not know about, added by raw SQL.
        _ = try await db.execute("CREATE TRIGGER refuse_bad BEFORE INSERT ON data WHEN NEW.key = 'bad' BEGIN SELECT RAISE(ABORT, 'bad row refused'); END")
        let secret = "SECRET-PAYLOAD-7731"
        try await db.set("good", 1)
        try await db.set("bad", ["secret": .string(secret)])
        #expect(try await db.get("bad") == ["secret": .string(secret)])  // staged: read-your-writes
        try await db.flush(wait: true)

        let letters = try await db.deadLetters()
        #expect(letters.count == 1)
        #expect(letters.first?.key == "bad")
        #expect(letters.first?.action == .set)
        #expect(letters.first?.value == ["secret": .string(secret)])
        #expect(letters.first?.error.contains("bad row refused") == true)
        // The acknowledged value never reached the file, so reads no longer claim it did.
        #expect(try await db.get("bad") == .nil)
        #expect(try await db.get("good") == 1)
        // Another session (another process's view) sees the same queue.
        let other = try await daemon.connect()
        let otherDB = try await other.open("dlq.db", options: options)
        #expect(try await otherDB.deadLetters().map(\.key) == ["bad"])
        let metrics = try #require(try await db.writeBehindMetrics())
        #expect(metrics.dlqErrors == 1)
        #expect(metrics.kvsItemsFlushed == 1)
        #expect(metrics.flushCount >= 1)
        #expect(metrics.lastFlushTime.map { $0 > 1_700_000_000 } == true)
        // An operator sees it with nanactl, without the value unless asked.
        let listed = try await runTool("nanactl", ["dlq", "list", "--json", "--socket", daemon.socketPath, "--db", "dlq.db"])
        #expect(listed.status == 0, "\(listed.stderr)")
        let entries = try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]]
        #expect(entries?.count == 1)
        #expect(entries?.first?["key"] as? String == "bad")
        #expect(!listed.stdout.contains(secret))
        // Backups refuse while the queue holds acknowledged writes the file lacks.
        await #expect(throws: NanaRemoteError.self) { try await db.backup(to: "copy.db") }

        // Fix the cause, retry from the other session: the row lands.
        _ = try await otherDB.execute("DROP TRIGGER refuse_bad")
        let retried = try await runTool("nanactl", ["dlq", "retry", "--json", "--socket", daemon.socketPath, "--db", "dlq.db"])
        #expect(retried.stdout == "{\"retried\":1,\"failed_again\":0}\n", "\(retried.stderr)")
        #expect(try await db.deadLetters().isEmpty)
        #expect(try await runShell("sqlite3", [daemon.dataDirectory + "/dlq.db", "SELECT value FROM data WHERE key = 'bad'"]) == "{\"secret\":\"\(secret)\"}")
        try await db.backup(to: "copy.db")

        // clear_dlq discards.
        _ = try await db.execute("CREATE TRIGGER refuse_worse BEFORE INSERT ON data WHEN NEW.key = 'worse' BEGIN SELECT RAISE(ABORT, 'no'); END")
        try await db.set("worse", .string(secret))
        try await db.flush(wait: true)
        let cleared = try await runTool("nanactl", ["dlq", "clear", "--json", "--socket", daemon.socketPath, "--db", "dlq.db"])
        #expect(cleared.stdout == "{\"cleared\":1}\n", "\(cleared.stderr)")
        #expect(try await db.deadLetters().isEmpty)
        // One left in the queue at shutdown is reported as lost (the queue is memory).
        try await db.set("worse", .string(secret))
        try await db.flush(wait: true)
        await client.close()
        await other.close()
        #expect(try await daemon.stop() == 0)
        let log = daemon.logText
        #expect(log.contains("dead-letter queue are lost at close"))
        #expect(log.contains("dead-letter queue"))
        #expect(!log.contains(secret), "a staged value reached the log")
    }

    @Test func conflictingSettingsAreRefusedWhileTheTableIsInUse() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let first = try await daemon.connect()
        let v2 = try await first.open("shared.db", options: Self.manual)
        try await v2.set("k", "staged")
        let second = try await daemon.connect()
        // Stating write-through (the client's default) while a v2 session holds the table.
        await #expect(throws: NanaRemoteError.self) { _ = try await second.open("shared.db") }
        // Stating other v2 settings, too.
        await #expect(throws: NanaRemoteError.self) {
            _ = try await second.open("shared.db", options: NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .count)))
        }
        // A tool that states nothing shares the current settings and sees the staged write.
        let got = try await runTool("nanactl", ["get", "--socket", daemon.socketPath, "--db", "shared.db", "k"])
        #expect(got.stdout == "\"staged\"\n", "\(got.stderr)")
        // Sub-tables inherit v2 mode.
        let child = try await v2.table("child")
        try await child.set("c", 1)
        #expect(try await Self.rowsInFile(daemon, "shared.db", "child") == 0)
        // A transaction on a v2 table is refused, as in NanaSQLite.
        await expectRemote(.transaction) { try await v2.beginTransaction() }
        // One opened through a write-through table of the same file holds the file; writes
        // to the v2 table inside it would outlive a ROLLBACK: refused.
        let plain = try await first.open("shared.db", table: "plain", options: NanaOpenOptions(writeBehind: nil))
        try await plain.beginTransaction()
        await #expect(throws: NanaRemoteError.self) { try await v2.set("in-tx", 1) }
        // Reads inside the transaction see committed and staged rows, without waiting for a
        // flush (which could not run while the transaction holds the writer).
        #expect(try await v2.get("k") == "staged")
        #expect(try await v2.count() == 1)
        #expect(try await v2.keys() == ["k"])
        #expect(try await v2.getFresh("k") == "staged")
        #expect(try await child.toDict() == ["c": 1])
        try await plain.rollback()
        // Once every session is gone, the next open decides: write-through flushes first.
        await first.close()
        try await Task.sleep(for: .milliseconds(100))
        let v1 = try await second.open("shared.db")
        #expect(try await Self.rowsInFile(daemon, "shared.db") == 1)
        try await v1.set("direct", 1)
        #expect(try await Self.rowsInFile(daemon, "shared.db") == 2)
        await second.close()
        #expect(try await daemon.stop() == 0)
    }

    @Test func invalidSettingsAreRefusedAtOpen() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        for bad in [NanaWriteBehind(chunkSize: 0), NanaWriteBehind(flushCount: 0), NanaWriteBehind(flushInterval: -1), NanaWriteBehind(maxDLQSize: 0)] {
            await #expect(throws: NanaRemoteError.self) { _ = try await client.open("bad.db", options: NanaOpenOptions(writeBehind: bad)) }
        }
        let raw = { (params: NanaParams) async throws -> NanaValue in
            var p = params
            p["db_path"] = "bad.db"
            return try await client.call("open", p)
        }
        await #expect(throws: NanaRemoteError.self) { _ = try await raw(["v2_mode": true, "flush_mode": "sometimes"]) }
        await #expect(throws: NanaRemoteError.self) { _ = try await raw(["v2_mode": true, "v2_config": ["flush_mode": "immediate", "colour": "red"]]) }
        // The daemon is still serving and the connection still works.
        let ok = try await client.open("bad.db", options: Self.manual)
        #expect(try await ok.writeBehindMetrics() == nil)  // metrics off: NanaSQLite answers {}
        await client.close()
        #expect(try await daemon.stop() == 0)
    }

    /// Polls `condition` for up to `limit` (a loaded CI machine runs debug builds slowly).
    @Test func immediateModeFlushesALoneWriteAtOnceAndPacesCommitsUnderLoad() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let options = NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .immediate, enableMetrics: true))
        var clients: [NanaClient] = []
        var tables: [NanaDatabase] = []
        for _ in 0..<8 {
            let client = try await daemon.connect()
            clients.append(client)
            tables.append(try await client.open("paced.db", options: options))
        }
        // A lone write reaches the file without a flush call (well inside the 1 ms pace; the
        // bound only absorbs a slow machine).
        try await tables[0].set("lone", 1)
        #expect(try await Self.eventually(within: .seconds(2)) { try await Self.rowsInFile(daemon, "paced.db") == 1 })
        let before = try #require(try await tables[0].writeBehindMetrics()).flushCount

        // 8 connections × 250 sets as fast as they are acknowledged: while writes keep coming,
        // a cycle starts at most once per 1 ms pace, and takes all staged meanwhile. (Unpaced,
        // each cycle began as the last ended, with the 1–4 staged then: 2.2 cycles per ms in a
        // debug build here.) The margin allows for the lone cycles between bursts.
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (lane, table) in tables.enumerated() {
                group.addTask { for i in 0..<250 { try await table.set("l\(lane)-\(i)", .int(Int64(i))) } }
            }
            try await group.waitForAll()
        }
        let milliseconds = Double((ContinuousClock.now - start).components.attoseconds) / 1e15 + Double((ContinuousClock.now - start).components.seconds) * 1000
        try await tables[0].flush(wait: true)
        let cycles = try #require(try await tables[0].writeBehindMetrics()).flushCount - before
        #expect(cycles >= 1 && Double(cycles) <= 1.5 * milliseconds + 10, "\(cycles) flush cycles for 2,000 sets in \(milliseconds) ms")
        #expect(try await Self.rowsInFile(daemon, "paced.db") == 2001)
        for client in clients { await client.close() }
        #expect(try await daemon.stop() == 0)
    }

    static func eventually(within limit: Duration = .seconds(10), _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(25))
        }
        return false
    }
}
