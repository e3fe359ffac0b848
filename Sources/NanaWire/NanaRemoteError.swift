/// An error as it crosses the wire: a map with `type`, `message` and optional `details`.
///
/// `type` names the NanaSQLite exception a Python user would see (`NanaSQLiteValidationError`,
/// `KeyError`, …) so that clients in any language can map it to their own error types.
public struct NanaRemoteError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The error's type name. New names may be added; clients treat unknown ones as
    /// ``NanaErrorType/nanaSQLiteError``.
    public var type: NanaErrorType
    public var message: String
    public var details: NanaValue?

    public init(_ type: NanaErrorType, _ message: String, details: NanaValue? = nil) {
        self.type = type
        self.message = message
        self.details = details
    }

    public var description: String { "\(type.rawValue): \(message)" }

    /// The error as the wire carries it.
    public var wireValue: NanaValue {
        var map: NanaValue = ["type": .string(type.rawValue), "message": .string(message)]
        if let details, case .map(var m) = map {
            m["details"] = details
            map = .map(m)
        }
        return map
    }

    /// Reads an error map; anything else becomes a protocol error that says what arrived.
    public init(wireValue: NanaValue) {
        guard case .map(let m) = wireValue, let type = m["type"]?.stringValue else {
            self.init(.protocolError, "malformed error from server: \(wireValue)")
            return
        }
        self.init(NanaErrorType(rawValue: type), m["message"]?.stringValue ?? "", details: m["details"])
    }
}

/// The `type` of a ``NanaRemoteError``: NanaSQLite's exception names, plus the protocol's own.
public struct NanaErrorType: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let nanaSQLiteError = Self(rawValue: "NanaSQLiteError")
    public static let validation = Self(rawValue: "NanaSQLiteValidationError")
    public static let database = Self(rawValue: "NanaSQLiteDatabaseError")
    public static let transaction = Self(rawValue: "NanaSQLiteTransactionError")
    public static let connection = Self(rawValue: "NanaSQLiteConnectionError")
    public static let closed = Self(rawValue: "NanaSQLiteClosedError")
    public static let lock = Self(rawValue: "NanaSQLiteLockError")
    /// A missing key, as Python's `KeyError`.
    public static let keyError = Self(rawValue: "KeyError")
    /// A value that has no JSON form, as Python's `TypeError`.
    public static let typeError = Self(rawValue: "TypeError")
    /// A bad argument value, as Python's `ValueError`.
    public static let valueError = Self(rawValue: "ValueError")
    /// The frame or message broke the protocol (malformed, oversized, unknown method, bad params).
    public static let protocolError = Self(rawValue: "ProtocolError")
    /// The daemon does not implement this yet.
    public static let notSupported = Self(rawValue: "NotSupportedError")
}
