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
        discussion: """
            Runs in the foreground. SIGTERM or SIGINT stops accepting, answers what is in flight, closes the \
            databases and exits 0. Every option can also be set in a JSON configuration file (--config); a flag \
            given on the command line wins over the file. See tools/nanad.example.json.
            """
    )

    @Option(help: "JSON configuration file (keys as in tools/nanad.example.json).")
    var config: String?

    @Flag(name: .customLong("check-config"), help: "Validate the configuration (file and flags), print it, and exit.")
    var checkConfig = false

    @Flag(name: .customLong("print-method-table"), help: "Print the protocol's method table (Markdown, as in proto/PROTOCOL.md) and exit.")
    var printMethodTable = false

    @Option(name: .long, help: "Unix domain socket to serve on. [default: nanad-data/nanad.sock]")
    var socket: String?

    @Option(name: .customLong("data-dir"), help: "Folder whose database files clients may open (created if missing). [default: nanad-data]")
    var dataDir: String?

    @Option(name: .customLong("socket-mode"), help: "Permission bits of the socket file, in octal. [default: 600]")
    var socketMode: String?

    @Option(name: .customLong("socket-group"), help: "Group (name or gid) of the socket file; give it a mode like 660 to let that group connect.")
    var socketGroup: String?

    @Option(name: .customLong("allow-uid"), help: "Only peers with this uid (repeatable), or a gid given with --allow-gid, may use the daemon.")
    var allowUIDs: [UInt32] = []

    @Option(name: .customLong("allow-gid"), help: "Only peers with this gid (repeatable), or a uid given with --allow-uid, may use the daemon.")
    var allowGIDs: [UInt32] = []

    @Option(name: .customLong("max-frame-size"), help: "Largest frame accepted, in bytes. [default: 16777216]")
    var maxFrameSize: Int?

    @Option(name: .customLong("event-loops"), help: "Event-loop threads serving connections. [default: 1]")
    var eventLoops: Int?

    @Option(name: .long, help: "Read-only SQLite connections of each database kept open between reads (the reads run on --reader-threads). [default: 2]")
    var readers: Int?

    @Flag(name: .customLong("external-checkpoints"), help: "Never checkpoint the WAL while serving; leave it to a tool such as Litestream.")
    var externalCheckpoints = false

    @Option(name: .customLong("writer-spin"), help: "Microseconds a database's writer keeps looking for the next write after a lone one, before it sleeps (0 to 100000; 0: sleep at once). [default: 100]")
    var writerSpin: Int?

    @Option(name: .customLong("transaction-timeout"), help: "Seconds a client transaction may hold a database's writer before it is rolled back. [default: 30]")
    var transactionTimeout: Double?

    @Option(name: .customLong("statement-timeout"), help: "Seconds one call of clients' SQL (execute, fetch, the SQL helpers) may run before it is interrupted; 0: no limit. [default: 30]")
    var statementTimeout: Double?

    @Option(name: .customLong("shutdown-timeout"), help: "Seconds shutdown waits for calls in flight and then for databases to close before exiting non-zero. [default: 10]")
    var shutdownTimeout: Double?

    @Option(name: .customLong("max-connections"), help: "Connections served at once; more are refused with an error. [default: 1024]")
    var maxConnections: Int?

    @Option(name: .customLong("max-in-flight"), help: "Calls of one connection waiting on storage before the daemon stops reading it. [default: 1024]")
    var maxInFlight: Int?

    @Option(name: .customLong("max-reply-buffer"), help: "Unread reply bytes per connection before its client is disconnected. [default: 67108864]")
    var maxReplyBuffer: Int?

    @Option(name: .customLong("idle-timeout"), help: "Seconds without a request after which a connection is closed (0: never). [default: 0]")
    var idleTimeout: Double?

    @Option(name: .customLong("close-idle-files-after"), help: "Seconds a database file nobody uses stays open before it is closed (checkpointed, its threads stopped, its -wal and -shm removed); 0: until shutdown. [default: 10]")
    var closeIdleFilesAfter: Double?

    @Option(name: .customLong("max-open-files"), help: "Database files open at once; past it the one nobody has used for longest is closed, and an open is refused when all are in use. [default: 256]")
    var maxOpenFiles: Int?

    @Option(name: .customLong("reader-threads"), help: "Threads that run the reads of every database file (cache misses, queries). [default: 4]")
    var readerThreads: Int?

    @Option(name: .customLong("near-cache-slots"), help: "Key slots of each database file's near-cache board, a power of two (8 bytes each); 0 turns the near-cache off. [default: 65536]")
    var nearCacheSlots: Int?

    @Option(name: .customLong("request-timeout"), help: "Seconds after which a call still waiting on storage is answered with a timeout error (0: never). [default: 0]")
    var requestTimeout: Double?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical. [default: info]")
    var logLevel: String?

    /// The configuration file's keys; every one optional, flags win.
    struct File: Codable {
        var socket: String?
        var data_dir: String?
        var socket_mode: String?
        var socket_group: String?
        var allow_uids: [UInt32]?
        var allow_gids: [UInt32]?
        var max_frame_size: Int?
        var event_loops: Int?
        var readers: Int?
        var external_checkpoints: Bool?
        var writer_spin: Int?
        var transaction_timeout: Double?
        var statement_timeout: Double?
        var shutdown_timeout: Double?
        var max_connections: Int?
        var max_in_flight: Int?
        var max_reply_buffer: Int?
        var idle_timeout: Double?
        var request_timeout: Double?
        var close_idle_files_after: Double?
        var max_open_files: Int?
        var reader_threads: Int?
        var near_cache_slots: Int?
        var log_level: String?
        var rules: [AccessRule]?
    }

    /// Flags over file over defaults, validated: the one place options become configuration.
    func resolve() throws -> (ServerConfiguration, Logger.Level) {
        var file = File()
        if let config {
            guard let data = FileManager.default.contents(atPath: config) else { throw ValidationError("cannot read configuration file \(config)") }
            let decoder = JSONDecoder()
            do { file = try decoder.decode(File.self, from: data) } catch {
                throw ValidationError("configuration file \(config) is not valid: \(error)")
            }
        }
        var c = ServerConfiguration(socketPath: socket ?? file.socket ?? "nanad-data/nanad.sock", dataDirectory: dataDir ?? file.data_dir ?? "nanad-data")
        let modeText = socketMode ?? file.socket_mode ?? "600"
        guard let mode = UInt16(modeText, radix: 8), mode <= 0o777 else { throw ValidationError("socket mode must be octal, like 600 (got \(modeText))") }
        c.socketMode = mode
        if let group = socketGroup ?? file.socket_group {
            if let gid = UInt32(group) { c.socketGroup = gid } else if let entry = getgrnam(group) { c.socketGroup = entry.pointee.gr_gid } else {
                throw ValidationError("unknown group \(group)")
            }
        }
        c.allowedUIDs = Set(allowUIDs.isEmpty ? file.allow_uids ?? [] : allowUIDs)
        c.allowedGIDs = Set(allowGIDs.isEmpty ? file.allow_gids ?? [] : allowGIDs)
        c.maximumFrameLength = maxFrameSize ?? file.max_frame_size ?? c.maximumFrameLength
        c.eventLoopCount = eventLoops ?? file.event_loops ?? c.eventLoopCount
        c.databaseOptions.readerCount = readers ?? file.readers ?? c.databaseOptions.readerCount
        if externalCheckpoints || file.external_checkpoints == true { c.databaseOptions.checkpointWhenIdlePages = 0 }
        c.databaseOptions.writerSpinMicroseconds = writerSpin ?? file.writer_spin ?? c.databaseOptions.writerSpinMicroseconds
        guard (0...100_000).contains(c.databaseOptions.writerSpinMicroseconds) else {
            throw ValidationError("writer spin must be 0 to 100000 microseconds (got \(c.databaseOptions.writerSpinMicroseconds))")
        }
        let transaction = transactionTimeout ?? file.transaction_timeout ?? 30
        let statement = statementTimeout ?? file.statement_timeout ?? 30
        let shutdown = shutdownTimeout ?? file.shutdown_timeout ?? 10
        let idle = idleTimeout ?? file.idle_timeout ?? 0
        let request = requestTimeout ?? file.request_timeout ?? 0
        let closeIdleFiles = closeIdleFilesAfter ?? file.close_idle_files_after ?? 10
        c.maximumConnections = maxConnections ?? file.max_connections ?? c.maximumConnections
        c.maximumOpenFiles = maxOpenFiles ?? file.max_open_files ?? c.maximumOpenFiles
        c.readerThreads = readerThreads ?? file.reader_threads ?? c.readerThreads
        guard c.maximumOpenFiles >= 1, c.readerThreads >= 1 else { throw ValidationError("max open files and reader threads must be at least 1") }
        c.nearCacheSlots = nearCacheSlots ?? file.near_cache_slots ?? c.nearCacheSlots
        guard c.nearCacheSlots == 0 || (c.nearCacheSlots > 0 && c.nearCacheSlots & (c.nearCacheSlots - 1) == 0 && c.nearCacheSlots <= 1 << 24) else {
            throw ValidationError("near-cache slots must be 0 (off) or a power of two up to 16777216 (got \(c.nearCacheSlots))")
        }
        c.maximumCallsInFlight = maxInFlight ?? file.max_in_flight ?? c.maximumCallsInFlight
        c.maximumReplyBuffer = maxReplyBuffer ?? file.max_reply_buffer ?? c.maximumReplyBuffer
        c.rules = file.rules ?? []
        let levelText = logLevel ?? file.log_level ?? "info"
        guard let level = Logger.Level(rawValue: levelText) else { throw ValidationError("unknown log level \(levelText)") }

        guard c.maximumFrameLength >= 64 else { throw ValidationError("max frame size must be at least 64 bytes") }
        guard c.eventLoopCount >= 1, c.databaseOptions.readerCount >= 1 else { throw ValidationError("event loops and readers must be at least 1") }
        guard c.maximumConnections >= 1, c.maximumCallsInFlight >= 2, c.maximumReplyBuffer >= 65536 else {
            throw ValidationError("max connections ≥ 1, max in flight ≥ 2 and max reply buffer ≥ 65536")
        }
        for (name, seconds) in [("transaction timeout", transaction), ("shutdown timeout", shutdown)] where !(seconds > 0 && seconds.isFinite) {
            throw ValidationError("\(name) must be a positive number of seconds")
        }
        guard idle >= 0, idle.isFinite else { throw ValidationError("idle timeout must be ≥ 0") }
        guard statement >= 0, statement.isFinite, statement < 1e9 else { throw ValidationError("statement timeout must be ≥ 0 (0: no limit)") }
        c.databaseOptions.statementTimeLimitMilliseconds = Int64(statement * 1000)
        c.transactionTimeout = .milliseconds(Int64(transaction * 1000))
        c.shutdownDrainSeconds = shutdown
        if idle > 0 { c.idleTimeout = .milliseconds(Int64(idle * 1000)) }
        guard request >= 0, request.isFinite else { throw ValidationError("request timeout must be ≥ 0") }
        if request > 0 { c.requestTimeout = .milliseconds(Int64(request * 1000)) }
        guard closeIdleFiles >= 0, closeIdleFiles.isFinite, closeIdleFiles < 1e9 else { throw ValidationError("close-idle-files-after must be ≥ 0 (0: never)") }
        c.idleFileCloseDelay = closeIdleFiles > 0 ? .milliseconds(Int64(closeIdleFiles * 1000)) : nil
        return (c, level)
    }

    func run() async throws {
        if printMethodTable { return print(WireMethod.markdownTable) }
        let (configuration, level) = try resolve()
        if checkConfig {
            print("""
                configuration is valid
                socket: \(configuration.socketPath) (mode \(String(configuration.socketMode, radix: 8)))
                data folder: \(configuration.dataDirectory)
                allowed uids: \(configuration.allowedUIDs.sorted()), gids: \(configuration.allowedGIDs.sorted())
                rules: \(configuration.rules.count)
                limits: frame \(configuration.maximumFrameLength) B, \(configuration.maximumConnections) connections, \
                \(configuration.maximumCallsInFlight) in flight, reply buffer \(configuration.maximumReplyBuffer) B
                """)
            return
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "nanad")
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
