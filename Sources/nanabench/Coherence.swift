import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// The near-cache's coherence check across OS processes (issue #20): this process (A) changes
/// data through its own nanad, waits for the acknowledgement, then tells a reader process (B,
/// `near-reader`, with near-caches) which key to read over a pipe; B must read that write or a
/// later one. Every kind of change is in the mix, a ROLLBACK (which must change nothing) and
/// restarts of the daemon (SIGTERM and SIGKILL in turn) included.
///
/// A keeps the model of what every key holds; as the only writer, the value B must read is
/// exactly the model's. Prints `{"rounds", "reads", "stale", "hits", "misses", "invalidations",
/// "reconnections", "restarts"}` and the first stale reads, and exits non-zero on any.
struct Coherence: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that a near-cache in another process never reads older than an acknowledged write.")

    @Option(help: "Rounds (one change and the reads after it each).") var rounds = 5_000
    @Option(help: "Restart nanad every this many rounds (0: never).") var restartEvery = 1_000
    @Option(help: "The nanad binary (default: beside this one).") var nanad: String?
    @Option(help: "Working folder (default: a new temporary one, removed after).") var folder: String?

    static let tables = ["data", "v2t", "ttlt"]
    static let keys = (0..<8).map { "k\($0)" }

    func run() async throws {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let nanadPath = nanad ?? me.deletingLastPathComponent().appendingPathComponent("nanad").path
        let base = folder ?? (NSTemporaryDirectory() + "nanad-coherence-" + UUID().uuidString.prefix(8))
        try FileManager.default.createDirectory(atPath: base + "/data", withIntermediateDirectories: true)
        let socket = base + "/nanad.sock"
        var daemon = try await Crash.startNanad(nanadPath, socket: socket, data: base + "/data", log: base + "/nanad-0.log")
        // A run that fails must not leave its daemon behind (it used to); after a finished run
        // it has exited already.
        defer {
            if daemon.isRunning {
                kill(daemon.processIdentifier, SIGKILL)
                daemon.waitUntilExit()
            }
        }
        var writer = try await Writer.open(socket: socket)
        let reader = try LineDrivenProcess(me, ["near-reader", "--socket", socket, "--db", Writer.file, "--tables", Self.tables.joined(separator: ",")])
        var check = Check(reader: reader)
        var random = SplitMix(seed: 20)
        var restarts = 0

        for round in 0..<rounds {
            let key = Self.keys[Int(random.next() % UInt64(Self.keys.count))]
            let other = Self.keys[Int(random.next() % UInt64(Self.keys.count))]
            check.round = round
            if restartEvery > 0, round % restartEvery == restartEvery - 1 {
                check.kind = "restart"
                try await writer.v2t.flush(wait: true)  // staged writes die with a SIGKILL: they were never acknowledged as durable
                try await check.read("data", key, writer)  // B holds an entry made from the old daemon's board
                await writer.client.close()
                let signal = restarts % 2 == 0 ? SIGKILL : SIGTERM
                kill(daemon.processIdentifier, signal)
                daemon.waitUntilExit()
                restarts += 1
                daemon = try await Crash.startNanad(nanadPath, socket: socket, data: base + "/data", log: base + "/nanad-\(restarts).log")
                writer = try await Writer.open(socket: socket)
                try await writer.set("data", key, .string("restart-\(round)"))
                try await check.read("data", key, writer)
                continue
            }
            switch round % 250 {
            case 100:
                check.kind = "restore"
                try await writer.v2t.flush(wait: true)
                try await writer.data.backup(to: "snapshot.db")
                let snapshot = writer.model
                try await writer.set("data", key, .string("before-restore-\(round)"))
                try await writer.set("v2t", key, .string("before-restore-\(round)"))
                try await check.read("data", key, writer)
                try await check.read("v2t", key, writer)
                try await writer.v2t.flush(wait: true)
                try await writer.data.restore(from: "snapshot.db")
                writer.model = snapshot
                try await check.read("data", key, writer)
                try await check.read("v2t", key, writer)
                continue
            case 200:
                check.kind = "persistent-ttl expiry"
                try await writer.set("ttlt", key, .int(Int64(round)))
                try await check.read("ttlt", key, writer)
                try await writer.waitUntilExpired(key)
                try await check.read("ttlt", key, writer)
                continue
            default:
                break
            }
            try await check.read("data", key, writer)  // B caches the value the change will replace
            try await change(round, key, &writer, &check)
            try await check.read("data", key, writer)
            try await check.read("v2t", key, writer)
            try await check.read("data", other, writer)
            if round % 10 == 0 {
                try await check.contains("data", key, writer)
                try await check.batch("data", [key, other, "counter"], writer)
            }
        }
        let stats = try await reader.ask("stats")
        _ = await reader.finish()
        kill(daemon.processIdentifier, SIGTERM)
        daemon.waitUntilExit()
        let counters = (try? JSONReader.value(from: Array(stats.utf8))) ?? .nil
        let summary: NanaValue = [
            "rounds": .int(Int64(rounds)), "reads": .int(Int64(check.reads)), "stale": .int(Int64(check.stale.count)),
            "hits": counters["hits"] ?? .nil, "misses": counters["misses"] ?? .nil,
            "invalidations": counters["invalidations"] ?? .nil, "reconnections": counters["reconnections"] ?? .nil,
            "restarts": .int(Int64(restarts)),
        ]
        print(try JSONWriter.string(from: summary))
        for line in check.stale.prefix(20) { print(line) }
        if folder == nil && check.stale.isEmpty { try? FileManager.default.removeItem(atPath: base) }
        if !check.stale.isEmpty { throw ExitCode.failure }
    }

    /// One of the ordinary changes, in turn.
    private func change(_ round: Int, _ key: String, _ writer: inout Writer, _ check: inout Check) async throws {
        let kinds = ["set", "batch_update", "delete", "pop", "clear", "increment", "patch", "execute UPDATE", "v2 set", "v2 delete", "commit", "rollback"]
        let kind = kinds[round % kinds.count]
        check.kind = kind
        let value = NanaValue.int(Int64(round))
        switch kind {
        case "set": try await writer.set("data", key, value)
        case "batch_update":
            try await writer.data.batchUpdate([NanaKey(key): value, "counter": value])
            writer.model["data", default: [:]][key] = value
            writer.model["data", default: [:]]["counter"] = value
        case "delete":
            if writer.model["data"]?[key] != nil {
                try await writer.data.delete(key)
                writer.model["data"]?[key] = nil
            } else {
                try await writer.set("data", key, value)
            }
        case "pop":
            _ = try await writer.data.pop(key, default: .nil)
            writer.model["data"]?[key] = nil
        case "clear":
            if round % 3 != 1 { return try await writer.set("data", key, value) }  // now and then: it empties the table
            try await writer.data.clear()
            writer.model["data"] = [:]
        case "increment":
            writer.model["data", default: [:]]["counter"] = try await writer.data.increment("counter", by: 1, default: 0)
        case "patch":
            writer.model["data", default: [:]]["doc"] = try await writer.data.patch("doc", ["i": value], create: true)
            try await check.read("data", "doc", writer)
        case "execute UPDATE":
            let text = NanaValue.string("sql-\(round)")
            _ = try await writer.data.execute("UPDATE data SET value = ? WHERE key = ?", [.string(try JSONWriter.string(from: text)), .string(key)])
            if writer.model["data"]?[key] != nil { writer.model["data"]?[key] = text }
        case "v2 set":
            try await writer.set("v2t", key, value)
        case "v2 delete":
            if writer.model["v2t"]?[key] != nil {
                try await writer.v2t.delete(key)
                writer.model["v2t"]?[key] = nil
            }
        case "commit":
            try await writer.data.beginTransaction()
            try await writer.data.set(key, .string("tx-\(round)"))
            try await check.read("data", key, writer)  // not committed: B must still read the old value
            try await writer.data.commit()
            writer.model["data", default: [:]][key] = .string("tx-\(round)")
        case "rollback":
            try await writer.data.beginTransaction()
            try await writer.data.set(key, .string("rolled-back-\(round)"))
            try await check.read("data", key, writer)
            try await writer.data.rollback()
        default:
            break
        }
    }

    /// The writing side: its handles (no near-cache: it reads only to wait for expiry) and the
    /// model of what every key holds.
    struct Writer {
        static let file = "coherence.db"
        static let ttl = 0.3
        let client: NanaClient
        let data: NanaDatabase
        let v2t: NanaDatabase
        let ttlt: NanaDatabase
        var model: [String: [String: NanaValue]] = [:]

        static func open(socket: String) async throws -> Writer {
            let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-coherence")
            let data = try await client.open(file, nearCache: .off)
            // Staged writes stay staged (a flush every minute) unless a round flushes them.
            let v2t = try await client.open(file, table: "v2t", options: NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .time, flushInterval: 60)), nearCache: .off)
            let ttlt = try await client.open(file, table: "ttlt", options: NanaOpenOptions(cache: .ttl(seconds: ttl, persistent: true)), nearCache: .off)
            var writer = Writer(client: client, data: data, v2t: v2t, ttlt: ttlt)
            for (name, handle) in [("data", data), ("v2t", v2t), ("ttlt", ttlt)] {
                writer.model[name] = Dictionary(uniqueKeysWithValues: try await handle.items().map { ($0.key, $0.value) })
            }
            return writer
        }

        func handle(_ table: String) -> NanaDatabase {
            switch table {
            case "v2t": v2t
            case "ttlt": ttlt
            default: data
            }
        }

        mutating func set(_ table: String, _ key: String, _ value: NanaValue) async throws {
            try await handle(table).set(key, value)
            model[table, default: [:]][key] = value
        }

        /// Waits until the daemon's expiry sweep deleted `key` from the persistent-TTL table.
        mutating func waitUntilExpired(_ key: String) async throws {
            let gone = NanaValue.binary([0xFF])
            for _ in 0..<200 {
                if try await ttlt.get(key, default: gone) == gone {
                    model["ttlt"]?[key] = nil
                    return
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            throw ValidationError("ttlt/\(key) did not expire within 4 s of a \(Self.ttl) s TTL")
        }
    }

    /// Asks the reader and compares with the model.
    struct Check {
        let reader: LineDrivenProcess
        var round = 0
        var kind = ""
        var reads = 0
        var stale: [String] = []

        mutating func read(_ table: String, _ key: String, _ writer: Writer) async throws {
            let expected = try writer.model[table]?[key].map { try JSONWriter.string(from: $0) } ?? "MISSING"
            try await compare("get \(table) \(key)", expected)
        }

        mutating func contains(_ table: String, _ key: String, _ writer: Writer) async throws {
            try await compare("contains \(table) \(key)", writer.model[table]?[key] == nil ? "false" : "true")
        }

        mutating func batch(_ table: String, _ keys: [String], _ writer: Writer) async throws {
            let answer = try await reader.ask("batch \(table) \(keys.joined(separator: " "))")
            reads += 1
            let found = try JSONReader.value(from: Array(answer.utf8)).mapValue ?? [:]
            for key in Set(keys) where found[NanaKey(key)] != writer.model[table]?[key] {
                stale.append("round \(round) (\(kind)): batch \(table)/\(key) read \(found[NanaKey(key)].map { "\($0)" } ?? "nothing"), expected \(writer.model[table]?[key].map { "\($0)" } ?? "nothing")")
            }
        }

        private mutating func compare(_ question: String, _ expected: String) async throws {
            let answer = try await reader.ask(question)
            reads += 1
            if answer.hasPrefix("ERROR") { throw ValidationError("the reader failed at round \(round) (\(kind)): \(answer)") }
            if answer != expected { stale.append("round \(round) (\(kind)): \(question) read \(answer), expected \(expected)") }
        }
    }
}

/// An executable run as a separate OS process and driven line by line: a line to its stdin,
/// a line back from its stdout.
final class LineDrivenProcess {
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private var buffered: [UInt8] = []

    init(_ executable: URL, _ arguments: [String]) throws {
        process.executableURL = executable
        process.arguments = arguments
        process.standardInput = input
        process.standardOutput = output
        try process.run()
    }

    /// Sends `line` and returns the line it answers.
    func ask(_ line: String) async throws -> String {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
        while true {
            if let newline = buffered.firstIndex(of: UInt8(ascii: "\n")) {
                let answer = String(decoding: buffered[..<newline], as: UTF8.self)
                buffered.removeSubrange(...newline)
                return answer
            }
            let chunk = output.fileHandleForReading.availableData
            guard !chunk.isEmpty else { throw ValidationError("the reader process exited") }
            buffered += chunk
        }
    }

    /// Closes its stdin and waits for it to exit.
    func finish() async -> Int32 {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit { if process.isRunning { process.terminate() } }
}

/// A small seeded generator, so that a failing run can be repeated.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1330_11EB
        return z ^ (z >> 31)
    }
}
