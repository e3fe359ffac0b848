import Foundation
import NanaClient
import NanaWire
import Testing

/// Behaviour that is about processes: the real nanad, with clients in other OS processes.
@Suite(.serialized) struct MultiProcessTests {
    @Test func fourProcessesWriting2000KeysEachLoseNothing() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let runs = try await withThrowingTaskGroup(of: ToolRun.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    try await runTool("nanabench", ["worker", "--socket", daemon.socketPath, "--db", "shared.db",
                                                    "--prefix", "w\(worker)", "--count", "2000", "--concurrency", "16"])
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for run in runs {
            #expect(run.status == 0, "worker failed: \(run.stderr)")
            #expect(run.stdout.contains("\"errors\": 0"), "\(run.stdout)")
        }
        let client = try await daemon.connect()
        let db = try await client.open("shared.db")
        #expect(try await db.count() == 8000)
        for worker in 0..<4 {
            let keys = (0..<2000).map { "w\(worker)-\($0)" }
            let values = try await db.batchGet(keys)
            #expect(values.count == 2000)
            #expect(values["w\(worker)-1999"] == ["worker": .string("w\(worker)"), "i": 1999])
        }
        await client.close()
        #expect(try await daemon.stop() == 0)
        // Every acknowledged write is in the file, as another process (the sqlite3 shell) sees it.
        let count = try await runShell("sqlite3", [daemon.dataDirectory + "/shared.db", "SELECT COUNT(*) FROM data"])
        #expect(count == "8000")
    }

    @Test func aWriteInOneProcessIsReadFreshInAnother() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("fresh.db")
        try await db.set("color", "blue")
        #expect(try await db.get("color") == "blue")  // now in the daemon's shared cache

        for color in ["green", "red", "violet"] {
            let writer = try await runTool("nanactl", ["set", "--socket", daemon.socketPath, "--db", "fresh.db", "color", "\"\(color)\""])
            #expect(writer.status == 0, "\(writer.stderr)")
            // This process reads the other process's write at once: nothing stale.
            #expect(try await db.get("color") == .string(color))
            let reader = try await runTool("nanactl", ["get", "--socket", daemon.socketPath, "--db", "fresh.db", "color"])
            #expect(reader.stdout == "\"\(color)\"\n")
        }
        let deleted = try await runTool("nanactl", ["delete", "--socket", daemon.socketPath, "--db", "fresh.db", "color"])
        #expect(deleted.status == 0)
        #expect(try await db.contains("color") == false)
        let missing = try await runTool("nanactl", ["get", "--socket", daemon.socketPath, "--db", "fresh.db", "color"])
        #expect(missing.status == 1)
        await client.close()
        try await daemon.stop()
    }

    @Test func sigtermAnswersInFlightCallsAndExitsZero() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("term.db")
        // Calls in flight when the signal arrives are answered before the daemon exits.
        let writes = Task {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<500 {
                    group.addTask {
                        do { try await db.set("k\(i)", .int(Int64(i))); return true } catch { return false }
                    }
                }
                return try await group.reduce(into: [Bool]()) { $0.append($1) }
            }
        }
        try await Task.sleep(for: .milliseconds(5))
        let status = try await daemon.stop(SIGTERM)
        let acknowledged = try await writes.value.filter { $0 }.count
        #expect(status == 0)
        #expect(!FileManager.default.fileExists(atPath: daemon.socketPath))
        #expect(daemon.logText.contains("nanad stopped"))
        // Everything acknowledged is in the file.
        let stored = Int(try await runShell("sqlite3", [daemon.dataDirectory + "/term.db", "SELECT COUNT(*) FROM data"])) ?? -1
        #expect(stored >= acknowledged)
        // And a call after the daemon is gone fails fast with a clear error.
        await #expect(throws: NanaClientError.self) { try await db.get("k1") }
    }

    @Test func refusesALiveSocketAndReplacesAStaleOne() async throws {
        let first = try await Daemon.start()
        defer { first.removeFolder() }
        let attrs = try FileManager.default.attributesOfItem(atPath: first.socketPath)
        #expect((attrs[.posixPermissions] as? NSNumber)?.intValue == 0o600)

        let second = try Daemon(folder: first.folder)
        let status = try await second.stop(0, timeout: .seconds(20))  // signal 0: just wait for it to exit
        #expect(status != 0)
        #expect(second.logText.contains("already serving"))

        try await first.stop(SIGKILL)  // leaves its socket file behind
        #expect(FileManager.default.fileExists(atPath: first.socketPath))
        let third = try await Daemon.start(folder: first.folder)
        let client = try await third.connect()
        try await client.ping()
        await client.close()
        #expect(try await third.stop() == 0)
    }

    @Test func aSocketPathTooLongForNIOIsRefusedWithoutTouchingWhatIsThere() async throws {
        // Linux takes Unix socket paths up to 107 bytes, NIO up to 103: another program may
        // listen on a path nanad cannot bind, and nanad must neither unlink it nor start.
        let folder = NSTemporaryDirectory() + "nanad-it-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let path = folder + "/" + String(repeating: "s", count: 105 - folder.utf8.count - 1)
        #expect(path.utf8.count == 105)
        let listener = try unixSocket(SOCK_STREAM, path: path, "bind", Glibc.bind)
        defer { close(listener) }
        #expect(listen(listener, 4) == 0)

        let run = try await runTool("nanad", ["--socket", path, "--data-dir", folder + "/data"])
        #expect(run.status != 0)
        #expect((run.stdout + run.stderr).contains("cannot use \(path) as the socket"), "\(run.stdout)\(run.stderr)")
        // The other program's socket is still there and still answers.
        let client = try unixSocket(SOCK_STREAM, path: path, "connect", Glibc.connect)
        close(client)
    }
}

func runShell(_ tool: String, _ arguments: [String]) async throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = [tool] + arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = await blocking { pipe.fileHandleForReading.readDataToEndOfFile() }
    await blocking { process.waitUntilExit() }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}
