import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// One writer process: writes `count` distinct keys through one connection with `concurrency`
/// calls in flight, then prints `{"written": N, "errors": E, "seconds": S}`. The benchmark's
/// multi-process case and the integration tests start several of these at once.
struct Worker: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write distinct keys from this process and report what was acknowledged.")

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "Database file inside nanad's data folder.") var db = "bench.db"
    @Option(help: "Prefix of this worker's keys (keys are PREFIX-0 … PREFIX-N-1).") var prefix: String
    @Option(help: "Keys to write.") var count = 2000
    @Option(help: "Calls in flight at once.") var concurrency = 16
    @Option(help: "Instead of writing keys, increment this key `count` times.") var increment: String?

    func run() async throws {
        let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-worker-\(prefix)")
        let database = try await client.open(db)
        let start = ContinuousClock.now
        let prefix = self.prefix
        let count = self.count
        let increment = self.increment
        let lanes = max(1, concurrency)
        let errors = await withTaskGroup(of: Int.self) { group in
            for lane in 0..<lanes {
                group.addTask {
                    var errors = 0
                    for i in stride(from: lane, to: count, by: lanes) {
                        do {
                            if let counter = increment {
                                try await database.increment(counter, by: 1, default: 0)
                            } else {
                                try await database.set("\(prefix)-\(i)", ["worker": .string(prefix), "i": .int(Int64(i))])
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
