import Foundation
import NanaClient
import NanaWire
import Testing

/// The operator tool against the real daemon, as a separate process.
@Suite(.serialized) struct NanactlTests {
    @Test func loadAHundredThousandLinesAndDumpThemBackIdentical() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        var lines = ""
        for i in 0..<100_000 {
            let value: NanaValue = i % 3 == 0 ? ["n": .int(Int64(i)), "f": .double(Double(i) + 0.5), "ok": .bool(i % 2 == 0)] : .string("row \(i)")
            lines += try JSONWriter.string(from: ["key": .string("k\(i)"), "value": value]) + "\n"
        }
        let input = daemon.folder + "/in.jsonl"
        try lines.write(toFile: input, atomically: true, encoding: .utf8)
        let ctl = { (args: [String]) in try await runTool("nanactl", args + ["--socket", daemon.socketPath, "--db", "ops.db"]) }

        let load = try await ctl(["load", input, "--batch", "10000"])
        #expect(load.status == 0, "\(load.stderr)")
        #expect(load.stdout.contains("loaded 100000 rows"))
        let output = daemon.folder + "/out.jsonl"
        let dump = try await ctl(["dump", "--output", output])
        #expect(dump.status == 0, "\(dump.stderr)")
        #expect(try String(contentsOfFile: output, encoding: .utf8) == lines)

        // --json output parses, and exit codes say what happened.
        let ping = try await ctl(["ping", "--json"])
        #expect(try JSONReader.value(from: Array(ping.stdout.utf8))["server"] == "nanad")
        let stats = try await ctl(["stats"])
        #expect(try JSONReader.value(from: Array(stats.stdout.utf8))["databases"]?.arrayValue?.count == 1)
        let tables = try await ctl(["tables", "--json"])
        #expect(try JSONReader.value(from: Array(tables.stdout.utf8)) == ["data"])
        let keys = try await ctl(["keys", "--prefix", "k9999", "--json"])
        #expect(try JSONReader.value(from: Array(keys.stdout.utf8)).arrayValue?.count == 11)
        #expect(try await ctl(["get", "k3"]).stdout == #"{"n":3,"f":3.5,"ok":false}"# + "\n")
        #expect(try await ctl(["get", "missing"]).status == 1)
        #expect(try await ctl(["set", "bad", "not json"]).status != 0)
        #expect(try await ctl(["backup", "copy.db"]).status == 0)
        #expect(try await runShell("sqlite3", [daemon.dataDirectory + "/copy.db", "SELECT COUNT(*) FROM data"]) == "100000")
        #expect(try await runTool("nanactl", ["ping", "--socket", daemon.folder + "/nobody-here.sock"]).status == 4)
        try await daemon.stop()
    }
}
