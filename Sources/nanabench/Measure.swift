import Foundation
import NanaClient
import NanaWire

/// What one workload measured. Rates are per second over wall-clock time; latencies are in
/// microseconds, taken per call with `ContinuousClock` and read from the sorted samples.
struct WorkloadResult: Codable, Sendable {
    /// Short id (`a` … `k`, `ping`).
    var id: String
    /// Stable machine-readable name, e.g. `get_16_connections`.
    var name: String
    /// What was done, for people.
    var title: String
    /// What the rate counts: `ops` (calls), `items` (rows of a batch) or `keys`.
    var unit: String
    /// Calls (or items/keys) measured.
    var count: Int
    var seconds: Double
    /// `count / seconds`; for batch_update, the median over the repetitions.
    var rate: Double
    var p50Microseconds: Double
    var p99Microseconds: Double
    var errors: Int
    /// Anything else worth keeping (commits during the run, keys found afterwards, …).
    var notes: [String: Double] = [:]
}

/// Latency samples of one lane (one task doing sequential calls).
struct Lane: Sendable {
    var samples: [Duration] = []
    var errors = 0
    var firstError: String?

    init(capacity: Int) { samples.reserveCapacity(capacity) }

    /// Runs `body` once, timing it; a thrown error is counted, not rethrown.
    mutating func time(_ body: () async throws -> Void) async {
        let start = ContinuousClock.now
        do {
            try await body()
        } catch {
            errors += 1
            if firstError == nil { firstError = "\(error)" }
        }
        samples.append(ContinuousClock.now - start)
    }
}

extension Duration {
    var microseconds: Double {
        let c = components
        return Double(c.seconds) * 1e6 + Double(c.attoseconds) / 1e12
    }

    var seconds: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }
}

/// The `q` quantile of sorted samples, by the same rule as loadgen.c (`sorted[Int(n * q)]`).
func percentile(_ sorted: [Double], _ q: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    return sorted[min(sorted.count - 1, Int(Double(sorted.count) * q))]
}

func median(_ values: [Double]) -> Double {
    guard !values.isEmpty else { return 0 }
    let s = values.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Runs `lanes` tasks at once, lane `l` making `perLane` sequential calls `body(l, i)`, and
/// returns every lane's samples with the wall-clock time of the whole run. With `executors`,
/// lane `l`'s task prefers `executors[l]` (its client's event loop), and a call it makes off
/// that loop counts as an error, so that a run which lost the preference cannot pass for one
/// that had it.
func runLanes(
    _ lanes: Int,
    perLane: Int,
    executors: [ConnectionExecutor]? = nil,
    _ body: @escaping @Sendable (_ lane: Int, _ i: Int) async throws -> Void
) async -> (lanes: [Lane], wall: Duration) {
    let start = ContinuousClock.now
    let results = await withTaskGroup(of: Lane.self) { group in
        for lane in 0..<lanes {
            let preferred = executors?[lane]
            let run: @Sendable () async -> Lane = {
                var record = Lane(capacity: perLane)
                for i in 0..<perLane {
                    await record.time {
                        if let preferred, !preferred.isCurrent { throw BenchError("not on the connection's loop") }
                        try await body(lane, i)
                    }
                }
                return record
            }
            if let preferred {
                group.addTask(executorPreference: preferred, operation: run)
            } else {
                group.addTask(operation: run)
            }
        }
        var all: [Lane] = []
        for await lane in group { all.append(lane) }
        return all
    }
    return (results, ContinuousClock.now - start)
}

/// Runs `body` for `count` calls without timing them (warm-up).
func warmUp(
    _ lanes: Int, perLane: Int, executors: [ConnectionExecutor]? = nil,
    _ body: @escaping @Sendable (_ lane: Int, _ i: Int) async throws -> Void
) async {
    guard perLane > 0 else { return }
    _ = await runLanes(lanes, perLane: perLane, executors: executors, body)
}

/// Folds the lanes of one run into a result.
func summarize(
    id: String, name: String, title: String, unit: String = "ops",
    lanes: [Lane], wall: Duration
) -> WorkloadResult {
    var micros: [Double] = []
    micros.reserveCapacity(lanes.reduce(0) { $0 + $1.samples.count })
    for lane in lanes { for s in lane.samples { micros.append(s.microseconds) } }
    micros.sort()
    let errors = lanes.reduce(0) { $0 + $1.errors }
    if let first = lanes.compactMap(\.firstError).first {
        FileHandle.standardError.write(Data("\(name): \(errors) errors, first: \(first)\n".utf8))
    }
    let seconds = wall.seconds
    return WorkloadResult(
        id: id, name: name, title: title, unit: unit, count: micros.count, seconds: seconds,
        rate: seconds > 0 ? Double(micros.count) / seconds : 0,
        p50Microseconds: percentile(micros, 0.5), p99Microseconds: percentile(micros, 0.99), errors: errors
    )
}

/// The writer's counters for the database a handle belongs to (`commits`, `writes`).
func writerCounters(_ db: NanaDatabase) async -> (commits: Int, writes: Int)? {
    guard let reply = try? await db.client.call("stats", ["db": .int(db.handle)]),
          let first = reply["databases"]?.arrayValue?.first,
          let commits = first["commits"]?.int64Value, let writes = first["writes"]?.int64Value
    else { return nil }
    return (Int(commits), Int(writes))
}

/// Adds "commits" and "writes per commit" notes from counters taken before and after a run.
func noteGroupCommit(_ result: inout WorkloadResult, before: (commits: Int, writes: Int)?, after: (commits: Int, writes: Int)?) {
    guard let before, let after else { return }
    let commits = after.commits - before.commits
    let writes = after.writes - before.writes
    result.notes["commits"] = Double(commits)
    if commits > 0 { result.notes["writes_per_commit"] = Double(writes) / Double(commits) }
}

/// The daemon's counters for the table a handle belongs to (an entry of `stats`'s `tables`:
/// `hits`, `misses`, `evictions`, `v2_staged`, `dlq`, …).
func tableCounters(_ db: NanaDatabase) async -> NanaValue? {
    guard let reply = try? await db.client.call("stats", ["db": .int(db.handle)]),
          let tables = reply["databases"]?.arrayValue?.first?["tables"]?.arrayValue
    else { return nil }
    return tables.first { $0["name"]?.stringValue == db.table }
}

/// Adds the cache's hits, misses, evictions and hit ratio during a run of `gets` gets, from
/// table counters taken before and after it.
///
/// `hit_ratio` is the daemon's own: hits ÷ (hits + misses). The daemon counts a lookup, not a
/// get: a get that misses looks the key up twice (once on the event loop, once more before it
/// goes to a reader), and the second lookup counts a hit when another get filled the key in
/// between. So `gets_from_cache` is also given: the share of gets whose first lookup hit,
/// 1 − (lookups − gets) ÷ gets, valid while nothing but the `gets` looks keys up.
func noteCacheHits(_ result: inout WorkloadResult, gets: Int, before: NanaValue?, after: NanaValue?) {
    func count(_ table: NanaValue?, _ name: String) -> Int? { table?[name]?.int64Value.map(Int.init) }
    guard let h0 = count(before, "hits"), let m0 = count(before, "misses"),
          let h1 = count(after, "hits"), let m1 = count(after, "misses") else { return }
    let hits = h1 - h0, misses = m1 - m0
    result.notes["cache_hits"] = Double(hits)
    result.notes["cache_misses"] = Double(misses)
    if hits + misses > 0 { result.notes["hit_ratio"] = Double(hits) / Double(hits + misses) }
    if gets > 0, hits + misses >= gets {
        result.notes["lookups_per_get"] = Double(hits + misses) / Double(gets)
        result.notes["gets_from_cache"] = 1 - Double(hits + misses - gets) / Double(gets)
    }
    if let e0 = count(before, "evictions"), let e1 = count(after, "evictions") { result.notes["evictions"] = Double(e1 - e0) }
}

/// `count` indices uniform over the keyspace from SplitMix64, so that every run asks for the
/// same keys in the same order. The seed is mixed first: sequences started from consecutive
/// raw states would be the same sequence shifted by one.
func randomIndices(_ count: Int, seed: UInt64) -> [Int] {
    func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    var state = mix(seed &+ 0x9E37_79B9_7F4A_7C15)
    return (0..<count).map { _ in
        state &+= 0x9E37_79B9_7F4A_7C15
        return Int(mix(state) % UInt64(Run.keyspace))
    }
}

/// A NanaSQLite-style value of about the size loadgen.c sends.
func benchValue(_ n: Int) -> NanaValue {
    ["name": "xxxxxxxxxxxxxxxxxxxxxxxxxx", "n": .int(Int64(n))]
}

/// Runs `lanes` tasks of `perLane` calls each without a clock around every call (reading the
/// clock twice would cost more than a near-cache hit), and reports the mean time per call as
/// both p50 and p99 (noted as `per_call_clock: 0`).
func runUntimed(
    id: String, name: String, title: String, lanes: Int, perLane: Int,
    _ body: @escaping @Sendable (_ lane: Int, _ i: Int) async throws -> Void
) async -> WorkloadResult {
    let start = ContinuousClock.now
    let errors = await withTaskGroup(of: Int.self) { group in
        for lane in 0..<lanes {
            group.addTask {
                var errors = 0
                for i in 0..<perLane {
                    do { try await body(lane, i) } catch { errors += 1 }
                }
                return errors
            }
        }
        return await group.reduce(0, +)
    }
    let seconds = (ContinuousClock.now - start).seconds
    let count = lanes * perLane
    let perCall = seconds / Double(perLane) * 1e6  // each lane's calls are sequential
    var result = WorkloadResult(id: id, name: name, title: title, unit: "ops", count: count, seconds: seconds,
                                rate: seconds > 0 ? Double(count) / seconds : 0,
                                p50Microseconds: perCall, p99Microseconds: perCall, errors: errors)
    result.notes["per_call_clock"] = 0
    return result
}

/// Calls `body` once per item of `items` in one plain loop, untimed per call (like
/// ``runUntimed(id:name:title:lanes:perLane:_:)`` with one lane, without a closure call per item).
/// The loop and `body` run on the caller's executor: no executor switch between items.
nonisolated(nonsending) func runLoop<Item>(
    id: String, name: String, title: String, over items: [Item],
    _ body: nonisolated(nonsending) (Item) async throws -> Void
) async -> WorkloadResult {
    var errors = 0
    let start = ContinuousClock.now
    for item in items {
        do { try await body(item) } catch { errors += 1 }
    }
    let seconds = (ContinuousClock.now - start).seconds
    let perCall = items.isEmpty ? 0 : seconds / Double(items.count) * 1e6
    var result = WorkloadResult(id: id, name: name, title: title, unit: "ops", count: items.count, seconds: seconds,
                                rate: seconds > 0 ? Double(items.count) / seconds : 0,
                                p50Microseconds: perCall, p99Microseconds: perCall, errors: errors)
    result.notes["per_call_clock"] = 0
    return result
}

/// This process's resident memory in KiB (VmRSS), 0 where /proc has none.
func residentKilobytes() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }) else { return 0 }
    return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
}
