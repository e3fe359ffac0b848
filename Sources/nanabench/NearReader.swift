import ArgumentParser
import Foundation
import NanaClient
import NanaWire

/// A reader process with near-caches, driven line by line on stdin, for the coherence tests:
/// another process changes data, tells this one (a line), and checks what it reads. Commands:
///
/// - `get TABLE KEY` prints the value as JSON, or `MISSING`;
/// - `contains TABLE KEY` prints `true` or `false`;
/// - `batch TABLE KEY…` prints the found values as a JSON object;
/// - `stats` prints the near-caches' counters summed, and the client's reconnections, as JSON.
///
/// When the daemon restarts the client reconnects and reopens its tables by itself (reads in
/// flight go again); a call that fails prints `ERROR message`.
struct NearReader: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "near-reader", abstract: "Read through near-caches as told on stdin (for the coherence tests).")

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "Database file inside nanad's data folder.") var db = "bench.db"
    @Option(help: "Tables to open, comma-separated (with the settings they already have).") var tables = "data"

    func run() async throws {
        let names = tables.split(separator: ",").map(String.init)
        let session = try await Session.open(socket: socket, db: db, tables: names)
        while let line = readLine() {
            let words = line.split(separator: " ").map(String.init)
            guard let command = words.first else { continue }
            if command == "stats" {
                let all = session.handles.values.compactMap(\.nearCacheStatistics)
                let total = { (field: KeyPath<NanaNearCacheStatistics, Int>) in NanaValue.int(Int64(all.reduce(0) { $0 + $1[keyPath: field] })) }
                emit(try JSONWriter.string(from: ["hits": total(\.hits), "misses": total(\.misses), "invalidations": total(\.invalidations),
                                                  "reconnections": .int(Int64(session.client.statistics.reconnects))]))
                continue
            }
            guard words.count >= 3 else {
                emit("ERROR expected: \(command) TABLE KEY")
                continue
            }
            do {
                guard let handle = session.handles[words[1]] else { throw ValidationError("table \(words[1]) is not open") }
                emit(try await Self.answer(command, Array(words[2...]), on: handle))
            } catch {
                emit("ERROR \(error)")
            }
        }
        await session.client.close()
    }

    private func emit(_ line: String) {
        print(line)
        fflush(nil)  // every stream; `stdout` itself is a global Swift 6 will not touch
    }

    private static func answer(_ command: String, _ keys: [String], on handle: NanaDatabase) async throws -> String {
        switch command {
        case "get":
            let missing = NanaValue.binary([0xFF])  // stored values are JSON, never binary
            let value = try await handle.get(keys[0], default: missing)
            return value == missing ? "MISSING" : try JSONWriter.string(from: value)
        case "contains":
            return try await handle.contains(keys[0]) ? "true" : "false"
        case "batch":
            return try JSONWriter.string(from: .map(try await handle.batchGet(keys)))
        default:
            return "ERROR unknown command \(command)"
        }
    }

    private struct Session {
        let client: NanaClient
        let handles: [String: NanaDatabase]

        static func open(socket: String, db: String, tables: [String]) async throws -> Session {
            let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-near-reader")
            var handles: [String: NanaDatabase] = [:]
            for table in tables { handles[table] = try await client.open(db, table: table, options: .current) }
            return Session(client: client, handles: handles)
        }
    }
}
