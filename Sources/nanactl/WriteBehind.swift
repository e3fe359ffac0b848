import ArgumentParser
import Foundation
import NanaClient
import NanaWire

struct Flush: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write a v2 table's staged writes to the file now, and wait until they are committed.")
    @OptionGroup var connection: Connection
    @Flag(help: "Print the dead-letter count afterwards as JSON.") var json = false
    func run() async throws {
        let db = try await connection.open()
        try await refused { try await db.flush(wait: true) }
        let failed = try await refused { try await db.deadLetters() }.count
        if json {
            try printJSON(["flushed": true, "dead_letters": .int(Int64(failed))])
        } else if failed > 0 {
            print("flushed; \(failed) row(s) in the dead-letter queue (nanactl dlq list)")
        }
    }
}

struct DLQ: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "The dead-letter queue of a v2 table: rows the flusher could not write.",
        subcommands: [List.self, Retry.self, Clear.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show the failed rows (key, action, error, time; values only with --values).")
        @OptionGroup var connection: Connection
        @Flag(help: "Print a JSON array.") var json = false
        @Flag(help: "Include the values (they may be sensitive).") var values = false
        func run() async throws {
            let db = try await connection.open()
            let letters = try await refused { try await db.deadLetters() }
            if json {
                try printJSON(.array(letters.map { letter in
                    var entry: NanaParams = [
                        "key": .string(letter.key), "action": .string(letter.action.rawValue),
                        "error": .string(letter.error), "timestamp": .double(letter.timestamp),
                    ]
                    if values { entry["value"] = letter.value ?? .nil }
                    return .map(entry)
                }))
                return
            }
            for letter in letters {
                let time = ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: letter.timestamp))
                var line = "\(time)  \(letter.action.rawValue)  \(letter.key)  \(letter.error)"
                if values, let value = letter.value { line += "  " + (try JSONWriter.string(from: value)) }
                print(line)
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stage the failed rows again and flush (a newer staged write of a key wins).")
        @OptionGroup var connection: Connection
        @Flag(help: "Print JSON.") var json = false
        func run() async throws {
            let db = try await connection.open()
            let retried = try await refused { try await db.retryDeadLetters() }
            try await refused { try await db.flush(wait: true) }
            let left = try await refused { try await db.deadLetters() }.count
            if json { try printJSON(["retried": .int(Int64(retried)), "failed_again": .int(Int64(left))]) } else {
                print("retried \(retried); \(left) failed again")
            }
            if left > 0 { throw ExitCode(3) }
        }
    }

    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Discard the failed rows.")
        @OptionGroup var connection: Connection
        @Flag(help: "Print JSON.") var json = false
        func run() async throws {
            let db = try await connection.open()
            let cleared = try await refused { try await db.clearDeadLetters() }
            if json { try printJSON(["cleared": .int(Int64(cleared))]) } else { print("cleared \(cleared)") }
        }
    }
}
