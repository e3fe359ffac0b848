import Foundation
import NanaClient
import NanaWire
import Testing

/// Files nobody uses are closed, and files changed underneath (deleted, renamed, replaced,
/// sidecars overwritten) are noticed, never trusted: this process changes the files of a real
/// nanad, which must not crash, lose an acknowledged write, or write into a file that is gone.
@Suite(.serialized) struct FileLifecycleTests {
    static func serverStats(_ client: NanaClient) async throws -> NanaValue {
        try await client.call("stats", [:])["server"] ?? .nil
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    /// The daemon's threads of that name, from /proc (names are cut at 15 bytes).
    static func threads(of daemon: Daemon, named name: String) -> Int {
        let tasks = "/proc/\(daemon.process.processIdentifier)/task"
        let ids = (try? FileManager.default.contentsOfDirectory(atPath: tasks)) ?? []
        return ids.filter { id in
            (try? String(contentsOfFile: "\(tasks)/\(id)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) == name
        }.count
    }

    /// Polls `condition` every 50 ms for up to `seconds`.
    static func eventually(_ seconds: Double = 10, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return try await condition()
    }

    /// Writes `bytes` over `path` in place (O_TRUNC: the inode stays), as `cp` does.
    static func overwrite(_ path: String, with bytes: [UInt8]) throws {
        let fd = Glibc.open(path, O_WRONLY | O_TRUNC)
        guard fd >= 0 else { throw HarnessError(description: "cannot open \(path)") }
        defer { Glibc.close(fd) }
        _ = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
    }

    static func expectReplaced(_ body: () async throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) async {
        do {
            try await body()
            Issue.record("a call on a replaced file succeeded", sourceLocation: sourceLocation)
        } catch let error as NanaRemoteError {
            #expect(error.type == .database && error.message.contains("changed underneath"), "\(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("\(error)", sourceLocation: sourceLocation)
        }
    }

    @Test func aFileNobodyUsesIsClosedWithItsSidecars() async throws {
        let daemon = try await Daemon.start(arguments: ["--close-idle-files-after", "0.3"])
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let path = daemon.dataDirectory + "/idle.db"
        var db = try await client.open("idle.db")
        try await db.set("k", "v")
        #expect(Self.exists(path + "-wal") && Self.exists(path + "-shm"))
        #expect(Self.threads(of: daemon, named: "nanad-writer") == 1)
        try await db.close()
        #expect(try await Self.eventually { try await Self.serverStats(client)["open_files"] == 0 })
        let stats = try await Self.serverStats(client)
        #expect(stats["idle_files_closed"] == 1)
        #expect(Self.threads(of: daemon, named: "nanad-writer") == 0, "the file's writer stopped")
        #expect(!Self.exists(path + "-wal") && !Self.exists(path + "-shm"), "SQLite removes them at a clean close")
        // Opened afresh, with what was written.
        db = try await client.open("idle.db")
        #expect(try await db.get("k") == "v")
        // A file in use is not closed, however long it waits.
        try await Task.sleep(for: .milliseconds(800))
        #expect(try await Self.serverStats(client)["open_files"] == 1)
        #expect(try await client.call("close_file", ["db_path": "idle.db"]) == false)
        try await db.close()
        // Closed at once on request (unless the idle timer got there first).
        let closedNow = try await client.call("close_file", ["db_path": "idle.db"])
        let openFiles = try await Self.serverStats(client)["open_files"]
        #expect(openFiles == 0, "close_file answered \(closedNow)")
        await client.close()
        try await daemon.stop()
    }

    /// NanaSQLite's suite closes, deletes and reopens; an operator `rm`s a database.
    @Test func aDeletedFileIsNotServedAndNothingIsWrittenIntoIt() async throws {
        let daemon = try await Daemon.start()  // the idle delay (10 s) keeps the file open
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let path = daemon.dataDirectory + "/x.db"
        let held = try await client.open("x.db")
        try await held.set("old", 1)
        let other = try await client.open("other.db")
        try await other.set("safe", true)

        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        // The handle on the deleted file fails, cached read included; nothing is acknowledged.
        await Self.expectReplaced { try await held.set("lost", 2) }
        await Self.expectReplaced { _ = try await held.get("old") }
        // The path opens afresh: the old key is gone with the file.
        let fresh = try await client.open("x.db")
        #expect(try await fresh.get("old") == nil)
        try await fresh.set("new", 3)
        #expect(try await other.get("safe") == true, "other databases are unaffected")
        #expect(try await Self.serverStats(client)["replacements_detected"] == 1)
        await client.close()
        try await daemon.stop()

        // Every acknowledged write is in the file at the path.
        let again = try await Daemon.start(folder: daemon.folder)
        let reader = try await again.connect()
        let check = try await reader.open("x.db")
        #expect(try await check.get("new") == 3)
        #expect(try await check.get("lost") == nil)
        #expect(try await check.get("old") == nil)
        await reader.close()
        try await again.stop()
        #expect(again.logText.contains("changed underneath") == false)
        #expect(daemon.logText.components(separatedBy: "changed underneath").count == 2, "logged once")
    }

    @Test func aFileRenamedAwayOrReplacedWhileHeldIsNotWritten() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let dir = daemon.dataDirectory
        let db = try await client.open("app.db")
        try await db.set("a", 1)
        try await db.backup(to: "copy.db")
        try await db.set("a", 2)

        // Renamed away: the handle fails; the renamed file keeps what was acknowledged (the
        // old open checkpoints into it as it closes, and SQLite removes its sidecars).
        #expect(rename(dir + "/app.db", dir + "/moved.db") == 0)
        await Self.expectReplaced { try await db.set("a", 3) }
        #expect(try await Self.eventually { !Self.exists(dir + "/app.db-wal") }, "\(daemon.logText.suffix(3000)) \((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])")
        let moved = try await client.open("moved.db")
        #expect(try await moved.get("a") == 2)

        // Replaced by a copy, while nobody holds the path (a restore by `cp`)…
        #expect(copyfile(dir + "/copy.db", dir + "/app.db"))
        let restored = try await client.open("app.db")
        #expect(try await restored.get("a") == 1, "what the path names now")
        try await restored.set("b", 1)
        // …and while a client holds it.
        let tmp = dir + "/.swap.db"
        #expect(copyfile(dir + "/copy.db", tmp))
        #expect(rename(tmp, dir + "/app.db") == 0)
        await Self.expectReplaced { try await restored.set("b", 2) }
        let second = try await client.open("app.db")
        #expect(try await second.get("a") == 1)
        #expect(try await second.get("b") == nil, "the replaced file's writes are not replayed over the new one")
        try await second.set("c", 1)
        #expect(try await second.get("c") == 1)
        #expect(try await Self.serverStats(client)["replacements_detected"]?.int64Value ?? 0 >= 2)
        await client.close()
        try await daemon.stop()
    }

    /// A transaction on a file deleted underneath: its COMMIT is refused (nothing acknowledged
    /// into the unlinked file), and the session's next open of the path is not held up by it
    /// (nanafuzz-dispatch found an open whose work waited for that transaction's BEGIN).
    @Test func aTransactionOnADeletedFileCommitsNothingAndHoldsNothingUp() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let path = daemon.dataDirectory + "/t.db"
        let db = try await client.open("t.db")
        try await db.set("before", 1)
        try await db.beginTransaction()
        try await db.set("inside", 2)
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
        // Opening another table of the path while the transaction is open opens the new file
        // there, outside the transaction (which belongs to the file that was deleted).
        let again = try await client.open("t.db", table: "other")
        try await again.set("x", 1)
        #expect(try await again.get("x") == 1)
        // The transaction went with the file it was on: its COMMIT says so (once).
        do {
            try await db.commit()
            Issue.record("a transaction on a deleted file committed")
        } catch let error as NanaRemoteError {
            #expect(error.type == .transaction && error.message.contains("changed underneath"), "\(error)")
        }
        let data = try await client.open("t.db")
        let inside = try await data.get("inside"), before = try await data.get("before")
        #expect(inside == nil && before == nil, "a fresh file at the path")
        await client.close()
        try await daemon.stop()
    }

    /// `cp backup.db app.db` writes over the same inode.
    @Test func aFileOverwrittenInPlaceIsNoticed() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let dir = daemon.dataDirectory
        let db = try await client.open("inplace.db")
        try await db.set("v", "original")
        try await db.backup(to: "snapshot.db")
        try await db.set("v", "later")
        try await db.close()  // nobody holds it; nanad keeps it open for the idle delay
        let snapshot = try [UInt8](Data(contentsOf: URL(fileURLWithPath: dir + "/snapshot.db")))
        try Self.overwrite(dir + "/inplace.db", with: snapshot)
        let reopened = try await client.open("inplace.db")
        #expect(try await reopened.get("v") == "original", "the copy, not the old file's WAL over it")
        try await reopened.set("w", 1)
        #expect(try await reopened.get("w") == 1)
        await client.close()
        try await daemon.stop()
    }

    /// NanaSQLite's test for stale sidecars overwrites `-shm` of a closed database; that killed
    /// nanad with SIGBUS. Then the same with the file in use, and with the `-wal`.
    @Test func overwrittenSidecarsNeverTakeTheDaemonDown() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let dir = daemon.dataDirectory
        let bystander = try await client.open("bystander.db")
        try await bystander.set("k", "v")

        var db = try await client.open("z.db")
        for i in 0..<50 { try await db.set("k\(i)", .int(Int64(i))) }
        try await db.close()
        try Self.overwrite(dir + "/z.db-shm", with: Array("not a wal-index".utf8))
        db = try await client.open("z.db")
        #expect(try await db.get("k49") == 49, "the WAL's rows, recovered by SQLite")
        try await db.set("after", 1)

        // In use: the next write fails with the clear error, and the path opens again.
        try Self.overwrite(dir + "/z.db-shm", with: [])
        await Self.expectReplaced { try await db.set("during", 1) }
        db = try await client.open("z.db")
        #expect(try await db.get("after") == 1)
        #expect(try await db.get("during") == nil)

        // A -wal overwritten in place with less (garbage), while nobody holds the file.
        try await db.close()
        try Self.overwrite(dir + "/z.db-wal", with: Array(repeating: 0x5a, count: 100))
        db = try await client.open("z.db")
        _ = try await db.get("k1")  // served from the file as it is now (what the WAL held is gone with it)
        try await db.set("y", 1)
        #expect(try await db.get("y") == 1)

        // A -wal replaced by another file: the database file is intact.
        let wal = dir + "/z.db-wal"
        #expect(copyfile(wal, dir + "/.wal-copy") && rename(dir + "/.wal-copy", wal) == 0)
        await Self.expectReplaced { try await db.set("x", 1) }
        db = try await client.open("z.db")
        try await db.set("x", 2)
        #expect(try await db.get("x") == 2)

        #expect(try await bystander.get("k") == "v")
        #expect(try await client.call("ping", [:]) == "pong")
        await client.close()
        #expect(try await daemon.stop() == 0, "nanad exited cleanly: \(daemon.logText.suffix(2000))")
    }
}

extension FileLifecycleTests {
    @Test func nanactlListsTheFilesAndClosesAnIdleOne() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let used = try await client.open("used.db")
        try await used.set("k", 1)
        let idle = try await client.open("idle.db")
        try await idle.close()
        let ctl = { (args: [String]) in try await runTool("nanactl", ["--socket", daemon.socketPath] + args) }
        let listing = try await ctl(["files", "--json"])
        #expect(listing.status == 0)
        let files = try JSONReader.value(from: Array(listing.stdout.utf8)).arrayValue ?? []
        #expect(files.compactMap { $0["path"]?.stringValue?.split(separator: "/").last.map(String.init) }.sorted() == ["idle.db", "used.db"])
        #expect(files.first { $0["path"]?.stringValue?.hasSuffix("/used.db") == true }?["sessions"] == 1)
        #expect(try await ctl(["files", "--close", "used.db"]).status == 3, "in use")
        let closed = try await ctl(["files", "--close", "idle.db"])
        #expect(closed.status == 0 && closed.stdout.contains("closed idle.db"))
        #expect(try await Self.serverStats(client)["open_files"] == 1)
        #expect(try await ctl(["files"]).stdout.contains("1 open, 1 closed while idle"))
        await client.close()
        try await daemon.stop()
    }
}

/// Copies a file, as `cp` does into a new file.
private func copyfile(_ from: String, _ to: String) -> Bool {
    FileManager.default.createFile(atPath: to, contents: FileManager.default.contents(atPath: from))
}
