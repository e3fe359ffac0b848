import Crypto
import Foundation

/// Encryption of stored values, byte-compatible with NanaSQLite: a BLOB of
/// nonce(12) ‖ ciphertext ‖ tag(16), fresh random nonce per write, no AAD.
///
/// Only the JSON bytes of the `value` column are encrypted; keys, table names and the schema
/// stay plaintext (behaviour spec §10). The key lives in a `SymmetricKey` and is never printed:
/// ``description`` names the mode only.
public struct ValueCipher: Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    public enum Mode: String, Sendable, CaseIterable { case aesGCM = "aes-gcm", chacha20 = "chacha20" }

    /// Bytes of the random nonce written before the ciphertext.
    public static let nonceByteCount = 12
    /// Bytes of the authentication tag written after the ciphertext.
    public static let tagByteCount = 16
    /// The shortest stored value that can be opened: nonce and tag around empty ciphertext.
    public static let overheadByteCount = nonceByteCount + tagByteCount

    public let mode: Mode
    /// NanaSQLite's `allow_legacy_plaintext`: a plaintext (TEXT) value of the table is read as
    /// the JSON it holds instead of refused, for a migration to encryption. Not part of the
    /// key: sessions sharing the table must agree on it, though (see `KeyValueTable.attach`).
    public let readsLegacyPlaintext: Bool
    private let key: SymmetricKey

    /// - Parameter key: the raw key bytes (NanaSQLite encodes a `str` key as UTF-8 as-is).
    ///   AES-GCM accepts 16/24/32 bytes, ChaCha20-Poly1305 exactly 32; otherwise
    ///   `StorageError(.valueError, …)` naming the mode and the lengths accepted.
    public init(key: [UInt8], mode: Mode, readsLegacyPlaintext: Bool = false) throws(StorageError) {
        switch mode {
        case .aesGCM:
            guard [16, 24, 32].contains(key.count) else {
                throw StorageError(.valueError, "aes-gcm encryption key must be 16, 24 or 32 bytes (AES-128, AES-192 or AES-256), got \(key.count) bytes")
            }
        case .chacha20:
            guard key.count == 32 else {
                throw StorageError(.valueError, "chacha20 encryption key must be exactly 32 bytes (ChaCha20-Poly1305), got \(key.count) bytes")
            }
        }
        self.mode = mode
        self.readsLegacyPlaintext = readsLegacyPlaintext
        self.key = SymmetricKey(data: key)
    }

    /// Parses NanaSQLite's `encryption_mode` string. `"fernet"` is a NanaSQLite mode that nanad
    /// does not implement (`.notSupported`); any other unknown string is NanaSQLite's own
    /// `ValueError("Unsupported encryption_mode: …")`.
    public static func mode(named name: String) throws(StorageError) -> Mode {
        if let mode = Mode(rawValue: name) { return mode }
        if name == "fernet" {
            throw StorageError(.notSupported, "encryption_mode fernet is not supported by nanad; supported modes: aes-gcm, chacha20")
        }
        throw StorageError(.valueError, "Unsupported encryption_mode: \(name)")
    }

    /// Encrypts `plaintext` under a fresh random 12-byte nonce: nonce ‖ ciphertext ‖ tag.
    public func seal(_ plaintext: [UInt8]) -> [UInt8] {
        var stored: [UInt8] = []
        stored.reserveCapacity(Self.overheadByteCount + plaintext.count)
        do {
            switch mode {
            case .aesGCM:
                let nonce = AES.GCM.Nonce()
                let box = try AES.GCM.seal(plaintext, using: key, nonce: nonce)
                stored.append(contentsOf: nonce)
                stored.append(contentsOf: box.ciphertext)
                stored.append(contentsOf: box.tag)
            case .chacha20:
                let nonce = ChaChaPoly.Nonce()
                let box = try ChaChaPoly.seal(plaintext, using: key, nonce: nonce)
                stored.append(contentsOf: nonce)
                stored.append(contentsOf: box.ciphertext)
                stored.append(contentsOf: box.tag)
            }
        } catch {
            // The key length was checked in init and the nonce is the default size, so the
            // only way here is the crypto library itself failing (e.g. out of memory).
            preconditionFailure("\(mode.rawValue) encryption failed: \(error)")
        }
        return stored
    }

    /// Decrypts a stored value, with NanaSQLite's errors (`StorageError(.database, …)`):
    /// a payload under 28 bytes is "Corrupted encrypted data: payload too short (expected >= 28
    /// bytes, got N)"; a tag mismatch or wrong key is "Failed to decrypt value: authentication
    /// tag mismatch or corrupted data".
    public func open(_ stored: UnsafeRawBufferPointer) throws(StorageError) -> [UInt8] {
        guard stored.count >= Self.overheadByteCount else {
            throw StorageError(.database, "Corrupted encrypted data: payload too short (expected >= \(Self.overheadByteCount) bytes, got \(stored.count))")
        }
        do {
            switch mode {
            case .aesGCM:
                return [UInt8](try AES.GCM.open(AES.GCM.SealedBox(combined: stored), using: key))
            case .chacha20:
                return [UInt8](try ChaChaPoly.open(ChaChaPoly.SealedBox(combined: stored), using: key))
            }
        } catch {
            throw StorageError(.database, "Failed to decrypt value: authentication tag mismatch or corrupted data")
        }
    }

    /// Whether two ciphers use the same mode and key, compared in constant time, so the daemon
    /// can tell a second client that its key differs from the one the table is open with.
    public func matches(_ other: ValueCipher) -> Bool {
        // SymmetricKey's == compares in constant time (for keys of equal length); it runs
        // whatever the modes are.
        let sameKey = key == other.key
        return sameKey && mode == other.mode
    }

    public var description: String { "ValueCipher(\(mode.rawValue))" }
    public var debugDescription: String { description }
}
