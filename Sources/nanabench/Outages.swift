import ArgumentParser
import Foundation
import NanaClient
import NanaWire
import Synchronization

/// Calls nanad without pause through one reconnecting client, and reports every outage as the
/// daemon saw it and as the client saw it (issue #18). Restart or kill nanad from outside —
/// a script, systemd, a test — while it runs; nothing here touches the daemon.
///
/// An outage starts at the first sign of the loss (a failed call, or the client's state going
/// to `reconnecting`) and ends at the first call that succeeds on the new connection. For
/// each, the client's side: how long from the loss to that first success, and the calls that
/// failed meanwhile, by error; the daemon's side, from the new connection's `hello`: which
/// run of nanad answered (instance, pid) and when it started, so how long after the loss it
/// started and how long after its start the client was served again.
struct Outages: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Calls nanad without pause; reports each outage as the daemon and the client saw it (restart nanad from outside).")

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "Database file inside nanad's data folder.") var db = "outages.db"
    @Option(help: "Concurrent callers, each a set then a get of its own keys.") var callers = 4
    @Option(help: "How long to run, in seconds.") var seconds = 60.0
    @Option(help: "How long a call waits for a connection, in seconds.") var timeout = 5.0
    @Flag(help: "One JSON object per line (each outage, then a summary) instead of text.") var json = false

    func validate() throws {
        guard callers >= 1 else { throw ValidationError("--callers must be at least 1") }
        guard seconds > 0, seconds.isFinite else { throw ValidationError("--seconds must be a positive number") }
        guard timeout > 0, timeout.isFinite else { throw ValidationError("--timeout must be a positive number") }
    }

    func run() async throws {
        let client = try await NanaClient.connect(configuration: NanaClientConfiguration(
            socketPath: socket, clientName: "nanabench-outages", connectionTimeout: .milliseconds(Int64(timeout * 1000))))
        let database = try await client.open(db)
        let tracker = OutageTracker(client: client, json: json)
        let watcher = Task {
            for await state in client.connectionStates() where state == .reconnecting { tracker.lost() }
        }
        let end = ContinuousClock.now + .milliseconds(Int64(seconds * 1000))
        await withTaskGroup(of: Void.self) { group in
            for caller in 0..<callers {
                group.addTask {
                    var n = 0
                    while ContinuousClock.now < end {
                        let key = "outage-\(caller)-\(n % 1000)"
                        n += 1
                        do {
                            try await database.set(key, .int(Int64(n)))
                            tracker.succeeded()
                            _ = try await database.get(key)
                            tracker.succeeded()
                        } catch let error as NanaClientError {
                            tracker.failed(error.code)
                        } catch {
                            tracker.failed(other: "\(error)")
                        }
                    }
                }
            }
        }
        watcher.cancel()
        await client.close()
        tracker.summarise()
        if tracker.otherErrors > 0 { throw ExitCode(1) }
    }
}

/// The outages seen so far, fed by the callers and the state watcher.
final class OutageTracker: Sendable {
    private struct Outage {
        var lostAt = ContinuousClock.now
        var lostAtWall = Date().timeIntervalSince1970
        var failed: [String: Int] = [:]
    }

    private struct State {
        var open: Outage?
        /// The client's reconnections accounted for: an outage ends at the first success
        /// after the count moved on.
        var reconnectsSeen = 0
        var instance: String
        var pid: Int64
        var calls = 0, failedCalls = 0, otherErrors = 0
        var clientSide: [Double] = [], afterDaemonStart: [Double] = []
    }

    private let client: NanaClient
    private let json: Bool
    private let state: Mutex<State>

    init(client: NanaClient, json: Bool) {
        self.client = client
        self.json = json
        state = Mutex(State(instance: client.serverInfo["instance"]?.stringValue ?? "?", pid: client.serverInfo["pid"]?.int64Value ?? 0))
    }

    var otherErrors: Int { state.withLock { $0.otherErrors } }

    func lost() {
        state.withLock { if $0.open == nil { $0.open = Outage() } }
    }

    func failed(_ code: NanaClientError.Code) {
        state.withLock {
            $0.calls += 1
            $0.failedCalls += 1
            if $0.open == nil { $0.open = Outage() }
            $0.open?.failed["\(code)", default: 0] += 1
        }
    }

    func failed(other error: String) {
        state.withLock {
            $0.calls += 1
            $0.otherErrors += 1
        }
        print("error: \(error)")
    }

    func succeeded() {
        let reconnects = client.statistics.reconnects
        let report: String? = state.withLock { state in
            state.calls += 1
            guard reconnects > state.reconnectsSeen else { return nil }
            let now = ContinuousClock.now, wall = Date().timeIntervalSince1970
            let outage = state.open ?? Outage()
            state.open = nil
            state.reconnectsSeen = reconnects
            let info = client.serverInfo
            let instance = info["instance"]?.stringValue ?? "?", pid = info["pid"]?.int64Value ?? 0
            let startedAt = info["started_at"]?.doubleValue ?? wall
            let clientSide = Self.milliseconds(now - outage.lostAt)
            let afterStart = (wall - startedAt) * 1000
            let startAfterLoss = (startedAt - outage.lostAtWall) * 1000
            state.clientSide.append(clientSide)
            if instance != state.instance { state.afterDaemonStart.append(afterStart) }
            let number = state.clientSide.count
            let failedCalls = outage.failed.values.reduce(0, +)
            defer { (state.instance, state.pid) = (instance, pid) }
            if json {
                var fields: NanaParams = [
                    "outage": .int(Int64(number)), "old_instance": .string(state.instance), "old_pid": .int(state.pid),
                    "instance": .string(instance), "pid": .int(pid), "restarted": .bool(instance != state.instance),
                    "loss_to_first_success_ms": .double(clientSide), "failed_calls": .int(Int64(failedCalls)),
                    "failed": .map(.init(uniqueKeysWithValues: outage.failed.sorted { $0.key < $1.key }.map { (NanaKey($0.key), NanaValue.int(Int64($0.value))) })),
                ]
                if instance != state.instance {
                    fields["daemon_started_after_loss_ms"] = .double(startAfterLoss)
                    fields["first_success_after_daemon_start_ms"] = .double(afterStart)
                }
                return (try? JSONWriter.string(from: .map(fields))) ?? "{}"
            }
            let byError = outage.failed.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
            let daemon = instance == state.instance
                ? "daemon: the same run (\(instance), pid \(pid)) — the connection alone was lost"
                : "daemon: \(state.instance) (pid \(state.pid)) → \(instance) (pid \(pid)), started \(Self.ms(startAfterLoss)) after the loss; first success \(Self.ms(afterStart)) after it started"
            return "outage \(number): client: first success \(Self.ms(clientSide)) after the loss, \(failedCalls) calls failed"
                + (byError.isEmpty ? "" : " (\(byError))") + "; " + daemon
        }
        if let report { print(report) }
    }

    func summarise() {
        let s = state.withLock { $0 }
        let clientSide = s.clientSide.sorted(), afterStart = s.afterDaemonStart.sorted()
        func middle(_ values: [Double]) -> Double { values.isEmpty ? 0 : values[values.count / 2] }
        if json {
            print((try? JSONWriter.string(from: .map([
                "summary": true, "outages": .int(Int64(clientSide.count)), "restarts": .int(Int64(afterStart.count)),
                "calls": .int(Int64(s.calls)), "failed_calls": .int(Int64(s.failedCalls)), "other_errors": .int(Int64(s.otherErrors)),
                "loss_to_first_success_ms_median": .double(middle(clientSide)), "loss_to_first_success_ms_max": .double(clientSide.last ?? 0),
                "first_success_after_daemon_start_ms_median": .double(middle(afterStart)), "first_success_after_daemon_start_ms_max": .double(afterStart.last ?? 0),
            ]))) ?? "{}")
        } else {
            print("\(clientSide.count) outages (\(afterStart.count) restarts of nanad), \(s.calls) calls, \(s.failedCalls) failed, \(s.otherErrors) other errors; "
                + "loss → first success median \(Self.ms(middle(clientSide))), max \(Self.ms(clientSide.last ?? 0)); "
                + "daemon start → first success median \(Self.ms(middle(afterStart))), max \(Self.ms(afterStart.last ?? 0))")
        }
    }

    private static func ms(_ value: Double) -> String { String(format: "%.1f ms", value) }

    private static func milliseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) * 1e-15
    }
}
