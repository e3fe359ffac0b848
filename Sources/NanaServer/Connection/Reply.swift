import NanaStorage
import NanaWire

/// How a call is answered.
enum Reply: Sendable {
    case value(NanaValue)
    /// A value already encoded as MessagePack (from the cache).
    case encoded(EncodedValue)
    case error(NanaRemoteError)
}
