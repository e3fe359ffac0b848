/// An error from the storage layer, with the NanaSQLite exception family it belongs to.
public struct StorageError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The exception family, named after NanaSQLite's (see the behaviour spec §12).
    public enum Kind: Sendable, Hashable {
        case validation
        case database
        case transaction
        case connection
        case closed
        case lock
        /// A missing key (Python's `KeyError`); the message is the key.
        case keyNotFound
        /// A value with no JSON form (Python's `TypeError`).
        case typeError
        /// A bad argument (Python's `ValueError`).
        case valueError
        case notSupported
    }

    public var kind: Kind
    public var message: String
    /// SQLite's extended result code, when SQLite raised it.
    public var sqliteCode: Int32?

    public init(_ kind: Kind, _ message: String, sqliteCode: Int32? = nil) {
        self.kind = kind
        self.message = message
        self.sqliteCode = sqliteCode
    }

    public var description: String { message }
}
