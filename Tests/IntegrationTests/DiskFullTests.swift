import Foundation
import NanaClient
import NanaWire
import Testing

/// A full disk under a real nanad: its data folder is a small tmpfs (CI runs as root). Writes
/// are refused with an error that says the disk is full, reads and other tables keep working,
/// writes resume by themselves once space is freed, write-behind rows wait staged, and no
/// acknowledged write is missing afterwards.
@Suite(.serialized) struct DiskFullTests {
    /// A tmpfs of `megabytes` mounted at `path`; the test fails (it does not skip) where the
    /// machine does not allow it.
    struct Mount {
        let path: String

        init(at path: String, megabytes: Int) async throws {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            let run = try await runProgram(URL(fileURLWithPath: "/bin/mount"), ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
            guard run.status == 0 else {
                throw HarnessError(description: "this test needs to mount a tmpfs (run as root, with mount allowed): mount exited \(run.status): \(run.stderr)")
            }
            self.path = path
        }

        func unmount() async {
            _ = try? await runProgram(URL(fileURLWithPath: "/bin/umount"), ["-l", path])
        }
    }

    /// The one open file's stats.
    static func stats(_ client: NanaClient) async throws -> NanaValue {
        try await client.stats()["databases"]?.arrayValue?.first ?? .nil
    }

    /// A value of about 500 bytes, different for every key.
    static func value(_ key: String) -> NanaValue { .string(key + String(repeating: "x", count: 500)) }

    /// Writes new keys until one is refused; returns the keys acknowledged and the refusal.
    static func fill(_ db: NanaDatabase, prefix: String, limit: Int = 20_000) async throws -> (acknowledged: [String], refusal: NanaRemoteError?) {
        var acknowledged: [String] = []
        for i in 0..<limit {
            let key = "\(prefix)\(i)"
            do {
                try await db.set(key, value(key))
                acknowledged.append(key)
            } catch let error as NanaRemoteError {
                return (acknowledged, error)
            }
        }
        return (acknowledged, nil)
    }

    /// SQLite's `integrity_check` of a file nanad no longer holds, run by another program.
    static func integrityCheck(_ path: String) async throws -> String {
        let script = "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])"
        let run = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, path])
        return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + run.stderr
    }

    static func filler(at path: String, bytes: Int) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(repeating: 0x5a, count: bytes))
    }

    /// A nanad whose data folder is a 3 MB tmpfs, shared with a filler file.
    final class SmallDisk: @unchecked Sendable {
        let folder: String
        let data: String
        var filler: String { data + "/filler" }
        var daemon: Daemon

        init(folder: String, data: String, daemon: Daemon) {
            self.folder = folder
            self.data = data
            self.daemon = daemon
        }

        /// Stops nanad with SIGTERM (it must exit 0) and starts a fresh one on the same folder.
        func restart() async throws {
            #expect(try await daemon.stop() == 0)
            daemon = try await Daemon.start(folder: folder)
        }
    }

    /// Runs `body` on a `SmallDisk` with `fillerBytes` taken by the filler; stops nanad and
    /// unmounts the tmpfs however `body` ends.
    static func onSmallDisk(fillerBytes: Int, _ body: (SmallDisk) async throws -> Void) async throws {
        let folder = NSTemporaryDirectory() + "nanad-full-" + UUID().uuidString.prefix(8)
        let mount = try await Mount(at: folder + "/data", megabytes: 3)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        do {
            let disk = SmallDisk(folder: folder, data: mount.path, daemon: try await Daemon.start(folder: folder))
            Self.filler(at: disk.filler, bytes: fillerBytes)
            do {
                try await body(disk)
            } catch {
                _ = try? await disk.daemon.stop(SIGKILL)
                throw error
            }
            _ = try await disk.daemon.stop()
        } catch {
            await mount.unmount()
            throw error
        }
        await mount.unmount()
    }

    @Test func aFullDiskRefusesWritesClearlyAndTheyResumeWhenSpaceIsFreed() async throws {
        try await Self.onSmallDisk(fillerBytes: 1_500_000) { disk in
            let client = try await disk.daemon.connect()
            let db = try await client.open("full.db")
            let other = try await client.open("full.db", table: "other")
            try await other.set("before", "kept")

            // Fill: refused with an error that says why.
            let first = try await Self.fill(db, prefix: "a")
            let refusal = try #require(first.refusal, "the disk never filled")
            // 1.5 MB free holds about 2,500 values of 500 bytes. Had the WAL been left to grow to
            // the idle checkpoint's 4 MB, 167 fitted.
            #expect(first.acknowledged.count >= 1000, "\(first.acknowledged.count) writes fit in 1.5 MB before the disk filled")
            #expect(refusal.type == .database && refusal.message.contains("disk is full") && refusal.message.contains("no room"), "\(refusal)")
            // Refused again while full, and only one episode so far.
            for i in 0..<20 {
                await #expect(throws: NanaRemoteError.self) { try await db.set("refused\(i)", Self.value("refused\(i)")) }
            }
            var stats = try await Self.stats(client)
            #expect(stats["disk_full"] == true)
            #expect(stats["disk_full_episodes"] == 1)
            #expect((stats["disk_full_refused_writes"]?.int64Value ?? 0) >= 21)
            // Reads, the other table's included, and the cache never answer a refused write.
            #expect(try await db.get(first.acknowledged.last!) == Self.value(first.acknowledged.last!))
            #expect(try await other.get("before") == "kept")
            #expect(try await db.contains("refused3") == false)
            #expect(try await db.get("refused3", default: "none") == "none")

            // Free: writes resume by themselves, no restart, and the episode ends.
            try FileManager.default.removeItem(atPath: disk.filler)
            try await db.set("after-free", "stored")
            stats = try await Self.stats(client)
            #expect(stats["disk_full"] == false)
            let second = try await Self.fill(db, prefix: "b")
            #expect(second.refusal != nil)
            #expect(second.acknowledged.count >= 1000, "\(second.acknowledged.count) writes fit in the 1.5 MB freed")
            print("disk full: \(first.acknowledged.count) writes in 1.5 MB, \(second.acknowledged.count) after freeing 1.5 MB")
            stats = try await Self.stats(client)
            #expect(stats["disk_full_episodes"] == 2)
            let log = disk.daemon.logText
            let starts = log.components(separatedBy: "disk full: writes to this database are refused").count - 1
            #expect(starts == 2, "one log line per episode, not per write: \(starts)")
            #expect(log.components(separatedBy: "disk has room again").count - 1 == 1)

            // Every acknowledged write is in the file: read back from a fresh daemon.
            await client.close()
            try await disk.restart()
            let reader = try await disk.daemon.connect()
            let check = try await reader.open("full.db")
            let missing = try await check.batchGet(first.acknowledged + second.acknowledged + ["after-free"]).count
            #expect(missing == first.acknowledged.count + second.acknowledged.count + 1, "every acknowledged write is there")
            #expect(try await check.contains("refused3") == false)
            await reader.close()
            #expect(try await disk.daemon.stop() == 0)
            #expect(try await Self.integrityCheck(disk.data + "/full.db") == "ok")
        }
    }

    @Test func writeBehindRowsWaitStagedWhileTheDiskIsFullAndReachTheFileAfter() async throws {
        try await Self.onSmallDisk(fillerBytes: 1_000_000) { disk in
            let client = try await disk.daemon.connect()
            let plain = try await client.open("v2.db")
            let staged = try await client.open("v2.db", table: "staged", options: NanaOpenOptions(writeBehind: NanaWriteBehind()))
            // Fill the disk through the write-through table.
            _ = try await Self.fill(plain, prefix: "p")
            // Staged writes are acknowledged (they are in memory), and read back, while the
            // flusher finds no room.
            let keys = (0..<200).map { "s\($0)" }
            for key in keys { try await staged.set(key, Self.value(key)) }
            try await staged.flush(wait: true)
            var stats = try await Self.stats(client)
            #expect(stats["disk_full"] == true)
            #expect((stats["v2_staged"]?.int64Value ?? 0) > 0, "the rows wait staged: \(stats)")
            #expect(stats["dlq"] == 0, "a full disk is no row's fault: nothing goes to the dead-letter queue")
            #expect(try await staged.get("s7") == Self.value("s7"))

            // Space freed: the flusher retries by itself and the rows reach the file.
            try FileManager.default.removeItem(atPath: disk.filler)
            let flushed = try await FileLifecycleTests.eventually(10) {
                (try await Self.stats(client)["v2_staged"]) == 0
            }
            #expect(flushed, "the staged rows were flushed once space was freed")
            stats = try await Self.stats(client)
            #expect(stats["disk_full"] == false)
            #expect(stats["dlq"] == 0)

            await client.close()
            try await disk.restart()
            let reader = try await disk.daemon.connect()
            let check = try await reader.open("v2.db", table: "staged")
            #expect(try await check.batchGet(keys).count == keys.count, "every staged row is in the file")
            await reader.close()
        }
    }

    /// A burst grows the WAL far past the idle checkpoint; once checkpointed, the next commit
    /// truncates it back to `journal_size_limit` (4 MB) instead of keeping it at its largest.
    /// nanad's own truncation is not taken for someone cutting the WAL underneath: not by the
    /// readers looking meanwhile, and not when it happens at a client transaction's COMMIT.
    @Test func theWALGivesItsSpaceBackAfterABurst() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("burst.db")
        let wal = daemon.dataDirectory + "/burst.db-wal"
        @Sendable func walBytes() -> Int { ((try? FileManager.default.attributesOfItem(atPath: wal))?[.size] as? Int) ?? 0 }
        // One transaction of 12 MB: the WAL holds all of it until COMMIT.
        var rows = NanaParams()
        for i in 0..<12_000 { rows["k\(i)"] = .string(String(repeating: "v", count: 1000)) }
        // Readers on another connection the whole time: each get of a new key reads the file.
        let readerClient = try await daemon.connect()
        let reader = try await readerClient.open("burst.db")
        let reading = Task { () -> (reads: Int, error: String?) in
            var i = 0
            while !Task.isCancelled {
                do {
                    _ = try await reader.get("absent-\(i)")
                } catch is CancellationError {
                    break
                } catch {
                    return (i, "\(error)")
                }
                i += 1
            }
            return (i, nil)
        }
        try await db.batchUpdate(rows)
        let peak = walBytes()
        #expect(peak > 10_000_000, "the burst's WAL: \(peak) bytes")
        // The writer checkpoints at once (nothing else queued); the next commit, a client
        // transaction's, restarts the WAL and truncates it.
        let checkpointed = try await FileLifecycleTests.eventually {
            (try await DiskFullTests.stats(client)["checkpoints"]?.int64Value ?? 0) >= 1
        }
        #expect(checkpointed)
        try await db.beginTransaction()
        try await db.set("in-transaction", 1)
        try await db.commit()
        try await db.set("after", 2)
        #expect(walBytes() <= 4 << 20 + 64 << 10, "the WAL is \(walBytes()) bytes after its checkpoint (peak \(peak))")
        reading.cancel()
        let (reads, failure) = await reading.value
        #expect(failure == nil, "a read failed across the truncation: \(failure ?? "")")
        #expect(reads > 10, "the readers ran: \(reads) reads")
        #expect(try await db.get("after") == 2)
        #expect(try await DiskFullTests.stats(client)["path"] != nil)
        #expect(try await FileLifecycleTests.serverStats(client)["replacements_detected"] == 0, "\(daemon.logText.suffix(1500))")
        await readerClient.close()
        await client.close()
    }
}
