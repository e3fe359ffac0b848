import Foundation
import NanaStorage
import Testing

@Suite struct DatabaseTests {
    private func awaiting(_ operation: (@escaping @Sendable (Result<Void, StorageError>) -> Void) -> Void) async throws {
        let result = await withCheckedContinuation { continuation in operation { continuation.resume(returning: $0) } }
        try result.get()
    }

    /// The writer spins for the next write only after a lone one (a sequential client finds it
    /// awake); after a batch of several (load) it sleeps at once, and so wakes to a bigger
    /// batch (docs/BENCHMARKS.md, session 19).
    @Test func theWriterSpinsAfterALoneWriteAndSleepsAfterABatch() async throws {
        let folder = TemporaryFolder()
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        var options = DatabaseOptions()
        // 30 s: far longer than this test, however busy the machine (the spin ends when the file closes).
        options.writerSpinMicroseconds = 30_000_000
        let database = try await registry.open("spin.db", options: options)
        let table = try await database.table(named: "data")
        // A write 100 ms after a lone one finds the writer spinning. Up to five tries: a job of the
        // file's own (its opening, say) batched with a write makes that batch one of several.
        var written = 0
        var caughtSpinning = false
        for attempt in 0..<5 where !caughtSpinning {
            try await table.set("lone\(attempt)", storable(0))
            let afterLone = database.writerWakeups
            try await Task.sleep(for: .milliseconds(100))
            try await table.set("next\(attempt)", storable(1))
            written += 2
            let now = database.writerWakeups
            caughtSpinning = now.slept == afterLone.slept && now.foundSpinning > afterLone.foundSpinning
        }
        #expect(caughtSpinning, "no write 100 ms after a lone one found the writer spinning")

        // A client transaction holds the writer while eight writes queue; its COMMIT frees them
        // into one batch.
        let token = TransactionToken(timeout: .seconds(30))
        try await awaiting { database.begin(token, completion: $0) }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<8 { group.addTask { try await table.set("queued\(i)", storable(.int(Int64(i)))) } }
            while database.writeQueueDepth < 8 { try await Task.sleep(for: .milliseconds(5)) }
            let beforeBatch = database.writerWakeups
            try await awaiting { database.commit(token, completion: $0) }
            try await group.waitForAll()
            // At once, though its spin is 30 s; up to 5 s allowed for a busy machine to schedule it.
            let deadline = ContinuousClock.now + .seconds(5)
            while database.writerWakeups.slept == beforeBatch.slept, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
            #expect(database.writerWakeups.slept > beforeBatch.slept, "after a batch of eight the writer sleeps, though its spin is 30 s")
        }
        #expect(try await table.count() == written + 8)
    }
}
