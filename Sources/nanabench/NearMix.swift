import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// The near-cache under concurrent writers (issue #20): `processes` OS processes make random
/// gets and sets on `keys` keys for `seconds`, each read through its near-cache, each
/// operation logged with when it began and ended (CLOCK_MONOTONIC, shared by the processes).
/// Every key starts at 0. Then a checker confirms that every read returned a value that was current at some instant
/// between the read's start and its end. Prints `{"processes", "reads", "writes", "hits",
/// "misses", "invalidations", "stale"}` and the first stale reads; exits non-zero on any.
///
/// The check, for a read of key k over [s, e]: every write has a distinct value, and takes
/// effect at some instant of its own [start, end]. A read of the value of write w is stale when
/// another write w2 of k surely took effect after w (w2.start > w.end) and surely before the
/// read began (w2.end < s); it is impossible when w began after the read ended (w.start > e).
/// A read that found nothing is stale when some write of k surely took effect before it began.
struct NearMix: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "near-mix", abstract: "Random gets and sets from several processes through near-caches; check that no read was stale.")

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "Database file inside nanad's data folder.") var db = "near-mix.db"
    @Option(help: "Processes.") var processes = 4
    @Option(help: "Seconds each process runs.") var seconds = 30.0
    @Option(help: "Keys shared by the processes.") var keys = 100
    @Option(help: "Share of operations that are sets, in percent.") var setPercent = 30
    @Flag(help: "Read without near-caches (every get a round trip), to compare.") var nearCacheOff = false
    @Flag(help: "Do not log operations or check them: only count (for the benchmark).") var noCheck = false
    @Option(help: "Internal: run as worker number N, logging to --log.") var worker: Int?
    @Option(help: "Internal: the worker's log file.") var log: String?

    /// One logged operation: 5 words.
    struct Operation {
        static let missing: Int64 = -1
        /// What every key holds before the workers start.
        static let initial: Int64 = 0
        var isSet: Bool
        var key: Int
        /// The value written or read (`missing` when the read found nothing).
        var value: Int64
        var start: UInt64
        var end: UInt64
    }

    func run() async throws {
        if let worker, let log { return try await work(worker, log) }
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let folder = NSTemporaryDirectory() + "nanad-near-mix-" + UUID().uuidString.prefix(8)
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-near-mix")
        let table = try await client.open(db, nearCache: .off)
        try await table.clear()
        var rows = NanaParams()
        for key in 0..<keys { rows["k\(key)"] = .int(Operation.initial) }
        try await table.batchUpdate(rows)
        await client.close()
        var running: [Process] = []
        for p in 0..<processes {
            let process = Process()
            process.executableURL = me
            process.arguments = ["near-mix", "--socket", socket, "--db", db, "--seconds", "\(seconds)", "--keys", "\(keys)",
                                 "--set-percent", "\(setPercent)", "--worker", "\(p)", "--log", "\(folder)/\(p).log"]
                + (nearCacheOff ? ["--near-cache-off"] : []) + (noCheck ? ["--no-check"] : [])
            try process.run()
            running.append(process)
        }
        for process in running { process.waitUntilExit() }
        guard running.allSatisfy({ $0.terminationStatus == 0 }) else { throw ValidationError("a worker failed") }
        var operations: [Operation] = []
        var counters: [String: Int64] = [:]
        for p in 0..<processes {
            let (logged, stats) = try Self.read("\(folder)/\(p).log")
            operations += logged
            for (name, n) in stats { counters[name, default: 0] += n }
        }
        let stale = Self.check(operations)
        let reads = operations.filter { !$0.isSet }.count
        print(try JSONWriter.string(from: [
            "processes": .int(Int64(processes)), "seconds": .double(seconds), "reads": .int(Int64(reads)),
            "writes": .int(Int64(operations.count - reads)), "hits": .int(counters["hits"] ?? 0),
            "misses": .int(counters["misses"] ?? 0), "invalidations": .int(counters["invalidations"] ?? 0),
            "stale": .int(Int64(stale.count)),
            "ops_per_second": .double(Double(operations.count + Int(counters["counted"] ?? 0)) / seconds),
            "checked": .bool(!noCheck),
        ]))
        for line in stale.prefix(20) { print(line) }
        if !stale.isEmpty { throw ExitCode.failure }
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    private func work(_ worker: Int, _ log: String) async throws {
        let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-near-mix-\(worker)")
        let table = try await client.open(db, nearCache: nearCacheOff ? .off : NanaNearCache(maximumEntries: max(10_000, 2 * keys), maximumBytes: 64 << 20))
        let names = (0..<keys).map { "k\($0)" }
        // Every process starts with every key in its near-cache (one batch_get per 1,000 keys),
        // so that the run measures the steady state, not the first read of each key.
        if !nearCacheOff {
            for chunk in stride(from: 0, to: keys, by: 1000) { _ = try await table.batchGet(Array(names[chunk..<min(keys, chunk + 1000)])) }
        }
        var random = SplitMix(seed: UInt64(worker + 1) * 7919)
        var operations: [Operation] = []
        var counted = 0
        var sequence: Int64 = 0
        let stop = Self.now() + UInt64(seconds * 1e9)
        while Self.now() < stop {
            let key = Int(random.next() % UInt64(keys))
            let start = Self.now()
            if Int(random.next() % 100) < setPercent {
                sequence += 1
                let value = Int64(worker) << 32 | sequence
                try await table.set(names[key], .int(value))
                if noCheck { counted += 1 } else { operations.append(Operation(isSet: true, key: key, value: value, start: start, end: Self.now())) }
            } else {
                let read = try await table.get(names[key], default: .int(Operation.missing))
                if noCheck { counted += 1 } else { operations.append(Operation(isSet: false, key: key, value: read.int64Value ?? -2, start: start, end: Self.now())) }
            }
        }
        let stats = table.nearCacheStatistics
        var text = "stats \(stats?.hits ?? 0) \(stats?.misses ?? 0) \(stats?.invalidations ?? 0) \(counted)\n"
        text.reserveCapacity(operations.count * 48)
        for op in operations { text += "\(op.isSet ? "S" : "G") \(op.key) \(op.value) \(op.start) \(op.end)\n" }
        try text.write(toFile: log, atomically: true, encoding: .utf8)
        await client.close()
    }

    static func read(_ path: String) throws -> ([Operation], [String: Int64]) {
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var operations: [Operation] = []
        var stats: [String: Int64] = [:]
        for line in text.split(separator: "\n") {
            let fields = line.split(separator: " ")
            if fields.first == "stats", fields.count == 5 {
                stats = ["hits": Int64(fields[1]) ?? 0, "misses": Int64(fields[2]) ?? 0, "invalidations": Int64(fields[3]) ?? 0, "counted": Int64(fields[4]) ?? 0]
                continue
            }
            guard fields.count == 5, let key = Int(fields[1]), let value = Int64(fields[2]),
                  let start = UInt64(fields[3]), let end = UInt64(fields[4]) else { throw ValidationError("bad log line: \(line)") }
            operations.append(Operation(isSet: fields[0] == "S", key: key, value: value, start: start, end: end))
        }
        return (operations, stats)
    }

    /// The stale reads, described.
    static func check(_ operations: [Operation]) -> [String] {
        var writesByKey: [Int: [Operation]] = [:]
        var writeByValue: [Int64: Operation] = [:]
        for op in operations where op.isSet {
            writesByKey[op.key, default: []].append(op)
            writeByValue[op.value] = op
        }
        // Per key: writes by end, and the latest start among those ending up to each index.
        var ends: [Int: [UInt64]] = [:]
        var latestStart: [Int: [UInt64]] = [:]
        for (key, writes) in writesByKey {
            let sorted = writes.sorted { $0.end < $1.end }
            ends[key] = sorted.map(\.end)
            var running: UInt64 = 0
            latestStart[key] = sorted.map { running = max(running, $0.start); return running }
        }
        var stale: [String] = []
        for read in operations where !read.isSet {
            let keyEnds = ends[read.key] ?? []
            // Writes of the key that surely took effect before the read began: end < read.start.
            var low = 0, high = keyEnds.count
            while low < high {
                let mid = (low + high) / 2
                if keyEnds[mid] < read.start { low = mid + 1 } else { high = mid }
            }
            let before = low
            if read.value == Operation.missing || read.value == Operation.initial {
                if before > 0 { stale.append("k\(read.key) read \(read.value == Operation.initial ? "its initial value" : "missing") at \(read.start), but a write of it ended at \(keyEnds[0])") }
                continue
            }
            guard let write = writeByValue[read.value], write.key == read.key else {
                stale.append("k\(read.key) read \(read.value), which no one wrote to it")
                continue
            }
            if write.start > read.end {
                stale.append("k\(read.key) read \(read.value) before it was written")
            } else if before > 0, let latest = latestStart[read.key]?[before - 1], latest > write.end {
                stale.append("k\(read.key) read \(read.value) (written \(write.start)–\(write.end)) over \(read.start)–\(read.end), after a later write ended")
            }
        }
        return stale
    }
}
