import NanaStorage
import Foundation
import Logging
import NanaStorage
import NanaWire

/// Everything `nanad` can be told, with the defaults it runs with.
public struct ServerConfiguration: Sendable {
    /// The Unix domain socket to serve on.
    public var socketPath: String
    /// The folder whose files clients may open.
    public var dataDirectory: String
    /// Permission bits of the socket file.
    public var socketMode: UInt16 = 0o600
    /// Group of the socket file (with a group-readable mode, lets that group's users connect).
    public var socketGroup: gid_t?
    /// Peers (by `SO_PEERCRED`) allowed to use the daemon: a uid in `allowedUIDs` or a gid in
    /// `allowedGIDs`. Both empty: anyone who can open the socket file.
    public var allowedUIDs: Set<uid_t> = []
    public var allowedGIDs: Set<gid_t> = []
    /// Per-database access rules, checked at `open` (see ``AccessRule``).
    public var rules: [AccessRule] = []
    /// Largest frame body accepted; larger ones are refused before being read.
    public var maximumFrameLength = NanaFrame.defaultMaximumLength
    /// Event loops serving connections. One is fastest on a 2-core machine (measured).
    public var eventLoopCount = 1
    /// How databases are opened unless a client's `open` says otherwise.
    public var databaseOptions = DatabaseOptions()
    /// Connections served at once; more are answered with an error and closed.
    public var maximumConnections = 1024
    /// Calls of one connection waiting on storage; at this many the daemon stops reading that
    /// connection until replies drain (the client's requests wait in its socket).
    public var maximumCallsInFlight = 1024
    /// Reply bytes queued for one connection that its client has not read; past this the
    /// client is disconnected rather than allowed to grow the daemon's memory.
    public var maximumReplyBuffer = 64 * 1024 * 1024
    /// A call not answered within this long gets a `NanaSQLiteLockError` reply (nil: never).
    /// The call itself is not abandoned: a write may still commit after the timeout reply.
    public var requestTimeout: Duration?
    /// A connection with no request for this long is closed (nil: never).
    public var idleTimeout: Duration?
    /// How long a database file nobody uses stays open before it is closed (nil: until shutdown).
    public var idleFileCloseDelay: Duration? = .seconds(10)
    /// Most database files open at once; past it the least recently used idle one is closed.
    public var maximumOpenFiles = 256
    /// Threads that run every file's reads (``ReaderPool``).
    public var readerThreads = 4
    /// The longest a client transaction may hold a file's writer before it is rolled back.
    public var transactionTimeout: Duration = .seconds(30)
    /// How long shutdown waits for calls in flight, and then for the databases to close;
    /// past either, nanad exits non-zero saying what was left.
    public var shutdownDrainSeconds: Double = 10
    /// Key slots of each near-cache board (a power of two; 8 bytes each); 0 turns the
    /// near-cache off (`open`'s `near_cache` is then answered without a board).
    public var nearCacheSlots = Board.defaultKeySlots

    /// Where the near-cache boards live: a private folder beside the socket.
    public var boardDirectoryPath: String { socketPath + ".boards" }
    /// The side socket that hands boards out (``BoardHandout``). Absolute, since the `open`
    /// reply names it to clients, whose working folder may not be the daemon's.
    public var boardSocketPath: String {
        let path = socketPath + ".board"
        return path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    }

    public init(socketPath: String = NanaProtocol.defaultSocketPath, dataDirectory: String = "nanad-data") {
        self.socketPath = socketPath
        self.dataDirectory = dataDirectory
    }
}

/// What the server tells the world about itself.
public enum NanadInfo {
    public static let name = "nanad"
    public static let version = "0.1.0"
}
