import Foundation
import Logging
import NanaClient
import NanaWire
import ServiceLifecycle
import Synchronization
import Testing

/// `NanaClient` as a swift-service-lifecycle `Service` in a real `ServiceGroup`, and the
/// misuses of a client's lifecycle: every one gets a clear error, at once.
@Suite(.serialized) struct ClientServiceTests {
    /// A service of the app: uses the client from its own task while the group runs, as an
    /// HTTP server's handlers would, and reports what it did.
    final class Worker: Service {
        let client: NanaClient
        let restart: @Sendable () async throws -> Void
        let done: Mutex<[String]> = Mutex([])

        init(client: NanaClient, restart: @escaping @Sendable () async throws -> Void) {
            self.client = client
            self.restart = restart
        }

        func run() async throws {
            // Made before the client's run() has connected: the calls wait for the connection.
            let db = try await client.open("service.db")
            try await db.set("before", "restart")
            try await restart()
            // The table handed out before the restart carries on.
            try await db.set("after", "restart")
            let both = try await db.batchGet(["before", "after"])
            done.withLock { $0 = both.keys.map(\.string).sorted() }
            try await gracefulShutdown()
        }
    }

    @Test func runsInAServiceGroupThroughARestartAndClosesOnGracefulShutdown() async throws {
        let first = try await Daemon.start()
        let folder = first.folder
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let daemon = Mutex(first)
        // Calls wait up to 30 s for the daemon to be back: beside the whole suite on two cores a
        // restart once took longer than the default 5 s (the test is about surviving it).
        let client = NanaClient(configuration: NanaClientConfiguration(socketPath: first.socketPath, clientName: "service-test", connectionTimeout: .seconds(30)))
        #expect(client.connectionState == .connecting)
        let worker = Worker(client: client, restart: {
            try await daemon.withLock { $0 }.stop(SIGKILL)
            let next = try await Daemon.start(folder: folder)
            daemon.withLock { $0 = next }
        })
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: [.init(service: client), .init(service: worker)], logger: Logger(label: "service-test")))
        let running = Task { try await group.run() }
        // The worker finishes its calls, then the group shuts down, the client last.
        let deadline = ContinuousClock.now + .seconds(20)
        while worker.done.withLock({ $0.isEmpty }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(worker.done.withLock { $0 } == ["after", "before"])
        #expect(client.statistics.reconnects == 1)
        await group.triggerGracefulShutdown()
        try await running.value
        #expect(client.connectionState == .closed)
        await #expect { _ = try await client.call("ping") } throws: { ($0 as? NanaClientError)?.code == .connectionClosed }
        // A client runs once: a second run() is refused.
        await #expect { try await client.run() } throws: { ($0 as? NanaClientError)?.code == .connectionClosed }
        try await daemon.withLock { $0 }.stop()
    }

    @Test func closingWhileCallsWaitEndsThemAtOnce() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await NanaClient.connect(configuration: NanaClientConfiguration(socketPath: daemon.socketPath, connectionTimeout: .seconds(30)))
        let db = try await client.open("wait.db")
        try await daemon.stop(SIGKILL)
        // No daemon: these wait for a connection that will not come within their deadline.
        let waiting = (0..<8).map { i in Task { try await db.set("k\(i)", .int(Int64(i))) } }
        try await Task.sleep(for: .milliseconds(200))
        let closedAt = ContinuousClock.now
        await client.close()
        for call in waiting {
            await #expect { try await call.value } throws: { ($0 as? NanaClientError)?.code == .connectionClosed }
        }
        // Well inside the calls' 30 s deadline: close() ended them, they did not time out. (The
        // bound was 2 s; beside the whole suite on two cores close() itself once took 3.7 s.)
        #expect(ContinuousClock.now - closedAt < .seconds(10), "waiting calls outlived close()")
        #expect(client.connectionState == .closed)
    }

    @Test func aClosedClientAndItsTablesRefuseEveryCall() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("closed.db")
        try await db.set("kept", "yes")
        // A client made by connect() is already running: run() is refused, not run twice.
        await #expect { try await client.run() } throws: { ($0 as? NanaClientError)?.code == .connectionClosed }
        let states = client.connectionStates()
        await client.close()
        await client.close()  // closing twice is not an error
        func isClosed(_ error: any Error) -> Bool { (error as? NanaClientError)?.code == .connectionClosed }
        await #expect(performing: { _ = try await db.get("kept") }, throws: isClosed)
        await #expect(performing: { try await db.set("new", "no") }, throws: isClosed)
        await #expect(performing: { _ = try await db.table("other") }, throws: isClosed)
        await #expect(performing: { _ = try await client.open("closed.db") }, throws: isClosed)
        await #expect(performing: { try await client.ping() }, throws: isClosed)
        // The sequence of states ends with the client.
        var seen: [NanaConnectionState] = []
        for await state in states { seen.append(state) }
        #expect(seen == [.ready, .closed])
        // Nothing was written after close; what was written before is there.
        let other = try await daemon.connect()
        let again = try await other.open("closed.db")
        #expect(try await again.get("kept") == "yes")
        #expect(try await again.get("new") == .nil)
        // A table closed on a live client says so, and is not reopened.
        try await again.close()
        await expectRemote(.closed) { _ = try await again.get("kept") }
        await other.close()
        try await daemon.stop()
    }

    /// Keeps what was logged, for the test to read.
    final class LogRecords: Sendable {
        let list = Mutex<[(level: Logger.Level, message: String, metadata: Logger.Metadata)]>([])
    }

    struct RecordingLogHandler: LogHandler {
        let records: LogRecords
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .debug

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(event: LogEvent) {
            records.list.withLock { $0.append((event.level, "\(event.message)", metadata.merging(event.metadata ?? [:]) { $1 })) }
        }
    }

    @Test func eachDisconnectIsLoggedWithItsReasonAndEachReconnectionWithItsWait() async throws {
        let first = try await Daemon.start()
        let folder = first.folder
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let handler = RecordingLogHandler(records: LogRecords())
        let logger = Logger(label: "log-test") { _ in handler }
        let client = try await NanaClient.connect(configuration: NanaClientConfiguration(socketPath: first.socketPath, logger: logger))
        try await first.stop(SIGKILL)
        let second = try await Daemon.start(folder: folder)
        try await client.ping()
        await client.close()
        try await second.stop()
        let records = handler.records.list.withLock { $0 }
        let lost = records.filter { $0.message == "lost the connection to nanad" }
        #expect(lost.count == 1 && lost.first?.level == .warning, "\(records.map(\.message))")
        let reason = lost.first?.metadata["nana.reason"].map { "\($0)" } ?? ""
        #expect(reason.contains("closed"), "reason: \(reason)")
        #expect(records.contains { $0.message == "reconnected to nanad" && $0.metadata["nana.after"] != nil }, "\(records.map(\.message))")
    }
}
