/// A frame as the daemon's hot path decodes it.
public enum DecodedFrame: Sendable {
    /// A well-formed request.
    case request(msgid: UInt32, method: String, params: NanaParamList)
    /// Anything else: pass it to ``NanaMessage/init(_:)`` to classify it.
    case other(NanaValue)
}

/// A request's named arguments in the order sent. A handful of entries: looked up by linear
/// scan, which beats hashing at this size. A repeated name keeps its last value.
public struct NanaParamList: Sendable {
    public private(set) var entries: [(key: String, value: NanaValue)]

    public init(_ entries: [(key: String, value: NanaValue)]) {
        self.entries = entries
    }

    public subscript(name: String) -> NanaValue? {
        for entry in entries.reversed() where entry.key == name { return entry.value }
        return nil
    }

    public var names: some Sequence<String> { entries.lazy.map(\.key) }
}
