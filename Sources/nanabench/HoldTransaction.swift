import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// A client that opens a transaction, writes inside it, says so, and then waits without
/// committing: the integration tests kill it to check that the daemon releases the writer.
struct HoldTransaction: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "hold-transaction",
        abstract: "Begin a transaction, write one key inside it, print 'holding', and wait."
    )

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "Database file inside nanad's data folder.") var db = "bench.db"
    @Option(help: "Key to write inside the transaction.") var key = "held"
    @Option(help: "Seconds to wait before giving up (and rolling back).") var seconds = 60.0

    func run() async throws {
        let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-hold")
        let database = try await client.open(db)
        try await database.beginTransaction()
        try await database.set(key, "uncommitted")
        // Unbuffered: the test waits for this line on a pipe.
        FileHandle.standardOutput.write(Data("holding\n".utf8))
        try await Task.sleep(for: .seconds(seconds))
        try await database.rollback()
        await client.close()
    }
}
