import Foundation
import NanaClient
import NanaWire
import Synchronization
import Testing

/// A client that keeps calling while nanad is killed and started again, 23 times: the
/// reconnecting client of issue #18, against the real daemon in its own process.
@Suite(.serialized) struct RestartRoundsTests {
    /// What the callers saw: every write that returned success (to read back at the end),
    /// when each table last answered, the longest call, and anything unexpected.
    final class Ledger: Sendable {
        struct State {
            var confirmed: [String: [String: NanaValue]] = [:]
            var lastSuccess: [String: ContinuousClock.Instant] = [:]
            var anySuccess: ContinuousClock.Instant?
            var longestCall: Duration = .zero
            var calls = 0, failures = 0
            var unexpected: [String] = []
        }
        let state = Mutex(State())
        let stopping = Atomic<Bool>(false)

        func succeeded(_ table: String, at instant: ContinuousClock.Instant) {
            state.withLock {
                $0.lastSuccess[table] = instant
                $0.anySuccess = instant
            }
        }
    }

    /// Runs `body`, timing it; a failure the reconnecting client may report during an outage
    /// is counted, anything else is recorded as unexpected. Nil on failure.
    static func timed<T: Sendable>(_ ledger: Ledger, _ what: String, _ body: () async throws -> T) async -> T? {
        let start = ContinuousClock.now
        defer {
            let took = ContinuousClock.now - start
            ledger.state.withLock {
                $0.calls += 1
                $0.longestCall = max($0.longestCall, took)
            }
        }
        do {
            return try await body()
        } catch let error as NanaClientError where [.unavailable, .outcomeUnknown, .connectionLost].contains(error.code) {
            ledger.state.withLock { $0.failures += 1 }
        } catch {
            ledger.state.withLock { $0.unexpected.append("\(what): \(error)") }
        }
        return nil
    }

    @Test func callsCarryOnThroughTwentyKillsAndThreeGracefulStops() async throws {
        var daemon = try await Daemon.start()
        let folder = daemon.folder
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let connectionTimeout: Duration = .seconds(2)
        let client = try await NanaClient.connect(configuration: NanaClientConfiguration(
            socketPath: daemon.socketPath, clientName: "restart-rounds", connectionTimeout: connectionTimeout))
        // Opened once, before the first kill, and used through every restart.
        let plain = try await client.open("plain.db")
        let sub = try await plain.table("sub")
        let key = (0..<32).map { UInt8($0) }
        let secret = try await client.open("secret.db", options: NanaOpenOptions(encryption: NanaEncryption(key: key)))
        let staged = try await client.open("staged.db", options: NanaOpenOptions(writeBehind: NanaWriteBehind()))
        let tables: [(name: String, db: NanaDatabase)] = [("plain", plain), ("sub", sub), ("secret", secret), ("staged", staged)]

        let ledger = Ledger()
        let callers = (0..<2).map { caller in
            Task {
                var i = 0
                while !ledger.stopping.load(ordering: .relaxed) {
                    let (name, db) = tables[i % tables.count]
                    let key = "c\(caller)-\(i)", value = NanaValue.string("value \(caller)-\(i)")
                    i += 1
                    // A write-behind set is only staged when it returns: it has taken effect
                    // once a flush with `wait` returned, on the same connection (a SIGKILL
                    // loses what a daemon staged and never committed).
                    let reconnectsBefore = client.statistics.reconnects
                    guard await Self.timed(ledger, "set \(name)", { try await db.set(key, value) }) != nil else { continue }
                    if name == "staged" {
                        guard await Self.timed(ledger, "flush", { try await db.flush(wait: true) }) != nil,
                              client.statistics.reconnects == reconnectsBefore else { continue }
                    }
                    ledger.state.withLock { $0.confirmed[name, default: [:]][key] = value }
                    ledger.succeeded(name, at: .now)
                    // Read back an earlier confirmed write of the same table: never lost, never stale.
                    let earlier = ledger.state.withLock { $0.confirmed[name]?.randomElement() }
                    if let (oldKey, oldValue) = earlier,
                       let read = await Self.timed(ledger, "get \(name)", { try await db.get(oldKey) }) {
                        if read != oldValue {
                            ledger.state.withLock { $0.unexpected.append("\(name)[\(oldKey)] read \(read), confirmed \(oldValue)") }
                        }
                        ledger.succeeded(name, at: .now)
                    }
                }
            }
        }

        var signals = Array(repeating: SIGKILL, count: 20) + Array(repeating: SIGTERM, count: 3)
        signals.shuffle()
        var recoveries: [Duration] = []
        for signal in signals {
            try await Task.sleep(for: .milliseconds(Int.random(in: 30...400)))  // a random moment in the calls
            try await daemon.stop(signal)
            try await Task.sleep(for: .milliseconds(Int.random(in: 0...300)))  // calls wait meanwhile
            daemon = try Daemon(folder: folder)
            try await daemon.waitUntilServing()
            // The harness's own connection has been answered: the daemon accepts. (It polls
            // every 20 ms, so the daemon may have accepted up to that much earlier.)
            let accepted = ContinuousClock.now
            while ContinuousClock.now - accepted < .seconds(3) {
                if let last = ledger.state.withLock({ $0.anySuccess }), last > accepted { break }
                try await Task.sleep(for: .milliseconds(5))
            }
            let recovered = (ledger.state.withLock { $0.anySuccess }).map { $0 - accepted } ?? .seconds(99)
            recoveries.append(recovered)
            #expect(recovered <= .seconds(1), "calls succeeded again \(recovered) after nanad accepted (signal \(signal)); log: \(daemon.logText)")
        }
        let lastAccepted = ContinuousClock.now
        try await Task.sleep(for: .milliseconds(300))
        ledger.stopping.store(true, ordering: .relaxed)
        for caller in callers { await caller.value }
        await client.close()

        let seen = ledger.state.withLock { $0 }
        #expect(seen.unexpected.isEmpty, "\(seen.unexpected.prefix(10))")
        // Each wait is bounded by the call's deadline; the call itself is a local round trip.
        #expect(seen.longestCall < connectionTimeout + .seconds(1), "longest call: \(seen.longestCall)")
        for (name, _) in tables {
            #expect((seen.lastSuccess[name] ?? lastAccepted) > lastAccepted, "\(name) did not answer after the last restart")
            #expect((seen.confirmed[name]?.count ?? 0) > 50, "\(name): only \(seen.confirmed[name]?.count ?? 0) confirmed writes")
        }
        let statistics = client.statistics
        #expect(statistics.reconnects >= signals.count, "\(statistics)")

        // Every write that was confirmed is there, read by a fresh client after one more restart.
        try await daemon.stop(SIGTERM)
        daemon = try await Daemon.start(folder: folder)
        let reader = try await daemon.connect()
        let readerPlain = try await reader.open("plain.db")
        let stored: [String: NanaParams] = [
            "plain": try await readerPlain.toDict(),
            "sub": try await readerPlain.table("sub").toDict(),
            "secret": try await reader.open("secret.db", options: NanaOpenOptions(encryption: NanaEncryption(key: key))).toDict(),
            "staged": try await reader.open("staged.db", options: NanaOpenOptions(writeBehind: NanaWriteBehind())).toDict(),
        ]
        for (name, writes) in seen.confirmed {
            let missing = writes.filter { stored[name]?[NanaKey($0.key)] != $0.value }
            #expect(missing.isEmpty, "\(name): \(missing.count) of \(writes.count) confirmed writes not stored, e.g. \(missing.first.map { "\($0.key)" } ?? "")")
        }
        await reader.close()
        try await daemon.stop()
        print("restart rounds: \(seen.calls) calls, \(seen.failures) failed during outages, \(statistics.reconnects) reconnects, "
            + "recovery after accept median \(recoveries.sorted()[recoveries.count / 2]) max \(recoveries.max() ?? .zero), longest call \(seen.longestCall)")
    }

    /// `nanabench outages`, in its own process, while this test (from outside) kills nanad and
    /// starts it again: one report per outage, each naming the new run of the daemon.
    @Test func theOutagesWorkloadReportsEachRestartFromBothSides() async throws {
        var daemon = try await Daemon.start()
        let folder = daemon.folder
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let socket = daemon.socketPath
        let bench = Task { try await runTool("nanabench", ["outages", "--socket", socket, "--seconds", "5", "--callers", "8", "--json"]) }
        var pids: [Int64] = []
        for signal in [SIGKILL, SIGTERM] {
            try await Task.sleep(for: .milliseconds(1200))
            try await daemon.stop(signal)
            daemon = try await Daemon.start(folder: folder)
            pids.append(Int64(daemon.process.processIdentifier))
        }
        let run = try await bench.value
        #expect(run.status == 0, "\(run.stderr)")
        let lines = try run.stdout.split(separator: "\n").map { try JSONReader.value(from: Array($0.utf8)) }
        let outages = lines.filter { $0["outage"] != nil }
        #expect(outages.count == 2, "\(run.stdout)")
        for (outage, pid) in zip(outages, pids) {
            #expect(outage["restarted"] == true)
            #expect(outage["pid"]?.int64Value == pid)
            let afterStart = outage["first_success_after_daemon_start_ms"]?.doubleValue ?? -1
            #expect(afterStart > 0 && afterStart < 1000, "\(outage)")
            let startedAfterLoss = outage["daemon_started_after_loss_ms"]?.doubleValue ?? -1
            let lossToSuccess = outage["loss_to_first_success_ms"]?.doubleValue ?? -1
            #expect(startedAfterLoss > 0 && lossToSuccess > startedAfterLoss, "\(outage)")
        }
        let summary = try #require(lines.last)
        #expect(summary["summary"] == true && summary["other_errors"] == 0 && summary["restarts"] == 2, "\(summary)")
        try await daemon.stop()
    }
}
