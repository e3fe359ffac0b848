import Foundation
import NanaClient
import NanaWire
import Testing

/// `increment` and `patch` (behaviour spec §3.6) through the daemon.
@Suite(.serialized) struct AtomicUpdateTests {
    @Test func incrementAndPatchSemantics() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("atomic.db")

        await expectRemote(.keyError) { try await db.increment("n") }
        #expect(try await db.increment("n", default: 10) == 11)
        #expect(try await db.increment("n", by: 5) == 16)
        #expect(try await db.increment("n", by: 0.5) == 16.5)  // any float makes a float
        #expect(try await db.get("n") == 16.5)
        await expectRemote(.validation) { try await db.increment("n", by: true) }
        await expectRemote(.validation) { try await db.increment("n", by: .double(.infinity)) }
        await expectRemote(.validation) { try await db.increment("n", by: "1") }
        try await db.set("s", "text")
        await expectRemote(.validation) { try await db.increment("s") }
        try await db.set("big", .int(Int64.max))
        await expectRemote(.validation) { try await db.increment("big") }
        #expect(try await db.get("big") == .int(Int64.max))  // nothing written

        try await db.set("user", ["name": "Ada"])
        #expect(try await db.increment("user", field: "visits", default: 0) == ["name": "Ada", "visits": 1])
        #expect(try await db.increment("user", by: 2, field: "visits") == ["name": "Ada", "visits": 3])
        await expectRemote(.keyError) { try await db.increment("user", field: "missing") }
        await expectRemote(.validation) { try await db.increment("s", field: "x", default: 0) }
        #expect(try await db.increment("fresh", field: "hits", default: 0) == ["hits": 1])

        #expect(try await db.patch("user", ["name": "Grace", "role": ["admin": true]]) == ["name": "Grace", "visits": 3, "role": ["admin": true]])
        #expect(try await db.get("user") == ["name": "Grace", "visits": 3, "role": ["admin": true]])
        await expectRemote(.keyError) { try await db.patch("nobody", ["a": 1]) }
        #expect(try await db.patch("nobody", ["a": 1], create: true) == ["a": 1])
        await expectRemote(.validation) { try await db.patch("s", ["a": 1]) }
        await expectRemote(.validation) { _ = try await client.call("patch", ["db": .int(db.handle), "key": "user", "changes": [1, 2]]) }
        await expectRemote(.typeError) { try await db.patch("user", ["blob": .binary([1])]) }
        #expect(try await db.get("user") == ["name": "Grace", "visits": 3, "role": ["admin": true]])

        try await db.clearCache()  // the stored rows agree with what was answered
        #expect(try await db.get("n") == 16.5)
        #expect(try await db.get("fresh") == ["hits": 1])
        await client.close()
        try await daemon.stop()
    }

    @Test func incrementFromFourProcessesLosesNoUpdate() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let runs = try await withThrowingTaskGroup(of: ToolRun.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    try await runTool("nanabench", ["worker", "--socket", daemon.socketPath, "--db", "counter.db",
                                                    "--prefix", "p\(worker)", "--count", "1000", "--concurrency", "8",
                                                    "--increment", "hits"])
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        for run in runs { #expect(run.status == 0, "\(run.stderr)") }
        let client = try await daemon.connect()
        let db = try await client.open("counter.db")
        #expect(try await db.get("hits") == 4000)
        await client.close()
        try await daemon.stop()
    }
}
