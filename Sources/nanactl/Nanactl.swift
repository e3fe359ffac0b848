import ArgumentParser
import Foundation
import NanaClient
import NanaWire

@main
struct Nanactl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nanactl",
        abstract: "Talks to a running nanad.",
        discussion: "Values are JSON on the command line and on output. Exit status: 0 done, 1 not found, 2 usage, 3 the daemon refused, 4 cannot reach the daemon.",
        subcommands: [Ping.self, Stats.self, Get.self, Set.self, Delete.self, Keys.self]
    )
}

/// Options every subcommand shares.
struct Connection: ParsableArguments {
    @Option(help: "nanad's socket (default: $NANAD_SOCKET, else nanad-data/nanad.sock).")
    var socket: String?

    @Option(help: "Database file inside nanad's data folder.")
    var db = "data.db"

    @Option(help: "Key-value table.")
    var table = "data"

    func connect() async throws -> NanaClient {
        do {
            return try await NanaClient.connect(socketPath: socket, clientName: "nanactl")
        } catch {
            FileHandle.standardError.write(Data("nanactl: \(error)\n".utf8))
            throw ExitCode(4)
        }
    }

    func open() async throws -> NanaDatabase {
        let client = try await connect()
        return try await refused { try await client.open(db, table: table) }
    }
}

/// Runs a call, turning the daemon's refusals into exit status 3 with its message.
func refused<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as NanaRemoteError {
        FileHandle.standardError.write(Data("nanactl: \(error)\n".utf8))
        throw ExitCode(error.type == .keyError ? 1 : 3)
    } catch let error as NanaClientError {
        FileHandle.standardError.write(Data("nanactl: \(error)\n".utf8))
        throw ExitCode(4)
    }
}

func printJSON(_ value: NanaValue) throws {
    print(try JSONWriter.string(from: value))
}

struct Ping: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Check that nanad answers.")
    @OptionGroup var connection: Connection
    func run() async throws {
        let client = try await connection.connect()
        let start = ContinuousClock.now
        try await refused { try await client.ping() }
        print("pong from \(client.serverInfo["server"]?.stringValue ?? "?") \(client.serverInfo["version"]?.stringValue ?? "?") in \(ContinuousClock.now - start)")
    }
}

struct Stats: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the daemon's counters as JSON.")
    @OptionGroup var connection: Connection
    func run() async throws {
        let client = try await connection.connect()
        try printJSON(try await refused { try await client.stats() })
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a key's value as JSON (exit 1 when missing).")
    @OptionGroup var connection: Connection
    @Argument var key: String
    func run() async throws {
        let db = try await connection.open()
        guard let value = try await refused({ try await db.batchGet([key]) })[key] else {
            FileHandle.standardError.write(Data("nanactl: no key '\(key)'\n".utf8))
            throw ExitCode(1)
        }
        try printJSON(value)
    }
}

struct Set: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Store a JSON value under a key.")
    @OptionGroup var connection: Connection
    @Argument var key: String
    @Argument(help: "The value, as JSON (a string needs its quotes: '\"text\"').") var value: String
    func run() async throws {
        let parsed: NanaValue
        do { parsed = try JSONReader.value(from: Array(value.utf8)) } catch {
            throw ValidationError("the value is not JSON: \(error)")
        }
        let db = try await connection.open()
        try await refused { try await db.set(key, parsed) }
    }
}

struct Delete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Delete a key (exit 1 when missing).")
    @OptionGroup var connection: Connection
    @Argument var key: String
    func run() async throws {
        let db = try await connection.open()
        try await refused { try await db.delete(key) }
    }
}

struct Keys: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List keys, one per line.")
    @OptionGroup var connection: Connection
    @Option(help: "Only keys starting with this.") var prefix = ""
    @Option(help: "At most this many.") var limit = Int.max
    @Flag(help: "Print a JSON array instead.") var json = false
    func run() async throws {
        let db = try await connection.open()
        let keys = try await refused { try await db.keys() }.filter { $0.hasPrefix(prefix) }.prefix(limit)
        if json { try printJSON(.array(keys.map(NanaValue.string))) } else { keys.forEach { print($0) } }
    }
}
