import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// The crash-safety harness (issue #6): nanad is killed with SIGKILL while several processes
/// write through it, restarted, and every write it acknowledged must be there.
///
/// Each round starts nanad on the same data folder, starts `processes` writer processes
/// (`crash-worker`, each with `connections` connections) that write distinct keys and log every
/// acknowledged one, kills nanad at a random moment, checks the file with `sqlite3`'s
/// `integrity_check` while nothing has it open, then restarts nanad and reads back every key
/// acknowledged so far, in every round. A client holding a transaction (with a write inside
/// it) at the moment of each kill must leave nothing behind.
///
/// With `--v2`, the writers use a write-behind table in `manual` flush mode and one of them
/// calls `flush(wait: true)` every few milliseconds. A SIGKILL may then lose exactly what the
/// policy allows, and the check is both ways: every write acknowledged before a flush that
/// completed began is in the file, and when no flush was in progress at the kill, no write
/// sent after the last one completed is (nothing else flushes in manual mode). Times come from
/// CLOCK_MONOTONIC, which every process on the machine shares.
struct Crash: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crash",
        abstract: "Kill nanad with SIGKILL under load, restart it, and check that no acknowledged write is lost."
    )

    @Option(help: "Rounds of write, kill, restart, check.") var rounds = 20
    @Option(help: "Writer processes per round.") var processes = 4
    @Option(help: "Connections per writer process.") var connections = 4
    @Option(help: "Folder for the data, sockets and logs (default: a new temporary folder).") var folder: String?
    @Option(help: "The nanad binary (default: beside this one).") var nanad: String?
    @Option(name: .customLong("min-ms"), help: "Earliest kill, in ms after the writers start.") var minimumDelay = 150
    @Option(name: .customLong("max-ms"), help: "Latest kill, in ms after the writers start.") var maximumDelay = 900
    @Flag(help: "Write through a v2 (write-behind, manual flush) table and check the loss bound.") var v2 = false

    /// The table the v2 variant writes.
    static let v2Table = "staged"
    static let v2Options = NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .manual))

    func run() async throws {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let nanadPath = nanad ?? me.deletingLastPathComponent().appendingPathComponent("nanad").path
        let base = folder ?? (NSTemporaryDirectory() + "nanad-crash-" + UUID().uuidString.prefix(8))
        let data = base + "/data"
        try FileManager.default.createDirectory(atPath: data, withIntermediateDirectories: true)
        let socket = base + "/nanad.sock"
        var acknowledged: [String: Int64] = [:]
        /// v2: keys that must never be in the file (sent after the last completed flush).
        var forbidden: Set<String> = []
        var missing = 0

        for round in 0..<rounds {
            let daemon = try await Self.startNanad(nanadPath, socket: socket, data: data, log: base + "/nanad-\(round).log")
            var workers: [Process] = []
            for p in 0..<processes {
                let worker = Process()
                worker.executableURL = me
                worker.arguments = ["crash-worker", "--socket", socket, "--db", "crash.db", "--prefix", "r\(round)p\(p)",
                                    "--connections", "\(connections)", "--ack-log", base + "/ack-r\(round)p\(p).log"]
                    + (v2 ? ["--v2"] + (p == 0 ? ["--flusher"] : []) : [])
                worker.standardError = FileHandle.nullDevice
                try worker.run()
                workers.append(worker)
            }
            // Writers run alone for most of the round; then a client opens a transaction (which
            // holds the writer) and is still in it at the moment of the kill: its write must vanish.
            let delay = Int.random(in: minimumDelay...max(minimumDelay, maximumDelay))
            try await Task.sleep(for: .milliseconds(delay * 3 / 4))
            // (Not in the v2 variant: a client transaction holds the file's writer, so every
            // flush would still be waiting at the kill and the loss bound could not be seen.)
            let holder = Process()
            holder.executableURL = me
            holder.arguments = ["hold-transaction", "--socket", socket, "--db", "crash.db", "--key", "tx-r\(round)", "--seconds", "30"]
            holder.standardOutput = FileHandle.nullDevice
            holder.standardError = FileHandle.nullDevice
            if !v2 { try holder.run() }
            try await Task.sleep(for: .milliseconds(delay / 4))
            let killedAt = CrashWorker.monotonicNanoseconds()
            kill(daemon.processIdentifier, SIGKILL)
            daemon.waitUntilExit()
            for worker in workers { worker.waitUntilExit() }
            if !v2 {
                kill(holder.processIdentifier, SIGKILL)  // it would wait out its sleep before noticing
                holder.waitUntilExit()
            }

            // The file as SQLite sees it with nobody writing: intact?
            let integrity = try Self.shell(["sqlite3", data + "/crash.db", "PRAGMA integrity_check"])
            var acks: [(key: String, value: Int64, sent: UInt64, acked: UInt64)] = []
            var flushes: [(started: UInt64, done: UInt64?)] = []
            for p in 0..<processes {
                let log = (try? String(contentsOfFile: base + "/ack-r\(round)p\(p).log", encoding: .utf8)) ?? ""
                for line in log.split(separator: "\n") {
                    let parts = line.split(separator: " ")
                    if parts.count == 2, let value = Int64(parts[1]) { acknowledged[String(parts[0])] = value }
                    if parts.count == 4, let value = Int64(parts[1]), let sent = UInt64(parts[2]), let acked = UInt64(parts[3]) {
                        acks.append((String(parts[0]), value, sent, acked))
                        continue
                    }
                    guard parts.count == 3, let t = UInt64(parts[2]) else { continue }
                    // A flush the flusher began after the kill never reached nanad.
                    if parts[0] == "S" { if t < killedAt { flushes.append((t, nil)) } }
                    else if parts[0] == "D" { if !flushes.isEmpty, flushes[flushes.count - 1].started < t { flushes[flushes.count - 1].done = t } }
                }
            }
            var durable = 0, undecided = 0
            if v2 {
                // Durable: acknowledged before a flush that completed began.
                let lastCompletedStart = flushes.last(where: { $0.done != nil })?.started ?? 0
                let inFlight = flushes.last.map { $0.done == nil } ?? false
                let lastDone = flushes.last?.done
                for ack in acks {
                    // Durable: its reply came before a completed flush began, so it was staged
                    // before. Must be absent: it was sent after the last flush completed (and none
                    // was in flight at the kill). A reply read after the last flush says nothing
                    // by itself: the write may have been staged before that flush began (seen in
                    // CI, with the writing task descheduled between reply and log line).
                    if ack.acked < lastCompletedStart {
                        acknowledged[ack.key] = ack.value
                        durable += 1
                    } else if !inFlight, let lastDone, ack.sent > lastDone {
                        forbidden.insert(ack.key)
                    } else {
                        undecided += 1
                    }
                }
            }

            // Restart and read back everything acknowledged in every round so far.
            let restarted = try await Self.startNanad(nanadPath, socket: socket, data: data, log: base + "/nanad-\(round)-check.log")
            let client = try await NanaClient.connect(socketPath: socket, clientName: "crash-check")
            let db = v2 ? try await client.open("crash.db", table: Self.v2Table, options: Self.v2Options) : try await client.open("crash.db")
            let keys = Array(acknowledged.keys)
            var roundMissing = 0
            var resurrected = 0
            if v2 {
                resurrected = try await db.batchGet(Array(forbidden)).count
                roundMissing += resurrected
            }
            // The transaction that was open when nanad died left nothing behind.
            let plain = v2 ? try await client.open("crash.db") : db
            let uncommitted = try await plain.batchGet((0...round).map { "tx-r\($0)" })
            roundMissing += uncommitted.count
            var start = 0
            while start < keys.count {
                let chunk = Array(keys[start..<min(start + 2000, keys.count)])
                let found = try await db.batchGet(chunk)
                for key in chunk where found[NanaKey(key)]?.int64Value != acknowledged[key] { roundMissing += 1 }
                start += chunk.count
            }
            missing += roundMissing
            await client.close()
            kill(restarted.processIdentifier, SIGTERM)
            restarted.waitUntilExit()
            let v2Detail = v2 ? ", v2: \(flushes.count) flushes, \(durable) durable, \(forbidden.count) must be absent so far (present: \(resurrected)), \(undecided) undecided" : ""
            print("round \(round + 1): acknowledged so far \(acknowledged.count), missing \(roundMissing)\(v2Detail), integrity \(integrity), restart exit \(restarted.terminationStatus)")
            if integrity != "ok" || restarted.terminationStatus != 0 { missing += 1 }
        }
        print("rounds: \(rounds), acknowledged: \(acknowledged.count), missing: \(missing)")
        if folder == nil { try? FileManager.default.removeItem(atPath: base) }
        if missing > 0 || acknowledged.isEmpty { throw ExitCode.failure }
    }

    static func startNanad(_ path: String, socket: String, data: String, log: String) async throws -> Process {
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["--socket", socket, "--data-dir", data, "--log-level", "warning"]
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        for _ in 0..<400 {
            if let client = try? await NanaClient.connect(socketPath: socket, clientName: "crash-probe") {
                await client.close()
                return process
            }
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(25))
        }
        throw ValidationError("nanad did not start; see \(log)")
    }

    static func shell(_ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// One writer of the crash harness: writes `<prefix>-<n>` = n on every connection until the
/// daemon goes away, appending `key value` to the ack log for every write nanad acknowledged.
struct CrashWorker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "crash-worker", abstract: "A writer for `crash` (logs every acknowledged write).", shouldDisplay: false)

    @Option var socket: String
    @Option var db: String
    @Option var prefix: String
    @Option var connections = 4
    @Option(name: .customLong("ack-log")) var ackLog: String
    @Flag(help: "Write to the v2 table; log `key value time`.") var v2 = false
    @Flag(help: "Also flush (wait) every few milliseconds, logging `S - time` and `D - time`.") var flusher = false

    static func monotonicNanoseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
    }

    func run() async throws {
        _ = FileManager.default.createFile(atPath: ackLog, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: ackLog))
        let prefix = self.prefix
        let socket = self.socket
        let db = self.db
        let v2 = self.v2
        let open: @Sendable (NanaClient) async throws -> NanaDatabase = { client in
            v2 ? try await client.open(db, table: Crash.v2Table, options: Crash.v2Options) : try await client.open(db)
        }
        await withTaskGroup(of: Void.self) { group in
            for lane in 0..<connections {
                group.addTask {
                    guard let client = try? await NanaClient.connect(socketPath: socket, clientName: "crash-\(prefix)-\(lane)"),
                          let database = try? await open(client) else { return }
                    var n: Int64 = 0
                    while true {
                        let key = "\(prefix)-\(lane)-\(n)"
                        let sent = Self.monotonicNanoseconds()
                        do { try await database.set(key, .int(n)) } catch { return }
                        // Only after the reply: this write was acknowledged (v2: with the times it
                        // was sent and acknowledged, to place it against the flushes).
                        log.write(Data((v2 ? "\(key) \(n) \(sent) \(Self.monotonicNanoseconds())\n" : "\(key) \(n)\n").utf8))
                        n += 1
                    }
                }
            }
            if flusher {
                group.addTask {
                    guard let client = try? await NanaClient.connect(socketPath: socket, clientName: "crash-\(prefix)-flusher"),
                          let database = try? await open(client) else { return }
                    while true {
                        try? await Task.sleep(for: .milliseconds(Int.random(in: 10...120)))
                        log.write(Data("S - \(Self.monotonicNanoseconds())\n".utf8))
                        do { try await database.flush(wait: true) } catch { return }
                        log.write(Data("D - \(Self.monotonicNanoseconds())\n".utf8))
                    }
                }
            }
        }
        try? log.close()
    }
}
