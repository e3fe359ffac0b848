/// A failure of the connection itself, as opposed to an error the daemon answered with
/// (those are ``NanaWire/NanaRemoteError``).
public struct NanaClientError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: Sendable, Hashable { case connectionClosed, connectFailed, protocolViolation, handshakeFailed, connectionLost, outcomeUnknown, unavailable }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// This client was closed (``NanaClient/close()``, or its ``NanaClient/run()`` ended).
        public static let connectionClosed = Code(.connectionClosed)
        /// The connection was lost while a call that is not retried (see ``NanaRetryPolicy``)
        /// was in flight; it changed nothing, and may be sent again.
        public static let connectionLost = Code(.connectionLost)
        /// The connection was lost while a write was in flight: the daemon may or may not
        /// have committed it. Read back before writing again where that matters.
        public static let outcomeUnknown = Code(.outcomeUnknown)
        /// No connection came within ``NanaClientConfiguration/connectionTimeout``; the client
        /// keeps trying, and a later call may succeed.
        public static let unavailable = Code(.unavailable)
        /// The socket could not be reached.
        public static let connectFailed = Code(.connectFailed)
        /// The daemon sent something this client cannot read.
        public static let protocolViolation = Code(.protocolViolation)
        /// `hello` was refused.
        public static let handshakeFailed = Code(.handshakeFailed)

        public var description: String {
            switch base {
            case .connectionClosed: "connection closed"
            case .connectFailed: "connect failed"
            case .protocolViolation: "protocol violation"
            case .handshakeFailed: "handshake failed"
            case .connectionLost: "connection lost"
            case .outcomeUnknown: "outcome unknown"
            case .unavailable: "unavailable"
            }
        }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code): \(message)" }

    /// Whether the same call may simply be made again: nothing it asked for happened.
    public var isRetryable: Bool {
        code == .connectionLost || code == .unavailable || code == .connectFailed
    }
}
