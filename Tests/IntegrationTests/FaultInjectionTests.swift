import Foundation
import NanaClient
import NanaWire
import Testing

/// I/O that fails under a real nanad: the fault VFS (Tests/Support/CNanaFaultVFS), loaded
/// into nanad with LD_PRELOAD, makes the nth read, write, sync or lock of one file fail. Each
/// failure reaches only the calls whose write (or read) it broke, with a clear error; the
/// caches never show a write that was not committed; the daemon stays up and recovers when
/// the fault stops; and a nanad without the fault finds every acknowledged write.
@Suite(.serialized) struct FaultInjectionTests {
    /// The control file the fault VFS reads (see fault_vfs.c for the rule's format).
    struct FaultControl {
        let path: String

        /// Arms one rule, `<op> <nth> <code> <repeat> <file suffix>`. Written to a new file and
        /// renamed over the old, so the VFS never reads half a rule and always sees a change.
        func arm(_ rule: String) throws {
            let staged = path + ".new"
            try Data((rule + "\n").utf8).write(to: URL(fileURLWithPath: staged))
            guard rename(staged, path) == 0 else { throw HarnessError(description: "cannot arm \(rule)") }
        }

        func clear() throws { try arm("") }

        /// The faults injected so far, one line each: `<op> <code> <file>`.
        var injected: [String] {
            ((try? String(contentsOfFile: path + ".log", encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }
    }

    static let library = binFolder.appendingPathComponent("libNanaFaultVFS.so").path

    /// A nanad with the fault VFS, and its control file (nothing armed).
    static func start(folder: String? = nil) async throws -> (Daemon, FaultControl) {
        guard FileManager.default.fileExists(atPath: library) else {
            throw HarnessError(description: "\(library) is missing: `swift build` builds it (product NanaFaultVFS)")
        }
        let folder = folder ?? NSTemporaryDirectory() + "nanad-fault-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let control = FaultControl(path: folder + "/faults")
        try control.clear()
        let daemon = try await Daemon.start(folder: folder, environment: ["LD_PRELOAD": library, "NANA_FAULT_CONTROL": control.path])
        return (daemon, control)
    }

    static func expectIOError(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async -> NanaRemoteError? {
        do {
            try await body()
            Issue.record("the call succeeded though its I/O failed", sourceLocation: sourceLocation)
        } catch let error as NanaRemoteError {
            #expect(error.type == .database && error.message.contains("I/O error"), "\(error)", sourceLocation: sourceLocation)
            return error
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
        return nil
    }

    /// A key's value as another OS process (nanactl) reads it, or nil when missing.
    static func readElsewhere(_ daemon: Daemon, db: String, _ key: String) async throws -> String? {
        let run = try await runTool("nanactl", ["--socket", daemon.socketPath, "--db", db, "get", key])
        return run.status == 0 ? run.stdout.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }

    @Test func aFailedCommitFailsOnlyItsCallersAndLeavesNothingCached() async throws {
        let (daemon, faults) = try await Self.start()
        defer { daemon.removeFolder() }
        let writer = try await daemon.connect()
        let reader = try await daemon.connect()
        let db = try await writer.open("f.db")
        let near = try await reader.open("f.db", nearCache: NanaNearCache())
        let other = try await reader.open("g.db")
        try await db.set("k", "old")
        #expect(try await near.get("k") == "old")  // in the reader's near-cache now

        try faults.arm("write 1 ioerr once f.db-wal")
        let error = await Self.expectIOError { try await db.set("k", "new") }
        #expect(error?.message.contains("nothing in it was stored") == true, "\(String(describing: error))")
        #expect(faults.injected == ["write ioerr \(daemon.dataDirectory)/f.db-wal"])
        // Nobody sees the write that failed: not the writer, not another connection's
        // near-cache or the daemon's cache, not another process.
        #expect(try await db.get("k") == "old")
        #expect(try await near.get("k") == "old")
        #expect(try await Self.readElsewhere(daemon, db: "f.db", "k") == "\"old\"")
        // Other files and the next write are not affected.
        try await other.set("elsewhere", 1)
        try await db.set("k", "newer")
        #expect(try await near.get("k") == "newer")
        #expect(try await Self.readElsewhere(daemon, db: "f.db", "k") == "\"newer\"")

        await writer.close()
        await reader.close()
        #expect(try await daemon.stop() == 0)
        let clean = try await Daemon.start(folder: daemon.folder)
        let check = try await clean.connect()
        #expect(try await check.open("f.db").get("k") == "newer")
        #expect(try await check.open("g.db").get("elsewhere") == 1)
        await check.close()
        _ = try await clean.stop()
    }

    @Test func writesFailWhileTheFaultLastsAndResumeWhenItStops() async throws {
        let (daemon, faults) = try await Self.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("f.db")
        var acknowledged: [String: NanaValue] = [:]
        for i in 0..<50 {
            try await db.set("a\(i)", .int(Int64(i)))
            acknowledged["a\(i)"] = .int(Int64(i))
        }
        try faults.arm("write 1 ioerr always f.db-wal")
        // Concurrent writers: each call fails by itself, none hangs, the daemon stays up.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 {
                group.addTask { _ = await Self.expectIOError { try await db.set("failed\(i)", "x") } }
            }
            try await group.waitForAll()
        }
        #expect(faults.injected.count >= 1)
        // Reads keep working: cache hits, and misses that read the file.
        #expect(try await db.get("a7") == 7)
        try await db.clearCache()
        #expect(try await db.get("a8") == 8)
        #expect(try await db.contains("failed3") == false)
        try await client.ping()

        try faults.clear()
        try await db.set("after", "stored")
        acknowledged["after"] = "stored"
        await client.close()
        #expect(try await daemon.stop() == 0)

        let clean = try await Daemon.start(folder: daemon.folder)
        let check = try await clean.connect()
        let reopened = try await check.open("f.db")
        let found = try await reopened.batchGet(Array(acknowledged.keys) + (0..<8).map { "failed\($0)" })
        #expect(found.count == acknowledged.count, "every acknowledged write and none that failed: \(found.count)")
        for (key, value) in acknowledged { #expect(found[NanaKey(key)] == value) }
        await check.close()
        _ = try await clean.stop()
        #expect(try await DiskFullTests.integrityCheck(daemon.dataDirectory + "/f.db") == "ok")
    }

    @Test func aFullWALIsRetriedOnceAfterMakingRoomAndRefusedWhileItLasts() async throws {
        let (daemon, faults) = try await Self.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("f.db")
        try await db.set("before", 1)
        // One refusal: the writer truncates the WAL and the retry stores the write.
        try faults.arm("write 1 full once f.db-wal")
        try await db.set("retried", 2)
        #expect(faults.injected.count == 1)
        var stats = try await DiskFullTests.stats(client)
        #expect(stats["disk_full_episodes"] == 0, "a write the retry stored is not refused")
        // Refusals that last: refused with the disk-full error, until they stop.
        try faults.arm("write 1 full always f.db-wal")
        for i in 0..<3 {
            do {
                try await db.set("refused\(i)", 3)
                Issue.record("a write succeeded on a full disk")
            } catch let error as NanaRemoteError {
                #expect(error.message.contains("disk is full"), "\(error)")
            }
        }
        stats = try await DiskFullTests.stats(client)
        #expect(stats["disk_full"] == true && stats["disk_full_episodes"] == 1)
        try faults.clear()
        try await db.set("resumed", 4)
        stats = try await DiskFullTests.stats(client)
        #expect(stats["disk_full"] == false)
        await client.close()
        #expect(try await daemon.stop() == 0)

        let clean = try await Daemon.start(folder: daemon.folder)
        let check = try await clean.connect()
        let found = try await check.open("f.db").batchGet(["before", "retried", "resumed", "refused0", "refused1", "refused2"])
        #expect(found == ["before": 1, "retried": 2, "resumed": 4])
        await check.close()
        _ = try await clean.stop()
    }

    @Test func aReadFaultFailsThatReadAndTheNextSucceeds() async throws {
        let (daemon, faults) = try await Self.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        var db = try await client.open("f.db")
        for i in 0..<20 { try await db.set("r\(i)", .int(Int64(i))) }
        try await db.close()
        // Closed and checkpointed: the rows are in the main file, read through the VFS.
        let closed = try await FileLifecycleTests.eventually {
            if try await client.call("close_file", ["db_path": "f.db"]) == true { return true }
            return try await FileLifecycleTests.serverStats(client)["open_files"] == 0
        }
        #expect(closed)
        db = try await client.open("f.db")
        try faults.arm("read 1 ioerr once f.db")
        _ = await Self.expectIOError { _ = try await db.get("r5") }
        #expect(faults.injected.count == 1)
        #expect(try await db.get("r5") == 5)
        #expect(try await db.get("r6") == 6)
        try await db.set("w", 1)
        try await client.ping()
        await client.close()
        _ = try await daemon.stop()
    }

    @Test func aLockOrSyncFaultLosesNothing() async throws {
        let (daemon, faults) = try await Self.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("f.db")
        try await db.set("first", 1)
        // The writer's lock fails (in WAL mode a shared-memory lock): that transaction fails,
        // the next one runs.
        try faults.arm("shmlock 1 ioerr once f.db")
        _ = await Self.expectIOError { try await db.set("locked", 2) }
        #expect(faults.injected.count == 1)
        try await db.set("second", 3)
        // Every sync of the WAL fails: the checkpoints fail (the log says so), no write does.
        try faults.arm("sync 1 ioerr always f.db-wal")
        var rows = NanaParams()
        for i in 0..<1500 { rows["bulk\(i)"] = .string(String(repeating: "b", count: 3000)) }
        try await db.batchUpdate(rows)
        for i in 0..<5 { try await db.set("tick\(i)", .int(Int64(i))) }
        let syncFailed = try await FileLifecycleTests.eventually {
            try await db.set("tick", 0)
            return faults.injected.contains { $0.hasPrefix("sync") }
        }
        #expect(syncFailed, "a checkpoint tried to sync the WAL: \(faults.injected)")
        #expect(daemon.logText.contains("checkpoint failed"))
        try faults.clear()
        try await db.set("last", 4)
        await client.close()
        #expect(try await daemon.stop() == 0)

        let clean = try await Daemon.start(folder: daemon.folder)
        let check = try await clean.connect()
        let reopened = try await check.open("f.db")
        let found = try await reopened.batchGet(["first", "locked", "second", "last", "bulk0", "bulk1499"])
        #expect(found.keys.sorted() == ["bulk0", "bulk1499", "first", "last", "second"])
        #expect(try await reopened.count(table: nil) == 1500 + 3 + 5 + 1)
        await check.close()
        _ = try await clean.stop()
        #expect(try await DiskFullTests.integrityCheck(daemon.dataDirectory + "/f.db") == "ok")
    }

    /// A write-behind flush the disk fails goes by NanaSQLite's rule: row by row, and the rows
    /// that still fail wait in the dead-letter queue (their staged values no longer answer
    /// reads), from where `retry_dlq` stores them once the fault stops.
    @Test func writeBehindRowsAnIOErrorFailsWaitInTheDeadLetterQueue() async throws {
        let (daemon, faults) = try await Self.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("f.db", options: NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .manual)))
        try await db.set("k", "flushed")
        try await db.flush(wait: true)
        try faults.arm("write 1 ioerr always f.db-wal")
        try await db.set("k", "staged")
        try await db.set("n", "new")
        #expect(try await db.get("k") == "staged")
        try await db.flush(wait: true)
        let letters = try await db.deadLetters()
        #expect(Set(letters.map(\.key)) == ["k", "n"], "\(letters)")
        #expect(letters.allSatisfy { $0.error.contains("I/O error") }, "\(letters.map(\.error))")
        // Not in the file, so not in the cache either: the committed value answers.
        #expect(try await db.get("k") == "flushed")
        #expect(try await db.contains("n") == false)
        try faults.clear()
        #expect(try await db.retryDeadLetters() == 2)
        try await db.flush(wait: true)
        #expect(try await db.deadLetters().isEmpty)
        await client.close()
        #expect(try await daemon.stop() == 0)

        let clean = try await Daemon.start(folder: daemon.folder)
        let check = try await clean.connect()
        #expect(try await check.open("f.db").batchGet(["k", "n"]) == ["k": "staged", "n": "new"])
        await check.close()
        _ = try await clean.stop()
    }
}
