import Logging
import NanaWire

/// How a ``NanaClient`` reaches the daemon and behaves when the connection is lost.
public struct NanaClientConfiguration: Sendable {
    /// The daemon's socket; ``NanaClient/defaultSocketPath`` by default.
    public var socketPath: String
    /// How the daemon's logs name this client.
    public var clientName: String
    /// The largest response frame accepted.
    public var maximumFrameLength: Int
    /// The near-cache each ``NanaClient/open(_:table:bulkLoad:optimize:cacheSizeMB:options:nearCache:)``
    /// gets unless it says otherwise (``NanaNearCache/default``; ``NanaNearCache/off`` for none).
    public var nearCache: NanaNearCache
    /// The waits between attempts to reconnect.
    public var reconnectBackoff: NanaReconnectBackoff
    /// How long a call waits for a connection while there is none (before the first one, or
    /// while reconnecting), then fails with ``NanaClientError/Code/unavailable``. It bounds
    /// the call's waiting in all: a read retried after a loss waits out what is left of it.
    public var connectionTimeout: Duration
    /// How long a daemon that accepted the connection may take to answer `hello` before the
    /// attempt counts as failed (a stopped daemon accepts and never answers). Generous: a
    /// daemon busy with a burst of calls answers late, not never (a debug build under
    /// LimitsTests' 100,000-call burst took over 5 s).
    public var handshakeTimeout: Duration
    /// Which calls in flight at a connection loss go again on the next connection.
    public var retry: NanaRetryPolicy
    /// Where connects, disconnects (with their reason) and reconnects are logged; nothing by
    /// default.
    public var logger: Logger

    public init(
        socketPath: String = NanaClient.defaultSocketPath,
        clientName: String = "nana-swift",
        maximumFrameLength: Int = 256 * 1024 * 1024,
        nearCache: NanaNearCache = .default,
        reconnectBackoff: NanaReconnectBackoff = NanaReconnectBackoff(),
        connectionTimeout: Duration = .seconds(5),
        handshakeTimeout: Duration = .seconds(60),
        retry: NanaRetryPolicy = .reads,
        logger: Logger = Logger(label: "nana.client", factory: { _ in SwiftLogNoOpLogHandler() })
    ) {
        self.socketPath = socketPath
        self.clientName = clientName
        self.maximumFrameLength = maximumFrameLength
        self.nearCache = nearCache
        self.reconnectBackoff = reconnectBackoff
        self.connectionTimeout = connectionTimeout
        self.handshakeTimeout = handshakeTimeout
        self.retry = retry
        self.logger = logger
    }
}

/// Which calls a client sends again by itself when the connection is lost while they are in
/// flight. Every other call in flight then fails: a write with
/// ``NanaClientError/Code/outcomeUnknown`` (it may or may not have been committed), a read
/// with ``NanaClientError/Code/connectionLost``. A call that had not been sent yet always goes
/// on the next connection.
public struct NanaRetryPolicy: Sendable, Hashable {
    let daemonsRepeatable: Bool
    let also: Set<String>

    /// The methods the daemon declares safe to repeat (`hello`'s `repeatable`: those that
    /// change nothing in the file, plus opening and closing handles).
    public static let reads = NanaRetryPolicy(daemonsRepeatable: true, also: [])
    /// No call in flight goes again.
    public static let never = NanaRetryPolicy(daemonsRepeatable: false, also: [])
    /// ``reads``, and these methods too (for example `set`, when writing a value twice is
    /// harmless to the application).
    public static func reads(and methods: Set<String>) -> NanaRetryPolicy {
        NanaRetryPolicy(daemonsRepeatable: true, also: methods)
    }

    func allows(_ method: String, repeatable: Set<String>) -> Bool {
        also.contains(method) || (daemonsRepeatable && repeatable.contains(method))
    }
}

/// Where a client's connection stands (``NanaClient/connectionState``,
/// ``NanaClient/connectionStates()``).
public enum NanaConnectionState: Sendable, Hashable, CustomStringConvertible {
    /// Not connected yet.
    case connecting
    /// Calls go to the daemon.
    case ready
    /// The connection was lost; calls wait for the next one.
    case reconnecting
    /// Closed by ``NanaClient/close()`` or the end of ``NanaClient/run()``.
    case closed

    public var description: String {
        switch self {
        case .connecting: "connecting"
        case .ready: "ready"
        case .reconnecting: "reconnecting"
        case .closed: "closed"
        }
    }
}

/// A client's counters since it was made.
public struct NanaClientStatistics: Sendable, Hashable {
    /// Connections made after the first.
    public var reconnects: Int
    /// Calls that failed for want of a connection (``NanaClientError``s other than protocol
    /// violations); errors the daemon answered with are not counted.
    public var failedCalls: Int
    /// Calls in flight at a loss that went again on the next connection.
    public var retriedCalls: Int
}
