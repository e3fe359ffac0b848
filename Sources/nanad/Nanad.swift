import ArgumentParser
import Foundation
import Logging
import NanaServer
import ServiceLifecycle

@main
struct Nanad: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nanad",
        abstract: "Serves NanaSQLite databases to local processes over a Unix domain socket.",
        discussion: "Runs in the foreground. SIGTERM or SIGINT stops accepting, answers what is in flight, closes the databases and exits 0."
    )

    @Option(name: .long, help: "Unix domain socket to serve on.")
    var socket = "nanad-data/nanad.sock"

    @Option(name: .customLong("data-dir"), help: "Folder whose database files clients may open (created if missing).")
    var dataDir = "nanad-data"

    @Option(name: .customLong("socket-mode"), help: "Permission bits of the socket file, in octal.")
    var socketMode = "600"

    @Option(name: .customLong("socket-group"), help: "Group (name or gid) of the socket file; give it a mode like 660 to let that group connect.")
    var socketGroup: String?

    @Option(name: .customLong("allow-uid"), help: "Only peers with this uid (repeatable), or a gid given with --allow-gid, may use the daemon.")
    var allowUIDs: [UInt32] = []

    @Option(name: .customLong("allow-gid"), help: "Only peers with this gid (repeatable), or a uid given with --allow-uid, may use the daemon.")
    var allowGIDs: [UInt32] = []

    @Option(name: .customLong("max-frame-size"), help: "Largest frame accepted, in bytes.")
    var maxFrameSize = 16 * 1024 * 1024

    @Option(name: .customLong("event-loops"), help: "Event-loop threads serving connections.")
    var eventLoops = 1

    @Option(name: .long, help: "Read-only SQLite connections per database.")
    var readers = 2

    @Flag(name: .customLong("external-checkpoints"), help: "Never checkpoint the WAL while serving; leave it to a tool such as Litestream.")
    var externalCheckpoints = false

    @Option(name: .customLong("transaction-timeout"), help: "Seconds a client transaction may hold a database's writer before it is rolled back.")
    var transactionTimeout: Double = 30

    @Option(name: .customLong("max-connections"), help: "Connections served at once; more are refused with an error.")
    var maxConnections = 1024

    @Option(name: .customLong("max-in-flight"), help: "Calls of one connection waiting on storage before the daemon stops reading it.")
    var maxInFlight = 1024

    @Option(name: .customLong("max-reply-buffer"), help: "Unread reply bytes per connection before its client is disconnected.")
    var maxReplyBuffer = 64 * 1024 * 1024

    @Option(name: .customLong("idle-timeout"), help: "Seconds without a request after which a connection is closed (0: never).")
    var idleTimeout: Double = 0

    @Option(name: .customLong("shutdown-timeout"), help: "Seconds shutdown waits for calls in flight and then for databases to close before exiting non-zero.")
    var shutdownTimeout: Double = 10

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    mutating func validate() throws {
        guard UInt16(socketMode, radix: 8) != nil else { throw ValidationError("--socket-mode must be octal, like 600") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("unknown --log-level \(logLevel)") }
        guard maxFrameSize >= 64 else { throw ValidationError("--max-frame-size must be at least 64 bytes") }
        guard maxConnections >= 1, maxInFlight >= 2, maxReplyBuffer >= 65536, idleTimeout >= 0 else {
            throw ValidationError("--max-connections ≥ 1, --max-in-flight ≥ 2, --max-reply-buffer ≥ 65536 and --idle-timeout ≥ 0")
        }
        guard transactionTimeout > 0, transactionTimeout.isFinite else { throw ValidationError("--transaction-timeout must be a positive number of seconds") }
        guard eventLoops >= 1, readers >= 1 else { throw ValidationError("--event-loops and --readers must be at least 1") }
    }

    func run() async throws {
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "nanad")

        var configuration = ServerConfiguration(socketPath: socket, dataDirectory: dataDir)
        configuration.socketMode = UInt16(socketMode, radix: 8)!
        configuration.allowedUIDs = Set(allowUIDs)
        configuration.allowedGIDs = Set(allowGIDs)
        if let socketGroup {
            if let gid = UInt32(socketGroup) {
                configuration.socketGroup = gid
            } else if let entry = getgrnam(socketGroup) {
                configuration.socketGroup = entry.pointee.gr_gid
            } else {
                throw ValidationError("unknown group \(socketGroup)")
            }
        }
        configuration.maximumFrameLength = maxFrameSize
        configuration.eventLoopCount = eventLoops
        configuration.databaseOptions.readerCount = readers
        configuration.transactionTimeout = .milliseconds(Int64(transactionTimeout * 1000))
        configuration.shutdownDrainSeconds = shutdownTimeout
        configuration.maximumConnections = maxConnections
        configuration.maximumCallsInFlight = maxInFlight
        configuration.maximumReplyBuffer = maxReplyBuffer
        if idleTimeout > 0 { configuration.idleTimeout = .milliseconds(Int64(idleTimeout * 1000)) }
        if externalCheckpoints { configuration.databaseOptions.checkpointWhenIdlePages = 0 }

        let server = NanadServer(configuration: configuration, logger: logger)
        let group = ServiceGroup(
            configuration: .init(services: [server], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        )
        do {
            try await group.run()
        } catch {
            logger.critical("nanad stopped: \(error)")
            throw ExitCode.failure
        }
    }
}
