import ArgumentParser
import Foundation
import NanaClient
import NanaWire

@main
struct Nanactl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nanactl",
        abstract: "Talks to a running nanad.",
        discussion: "Values are JSON on the command line and on output. --socket, --db and --table may come before or after the subcommand. Exit status: 0 done, 1 not found, 2 usage, 3 the daemon refused, 4 cannot reach the daemon.",
        subcommands: [Ping.self, Stats.self, Files.self, Get.self, Set.self, Delete.self, Keys.self, Tables.self, Dump.self, Load.self, Backup.self, Flush.self, DLQ.self, Call.self]
    )

    static func main() async {
        await main(Connection.movingCommonOptions(in: Array(CommandLine.arguments.dropFirst())))
    }
}

/// Options every subcommand shares.
struct Connection: ParsableArguments {
    @Option(help: "nanad's socket (default: $NANAD_SOCKET, else nanad-data/nanad.sock).")
    var socket: String?

    @Option(help: "Database file inside nanad's data folder.")
    var db = "data.db"

    @Option(help: "Key-value table.")
    var table = "data"

    /// The options of ``Connection`` given before the subcommand, moved after it:
    /// swift-argument-parser has no options shared by every subcommand that may also stand
    /// before them (`nanactl --socket S ping`, as redis-cli, git and systemctl users type).
    static func movingCommonOptions(in arguments: [String]) -> [String] {
        let names: Swift.Set<String> = ["--socket", "--db", "--table"]
        var leading: [String] = []
        var rest = arguments[...]
        while let first = rest.first, first.hasPrefix("--") {
            let name = String(first.split(separator: "=", maxSplits: 1)[0])
            guard names.contains(name) else { break }
            leading.append(first)
            rest = rest.dropFirst()
            if !first.contains("="), let value = rest.first {
                leading.append(value)
                rest = rest.dropFirst()
            }
        }
        // Behind the subcommand and any subcommand of it (`dlq list`), before its arguments.
        guard !leading.isEmpty, !rest.isEmpty else { return arguments }
        var words = Array(rest.prefix { !$0.hasPrefix("-") }.prefix(2))
        if words.count == 2, !["dlq"].contains(words[0]) { words.removeLast() }
        return words + leading + rest.dropFirst(words.count)
    }

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
        return try await refused { try await client.open(db, table: table, options: .current) }
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
    @Flag(help: "Print JSON.") var json = false
    func run() async throws {
        let client = try await connection.connect()
        let start = ContinuousClock.now
        try await refused { try await client.ping() }
        let elapsed = ContinuousClock.now - start
        let server = client.serverInfo["server"]?.stringValue ?? "?", version = client.serverInfo["version"]?.stringValue ?? "?"
        if json {
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            try printJSON(["server": .string(server), "version": .string(version), "seconds": .double(seconds)])
        } else {
            print("pong from \(server) \(version) in \(elapsed)")
        }
    }
}

struct Tables: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List the tables of a database file.")
    @OptionGroup var connection: Connection
    @Flag(help: "Print a JSON array.") var json = false
    func run() async throws {
        let db = try await connection.open()
        let tables = try await refused { try await db.listTables() }
        if json { try printJSON(.array(tables.map(NanaValue.string))) } else { tables.forEach { print($0) } }
    }
}

/// One line of `dump` and `load`: `{"key": …, "value": …}`.
func jsonLine(_ key: String, _ value: NanaValue) throws -> String {
    try JSONWriter.string(from: ["key": .string(key), "value": value])
}

struct Dump: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write every row as JSON Lines ({\"key\": …, \"value\": …}).")
    @OptionGroup var connection: Connection
    @Option(name: .shortAndLong, help: "File to write (default: standard output).") var output: String?
    func run() async throws {
        let db = try await connection.open()
        let rows = try await refused { try await db.items() }
        var text = ""
        text.reserveCapacity(rows.count * 32)
        for (key, value) in rows {
            text += try jsonLine(key, value)
            text += "\n"
        }
        if let output {
            try text.write(toFile: output, atomically: true, encoding: .utf8)
        } else {
            FileHandle.standardOutput.write(Data(text.utf8))
        }
    }
}

struct Load: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Store JSON Lines ({\"key\": …, \"value\": …}) in batches, each one transaction.")
    @OptionGroup var connection: Connection
    @Argument(help: "File to read, or - for standard input.") var input: String
    @Option(help: "Rows per batch.") var batch = 5000
    func run() async throws {
        let data: Data
        if input == "-" { data = FileHandle.standardInput.readDataToEndOfFile() } else {
            guard let contents = FileManager.default.contents(atPath: input) else { throw ValidationError("cannot read \(input)") }
            data = contents
        }
        let db = try await connection.open()
        let showProgress = isatty(STDERR_FILENO) != 0
        var pending = NanaParams()
        var loaded = 0
        var lineNumber = 0
        func send() async throws {
            guard !pending.isEmpty else { return }
            let rows = pending
            try await refused { try await db.batchUpdate(rows) }
            loaded += rows.count
            pending.removeAll(keepingCapacity: true)
            if showProgress { FileHandle.standardError.write(Data("\rloaded \(loaded) rows".utf8)) }
        }
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            lineNumber += 1
            guard let row = try? JSONReader.value(from: line), case .string(let key)? = row["key"], let value = row["value"] else {
                throw ValidationError("line \(lineNumber) is not {\"key\": str, \"value\": …}")
            }
            pending[NanaKey(key)] = value
            if pending.count >= max(1, batch) { try await send() }
        }
        try await send()
        if showProgress { FileHandle.standardError.write(Data("\n".utf8)) }
        print("loaded \(loaded) rows")
    }
}

struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Back the database up to a file inside nanad's data folder (checked, then renamed into place).")
    @OptionGroup var connection: Connection
    @Argument(help: "Destination, relative to the data folder.") var destination: String
    func run() async throws {
        let db = try await connection.open()
        let start = ContinuousClock.now
        try await refused { try await db.backup(to: destination) }
        print("backed up to \(destination) in \(ContinuousClock.now - start)")
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

struct Files: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the database files nanad holds open, or close one nobody uses.",
        discussion: "A file nobody uses is closed by nanad itself after --close-idle-files-after seconds; --close does it now, and fails (exit 3) when the file is in use or not open.")
    @OptionGroup var connection: Connection
    @Option(help: "Close this database file (a path inside the data folder) now, if nobody uses it.") var close: String?
    @Flag(help: "Print JSON.") var json = false
    func run() async throws {
        let client = try await connection.connect()
        if let close {
            let closed = try await refused { try await client.call("close_file", ["db_path": .string(close)]) }
            guard closed == true else {
                FileHandle.standardError.write(Data("nanactl: \(close) is not open, or is in use\n".utf8))
                throw ExitCode(3)
            }
            return print("closed \(close)")
        }
        let stats = try await refused { try await client.stats() }
        let files: [NanaValue] = (stats["databases"]?.arrayValue ?? []).map { db in
            ["path": db["path"] ?? .nil, "sessions": db["sessions"] ?? .nil, "write_queue": db["write_queue"] ?? .nil,
             "v2_staged": db["v2_staged"] ?? .nil, "dlq": db["dlq"] ?? .nil,
             "tables": .array((db["tables"]?.arrayValue ?? []).compactMap { $0["name"] })]
        }
        if json { return try printJSON(.array(files)) }
        let server = stats["server"]
        print("\(files.count) open, \(server?["idle_files_closed"]?.int64Value ?? 0) closed while idle, \(server?["replacements_detected"]?.int64Value ?? 0) found changed underneath; \(server?["threads"]?.int64Value ?? 0) threads, \(server?["descriptors"]?.int64Value ?? 0) descriptors")
        for file in files {
            let tables = (file["tables"]?.arrayValue ?? []).compactMap(\.stringValue).joined(separator: ",")
            print("\(file["path"]?.stringValue ?? "?")\tsessions \(file["sessions"]?.int64Value ?? 0)\tqueued \(file["write_queue"]?.int64Value ?? 0)\ttables \(tables)")
        }
    }
}

struct Get: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print a key's value as JSON (exit 1 when missing).")
    @OptionGroup var connection: Connection
    @Argument var key: String
    func run() async throws {
        let db = try await connection.open()
        guard let value = try await refused({ try await db.batchGet([key]) })[NanaKey(key)] else {
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

struct Call: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Call any wire method (proto/PROTOCOL.md) and print its reply as JSON.",
        discussion: "The call gets the handle of --db/--table as its `db` unless --no-db is given: `nanactl call --db app.db restore '{\"src_path\": \"old.db\"}'`."
    )
    @OptionGroup var connection: Connection
    @Argument(help: "The method, as on the wire (get, backup, list_tables, …).") var method: String
    @Argument(help: "Its parameters, a JSON object.") var parameters = "{}"
    @Option(name: .customLong("open-options"), help: "Settings for the open of --db, a JSON object of open's parameters (PROTOCOL 9.2).") var openOptions: String?
    @Flag(name: .customLong("no-db"), help: "Open nothing and send no handle (for hello, ping, open, stats).") var noDB = false

    func run() async throws {
        guard case .map(var params) = try json(parameters, "the parameters") else { throw ValidationError("the parameters must be a JSON object") }
        let client = try await connection.connect()
        if !noDB {
            var open: NanaParams = ["db_path": .string(connection.db), "table": .string(connection.table)]
            if let openOptions {
                guard case .map(let settings) = try json(openOptions, "--open-options") else { throw ValidationError("--open-options must be a JSON object") }
                for (name, value) in settings { open[name] = value }
            }
            let opened = try await refused { try await client.call("open", open) }
            params["db"] = opened["db"] ?? .nil
        }
        let request = params
        try printJSON(try await refused { try await client.call(method, request) })
    }

    private func json(_ text: String, _ what: String) throws -> NanaValue {
        do { return try JSONReader.value(from: Array(text.utf8)) } catch { throw ValidationError("\(what) is not JSON: \(error)") }
    }
}
