import Foundation
import NanaWire

// Codable values travel through JSON: JSONEncoder's output is exactly what NanaSQLite stores,
// and NanaWire's JSON reader keeps integers, doubles and Booleans apart.
extension NanaValue {
    /// The value an `Encodable` encodes to (via `JSONEncoder`).
    public init<T: Encodable>(encoding value: T, encoder: JSONEncoder = JSONEncoder()) throws {
        let data = try encoder.encode(value)
        self = try JSONReader.value(from: data)
    }

    /// Decodes this value as `T` (via `JSONDecoder`).
    public func decode<T: Decodable>(as type: T.Type, decoder: JSONDecoder = JSONDecoder()) throws -> T {
        let json = try JSONWriter.bytes(from: self)
        return try decoder.decode(T.self, from: Data(json))
    }
}
