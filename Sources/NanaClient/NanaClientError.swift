/// A failure of the connection itself, as opposed to an error the daemon answered with
/// (those are ``NanaWire/NanaRemoteError``).
public struct NanaClientError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        private enum Base: Sendable, Hashable { case connectionClosed, connectFailed, protocolViolation, handshakeFailed }
        private let base: Base
        private init(_ base: Base) { self.base = base }

        /// The connection is gone: closed by this client, by the daemon, or lost.
        public static let connectionClosed = Code(.connectionClosed)
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
}
