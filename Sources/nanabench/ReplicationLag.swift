import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// How long a write takes to reach a Litestream replica (issue #19): writes a sequence number
/// to its own small file, then restores that file from the replica (`litestream restore`)
/// again and again until the number is there. Run it against a nanad that Litestream runs and
/// replicates (tools/bench_replication.sh starts both, and the load beside it).
///
/// A probe's lag is from the write's acknowledgement to the end of the first restore that
/// holds it: an upper bound, too long by at most one restore (whose duration is reported, so
/// the resolution is known). The probe file is separate so that each restore stays small
/// whatever the load writes elsewhere.
struct ReplicationLag: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replication-lag",
        abstract: "Time from a write's acknowledgement to its arrival in a Litestream replica (p50, p99).")

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "The probe's database file inside nanad's data folder.") var db = "lag-probe.db"
    @Option(help: "The replica URL of that file, as `litestream restore` takes it (file:///…/lag-probe.db).") var replica: String
    @Option(help: "The litestream binary.") var litestream = "litestream"
    @Option(help: "Probes to time.") var probes = 30
    @Option(help: "Longest wait for one probe, in seconds.") var timeout = 30.0
    @Flag(help: "One JSON object (the summary) instead of text.") var json = false

    func validate() throws {
        guard probes >= 1 else { throw ValidationError("--probes must be at least 1") }
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number") }
    }

    func run() async throws {
        let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-replication-lag")
        let database = try await client.open(db)
        let scratch = NSTemporaryDirectory() + "nanabench-lag-" + UUID().uuidString.prefix(8) + ".db"
        defer { Self.remove(scratch) }
        var lags: [Double] = []
        var restores: [Double] = []
        // Probe 0 is not timed: it includes Litestream finding the new file.
        for probe in 0...probes {
            try await database.set("seq", .int(Int64(probe)))
            let acknowledged = ContinuousClock.now
            let deadline = acknowledged + .milliseconds(Int64(timeout * 1000))
            while true {
                let started = ContinuousClock.now
                let seen = try Self.restoredSequence(litestream: litestream, replica: replica, into: scratch)
                let ended = ContinuousClock.now
                if probe > 0 { restores.append((ended - started).seconds * 1000) }
                if let seen, seen >= probe {
                    if probe > 0 { lags.append((ended - acknowledged).seconds * 1000) }
                    break
                }
                guard ended < deadline else { throw ValidationError("probe \(probe) was not in the replica after \(timeout) s") }
            }
            // The next probe at a random point of Litestream's cycle, not in step with it.
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))
        }
        await client.close()
        lags.sort()
        restores.sort()
        let summary: NanaValue = [
            "probes": .int(Int64(lags.count)),
            "lag_ms_p50": .double(percentile(lags, 0.5)), "lag_ms_p99": .double(percentile(lags, 0.99)),
            "lag_ms_max": .double(lags.max() ?? 0),
            "restore_ms_p50": .double(percentile(restores, 0.5)),
        ]
        if json { return print(try JSONWriter.string(from: summary)) }
        print(String(format: "replication lag over %d probes: p50 %.0f ms, p99 %.0f ms, max %.0f ms (each restore %.0f ms, the resolution)",
                     lags.count, percentile(lags, 0.5), percentile(lags, 0.99), lags.max() ?? 0, percentile(restores, 0.5)))
    }

    /// The sequence number in the replica now, or nil when it has none yet.
    static func restoredSequence(litestream: String, replica: String, into output: String) throws -> Int? {
        remove(output)
        guard run(litestream, ["restore", "-o", output, replica]) != nil else { return nil }
        guard let text = run("sqlite3", [output, "SELECT value FROM data WHERE key = 'seq'"]) else { return nil }
        return Int(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Runs a program found on PATH; its output, or nil when it failed.
    static func run(_ program: String, _ arguments: [String]) -> String? {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [program] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        do { try process.run() } catch { return nil }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return process.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : nil
    }

    static func remove(_ path: String) {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }
}
