import NanaStorage
import NanaWire

/// Converts between the wire's values and what SQLite stores: JSON text in NanaSQLite's format
/// on disk, MessagePack bytes in the cache (so a cache hit is a copy, not a transcode).
package struct ValueCodec: StoredValueDecoder {
    package init() {}

    package func decode(stored: UnsafeRawBufferPointer, isBlob: Bool) throws(StorageError) -> EncodedValue {
        if isBlob {
            throw StorageError(.database, "the row holds an encrypted value (BLOB); open the table with its encryption_key")
        }
        if stored.isEmpty {
            return EncodedValue(bytes: MessagePackWriter.encode(.nil))  // a NULL column
        }
        do {
            let value = try JSONReader.value(from: stored)
            return EncodedValue(bytes: MessagePackWriter.encode(value))
        } catch {
            throw StorageError(.database, "stored value is not valid JSON: \(error.message)")
        }
    }

    /// The JSON text and cache bytes of a value a client wants to store.
    /// - Parameter writer: a writer to reuse for the MessagePack form (one per connection).
    package static func storable(_ value: NanaValue, using writer: MessagePackWriter? = nil) throws(NanaRemoteError) -> StorableValue {
        do {
            let json = try JSONWriter.bytes(from: value)
            let encoded: [UInt8]
            if let writer {
                writer.reset()
                writer.write(value)
                encoded = writer.bytes
            } else {
                encoded = MessagePackWriter.encode(value)
            }
            return StorableValue(json: json, encoded: EncodedValue(bytes: encoded))
        } catch {
            switch error.kind {
            case .notSerializable: throw NanaRemoteError(.typeError, error.message)
            case .nonFiniteNumber: throw NanaRemoteError(.valueError, error.message)
            case .tooDeep: throw NanaRemoteError(.validation, error.message)
            case .invalidJSON: throw NanaRemoteError(.valueError, error.message)
            }
        }
    }
}

extension NanaRemoteError {
    /// The wire form of a storage error.
    init(_ error: StorageError) {
        let type: NanaErrorType = switch error.kind {
        case .validation: .validation
        case .database: .database
        case .transaction: .transaction
        case .connection: .connection
        case .closed: .closed
        case .lock: .lock
        case .keyNotFound: .keyError
        case .typeError: .typeError
        case .valueError: .valueError
        case .notSupported: .notSupported
        }
        self.init(type, error.message)
    }
}
