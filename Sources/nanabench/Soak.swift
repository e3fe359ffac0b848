import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// The soak (issue #6): many connections doing mixed gets, sets, batch calls and queries for a
/// while; every interval prints the p99 latency, the calls and errors of the interval, the
/// connections lost in it, and the daemon's open connections and resident memory. Any error or
/// lost connection makes it exit non-zero. A lane whose connection is lost stops (its calls
/// would all fail at once) and is counted once as lost.
struct Soak: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Mixed load from many connections for a while; p99 and daemon RSS per interval.")

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "Database file inside nanad's data folder.") var db = "soak.db"
    @Option(help: "Concurrent connections.") var connections = 1000
    @Option(help: "How long to run, in seconds.") var seconds = 600.0
    @Option(help: "Seconds between reports.") var interval = 60.0

    func run() async throws {
        var lanes: [NanaDatabase] = []
        lanes.reserveCapacity(connections)
        for lane in 0..<connections {
            let client = try await NanaClient.connect(socketPath: socket, clientName: "soak-\(lane)")
            lanes.append(try await client.open(db))
        }
        let monitor = try await NanaClient.connect(socketPath: socket, clientName: "soak-monitor")
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        let recorder = LatencyRecorder()
        let all = lanes
        let reporter = Task {
            var rows: [String] = []
            var minute = 0
            while ContinuousClock.now < end {
                try? await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
                minute += 1
                let (count, p99, errors, lost) = await recorder.drain()
                let server = (try? await monitor.stats())?["server"]
                let rss = server?["resident_bytes"]?.int64Value ?? 0
                // The daemon's view: connections open now (the lanes still running plus this monitor).
                let open = server?["connections"]?.int64Value ?? -1
                let row = "interval \(minute): calls \(count), p99 \(p99) µs, errors \(errors), lost connections \(lost), daemon connections \(open), daemon rss \(rss / 1_048_576) MiB"
                print(row)
                rows.append(row)
            }
            return rows
        }
        let errors = await withTaskGroup(of: Int.self) { group in
            for (lane, database) in all.enumerated() {
                group.addTask {
                    var errors = 0
                    var n = 0
                    while ContinuousClock.now < end {
                        let key = "s-\(lane)-\(n % 100)"
                        let start = ContinuousClock.now
                        do {
                            switch n % 10 {
                            case 0...4: _ = try await database.get(key)
                            case 5...7: try await database.set(key, ["n": .int(Int64(n)), "lane": .int(Int64(lane))])
                            case 8: try await database.batchUpdate(["b-\(lane)-0": .int(Int64(n)), "b-\(lane)-1": .int(Int64(n))])
                            default: _ = try await database.query(columns: ["key"], where: "key = ?", [.string(key)])
                            }
                            await recorder.record(ContinuousClock.now - start)
                        } catch {
                            errors += 1
                            await recorder.fail()
                            FileHandle.standardError.write(Data("lane \(lane): \(error)\n".utf8))
                            if let failure = error as? NanaClientError, failure.code == .connectionClosed {
                                await recorder.lose()
                                break
                            }
                        }
                        n += 1
                    }
                    return errors
                }
            }
            return await group.reduce(0, +)
        }
        _ = await reporter.value
        let total = await recorder.total
        let lost = await recorder.totalLost
        print("soak: \(connections) connections, \(total) calls, \(errors) errors, \(lost) lost connections")
        for database in all { await database.client.close() }
        await monitor.close()
        if errors > 0 || lost > 0 || total == 0 { throw ExitCode.failure }
    }
}

/// Latencies of one reporting interval.
actor LatencyRecorder {
    private var micros: [Double] = []
    private var errors = 0
    private var lost = 0
    private(set) var total = 0
    private(set) var totalLost = 0

    func record(_ duration: Duration) {
        micros.append(Double(duration.components.seconds) * 1e6 + Double(duration.components.attoseconds) / 1e12)
        total += 1
    }

    func fail() { errors += 1 }

    /// A lane's connection was lost (counted once per lane).
    func lose() {
        lost += 1
        totalLost += 1
    }

    /// Calls, p99 in µs, errors and lost connections of the interval; starts the next one.
    func drain() -> (Int, Int, Int, Int) {
        let sorted = micros.sorted()
        let p99 = sorted.isEmpty ? 0 : Int(sorted[min(sorted.count - 1, Int(Double(sorted.count) * 0.99))])
        defer { micros.removeAll(keepingCapacity: true); errors = 0; lost = 0 }
        return (sorted.count, p99, errors, lost)
    }
}
