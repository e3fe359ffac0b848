import Foundation
import NanaClient
import NanaWire
import Testing

/// Running under a supervisor, and who may connect (issue #5).
@Suite(.serialized) struct OperationsTests {
    /// The test plays systemd: it binds the notification socket and watches what arrives.
    @Test func readinessIsAnnouncedOnlyOnceTheSocketAccepts() async throws {
        let folder = NSTemporaryDirectory() + "nanad-notify-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let notifyPath = folder + "/notify.sock"
        let listener = try DatagramListener(path: notifyPath)
        let socketPath = folder + "/nanad.sock"

        let process = Process()
        process.executableURL = binFolder.appendingPathComponent("nanad")
        process.arguments = ["--socket", socketPath, "--data-dir", folder + "/data", "--log-level", "warning"]
        var environment = ProcessInfo.processInfo.environment
        environment["NOTIFY_SOCKET"] = notifyPath
        environment["WATCHDOG_USEC"] = "200000"
        process.environment = environment
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        let ready = try #require(await blocking { listener.receive(timeoutSeconds: 20) })
        #expect(ready.contains("READY=1"))
        // READY=1 means the socket already accepts: connect at once, no retry.
        let client = try await NanaClient.connect(socketPath: socketPath)
        try await client.ping()
        await client.close()
        let watchdog = await blocking { listener.receive(timeoutSeconds: 5) }
        #expect(watchdog?.contains("WATCHDOG=1") == true)

        kill(process.processIdentifier, SIGTERM)
        var stopping = false
        // Watchdog pings queued since READY come first; read until STOPPING or silence.
        for _ in 0..<10_000 {
            guard let message = await blocking({ listener.receive(timeoutSeconds: 5) }) else { break }
            if message.contains("STOPPING=1") { stopping = true; break }
        }
        #expect(stopping)
        await blocking { process.waitUntilExit() }
        #expect(process.terminationStatus == 0)
    }

    /// The test plays systemd's socket activation: it binds the socket and passes it as fd 3.
    @Test func socketActivationServesAPassedSocket() async throws {
        let folder = NSTemporaryDirectory() + "nanad-activate-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let socketPath = folder + "/activated.sock"
        // Python binds and listens, puts the socket at fd 3, sets LISTEN_PID to its own pid and
        // execs nanad in place (so the pid stays), as systemd does.
        let supervisor = """
        import os, socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sys.argv[1]); s.listen(64)
        os.dup2(s.fileno(), 3); os.set_inheritable(3, True)
        os.environ["LISTEN_FDS"] = "1"; os.environ["LISTEN_PID"] = str(os.getpid())
        os.execv(sys.argv[2], [sys.argv[2], "--socket", sys.argv[1] + ".unused", "--data-dir", sys.argv[3], "--log-level", "warning"])
        """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", supervisor, socketPath, binFolder.appendingPathComponent("nanad").path, folder + "/data"]
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        var client: NanaClient?
        for _ in 0..<200 where client == nil {
            client = try? await NanaClient.connect(socketPath: socketPath)
            if client == nil { try await Task.sleep(for: .milliseconds(25)) }
        }
        let connected = try #require(client)
        let db = try await connected.open("activated.db")
        try await db.set("k", "v")
        #expect(try await db.get("k") == "v")
        #expect(!FileManager.default.fileExists(atPath: socketPath + ".unused"))  // it did not bind its own
        await connected.close()
        kill(process.processIdentifier, SIGTERM)
        await blocking { process.waitUntilExit() }
        #expect(process.terminationStatus == 0)
        #expect(FileManager.default.fileExists(atPath: socketPath))  // the supervisor's socket is the supervisor's to remove
    }

    /// Shutdown is bounded: past the timeout nanad exits non-zero and says what was left.
    @Test func shutdownPastItsTimeoutExitsNonZeroSayingWhatWasLeft() async throws {
        let daemon = try await Daemon.start(arguments: ["--shutdown-timeout", "0.2"])
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("slow.db")
        var big = NanaParams()
        for i in 0..<300_000 { big["key-\(i)"] = .string("value \(i)") }
        let payload = big
        let slow = Task { try? await db.batchUpdate(payload) }
        // Wait until the daemon has the call in flight (it is then on the writer for a while).
        let watcher = try await daemon.connect()
        for _ in 0..<400 {
            if (try await watcher.stats()["server"]?["in_flight"]?.int64Value ?? 0) > 0 { break }
            try await Task.sleep(for: .milliseconds(10))
        }
        let status = try await daemon.stop(SIGTERM)
        _ = await slow.value
        #expect(status != 0)
        #expect(daemon.logText.contains("stopped without finishing"), "\(daemon.logText)")
    }

    /// A peer whose uid is not on the allow-list is refused before any method runs.
    @Test func statsReportBatchSizesTransactionWaitsAndWriteBehindState() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let holder = try await daemon.connect()
        let waiter = try await daemon.connect()
        let held = try await holder.open("stats.db")
        let other = try await waiter.open("stats.db")
        try await held.beginTransaction()
        try await held.set("in-tx", 1)
        // Another session's writes wait for the transaction.
        let pending = Task { for i in 0..<3 { try await other.set("w\(i)", .int(Int64(i))) } }
        try await Task.sleep(for: .milliseconds(200))
        try await held.commit()
        try await pending.value
        let v2 = try await waiter.open("stats.db", table: "staged", options: NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .manual)))
        try await v2.batchUpdate(["a": 1, "b": 2])
        let stats = try await waiter.stats()
        let db = try #require(stats["databases"]?.arrayValue?.first)
        #expect(db["client_transactions"] == 1)
        #expect((db["writes_delayed_by_transactions"]?.int64Value ?? 0) >= 1)
        #expect((db["client_transaction_ms"]?.doubleValue ?? 0) >= 150)
        let buckets = try #require(db["batch_sizes"]?.mapValue)
        #expect(buckets.values.compactMap(\.int64Value).reduce(0, +) >= 3)
        #expect(db["v2_staged"] == 2)
        #expect(db["dlq"] == 0)
        let table = db["tables"]?.arrayValue?.first { $0["name"] == "staged" }
        #expect(table?["v2_mode"] == true)
        #expect(table?["handles"] == 1)
        await holder.close()
        await waiter.close()
        #expect(try await daemon.stop() == 0)
    }

    @Test func peersNotOnTheAllowListAreRefused() async throws {
        let daemon = try await Daemon.start(arguments: ["--socket-mode", "666", "--allow-uid", "\(getuid())"])
        defer { daemon.removeFolder() }
        // This process is allowed.
        let client = try await daemon.connect()
        try await client.ping()
        await client.close()
        // Another user (nobody) can reach the socket (mode 666) but is not on the list.
        let refused = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                                    binFolder.appendingPathComponent("nanactl").path, "ping", "--socket", daemon.socketPath])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("not allowed"), "\(refused.stderr)")
        #expect(daemon.logText.contains("nana.peer.uid=65534"))
        // And with the list extended to that gid, it gets in.
        try await daemon.stop()
        let open = try await Daemon.start(arguments: ["--socket-mode", "666", "--allow-uid", "\(getuid())", "--allow-gid", "65534"], folder: daemon.folder)
        let admitted = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                                     binFolder.appendingPathComponent("nanactl").path, "ping", "--socket", open.socketPath])
        #expect(admitted.status == 0, "\(admitted.stderr)")
        try await open.stop()
    }

    @Test func perDatabaseRulesAndReadOnlyAccessJudgedBySQLite() async throws {
        let folder = NSTemporaryDirectory() + "nanad-rules-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let me = getuid()
        let config = """
        {"socket_mode": "666", "rules": [
          {"uids": [\(me)], "databases": ["ro.db"], "read_only": true, "deny_methods": ["restore"]},
          {"uids": [\(me)]},
          {"uids": [65534], "databases": ["shared.db"], "read_only": true}
        ]}
        """
        try config.write(toFile: folder + "/nanad.json", atomically: true, encoding: .utf8)
        let check = try await runTool("nanad", ["--config", folder + "/nanad.json", "--check-config"])
        #expect(check.status == 0, "\(check.stderr)")
        try "{\"rules\": [{\"read_only\": \"yes\"}]}".write(toFile: folder + "/bad.json", atomically: true, encoding: .utf8)
        #expect(try await runTool("nanad", ["--config", folder + "/bad.json", "--check-config"]).status != 0)

        let daemon = try await Daemon.start(arguments: ["--config", folder + "/nanad.json"], folder: folder)
        defer { daemon.removeFolder() }
        // Seed the files through a rule that may write (this uid, any other file name), then copy.
        let seeder = try await daemon.connect()
        let rw = try await seeder.open("rw.db")
        try await rw.set("k", "v")
        try await rw.backup(to: "seed.db")
        await seeder.close()
        try FileManager.default.copyItem(atPath: daemon.dataDirectory + "/seed.db", toPath: daemon.dataDirectory + "/shared.db")

        let reader = try await daemon.connect()
        let ro = try await reader.open("seed.db")  // admitted read-write by the second rule
        #expect(try await ro.get("k") == "v")
        // A read-only rule creates nothing: a missing file is refused, and none appears.
        await expectRemote(.validation) { _ = try await reader.open("ro.db") }
        #expect(!FileManager.default.fileExists(atPath: daemon.dataDirectory + "/ro.db"))
        try FileManager.default.copyItem(atPath: daemon.dataDirectory + "/seed.db", toPath: daemon.dataDirectory + "/ro.db")
        let readOnly = try await reader.open("ro.db")
        await expectRemote(.validation) { try await readOnly.set("x", 1) }
        await expectRemote(.validation) { try await readOnly.execute("DELETE FROM data") }
        await expectRemote(.validation) { _ = try await readOnly.fetchAll("DELETE FROM data RETURNING key") }
        await expectRemote(.validation) { try await readOnly.execute("CREATE TABLE t (x)") }
        await expectRemote(.validation) { try await readOnly.restore(from: "seed.db") }
        await expectRemote(.validation) { _ = try await readOnly.pragma("user_version", 3) }
        #expect(try await readOnly.fetchAll("SELECT COUNT(*) FROM data") == [[1]])
        #expect(try await readOnly.execute("SELECT 1").rows == [[1]])
        #expect(try await readOnly.get("anything") == .nil)
        await reader.close()

        // Another user: read-only on shared.db, nothing else.
        let nanactl = binFolder.appendingPathComponent("nanactl").path
        func asNobody(_ arguments: [String]) async throws -> ToolRun {
            try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", nanactl] + arguments + ["--socket", daemon.socketPath])
        }
        let get = try await asNobody(["get", "--db", "shared.db", "k"])
        #expect(get.status == 0, "\(get.stderr)")
        #expect(get.stdout == "\"v\"\n")
        let set = try await asNobody(["set", "--db", "shared.db", "k", "1"])
        #expect(set.status == 3)
        #expect(set.stderr.contains("read-only"), "\(set.stderr)")
        let other = try await asNobody(["get", "--db", "rw.db", "k"])
        #expect(other.status == 3)
        #expect(other.stderr.contains("not allowed to open"), "\(other.stderr)")
        try await daemon.stop()
    }

    /// `--writer-spin`: how long a file's writer looks for the next write before it sleeps.
    /// A long spin finds sequential writes awake (counted in `stats`); 0 never spins; a value
    /// out of bounds is refused at start.
    @Test func theWriterSpinIsASettingThatStatsCount() async throws {
        func sleeps(_ arguments: [String]) async throws -> (Int64, Daemon) {
            let daemon = try await Daemon.start(arguments: arguments)
            let client = try await daemon.connect()
            let db = try await client.open("spin.db")
            for i in 0..<50 { try await db.set("k\(i)", .int(Int64(i))) }
            let file = try await client.stats()["databases"]?.arrayValue?.first { $0["path"]?.stringValue?.hasSuffix("spin.db") == true }
            #expect(try await db.count() == 50)
            await client.close()
            try await daemon.stop()
            return (try #require(file?["writer_sleeps"]?.int64Value), daemon)
        }
        // 100 ms, far longer than a round trip: the writer sleeps only before the first write.
        let (long, daemon) = try await sleeps(["--writer-spin", "100000"])
        defer { daemon.removeFolder() }
        let (none, other) = try await sleeps(["--writer-spin", "0"])
        other.removeFolder()
        // Alone, 0 and 51 (one sleep per set, and one before the first); room left for a busy machine.
        #expect(long <= 10, "\(long) sleeps in 50 sequential sets")
        #expect(none >= 25, "without a spin the writer sleeps between sets (\(none))")
        for bad in ["-1", "100001", "soon"] {
            let run = try await runProgram(binFolder.appendingPathComponent("nanad"), ["--writer-spin", bad, "--socket", daemon.folder + "/x.sock", "--data-dir", daemon.dataDirectory])
            #expect(run.status != 0, "\(bad)")
            #expect(run.stderr.contains("writer-spin") || run.stderr.contains("writer spin"), "\(bad): \(run.stderr)")
        }
    }
}

/// A Unix datagram socket the test receives sd_notify messages on.
final class DatagramListener: @unchecked Sendable {
    let fd: Int32

    init(path: String) throws {
        fd = try unixSocket(SOCK_DGRAM, path: path, "bind", Glibc.bind)
    }

    deinit { close(fd) }

    func receive(timeoutSeconds: Int) -> String? {
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        return n > 0 ? String(decoding: buffer.prefix(n), as: UTF8.self) : nil
    }
}