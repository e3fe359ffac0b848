import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// One process of the many-files workload: opens `count` distinct database files
/// (`PREFIX-0.db` …), `at-once` of them at a time, and in each writes a key, reads it back and
/// closes the handle. With `--verify` it only reads every file back. Prints
/// `{"files": N, "errors": E, "seconds": S}`; a write that does not read back is an error.
/// The integration tests and `docs/BENCHMARKS.md` start four of these against one nanad.
struct ManyFiles: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "files", abstract: "Open, write, read and close many distinct database files.")

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "Prefix of this process's files (PREFIX-0.db … PREFIX-N-1.db, in folder files/).") var prefix: String
    @Option(help: "Files to go through.") var count = 1000
    @Option(name: .customLong("at-once"), help: "Files open at the same time.") var atOnce = 25
    @Flag(help: "Only read every file back, expecting what a run without --verify wrote.") var verify = false

    func run() async throws {
        let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-files-\(prefix)")
        let start = ContinuousClock.now
        let (prefix, count, verify) = (self.prefix, self.count, self.verify)
        var errors = 0
        var firstError: String?
        for wave in stride(from: 0, to: count, by: max(1, atOnce)) {
            let failures = await withTaskGroup(of: String?.self) { group in
                for i in wave..<min(count, wave + max(1, atOnce)) {
                    group.addTask {
                        do {
                            let db = try await client.open("files/\(prefix)-\(i).db")
                            let expected: NanaValue = ["file": .int(Int64(i)), "prefix": .string(prefix)]
                            if !verify { try await db.set("k", expected) }
                            let back = try await db.get("k")
                            try await db.close()
                            return back == expected ? nil : "files/\(prefix)-\(i).db read back \(back)"
                        } catch {
                            return "files/\(prefix)-\(i).db: \(error)"
                        }
                    }
                }
                var failures: [String] = []
                for await failure in group { if let failure { failures.append(failure) } }
                return failures
            }
            errors += failures.count
            if firstError == nil { firstError = failures.first }
        }
        await client.close()
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        var report: NanaParams = ["files": .int(Int64(count)), "errors": .int(Int64(errors)), "seconds": .double(seconds)]
        if let firstError { report["first_error"] = .string(firstError) }
        print(try JSONWriter.string(from: .map(report)))
    }
}
