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
