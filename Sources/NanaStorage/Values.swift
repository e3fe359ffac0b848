/// A value in the encoding the daemon speaks (MessagePack bytes). Storage never looks inside:
/// it keeps these in the cache so that a cache hit is a copy, not a transcode.
public struct EncodedValue: Sendable, Hashable {
    public var bytes: [UInt8]
    public init(bytes: [UInt8]) { self.bytes = bytes }
}

/// A value ready to be written: the JSON text SQLite stores and the encoded form the cache keeps.
public struct StorableValue: Sendable, Hashable {
    /// UTF-8 JSON text, as NanaSQLite writes it.
    public var json: [UInt8]
    public var encoded: EncodedValue
    public init(json: [UInt8], encoded: EncodedValue) {
        self.json = json
        self.encoded = encoded
    }
}

/// Turns what SQLite holds in a `value` column into an ``EncodedValue``; the server provides it.
public protocol StoredValueDecoder: Sendable {
    /// - Parameters:
    ///   - stored: the column's bytes (JSON text, or a BLOB for encrypted values).
    ///   - isBlob: whether the column holds a BLOB rather than TEXT.
    func decode(stored: UnsafeRawBufferPointer, isBlob: Bool) throws(StorageError) -> EncodedValue
}

/// Table, column and index names: ASCII identifiers, matched whole (behaviour spec §1.4 [REC]).
public enum Identifier {
    /// The name wrapped in double quotes, after validation. `"users"` is accepted as `users`.
    public static func quoted(_ name: String) throws(StorageError) -> String {
        "\"\(try validated(name))\""
    }

    /// The bare name, after validation.
    public static func validated(_ name: String) throws(StorageError) -> String {
        guard !name.isEmpty else { throw StorageError(.validation, "Identifier cannot be empty") }
        var inner = Substring(name)
        if inner.count >= 2, inner.hasPrefix("\""), inner.hasSuffix("\"") {
            inner = inner.dropFirst().dropLast()
        }
        let bytes = Array(inner.utf8)
        guard let first = bytes.first, isLetterOrUnderscore(first),
              bytes.allSatisfy({ isLetterOrUnderscore($0) || ($0 >= 0x30 && $0 <= 0x39) })
        else {
            throw StorageError(.validation, "Invalid identifier '\(name)': must start with letter or underscore and contain only alphanumeric characters and underscores")
        }
        return String(inner)
    }

    /// SQLite identifiers are case-insensitive: `Users` and `users` are one table.
    static func canonical(_ name: String) -> String {
        ((try? validated(name)) ?? name).lowercased()
    }

    private static func isLetterOrUnderscore(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F
    }
}
