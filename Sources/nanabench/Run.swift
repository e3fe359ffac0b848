import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// The benchmark suite: drives an already running nanad through `NanaClient` and prints, per
/// workload, the rate and the p50/p99 latency of single calls. It asserts nothing about speed.
///
/// Workloads (ids as in docs/BENCHMARKS.md):
///   a  set, sequential, one connection (fresh keys: inserts)
///   b  get, sequential, one connection, cache hit
///   ping  ping, sequential, one connection (the protocol's bare round trip)
///   b-loop, ping-loop, c-loop  b, ping and c from tasks that prefer their connection's event
///      loop (`withTaskExecutorPreference(client.executor)`): no thread hops in the client
///   c  get, 16 connections (16 clients, one task each doing sequential calls), cache hit
///   d  set, 16 connections (fresh keys), group-committed by the daemon's writer
///      (c and d: `--connections N` gives them N connections instead of 16; j and k keep 16)
///   e  get, one connection with 64 calls in flight (64 tasks on one client), cache hit
///   n  get, sequential, one task, near-cache hit (no round trip; every other read workload
///      opens its handles with the near-cache off, to measure the daemon)
///   n16  n from 16 tasks of one client at once
///   d-tracked  d's shape on a fresh file with a near-cache board and on one without, in turn,
///      3 times each: the cost of bumping stamps on every write
///   f  batch_update of 10,000 items, repeated, median items/s
///   g  4 `nanabench worker` processes writing 3,000 keys each to one fresh file at once
///   h  query returning 1,000 rows
///   i  execute_many of 10,000 rows
///   j  set, 16 connections (fresh keys) as d, on a write-behind (v2, flush_mode immediate) table
///      "bench_v2"; then `flush(wait: true)`, timed apart (not in the rate)
///   k  get, 16 connections as c, on a table "bench_lru" with an LRU cache of 1,000 entries
///      over the 10,000 keys, each lane asking for keys in a fixed pseudo-random order (so about
///      10 % of gets hit the cache); the hit ratio comes from the daemon's per-table counters
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the benchmark suite against a running nanad.")

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "Database file inside nanad's data folder (workload g uses a fresh file beside it).") var db = "bench.db"
    @Option(help: "Base number of calls; each workload scales it: set 1 conn N/5, get and ping 1 conn N/2, get 16 (--connections) conns 2N, set 16 (--connections) conns N, 64 in flight 2N.")
    var requests = 100_000
    @Flag(help: "Also print a JSON summary (one line, after the table).") var json = false
    @Option(name: .customLong("json-file"), help: "Also write the JSON summary to this file.") var jsonFile: String?
    @Option(help: "Workloads to run, comma-separated ids (a,b,ping,b-loop,ping-loop,c,c-loop,d,d-tracked,e,e2,e4,n,n16,f,g,h,i,j,k); all but e2 and e4 by default.") var only: String?
    @Option(name: .customLong("batch-repeats"), help: "Timed batch_update calls (workload f).") var batchRepeats = 10
    @Option(name: .customLong("batch-items"), help: "Items per batch_update call (workload f).") var batchItems = 10_000
    @Option(help: "Connections of workloads c and d (each one client with one task doing sequential calls); j and k keep 16.")
    var connections = Run.connections
    @Option(help: "Writer processes in workload g.") var processes = 4
    @Option(name: .customLong("per-process"), help: "Keys each process writes in workload g.") var perProcess = 3000

    /// Keys the read workloads cycle through (written once before anything is measured).
    static let keyspace = 10_000
    static let connections = 16
    static let inFlight = 64
    /// Workload j's table, opened write-behind (v2) by every connection.
    static let writeBehindTable = "bench_v2"
    /// Workload k's table and its LRU capacity (a tenth of the keyspace).
    static let lruTable = "bench_lru"
    static let lruCapacity = 1000

    func validate() throws {
        guard requests >= 1000 else { throw ValidationError("--requests must be at least 1000") }
        guard batchRepeats >= 1, batchItems >= 1, processes >= 1, perProcess >= 1, connections >= 1 else {
            throw ValidationError("--batch-repeats, --batch-items, --processes, --per-process and --connections must be positive")
        }
    }

    func run() async throws {
        let selected = Set((only ?? "a,b,ping,b-loop,ping-loop,c,c-loop,d,d-tracked,e,n,n16,f,g,h,i,j,k").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
        // Distinct per run, so that set workloads insert new rows even when --db is reused.
        let tag = String(Int(Date().timeIntervalSince1970 * 1000) % 100_000_000, radix: 36) + "-\(getpid())"

        let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench")
        // The round-trip workloads measure the daemon: no near-cache (workloads n and n16 use one).
        let database = try await client.open(db, nearCache: .off)
        let keys = (0..<Self.keyspace).map { Self.key($0) }
        let values = (0..<Self.keyspace).map { benchValue($0) }

        // Every key the read workloads ask for exists and is cached before anything is timed.
        var prefill = NanaParams()
        for i in 0..<Self.keyspace { prefill[NanaKey(keys[i])] = values[i] }
        try await database.batchUpdate(prefill)

        print("nanabench: socket \(socket), db \(db), requests \(requests), \(ProcessInfo.processInfo.activeProcessorCount) cores")
        print(Self.header)
        var results: [WorkloadResult] = []
        func report(_ r: WorkloadResult) {
            results.append(r)
            print(Self.row(r))
        }

        // (a) sequential set, one client, fresh keys.
        if selected.contains("a") {
            let n = requests / 5
            let setKeys = (0..<n).map { "a-\(tag)-\($0)" }
            await warmUp(1, perLane: 1000) { _, i in try await database.set("aw-\(tag)-\(i)", values[i % Self.keyspace]) }
            let before = await writerCounters(database)
            let run = await runLanes(1, perLane: n) { _, i in try await database.set(setKeys[i], values[i % Self.keyspace]) }
            var r = summarize(id: "a", name: "set_sequential", title: "set, sequential, 1 connection", lanes: run.lanes, wall: run.wall)
            noteGroupCommit(&r, before: before, after: await writerCounters(database))
            report(r)
        }

        // (b) sequential get, one client, cache hit; ping, the bare protocol round trip, no
        // table involved. b-loop and ping-loop: the same from a task on the connection's loop.
        let sequentialGet: @Sendable (Int, Int) async throws -> Void = { _, i in
            let v = try await database.get(keys[i % Self.keyspace])
            if v.isNil { throw BenchError("get \(keys[i % Self.keyspace]) returned nil") }
        }
        let sequentialPing: @Sendable (Int, Int) async throws -> Void = { _, _ in try await client.ping() }
        let sequential: [(id: String, name: String, title: String, onLoop: Bool, body: @Sendable (Int, Int) async throws -> Void)] = [
            ("b", "get_sequential", "get (cache hit), sequential, 1 connection", false, sequentialGet),
            ("ping", "ping_sequential", "ping, sequential, 1 connection", false, sequentialPing),
            ("b-loop", "get_sequential_on_loop", "get (cache hit), sequential, on the connection's loop", true, sequentialGet),
            ("ping-loop", "ping_sequential_on_loop", "ping, sequential, on the connection's loop", true, sequentialPing),
        ]
        for workload in sequential where selected.contains(workload.id) {
            let executors = workload.onLoop ? [client.executor] : nil
            await warmUp(1, perLane: 2000, executors: executors, workload.body)
            let run = await runLanes(1, perLane: requests / 2, executors: executors, workload.body)
            report(summarize(id: workload.id, name: workload.name, title: workload.title, lanes: run.lanes, wall: run.wall))
        }

        // (c), (d), (j) and (k): one task per connection; c and d on the first `--connections`
        // connections, j and k on the first 16.
        if !selected.isDisjoint(with: ["c", "d", "d-tracked", "j", "k"]) {
            let opening = selected.isDisjoint(with: ["j", "k", "d-tracked"]) ? connections : max(connections, Self.connections)
            var lanes: [NanaDatabase] = []
            for c in 0..<opening {
                let other = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-\(c)")
                lanes.append(try await other.open(db, nearCache: .off))
            }
            let conns = lanes
            let count = Self.connections

            if selected.contains("c") {
                let perLane = requests * 2 / connections
                await warmUp(connections, perLane: perLane / 10) { l, i in _ = try await conns[l].get(keys[(l * 613 + i) % Self.keyspace]) }
                let run = await runLanes(connections, perLane: perLane) { l, i in
                    let v = try await conns[l].get(keys[(l * 613 + i) % Self.keyspace])
                    if v.isNil { throw BenchError("get returned nil") }
                }
                report(summarize(id: "c", name: "get_\(connections)_connections", title: "get (cache hit), \(connections) connection\(connections == 1 ? "" : "s")", lanes: run.lanes, wall: run.wall))
            }

            // c again, each lane's task on its own connection's event loop.
            if selected.contains("c-loop") {
                let perLane = requests * 2 / connections
                let executors = conns.map(\.client.executor)
                await warmUp(connections, perLane: perLane / 10, executors: executors) { l, i in _ = try await conns[l].get(keys[(l * 613 + i) % Self.keyspace]) }
                let run = await runLanes(connections, perLane: perLane, executors: executors) { l, i in
                    let v = try await conns[l].get(keys[(l * 613 + i) % Self.keyspace])
                    if v.isNil { throw BenchError("get returned nil") }
                }
                report(summarize(id: "c-loop", name: "get_\(connections)_connections_on_loops", title: "get (cache hit), \(connections) connection\(connections == 1 ? "" : "s"), each task on its connection's loop", lanes: run.lanes, wall: run.wall))
            }

            if selected.contains("d") {
                let perLane = requests / connections
                let setKeys = (0..<connections).map { l in (0..<perLane).map { "d-\(tag)-\(l)-\($0)" } }
                await warmUp(connections, perLane: max(1, perLane / 10)) { l, i in try await conns[l].set("dw-\(tag)-\(l)-\(i)", values[i % Self.keyspace]) }
                let before = await writerCounters(database)
                let run = await runLanes(connections, perLane: perLane) { l, i in try await conns[l].set(setKeys[l][i], values[i % Self.keyspace]) }
                var r = summarize(id: "d", name: "set_\(connections)_connections", title: "set, \(connections) connection\(connections == 1 ? "" : "s") (group commit)", lanes: run.lanes, wall: run.wall)
                noteGroupCommit(&r, before: before, after: await writerCounters(database))
                report(r)
            }

            // (d-plain, d-tracked) d's shape on two fresh files, one with a near-cache board (a
            // tracking handle open on it, so every set bumps stamps) and one without, run in
            // turn three times each; the medians are reported.
            if selected.contains("d-tracked") {
                var rates: [String: [Double]] = ["plain": [], "tracked": []]
                for round in 0..<3 {
                    for kind in ["plain", "tracked"] {
                        let file = "\(db)-\(kind)-\(tag)-\(round)"
                        let tracker = kind == "tracked" ? try await client.open(file) : nil
                        if kind == "tracked", tracker?.nearCacheStatistics == nil { throw BenchError("no near-cache board for \(file)") }
                        var handles: [NanaDatabase] = []
                        for lane in conns.prefix(count) { handles.append(try await lane.client.open(file, nearCache: .off)) }
                        let lanes = handles
                        let perLane = requests / count
                        await warmUp(count, perLane: max(1, perLane / 10)) { l, i in try await lanes[l].set("w-\(l)-\(i)", values[i % Self.keyspace]) }
                        let run = await runLanes(count, perLane: perLane) { l, i in try await lanes[l].set("s-\(l)-\(i)", values[i % Self.keyspace]) }
                        rates[kind]?.append(Double(run.lanes.reduce(0) { $0 + $1.samples.count }) / run.wall.seconds)
                        for handle in handles { try await handle.close() }
                        try await tracker?.close()
                    }
                }
                let plain = median(rates["plain"] ?? []), tracked = median(rates["tracked"] ?? [])
                var r = WorkloadResult(id: "d-tracked", name: "set_16_connections_tracked_vs_plain", title: "set, 16 connections, file with a board vs without (medians of 3 each)",
                                       unit: "ops", count: 0, seconds: 0, rate: tracked, p50Microseconds: 0, p99Microseconds: 0, errors: 0)
                r.notes["plain_rate"] = plain
                r.notes["tracked_over_plain"] = plain > 0 ? tracked / plain : 0
                report(r)
            }

            // (j) d's shape on a write-behind table: a set is acknowledged once staged.
            if selected.contains("j") {
                let options = NanaOpenOptions(writeBehind: NanaWriteBehind())
                let staged = try await client.open(db, table: Self.writeBehindTable, options: options, nearCache: .off)
                var opened: [NanaDatabase] = []
                for lane in conns { opened.append(try await lane.client.open(db, table: Self.writeBehindTable, options: options, nearCache: .off)) }
                let v2 = opened
                let perLane = requests / count
                let setKeys = (0..<count).map { l in (0..<perLane).map { "j-\(tag)-\(l)-\($0)" } }
                await warmUp(count, perLane: max(1, perLane / 10)) { l, i in try await v2[l].set("jw-\(tag)-\(l)-\(i)", values[i % Self.keyspace]) }
                try await staged.flush(wait: true)
                let before = await writerCounters(staged)
                let run = await runLanes(count, perLane: perLane) { l, i in try await v2[l].set(setKeys[l][i], values[i % Self.keyspace]) }
                var r = summarize(id: "j", name: "set_16_connections_write_behind", title: "set, 16 connections, write-behind (v2)", lanes: run.lanes, wall: run.wall)
                let pending = await tableCounters(staged)?["v2_staged"]?.int64Value
                let flushStart = ContinuousClock.now
                try await staged.flush(wait: true)
                let flushTime = ContinuousClock.now - flushStart
                // Commits and writes of the timed sets and of the final flush together.
                noteGroupCommit(&r, before: before, after: await writerCounters(staged))
                r.notes["final_flush_ms"] = flushTime.microseconds / 1000
                // Sets ÷ (timed part + final flush): the rate at which they became committed.
                r.notes["rate_including_flush"] = Double(r.count) / (run.wall + flushTime).seconds
                if let pending { r.notes["staged_before_flush"] = Double(pending) }
                if let table = await tableCounters(staged) {
                    r.notes["dlq"] = Double(table["dlq"]?.int64Value ?? 0)
                    if let left = table["v2_staged"]?.int64Value, left > 0 { r.notes["staged_after_flush"] = Double(left) }
                }
                report(r)
            }

            // (k) c's shape on an LRU table holding a tenth of the keyspace, keys in random order.
            if selected.contains("k") {
                let options = NanaOpenOptions(cache: .lru(capacity: Self.lruCapacity))
                let bounded = try await client.open(db, table: Self.lruTable, options: options, nearCache: .off)
                try await bounded.batchUpdate(prefill)
                var opened: [NanaDatabase] = []
                for lane in conns { opened.append(try await lane.client.open(db, table: Self.lruTable, options: options, nearCache: .off)) }
                let lru = opened
                let perLane = requests * 2 / count
                // Drawn before the timing: lane l's i-th key, uniform over the keyspace.
                let order = (0..<count).map { l in randomIndices(perLane + perLane / 10, seed: UInt64(l + 1)) }
                await warmUp(count, perLane: perLane / 10) { l, i in _ = try await lru[l].get(keys[order[l][perLane + i]]) }
                let before = await tableCounters(bounded)
                let run = await runLanes(count, perLane: perLane) { l, i in
                    let v = try await lru[l].get(keys[order[l][i]])
                    if v.isNil { throw BenchError("get returned nil") }
                }
                var r = summarize(id: "k", name: "get_16_connections_lru", title: "get, 16 connections, LRU 1,000 of 10,000 keys", lanes: run.lanes, wall: run.wall)
                noteCacheHits(&r, gets: r.count, before: before, after: await tableCounters(bounded))
                report(r)
            }
            for lane in conns { await lane.client.close() }
        }

        // (e) one connection, 64 calls in flight.
        if selected.contains("e") {
            let perLane = requests * 2 / Self.inFlight
            await warmUp(Self.inFlight, perLane: perLane / 10) { l, i in _ = try await database.get(keys[(l * 151 + i) % Self.keyspace]) }
            let run = await runLanes(Self.inFlight, perLane: perLane) { l, i in
                let v = try await database.get(keys[(l * 151 + i) % Self.keyspace])
                if v.isNil { throw BenchError("get returned nil") }
            }
            report(summarize(id: "e", name: "get_1_connection_64_in_flight", title: "get (cache hit), 1 connection, 64 in flight", lanes: run.lanes, wall: run.wall))
        }

        // (e2, e4) the same 64 calls in flight from one process, spread over 2 and 4 clients,
        // each its own connection on the next event loop: whether a pool would help (#18).
        for pool in [2, 4] where selected.contains("e\(pool)") {
            var members: [NanaDatabase] = []
            for p in 0..<pool {
                let member = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-pool-\(p)")
                members.append(try await member.open(db, nearCache: .off))
            }
            let pooled = members
            let perLane = requests * 2 / Self.inFlight
            await warmUp(Self.inFlight, perLane: perLane / 10) { l, i in _ = try await pooled[l % pool].get(keys[(l * 151 + i) % Self.keyspace]) }
            let run = await runLanes(Self.inFlight, perLane: perLane) { l, i in
                let v = try await pooled[l % pool].get(keys[(l * 151 + i) % Self.keyspace])
                if v.isNil { throw BenchError("get returned nil") }
            }
            report(summarize(id: "e\(pool)", name: "get_\(pool)_connections_64_in_flight", title: "get (cache hit), 64 in flight over \(pool) connections of one process", lanes: run.lanes, wall: run.wall))
            for member in pooled { await member.client.close() }
        }

        // (n) and (n16): get through a near-cache holding the whole keyspace, from one task and
        // from 16 tasks of one client; every timed read is a hit (the table is not written).
        if selected.contains("n") || selected.contains("n16") {
            let near = try await client.open(db, nearCache: NanaNearCache(maximumEntries: 2 * Self.keyspace, maximumBytes: 1 << 28))
            let residentBefore = residentKilobytes()
            for key in keys { _ = try await near.get(key) }
            let filledKilobytes = residentKilobytes() - residentBefore
            let body: @Sendable (Int, Int) async throws -> Void = { l, i in
                let v = try await near.get(keys[(l * 613 + i) % Self.keyspace])
                if v.isNil { throw BenchError("get returned nil") }
            }
            let before = near.nearCacheStatistics
            if selected.contains("n") {
                await warmUp(1, perLane: 10_000, body)
                // A plain loop over keys listed beforehand, as the Python anchor reads them
                // (tools/bench_near_anchor.py): the figure is the read's, not a closure's.
                let order = (0..<(requests * 20)).map { keys[$0 % Self.keyspace] }
                var r = await runLoop(id: "n", name: "get_near_cache_sequential", title: "get (near-cache hit), sequential, 1 task", over: order) { key in
                    if try await near.get(key).isNil { throw BenchError("get returned nil") }
                }
                // What this process's memory grew by when the near-cache took the keyspace
                // (the board's mapping included; the first fill maps it).
                r.notes["fill_rss_kb"] = Double(filledKilobytes)
                r.notes["entries"] = Double(near.nearCacheStatistics?.entries ?? 0)
                r.notes["entry_bytes"] = Double(near.nearCacheStatistics?.bytes ?? 0)
                report(r)
            }
            if selected.contains("n16") {
                await warmUp(Self.connections, perLane: 1000, body)
                report(await runUntimed(id: "n16", name: "get_near_cache_16_tasks", title: "get (near-cache hit), 16 tasks of one client", lanes: Self.connections, perLane: requests * 4, body))
            }
            if let before, let after = near.nearCacheStatistics, after.misses != before.misses {
                throw BenchError("near-cache workloads missed \(after.misses - before.misses) times")
            }
        }

        // (f) batch_update of 10,000 items: one warm-up call, then the timed repetitions.
        if selected.contains("f") {
            report(try await batchUpdate(database, tag: tag))
        }

        // (g) several processes writing one fresh file at once.
        if selected.contains("g") {
            report(try await processes(tag: tag))
        }

        // (h) query returning 1,000 rows; (i) execute_many of 10,000 rows.
        if selected.contains("h") || selected.contains("i") {
            let table = "bench_rows_\(tag.filter { $0.isLetter || $0.isNumber })"
            try await database.execute("CREATE TABLE IF NOT EXISTS \(table) (id INTEGER PRIMARY KEY, name TEXT, score REAL)")
            if selected.contains("h") {
                try await database.executeMany("INSERT INTO \(table) (name, score) VALUES (?, ?)", (0..<1000).map { [.string("row \($0)"), .double(Double($0))] })
                report(try await repeatedCalls(id: "h", name: "query_1000_rows", title: "query returning 1,000 rows (median of 50)", unit: "rows",
                                               itemsPerCall: 1000, repeats: 50) { _ in
                    let rows = try await database.query(table: table, orderBy: "id")
                    if rows.count != 1000 { throw BenchError("query returned \(rows.count) rows") }
                })
            }
            if selected.contains("i") {
                report(try await repeatedCalls(id: "i", name: "execute_many_10000_rows", title: "execute_many of 10,000 rows (median of 5)", unit: "rows",
                                               itemsPerCall: 10_000, repeats: 5) { rep in
                    try await database.executeMany("INSERT INTO \(table) (name, score) VALUES (?, ?)", (0..<10_000).map { [.string("r\(rep)-\($0)"), .double(Double($0))] })
                })
            }
            try await database.execute("DROP TABLE \(table)")
        }

        await client.close()

        let summary = Summary(
            date: ISO8601DateFormatter().string(from: Date()), socket: socket, db: db, requests: requests,
            cores: ProcessInfo.processInfo.activeProcessorCount, workloads: results
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(summary)
        if json { print(String(decoding: data, as: UTF8.self)) }
        if let jsonFile { try data.write(to: URL(fileURLWithPath: jsonFile)) }
    }

    // MARK: Workloads f to i

    /// Times `repeats` calls of one kind (after one warm-up call) and reports items per second.
    private func repeatedCalls(
        id: String, name: String, title: String, unit: String, itemsPerCall: Int, repeats: Int,
        _ call: (Int) async throws -> Void
    ) async throws -> WorkloadResult {
        try await call(-1)
        var samples: [Duration] = []
        var rates: [Double] = []
        var errors = 0
        var total = Duration.zero
        for rep in 0..<repeats {
            let start = ContinuousClock.now
            do { try await call(rep) } catch {
                errors += 1
                FileHandle.standardError.write(Data("\(name): \(error)\n".utf8))
            }
            let elapsed = ContinuousClock.now - start
            samples.append(elapsed)
            total += elapsed
            rates.append(Double(itemsPerCall) / elapsed.seconds)
        }
        let micros = samples.map(\.microseconds).sorted()
        var r = WorkloadResult(
            id: id, name: name, title: title, unit: unit, count: itemsPerCall * repeats, seconds: total.seconds, rate: median(rates),
            p50Microseconds: percentile(micros, 0.5), p99Microseconds: percentile(micros, 0.99), errors: errors
        )
        r.notes["items_per_call"] = Double(itemsPerCall)
        return r
    }

    private func batchUpdate(_ database: NanaDatabase, tag: String) async throws -> WorkloadResult {
        let items = batchItems
        func mapping(_ rep: Int) -> NanaParams {
            var m = NanaParams(minimumCapacity: items)
            for i in 0..<items { m["f-\(tag)-\(rep)-\(i)"] = ["i": .int(Int64(i))] }
            return m
        }
        // Built before the timing starts: only the calls are measured.
        let mappings = (-1..<batchRepeats).map(mapping)
        return try await repeatedCalls(
            id: "f", name: "batch_update", title: "batch_update of \(items) items (median of \(batchRepeats))", unit: "items",
            itemsPerCall: items, repeats: batchRepeats
        ) { rep in try await database.batchUpdate(mappings[rep + 1]) }
    }

    private func processes(tag: String) async throws -> WorkloadResult {
        let stem = db.hasSuffix(".db") ? String(db.dropLast(3)) : db
        let file = "\(stem)-procs-\(tag).db"
        let executable = Bundle.main.executablePath ?? CommandLine.arguments[0]
        let total = processes * perProcess

        // The file exists (and its table) before the writers start, as in the NanaSQLite anchor.
        let checker = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-check")
        let target = try await checker.open(file)

        var running: [(process: Process, output: Pipe, done: AsyncStream<Int32>)] = []
        let start = ContinuousClock.now
        for p in 0..<processes {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = [
                "worker", "--socket", socket, "--db", file, "--prefix", "p\(p)",
                "--count", "\(perProcess)", "--concurrency", "16",
            ]
            let output = Pipe()
            process.standardOutput = output
            let (stream, continuation) = AsyncStream<Int32>.makeStream()
            process.terminationHandler = { finished in
                continuation.yield(finished.terminationStatus)
                continuation.finish()
            }
            try process.run()
            running.append((process, output, stream))
        }
        var statuses: [Int32] = []
        for r in running {
            var status: Int32 = -1
            for await s in r.done { status = s }
            statuses.append(status)
        }
        let wall = ContinuousClock.now - start

        var acknowledged = 0
        var errors = 0
        var workerSeconds: [Double] = []
        for (index, r) in running.enumerated() {
            let data = r.output.fileHandleForReading.readDataToEndOfFile()
            let line = String(decoding: data, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
            if let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               let written = object["written"] as? Int, let failed = object["errors"] as? Int {
                acknowledged += written
                errors += failed
                if let s = object["seconds"] as? Double { workerSeconds.append(s) }
            } else {
                FileHandle.standardError.write(Data("worker \(index) exited \(statuses[index]) without a report\n".utf8))
                errors += perProcess
            }
        }

        // What is in the file afterwards: COUNT(*) from SQLite, and every key read back.
        let present = try await target.count()
        var found = 0
        for p in 0..<processes {
            let wanted = (0..<perProcess).map { "p\(p)-\($0)" }
            found += try await target.batchGet(wanted).count
        }
        await checker.close()

        let seconds = wall.seconds
        var r = WorkloadResult(
            id: "g", name: "processes_writing", title: "\(processes) processes × \(perProcess) sets, one file", unit: "keys",
            count: total, seconds: seconds, rate: Double(present) / seconds,
            p50Microseconds: 0, p99Microseconds: 0, errors: errors
        )
        r.notes["processes"] = Double(processes)
        r.notes["acknowledged"] = Double(acknowledged)
        r.notes["rows_in_file"] = Double(present)
        r.notes["keys_read_back"] = Double(found)
        r.notes["kept_fraction"] = total > 0 ? Double(min(present, found)) / Double(total) : 0
        // Writers' own time (after connecting), slowest of them: the rate without process start.
        if let slowest = workerSeconds.max(), slowest > 0 { r.notes["rate_excluding_startup"] = Double(present) / slowest }
        r.notes["worker_exit_failures"] = Double(statuses.filter { $0 != 0 }.count)
        return r
    }

    // MARK: Output

    static func key(_ i: Int) -> String {
        let digits = String(i)
        return "k:" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    static let header = pad("id", 5) + pad("workload", 48) + lpad("rate/s", 12) + lpad("p50 µs", 10) + lpad("p99 µs", 10) + lpad("count", 9) + lpad("errors", 8) + "  notes"

    static func row(_ r: WorkloadResult) -> String {
        var s = pad(r.id, 5) + pad(r.title, 48) + lpad(format(r.rate, 0) + (r.unit == "ops" ? "" : " \(r.unit)"), 12)
        if r.id == "g" {
            s += lpad("-", 10) + lpad("-", 10)
        } else {
            s += lpad(format(r.p50Microseconds, 1), 10) + lpad(format(r.p99Microseconds, 1), 10)
        }
        s += lpad("\(r.count)", 9) + lpad("\(r.errors)", 8)
        if !r.notes.isEmpty {
            s += "  " + r.notes.sorted { $0.key < $1.key }.map { "\($0.key)=\(format($0.value, $0.value.rounded() == $0.value ? 0 : 2))" }.joined(separator: " ")
        }
        return s
    }

    static func format(_ v: Double, _ decimals: Int) -> String { String(format: "%.\(decimals)f", v) }

    static func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }

    static func lpad(_ s: String, _ width: Int) -> String {
        s.count >= width ? " " + s : String(repeating: " ", count: width - s.count) + s
    }
}

/// The JSON summary `--json` prints.
struct Summary: Codable {
    var date: String
    var socket: String
    var db: String
    var requests: Int
    var cores: Int
    var workloads: [WorkloadResult]
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
