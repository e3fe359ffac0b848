import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NanaServer
import NanaStorage
import NanaWire

// The daemon's request path without a socket, for this fuzz target (tools/fuzz/README.md): the
// same pipeline `NanadServer` builds for a connection (ConnectionHandler, which splits frames
// itself) over a real ServerState and DatabaseRegistry, on an EmbeddedChannel driven by the
// calling thread. It lives here, not in NanaServer, so that the daemon does not link
// NIOEmbedded; NanaServer opens the few parts it needs at `package` access.

/// A daemon's shared state over a data folder, with no socket and no event-loop threads.
final class FuzzServer {
    let state: ServerState
    /// The event loops of the connections made so far. An `EmbeddedEventLoop` must be freed on
    /// the thread that made it, and a storage thread may hold the last reference to one (in a
    /// finished job's closure) for a while after its call completed: they are kept until
    /// ``close()`` has stopped every storage thread.
    private var loops: [EmbeddedEventLoop] = []

    /// - Parameter configure: changes to the default configuration (limits, timeouts).
    init(dataDirectory: String, logger: Logger, configure: (inout ServerConfiguration) -> Void = { _ in }) throws {
        var configuration = ServerConfiguration(socketPath: dataDirectory + "/unused.sock", dataDirectory: dataDirectory)
        configure(&configuration)
        let registry = try DatabaseRegistry(dataDirectory: configuration.dataDirectory, decoder: ValueCodec(), logger: logger, idleCloseDelay: configuration.idleFileCloseDelay, maximumOpenFiles: configuration.maximumOpenFiles)
        let nearCache = Self.nearCache(logger)
        state = ServerState(configuration: configuration, registry: registry, logger: logger, boards: nearCache?.boards, boardHandout: nearCache?.handout)
    }

    /// One board folder and handout socket for the whole process, so that `near_cache` opens
    /// make boards and every change bumps them as in the daemon (nothing here redeems a token).
    nonisolated(unsafe) private static var sharedNearCache: (boards: BoardDirectory, handout: BoardHandout)??
    nonisolated(unsafe) fileprivate static var sharedFolder: String?

    private static func nearCache(_ logger: Logger) -> (boards: BoardDirectory, handout: BoardHandout)? {
        if let made = sharedNearCache { return made }
        let folder = NSTemporaryDirectory() + "nanafuzz-boards-\(getpid())"
        sharedFolder = folder
        let made = try? (BoardDirectory(path: folder + ".boards", logger: logger), BoardHandout(path: folder + ".board", mode: 0o600, group: nil, logger: logger))
        atexit {  // the boards are gone with their databases; the folder and the socket are left
            guard let folder = FuzzServer.sharedFolder else { return }
            rmdir(folder + ".boards")
            unlink(folder + ".board")
        }
        sharedNearCache = .some(made.map { (boards: $0.0, handout: $0.1) })
        return made.map { (boards: $0.0, handout: $0.1) }
    }

    var configuration: ServerConfiguration { state.configuration }
    /// The data folder with symbolic links resolved.
    var dataDirectory: String { state.registry.dataDirectory }
    /// Database files open now.
    var openDatabases: Int { state.registry.databases.count }
    /// Calls of every connection waiting on storage.
    var callsInFlight: Int { state.inFlight.load(ordering: .relaxed) }
    /// Connections open now.
    var connections: Int { state.connections.load(ordering: .relaxed) }

    /// What the storage side is doing, for a hang report: per open file, the writes queued
    /// and each table's sessions, mode and staged rows.
    var diagnostics: String {
        state.registry.databases.map { db in
            let tables = db.openTables.map { t in
                "\(t.name)(sessions \(t.users), \(t.settings.writeBehind == nil ? "write-through" : "v2"), staged \(t.stagedWrites))"
            }
            return "\(db.path): write queue \(db.writeQueueDepth), \(db.writerDiagnostics), tables \(tables.joined(separator: ", "))"
        }.joined(separator: "\n")
    }

    /// A new client connection; it must be used (and closed) on the calling thread only.
    func connect() throws -> FuzzConnection {
        let loop = EmbeddedEventLoop()
        loops.append(loop)
        return try FuzzConnection(state: state, loop: loop)
    }

    /// Closes every database as shutdown does (flushing write-behind tables, finishing
    /// queued writes, checkpointing).
    func close() {
        state.registry.closeAll()
        loops.removeAll()
    }
}

/// One connection, as `NanadServer` builds it, on an `EmbeddedChannel`: bytes go in with
/// ``receive(_:)``, replies come out with ``takeOutput()``. Storage threads post completions to
/// a mailbox that this connection drains on its own thread (``pump()``, ``settle(until:)``).
final class FuzzConnection {
    private let channel: EmbeddedChannel
    private let handler: ConnectionHandler
    private let mailbox: LoopMailbox

    init(state: ServerState, loop: EmbeddedEventLoop) throws {
        mailbox = LoopMailbox(drainedOnCurrentThread: loop)
        handler = ConnectionHandler(state: state, mailbox: mailbox)
        channel = EmbeddedChannel(loop: loop)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/nanafuzz")).wait()
    }

    /// False once the daemon (or ``close()``) closed the connection.
    var isActive: Bool { channel.isActive }

    /// Calls of this connection waiting on storage.
    var pendingCalls: Int { handler.pendingCalls }

    /// Hands `bytes` to the pipeline as one read, then runs what became ready. False when the
    /// connection is closed (before or because of these bytes).
    @discardableResult
    func receive(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard channel.isActive else { return false }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        do { try channel.writeInbound(buffer) } catch { return false }
        pump()
        return channel.isActive
    }

    /// Runs, without waiting, the completions storage threads have posted and the tasks they
    /// scheduled on the loop (reply flushes), until neither has anything left.
    func pump() {
        repeat {
            channel.embeddedEventLoop.run()
        } while mailbox.drain(waitingUntil: nil) > 0
        channel.embeddedEventLoop.run()
    }

    /// Drives the connection until none of its calls waits on storage, or `deadline` passes.
    /// True when none waits.
    func settle(until deadline: NIODeadline) -> Bool {
        pump()
        while handler.pendingCalls > 0 {
            if NIODeadline.now() >= deadline { return false }
            if mailbox.drain(waitingUntil: deadline) > 0 { pump() }
        }
        return true
    }

    /// Every byte the daemon wrote to this connection since the last call.
    func takeOutput() -> [UInt8] {
        var bytes: [UInt8] = []
        while let buffer = try? channel.readOutbound(as: ByteBuffer.self) {
            bytes.append(contentsOf: buffer.readableBytesView)
        }
        return bytes
    }

    /// The client hangs up: the session's transactions roll back, its handles close. Calls
    /// still waiting on storage complete later without a reply (drive them with `settle`).
    func close() {
        if channel.isActive { channel.close(promise: nil) }
        pump()
    }
}
