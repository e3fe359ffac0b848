import Foundation
import NanaClient
import NanaWire
import Testing

/// What a reconnecting client does with the state a lost connection held: the daemon's
/// transaction, and the near-cache (issue #18).
@Suite(.serialized) struct ReconnectionTests {
    @Test func aTransactionOpenAtARestartIsGoneAndItsCallsSaySoUntilItEnds() async throws {
        let first = try await Daemon.start()
        let folder = first.folder
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let client = try await NanaClient.connect(socketPath: first.socketPath)
        let db = try await client.open("tx.db")
        try await db.set("before", 1)
        try await db.beginTransaction()
        try await db.set("inside", 1)
        try await first.stop(SIGKILL)
        let second = try await Daemon.start(folder: folder)
        // The daemon rolled it back: a call meant for the transaction must not run in autocommit.
        await expectRemote(.transaction) { try await db.set("meant-for-the-transaction", 1) }
        await expectRemote(.transaction) { _ = try await db.get("before") }
        // Ending it says so once, then the handle is an ordinary one again.
        await expectRemote(.transaction) { try await db.rollback() }
        #expect(try await db.get("before") == 1)
        #expect(try await db.get("inside") == .nil)
        #expect(try await db.get("meant-for-the-transaction") == .nil)
        #expect(try await db.inTransaction() == false)
        try await db.set("after", 1)
        // The same with commit: it cannot commit what the daemon rolled back.
        try await db.beginTransaction()
        try await db.set("second", 1)
        try await second.stop(SIGKILL)
        let third = try await Daemon.start(folder: folder)
        await expectRemote(.transaction) { try await db.commit() }
        #expect(try await db.get("second") == .nil)
        #expect(try await db.get("after") == 1)
        await client.close()
        try await third.stop()
    }

    @Test func theNearCacheStartsEmptyOnTheNewConnection() async throws {
        let first = try await Daemon.start()
        let folder = first.folder
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let reader = try await NanaClient.connect(socketPath: first.socketPath)
        let cached = try await reader.open("near.db")
        try await cached.set("k", "old")
        _ = try await cached.get("k")
        let warm = try #require(cached.nearCacheStatistics)
        _ = try await cached.get("k")
        #expect(try #require(cached.nearCacheStatistics).hits == warm.hits + 1, "the value is held in this process")
        try await first.stop(SIGKILL)
        // While the reader is away, another process changes the value in a new daemon.
        let second = try await Daemon.start(folder: folder)
        let writer = try await runTool("nanactl", ["--socket", second.socketPath, "--db", "near.db", "set", "k", "\"new\""])
        #expect(writer.status == 0, "\(writer.stderr)")
        #expect(try await cached.get("k") == "new")
        #expect(try #require(cached.nearCacheStatistics).entries <= 1)
        await reader.close()
        try await second.stop()
    }
}
