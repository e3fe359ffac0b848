import OrderedCollections

/// Named arguments of a call.
public typealias NanaParams = OrderedDictionary<NanaKey, NanaValue>

/// A MessagePack-RPC message: request `[0, msgid, method, params]`, response
/// `[1, msgid, error, result]` or notification `[2, method, params]`.
public enum NanaMessage: Sendable, Hashable {
    case request(msgid: UInt32, method: String, params: NanaParams)
    case response(msgid: UInt32, result: Result<NanaValue, NanaRemoteError>)
    case notification(method: String, params: NanaParams)

    public static let requestType: Int64 = 0
    public static let responseType: Int64 = 1
    public static let notificationType: Int64 = 2

    /// Reads a message from a decoded frame value.
    public init(_ value: NanaValue) throws(NanaRemoteError) {
        guard case .array(let items) = value, let kind = items.first?.int64Value else {
            throw NanaRemoteError(.protocolError, "a message must be an array whose first element is 0, 1 or 2")
        }
        switch kind {
        case Self.requestType:
            guard items.count == 4 else { throw NanaRemoteError(.protocolError, "a request must be [0, msgid, method, params]") }
            let msgid = try Self.msgid(items[1])
            guard case .string(let method) = items[2] else {
                throw NanaRemoteError(.protocolError, "the method of a request must be a string")
            }
            self = .request(msgid: msgid, method: method, params: try Self.params(items[3]))
        case Self.responseType:
            guard items.count == 4 else { throw NanaRemoteError(.protocolError, "a response must be [1, msgid, error, result]") }
            let msgid = try Self.msgid(items[1])
            if items[2].isNil {
                self = .response(msgid: msgid, result: .success(items[3]))
            } else {
                self = .response(msgid: msgid, result: .failure(NanaRemoteError(wireValue: items[2])))
            }
        case Self.notificationType:
            guard items.count == 3, case .string(let method) = items[1] else {
                throw NanaRemoteError(.protocolError, "a notification must be [2, method, params]")
            }
            self = .notification(method: method, params: try Self.params(items[2]))
        default:
            throw NanaRemoteError(.protocolError, "unknown message type \(kind)")
        }
    }

    private static func msgid(_ value: NanaValue) throws(NanaRemoteError) -> UInt32 {
        guard let id = value.int64Value, id >= 0, id <= Int64(UInt32.max) else {
            throw NanaRemoteError(.protocolError, "msgid must be an unsigned 32-bit integer")
        }
        return UInt32(id)
    }

    private static func params(_ value: NanaValue) throws(NanaRemoteError) -> NanaParams {
        guard case .map(let m) = value else {
            throw NanaRemoteError(.protocolError, "params must be a map of named arguments")
        }
        return m
    }
}

extension MessagePackWriter {
    /// Writes `[0, msgid, method, params]`.
    public func writeRequest(msgid: UInt32, method: String, params: NanaParams) {
        writeArrayHeader(4)
        writeInt(NanaMessage.requestType)
        writeUInt(UInt64(msgid))
        writeString(method)
        write(.map(params))
    }

    /// Writes `[1, msgid, nil, ` — the caller then writes exactly one result value.
    public func writeSuccessHeader(msgid: UInt32) {
        writeArrayHeader(4)
        writeInt(NanaMessage.responseType)
        writeUInt(UInt64(msgid))
        writeNil()
    }

    /// Writes `[1, msgid, nil, result]`.
    public func writeSuccess(msgid: UInt32, result: NanaValue) {
        writeSuccessHeader(msgid: msgid)
        write(result)
    }

    /// Writes `[1, msgid, error, nil]`.
    public func writeFailure(msgid: UInt32, error: NanaRemoteError) {
        writeArrayHeader(4)
        writeInt(NanaMessage.responseType)
        writeUInt(UInt64(msgid))
        write(error.wireValue)
        writeNil()
    }

    /// Writes `[2, method, params]`.
    public func writeNotification(method: String, params: NanaParams) {
        writeArrayHeader(3)
        writeInt(NanaMessage.notificationType)
        writeString(method)
        write(.map(params))
    }
}

/// Protocol constants shared by the daemon and its clients.
public enum NanaProtocol {
    /// The protocol version `hello` negotiates.
    public static let version: Int64 = 1
    /// Where the daemon and clients look for the socket when nothing else is said.
    public static let defaultSocketPath = "nanad-data/nanad.sock"
    /// Environment variable that names the socket for clients.
    public static let socketEnvironmentVariable = "NANAD_SOCKET"
}
