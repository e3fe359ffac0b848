import Foundation
import NanaClient
import NanaWire
import Testing

/// `backup` and `restore` with NanaSQLite 1.6's semantics, while other processes use the file.
@Suite(.serialized) struct BackupRestoreTests {
    @Test func backupWhileOtherProcessesWriteIsAConsistentCheckedCopy() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("live.db")
        let workers = Task {
            try await withThrowingTaskGroup(of: ToolRun.self) { group in
                for worker in 0..<4 {
                    group.addTask {
                        try await runTool("nanabench", ["worker", "--socket", daemon.socketPath, "--db", "live.db",
                                                        "--prefix", "w\(worker)", "--count", "2000", "--concurrency", "8"])
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
        }
        var snapshots: [Int] = []
        for round in 0..<3 {
            try await db.backup(to: "snap-\(round).db")
            let path = daemon.dataDirectory + "/snap-\(round).db"
            #expect(try await runShell("sqlite3", [path, "PRAGMA integrity_check"]) == "ok")
            snapshots.append(Int(try await runShell("sqlite3", [path, "SELECT COUNT(*) FROM data"])) ?? -1)
        }
        for run in try await workers.value { #expect(run.status == 0, "\(run.stderr)") }
        #expect(snapshots.allSatisfy { (0...8000).contains($0) }, "\(snapshots)")
        try await db.backup(to: "final.db")
        #expect(try await runShell("sqlite3", [daemon.dataDirectory + "/final.db", "SELECT COUNT(*) FROM data"]) == "8000")
        // No temporary files are left behind.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: daemon.dataDirectory).filter { $0.hasSuffix(".tmp") }
        #expect(leftovers.isEmpty)
        await client.close()
        try await daemon.stop()
    }

    @Test func restoreIsSeenByEveryConnectedProcess() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("app.db")
        let users = try await db.table("users")
        try await db.set("version", 1)
        try await users.set("ada", ["age": 36])
        try await db.backup(to: "v1.db")

        try await db.set("version", 2)
        try await db.set("extra", true)
        try await users.delete("ada")
        let other = try await daemon.connect()
        let otherView = try await other.open("app.db")
        #expect(try await otherView.get("version") == 2)  // cached in the daemon

        try await db.restore(from: "v1.db")
        #expect(try await otherView.get("version") == 1)
        #expect(try await otherView.contains("extra") == false)
        #expect(try await users.get("ada") == ["age": 36])
        let fromAnotherProcess = try await runTool("nanactl", ["get", "--socket", daemon.socketPath, "--db", "app.db", "version"])
        #expect(fromAnotherProcess.stdout == "1\n")
        try await db.set("after", "restore")  // the file keeps working
        #expect(try await otherView.get("after") == "restore")
        await other.close()
        await client.close()
        try await daemon.stop()
    }

    @Test func badPathsAndBadSourcesAreRefusedAndTouchNothing() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("safe.db")
        try await db.set("k", "v")
        await expectRemote(.validation) { try await db.backup(to: "/tmp/outside.db") }
        await expectRemote(.validation) { try await db.backup(to: "../outside.db") }
        await expectRemote(.validation) { try await db.backup(to: "safe.db") }
        await expectRemote(.validation) { try await db.backup(to: ":memory:") }
        _ = try await client.open("served.db")
        await expectRemote(.validation) { try await db.backup(to: "served.db") }
        await expectRemote(.validation) { try await db.restore(from: "/etc/passwd") }
        await expectRemote(.database) { try await db.restore(from: "missing.db") }
        try Data("this is not a database".utf8).write(to: URL(fileURLWithPath: daemon.dataDirectory + "/garbage.db"))
        await expectRemote(.database) { try await db.restore(from: "garbage.db") }
        let child = try await db.table("child")
        await expectRemote(.connection) { try await child.restore(from: "garbage.db") }
        try await db.beginTransaction()
        await expectRemote(.transaction) { try await db.restore(from: "garbage.db") }
        try await db.rollback()
        #expect(try await db.get("k") == "v")
        #expect(!FileManager.default.fileExists(atPath: "/tmp/outside.db"))
        await client.close()
        try await daemon.stop()
    }

    /// A backup is renamed over its destination; beside a `-wal` (the file is open elsewhere,
    /// or was not closed cleanly) SQLite would lay that WAL over the copy, so it is refused,
    /// and the files are left as they were.
    @Test func aBackupIsNotRenamedOverAFileWithAWALBesideIt() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("live.db")
        try await db.set("k", "v")
        let target = daemon.dataDirectory + "/other.db"
        let script = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('PRAGMA journal_mode=WAL'); c.execute('CREATE TABLE t (x)'); c.execute('INSERT INTO t VALUES (1)'); c.commit(); input()"
        // Another SQLite client holds other.db open in WAL mode while the backup is asked for.
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        holder.arguments = ["python3", "-c", script, target]
        let stdin = Pipe()
        holder.standardInput = stdin
        try holder.run()
        defer { if holder.isRunning { holder.terminate() } }
        let opened = try await FileLifecycleTests.eventually { FileManager.default.fileExists(atPath: target + "-wal") }
        #expect(opened)
        do {
            try await db.backup(to: "other.db")
            Issue.record("a backup replaced a file another client has open")
        } catch let error as NanaRemoteError {
            #expect(error.type == .validation && error.message.contains("-wal"), "\(error)")
        }
        stdin.fileHandleForWriting.write(Data("\n".utf8))
        await blocking { holder.waitUntilExit() }
        let rows = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["python3", "-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('SELECT x FROM t').fetchall())", target])
        #expect(rows.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "[(1,)]", "other.db is untouched: \(rows.stdout) \(rows.stderr)")
        // Closed cleanly (no -wal left), the same backup goes through; so it does beside an
        // empty -wal (a read-only connection, such as a restore's source, leaves one).
        #expect(!FileManager.default.fileExists(atPath: target + "-wal"))
        try await db.backup(to: "other.db")
        _ = FileManager.default.createFile(atPath: target + "-wal", contents: Data())
        try await db.backup(to: "other.db")
        await client.close()
    }

    @Test func codableModelsUseNanaSQLitesWrapper() async throws {
        struct User: Codable, Equatable { var name: String; var age: Int }
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("models.db")
        try await db.setModel("u", User(name: "Ada", age: 36))
        #expect(try await db.getModel("u", as: User.self) == User(name: "Ada", age: 36))
        #expect(try await db.get("u") == ["__pydantic_model__": "User", "__pydantic_data__": ["name": "Ada", "age": 36]])
        try await db.set("plain", ["name": "Bob", "age": 7])
        #expect(try await db.getModel("plain", as: User.self) == User(name: "Bob", age: 7))
        await expectRemote(.keyError) { _ = try await db.getModel("nobody", as: User.self) }
        await client.close()
        try await daemon.stop()
    }
}
