import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// One writer process: writes `count` distinct keys through one connection with `concurrency`
/// calls in flight, then prints `{"written": N, "errors": E, "seconds": S}`. The benchmark's
/// multi-process case and the integration tests start several of these at once.
///
/// With `--peer`, it also checks what it reads: each key it wrote reads back as written at
/// once, and lane 0 keeps a counter (`counter-PREFIX`) while reading the peer's, which must
/// never go backwards; a failed check counts as an error.
struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write distinct keys from this process and report what was acknowledged.")

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "Database file inside nanad's data folder.") var db = "bench.db"
    @Option(help: "Prefix of this worker's keys (keys are PREFIX-0 … PREFIX-N-1).") var prefix: String
    @Option(help: "Keys to write.") var count = 2000
    @Option(help: "Calls in flight at once.") var concurrency = 16
    @Option(help: "Instead of writing keys, increment this key `count` times.") var increment: String?
    @Option(help: "Open the table in v2 (write-behind) mode with this flush mode.") var v2: String?
    @Option(help: "Check reads: read back each write, and watch the counter of this peer worker.") var peer: String?

    func run() async throws {
        let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-worker-\(prefix)")
        let options = try v2.map { mode throws in
            guard let flushMode = NanaWriteBehind.FlushMode(rawValue: mode) else { throw ValidationError("unknown flush mode \(mode)") }
            return NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: flushMode))
        } ?? NanaOpenOptions()
        let database = try await client.open(db, options: options)
        let peer = self.peer
        let start = ContinuousClock.now
        let prefix = self.prefix
        let count = self.count
        let increment = self.increment
        let lanes = max(1, concurrency)
        let errors = await withTaskGroup(of: Int.self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    var errors = 0
                    var peerSeen: Int64 = -1
                    for i in stride(from: lane, to: count, by: lanes) {
                        do {
                            if let counter = increment {
                                try await database.increment(counter, by: 1, default: 0)
                            } else {
                                let value: NanaValue = ["worker": .string(prefix), "i": .int(Int64(i))]
                                try await database.set("\(prefix)-\(i)", value)
                                if let peer {
                                    let back = try await database.get("\(prefix)-\(i)")
                                    if back != value { throw ValidationError("read back \(back) after writing \(value)") }
                                    if lane == 0 {
                                        try await database.set("counter-\(prefix)", .int(Int64(i)))
                                        let seen = try await database.get("counter-\(peer)", default: -1).int64Value ?? -1
                                        if seen < peerSeen { throw ValidationError("counter-\(peer) went back from \(peerSeen) to \(seen)") }
                                        peerSeen = seen
                                    }
                                }
                            }
                        } catch {
                            errors += 1
                            FileHandle.standardError.write(Data("error on \(prefix)-\(i): \(error)\n".utf8))
                        }
                    }
                    return errors
                }
            }
            return await group.reduce(0, +)
        }
        let seconds = (ContinuousClock.now - start) / .seconds(1)
        print("{\"written\": \(count - errors), \"errors\": \(errors), \"seconds\": \(seconds)}")
        await client.close()
        if errors > 0 { throw ExitCode.failure }
    }
}
