import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NanaStorage
import NanaWire
import ServiceLifecycle

/// The daemon: serves the protocol on a Unix domain socket until graceful shutdown.
///
/// Shutdown order: stop accepting, wait (bounded) for calls in flight, close connections,
/// then close every database (readers first, then the writer, which checkpoints the WAL).
public final class NanadServer: Service, Sendable {
    public let configuration: ServerConfiguration
    private let logger: Logger
    private let group: MultiThreadedEventLoopGroup
    private let onReady: (@Sendable (String) -> Void)?

    /// - Parameter onReady: called with the socket path once it accepts connections.
    /// Lifts the soft limit on open descriptors to the hard one (as Go's runtime and many
    /// servers do): each open file takes three per connection, and 1024 runs out at a few
    /// hundred files.
    static func raiseDescriptorLimit(_ logger: Logger) {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max else { return }
        let before = limit.rlim_cur
        limit.rlim_cur = limit.rlim_max
        if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            logger.debug("raised the open-descriptor limit", metadata: ["from": "\(before)", "to": "\(limit.rlim_max)"])
        }
    }

    public init(configuration: ServerConfiguration, logger: Logger, onReady: (@Sendable (String) -> Void)? = nil) {
        self.configuration = configuration
        self.logger = logger
        self.group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, configuration.eventLoopCount))
        self.onReady = onReady
    }

    public func run() async throws {
        ReaderPool.shared.threadCount = configuration.readerThreads
        Self.raiseDescriptorLimit(logger)
        let registry = try DatabaseRegistry(dataDirectory: configuration.dataDirectory, decoder: ValueCodec(), logger: logger, idleCloseDelay: configuration.idleFileCloseDelay, maximumOpenFiles: configuration.maximumOpenFiles)
        let activated = SocketActivation.listeningDescriptor()
        if activated == nil { try Self.prepareSocketPath(configuration.socketPath) }
        // Before any client connects: the boards a crashed predecessor handed out are
        // invalidated here.
        let (boards, handout) = Self.startNearCache(configuration, logger)
        let state = ServerState(configuration: configuration, registry: registry, logger: logger, boards: boards, boardHandout: handout)
        let notifier = SystemdNotifier()

        let configuration = self.configuration
        let childChannels = ChannelCollector()
        var mailboxes: [ObjectIdentifier: LoopMailbox] = [:]
        for loop in group.makeIterator() { mailboxes[ObjectIdentifier(loop)] = LoopMailbox(eventLoop: loop) }
        let mailboxByLoop = mailboxes
        // The socket is created with the configured mode from the start: no window in which
        // it is reachable with looser permissions.
        let previousMask = umask(0o777 & ~mode_t(configuration.socketMode))
        let serverChannel: any Channel
        do {
            let bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .childChannelOption(.maxMessagesPerRead, value: 16)
                .childChannelOption(.writeBufferWaterMark, value: .init(low: configuration.maximumReplyBuffer / 2, high: configuration.maximumReplyBuffer))
                .childChannelInitializer { channel in
                    if childChannels.count >= configuration.maximumConnections {
                        return channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(RefusingHandler(
                                reason: NanaRemoteError(.connection, "too many connections: this nanad serves at most \(configuration.maximumConnections) at once")))
                        }
                    }
                    childChannels.add(channel)
                    return channel.eventLoop.makeCompletedFuture {
                        if let idle = configuration.idleTimeout {
                            try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: .nanoseconds(Int64(idle.components.seconds) * 1_000_000_000 + idle.components.attoseconds / 1_000_000_000)))
                        }
                        let mailbox = mailboxByLoop[ObjectIdentifier(channel.eventLoop)] ?? LoopMailbox(eventLoop: channel.eventLoop)
                        try channel.pipeline.syncOperations.addHandler(ConnectionHandler(state: state, mailbox: mailbox))
                    }
                }
            if let activated {
                serverChannel = try await bootstrap.withBoundSocket(activated).get()
            } else {
                serverChannel = try await bootstrap.bind(unixDomainSocketPath: configuration.socketPath).get()
            }
            umask(previousMask)
        } catch {
            umask(previousMask)
            try? await group.shutdownGracefully()
            throw error
        }
        if activated == nil {
            _ = chmod(configuration.socketPath, mode_t(configuration.socketMode))
            if let group = configuration.socketGroup, chown(configuration.socketPath, uid_t.max, group) != 0 {
                logger.warning("cannot set the socket's group", metadata: ["gid": "\(group)", "error": "\(String(cString: strerror(errno)))"])
            }
        }
        logger.info("nanad serving", metadata: [
            "socket": "\(configuration.socketPath)", "data_dir": "\(registry.dataDirectory)",
            "event_loops": "\(configuration.eventLoopCount)", "version": "\(NanadInfo.version)",
        ])
        onReady?(configuration.socketPath)
        notifier.notify("READY=1\nSTATUS=serving \(configuration.socketPath)\nMAINPID=\(getpid())")

        // Wait for SIGTERM/SIGINT (via the ServiceGroup) or cancellation, feeding the watchdog.
        await withTaskGroup(of: Void.self) { tasks in
            if let interval = notifier.watchdogInterval {
                tasks.addTask {
                    while !Task.isCancelled {
                        notifier.notify("WATCHDOG=1")
                        try? await Task.sleep(for: interval)
                    }
                }
            }
            try? await gracefulShutdown()
            tasks.cancelAll()
        }
        notifier.notify("STOPPING=1")

        logger.info("shutting down: no longer accepting connections")
        try? await serverChannel.close()
        await childChannels.stopReading()  // no new calls; the ones in flight are answered
        let deadline = ContinuousClock.now + .seconds(configuration.shutdownDrainSeconds)
        while state.inFlight.load(ordering: .relaxed) > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(5))
        }
        let leftOver = state.inFlight.load(ordering: .relaxed)
        await childChannels.closeAll()
        // Writers finish what is queued (rolling back client transactions), then the readers
        // and the writer close, which checkpoints each WAL. Bounded too: a stuck disk must not
        // keep the supervisor waiting forever.
        let closed = await withCheckedContinuation { (continuation: CheckedContinuation<Bool, Never>) in
            let once = NIOLockedValueBox(false)
            let finish: @Sendable (Bool) -> Void = { value in
                if !once.withLockedValue({ let done = $0; $0 = true; return done }) { continuation.resume(returning: value) }
            }
            Thread.detachNewThread {
                registry.closeAll()
                finish(true)
            }
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: configuration.shutdownDrainSeconds)
                finish(false)
            }
        }
        if activated == nil { try? FileManager.default.removeItem(atPath: configuration.socketPath) }
        handout?.stop()
        if let boards { rmdir(boards.path) }  // empty once every file closed (each retires its board)
        try? await group.shutdownGracefully()
        if leftOver > 0 || !closed {
            var left: [String] = []
            if leftOver > 0 { left.append("\(leftOver) calls still in flight when connections were closed") }
            if !closed { left.append("databases still closing: \(registry.databases.map(\.path).joined(separator: ", "))") }
            logger.error("nanad stopped without finishing: \(left.joined(separator: "; "))")
            throw NanadError("shutdown did not finish within \(configuration.shutdownDrainSeconds) s: \(left.joined(separator: "; "))")
        }
        logger.info("nanad stopped")
    }

    /// The near-cache's board folder and handout socket, or nils (with a warning) when it is
    /// off or cannot be set up: nanad then serves without it.
    static func startNearCache(_ configuration: ServerConfiguration, _ logger: Logger) -> (BoardDirectory?, BoardHandout?) {
        guard configuration.nearCacheSlots > 0 else { return (nil, nil) }
        do {
            let boards = try BoardDirectory(path: configuration.boardDirectoryPath, keySlots: configuration.nearCacheSlots, logger: logger)
            let handout = try BoardHandout(path: configuration.boardSocketPath, mode: configuration.socketMode, group: configuration.socketGroup, logger: logger)
            return (boards, handout)
        } catch {
            logger.warning("near-cache disabled: \(error)")
            return (nil, nil)
        }
    }

    /// Refuses to start if a live daemon answers on `path`; removes a stale socket file.
    static func prepareSocketPath(_ path: String) throws {
        // Checked first: a path NIO cannot bind must not get a live socket unlinked below.
        let address: SocketAddress
        do {
            address = try SocketAddress(unixDomainSocketPath: path)
        } catch SocketAddressError.unixDomainSocketPathTooLong {
            throw NanadError("cannot use \(path) as the socket: it is \(path.utf8.count) bytes long, and a Unix socket path may have at most 103")
        } catch {
            throw NanadError("cannot use \(path) as the socket: \(error)")
        }
        var status = stat()
        guard lstat(path, &status) == 0 else { return }  // nothing there
        guard (status.st_mode & S_IFMT) == S_IFSOCK else {
            throw NanadError("\(path) exists and is not a socket; refusing to replace it")
        }
        switch probe(address) {
        case 0:
            throw NanadError("another nanad is already serving on \(path)")
        case ECONNREFUSED:
            break  // nobody listens: a socket file left by a process that died
        case let error:
            throw NanadError("cannot tell whether \(path) is in use: \(String(cString: strerror(error)))")
        }
        guard unlink(path) == 0 else {
            throw NanadError("cannot remove stale socket \(path): \(String(cString: strerror(errno)))")
        }
    }

    /// Connects to `address` and hangs up: 0 when something accepted, else the `errno`.
    private static func probe(_ address: SocketAddress) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return errno }
        defer { close(fd) }
        return address.withSockAddr { connect(fd, $0, socklen_t($1)) } == 0 ? 0 : errno
    }
}

/// A start-up failure with a message for the operator.
public struct NanadError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// Answers a connection the daemon will not serve with an error notification, and closes it.
final class RefusingHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let reason: NanaRemoteError

    init(reason: NanaRemoteError) { self.reason = reason }

    func channelActive(context: ChannelHandlerContext) {
        let writer = MessagePackWriter(initialCapacity: 256)
        writer.writeNotification(method: "error", params: ["type": .string(reason.type.rawValue), "message": .string(reason.message)])
        var buffer = context.channel.allocator.buffer(capacity: writer.count + 4)
        NanaFrame.write(writer, into: &buffer)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { _ in channel.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}

/// The live client connections, so that shutdown can close them.
final class ChannelCollector: Sendable {
    private let channels = NIOLockedValueBox<[ObjectIdentifier: any Channel]>([:])

    func add(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        channels.withLockedValue { $0[id] = channel }
        channel.closeFuture.whenComplete { _ in
            self.channels.withLockedValue { _ = $0.removeValue(forKey: id) }
        }
    }

    var count: Int { channels.withLockedValue { $0.count } }

    func stopReading() async {
        let all = channels.withLockedValue { Array($0.values) }
        for channel in all { try? await channel.setOption(.autoRead, value: false).get() }
    }

    func closeAll() async {
        let all = channels.withLockedValue { Array($0.values) }
        for channel in all { try? await channel.close() }
    }
}
