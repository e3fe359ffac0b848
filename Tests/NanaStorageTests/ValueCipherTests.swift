import Foundation
import NanaStorage
import Testing

/// The fixture key of make_encrypted_fixture.py: the 32 bytes 0x20...0x3f.
let fixtureKey: [UInt8] = Array(0x20...0x3F)

/// What make_encrypted_fixture.py stored, as the JSON text NanaSQLite 1.6.2 encrypted
/// (stdlib `json.dumps(value, ensure_ascii=False)`).
let fixtureJSON: [String: String] = [
    "dict": #"{"name": "Zoë", "greeting": "こんにちは", "emoji": "🔐", "nested": {"n": [1, 2.5, true]}}"#,
    "list": #"[1, "two", 3.0, null, false, {"k": "v"}]"#,
    "int": "42",
    "string": #""héllo wörld""#,
    "none": "null",
]

/// Values sealed by ``ValueCipher``, committed so that Python's `cryptography` and NanaSQLite
/// can be shown to open them (tools/nanad-client/tests/test_encryption_compat.py).
struct SealedVectors: Codable, Equatable {
    struct Vector: Codable, Equatable {
        var mode: String
        var key_hex: String
        var plaintext: String
        var sealed_hex: String
    }
    var comment: String
    var vectors: [Vector]
}

let sealedVectorsPath = fixturesFolder + "/valuecipher-sealed.json"

private struct HexError: Error {}

private func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }

private func unhex(_ text: String) throws -> [UInt8] {
    let utf8 = Array(text.utf8)
    guard utf8.count % 2 == 0 else { throw HexError() }
    return try stride(from: 0, to: utf8.count, by: 2).map { i in
        guard let byte = UInt8(String(decoding: utf8[i..<i + 2], as: UTF8.self), radix: 16) else { throw HexError() }
        return byte
    }
}

private func openStored(_ cipher: ValueCipher, _ stored: [UInt8]) throws -> [UInt8] {
    try stored.withUnsafeBytes { buffer in try cipher.open(buffer) }
}

private let tagMismatch = StorageError(.database, "Failed to decrypt value: authentication tag mismatch or corrupted data")

extension Database {
    func fetch(_ sql: String) async throws -> SQLResult {
        try await withCheckedThrowingContinuation { continuation in
            fetch(sql, parameters: []) { continuation.resume(with: $0) }
        }
    }
}

@Suite struct ValueCipherTests {
    @Test(arguments: ValueCipher.Mode.allCases)
    func sealThenOpenRoundTrips(mode: ValueCipher.Mode) throws {
        let cipher = try ValueCipher(key: fixtureKey, mode: mode)
        for plaintext in [[], Array("null".utf8), Array(#"{"a": "é🔐"}"#.utf8), [UInt8](repeating: 0xAB, count: 100_000)] {
            #expect(try openStored(cipher, cipher.seal(plaintext)) == plaintext)
        }
    }

    @Test(arguments: ValueCipher.Mode.allCases)
    func layoutIsNonceCiphertextTagWithAFreshNonce(mode: ValueCipher.Mode) throws {
        let cipher = try ValueCipher(key: fixtureKey, mode: mode)
        let plaintext = Array(#"{"k": [1, 2, 3]}"#.utf8)
        let first = cipher.seal(plaintext)
        let second = cipher.seal(plaintext)
        #expect(first.count == 12 + plaintext.count + 16)
        #expect(cipher.seal([]).count == 28)
        #expect(first != second)
        #expect(first.prefix(12) != second.prefix(12))  // the nonce, random per write
        #expect(!first[12..<(12 + plaintext.count)].elementsEqual(plaintext))  // encrypted, not copied
    }

    @Test(arguments: ValueCipher.Mode.allCases)
    func aWrongKeyIsATagMismatch(mode: ValueCipher.Mode) throws {
        let stored = try ValueCipher(key: fixtureKey, mode: mode).seal(Array("42".utf8))
        var otherKey = fixtureKey
        otherKey[31] ^= 1
        let other = try ValueCipher(key: otherKey, mode: mode)
        #expect(throws: tagMismatch) { try openStored(other, stored) }
        // The same key under the other mode does not open it either.
        let otherMode = try ValueCipher(key: fixtureKey, mode: mode == .aesGCM ? .chacha20 : .aesGCM)
        #expect(throws: tagMismatch) { try openStored(otherMode, stored) }
    }

    @Test(arguments: ValueCipher.Mode.allCases)
    func aTamperedByteAnywhereIsATagMismatch(mode: ValueCipher.Mode) throws {
        let cipher = try ValueCipher(key: fixtureKey, mode: mode)
        let stored = cipher.seal(Array(#"{"name": "Zoë"}"#.utf8))
        // First and last nonce bytes, ciphertext bytes, tag bytes.
        for index in [0, 11, 12, stored.count - 17, stored.count - 16, stored.count - 1] {
            var tampered = stored
            tampered[index] ^= 0x01
            #expect(throws: tagMismatch, "byte \(index)") { try openStored(cipher, tampered) }
        }
        // A byte added or removed.
        #expect(throws: tagMismatch) { try openStored(cipher, stored + [0]) }
        #expect(throws: tagMismatch) { try openStored(cipher, Array(stored.dropLast())) }
    }

    @Test(arguments: ValueCipher.Mode.allCases)
    func aShortPayloadIsCorruptedWithItsLength(mode: ValueCipher.Mode) throws {
        let cipher = try ValueCipher(key: fixtureKey, mode: mode)
        for count in [0, 1, 12, 27] {
            #expect(throws: StorageError(.database, "Corrupted encrypted data: payload too short (expected >= 28 bytes, got \(count))")) {
                try openStored(cipher, [UInt8](repeating: 7, count: count))
            }
        }
        // 28 bytes is long enough to be tried: random bytes fail on the tag.
        #expect(throws: tagMismatch) { try openStored(cipher, [UInt8](repeating: 7, count: 28)) }
    }

    @Test func keyLengthsAreChecked() throws {
        for count in [16, 24, 32] {
            #expect(try ValueCipher(key: Array(fixtureKey.prefix(count)), mode: .aesGCM).mode == .aesGCM)
        }
        for count in [0, 1, 15, 17, 31, 33, 44, 64] {
            let key = [UInt8](repeating: 0x41, count: count)
            #expect(throws: StorageError(.valueError, "aes-gcm encryption key must be 16, 24 or 32 bytes (AES-128, AES-192 or AES-256), got \(count) bytes")) {
                try ValueCipher(key: key, mode: .aesGCM)
            }
        }
        #expect(try ValueCipher(key: fixtureKey, mode: .chacha20).mode == .chacha20)
        for count in [0, 16, 24, 31, 33, 44] {
            let key = [UInt8](repeating: 0x41, count: count)
            #expect(throws: StorageError(.valueError, "chacha20 encryption key must be exactly 32 bytes (ChaCha20-Poly1305), got \(count) bytes")) {
                try ValueCipher(key: key, mode: .chacha20)
            }
        }
    }

    @Test func smallerAESKeysSealAndOpen() throws {
        for count in [16, 24] {
            let cipher = try ValueCipher(key: Array(fixtureKey.prefix(count)), mode: .aesGCM)
            #expect(try openStored(cipher, cipher.seal(Array("[1]".utf8))) == Array("[1]".utf8))
            let longer = try ValueCipher(key: fixtureKey, mode: .aesGCM)
            #expect(throws: tagMismatch) { try openStored(longer, cipher.seal(Array("[1]".utf8))) }
        }
    }

    @Test func modeNamesAreNanaSQLites() throws {
        #expect(try ValueCipher.mode(named: "aes-gcm") == .aesGCM)
        #expect(try ValueCipher.mode(named: "chacha20") == .chacha20)
        #expect(ValueCipher.Mode.allCases.map(\.rawValue) == ["aes-gcm", "chacha20"])
        #expect(throws: StorageError(.notSupported, "encryption_mode fernet is not supported by nanad; supported modes: aes-gcm, chacha20")) {
            try ValueCipher.mode(named: "fernet")
        }
        for name in ["", "AES-GCM", "aes_gcm", "chacha20-poly1305", "xor"] {
            #expect(throws: StorageError(.valueError, "Unsupported encryption_mode: \(name)")) { try ValueCipher.mode(named: name) }
        }
    }

    @Test func matchesComparesModeAndKey() throws {
        let a = try ValueCipher(key: fixtureKey, mode: .aesGCM)
        #expect(a.matches(a))
        #expect(a.matches(try ValueCipher(key: fixtureKey, mode: .aesGCM)))
        #expect(!a.matches(try ValueCipher(key: fixtureKey, mode: .chacha20)))
        var otherKey = fixtureKey
        otherKey[0] ^= 0x80
        #expect(!a.matches(try ValueCipher(key: otherKey, mode: .aesGCM)))
        #expect(!a.matches(try ValueCipher(key: Array(fixtureKey.prefix(16)), mode: .aesGCM)))
        let c = try ValueCipher(key: fixtureKey, mode: .chacha20)
        #expect(c.matches(try ValueCipher(key: fixtureKey, mode: .chacha20)))
        #expect(!c.matches(try ValueCipher(key: otherKey, mode: .chacha20)))
    }

    @Test func descriptionsNeverShowTheKey() throws {
        let cipher = try ValueCipher(key: Array("KEYKEYKEYKEYKEYKEYKEYKEYKEYKEYKE".utf8), mode: .chacha20)
        #expect(String(describing: cipher) == "ValueCipher(chacha20)")
        #expect(String(reflecting: cipher) == "ValueCipher(chacha20)")
        #expect(!"\(cipher)".contains("KEY"))
    }

    /// Files written by the real NanaSQLite 1.6.2 with encryption_key=fixtureKey
    /// (Fixtures/make_encrypted_fixture.py), read through nanad's own SQLite layer.
    @Test(arguments: [(ValueCipher.Mode.aesGCM, "nanasqlite-1.6.2-aesgcm.db"), (.chacha20, "nanasqlite-1.6.2-chacha20.db")])
    func opensEveryValueNanaSQLiteEncrypted(mode: ValueCipher.Mode, file: String) async throws {
        let folder = TemporaryFolder()
        try FileManager.default.copyItem(atPath: fixturesFolder + "/" + file, toPath: folder.path + "/encrypted.db")
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let database = try await registry.open("encrypted.db")
        let result = try await database.fetch(#"SELECT key, value FROM "data""#)
        #expect(result.columns == ["key", "value"])
        let cipher = try ValueCipher(key: fixtureKey, mode: mode)
        var seen: [String: String] = [:]
        for row in result.rows {
            guard case .text(let key) = row[0], case .blob(let stored) = row[1] else {
                Issue.record("not a TEXT key and a BLOB value: \(row)")
                continue
            }
            #expect(stored.count == 12 + Array(fixtureJSON[key, default: ""].utf8).count + 16)
            seen[key] = String(decoding: try openStored(cipher, stored), as: UTF8.self)
            // The other mode's cipher under the same key refuses it.
            let other = try ValueCipher(key: fixtureKey, mode: mode == .aesGCM ? .chacha20 : .aesGCM)
            #expect(throws: tagMismatch) { try openStored(other, stored) }
        }
        #expect(seen == fixtureJSON)
    }

    /// The committed Fixtures/valuecipher-sealed.json: written by ValueCipher (regenerate with
    /// NANAD_WRITE_CIPHER_VECTORS=1 swift test --filter ValueCipherTests), opened by Python's
    /// `cryptography` and by NanaSQLite in tools/nanad-client/tests/test_encryption_compat.py.
    /// Here: ValueCipher opens every one, and a fresh seal has the same shape.
    @Test func committedSealedVectorsOpen() throws {
        if ProcessInfo.processInfo.environment["NANAD_WRITE_CIPHER_VECTORS"] == "1" {
            try writeSealedVectors()
        }
        let vectors = try JSONDecoder().decode(SealedVectors.self, from: Data(contentsOf: URL(fileURLWithPath: sealedVectorsPath)))
        #expect(Set(vectors.vectors.map(\.mode)) == ["aes-gcm", "chacha20"])
        #expect(vectors.vectors.count >= 2 * fixtureJSON.count)
        for vector in vectors.vectors {
            let cipher = try ValueCipher(key: try unhex(vector.key_hex), mode: try ValueCipher.mode(named: vector.mode))
            let sealed = try unhex(vector.sealed_hex)
            let plaintext = Array(vector.plaintext.utf8)
            #expect(sealed.count == 12 + plaintext.count + 16)
            #expect(try openStored(cipher, sealed) == plaintext)
            #expect(cipher.seal(plaintext).count == sealed.count)
        }
    }

    private func writeSealedVectors() throws {
        var vectors: [SealedVectors.Vector] = []
        let plaintexts = fixtureJSON.sorted { $0.key < $1.key }.map(\.value) + ["", "\"" + String(repeating: "x", count: 300) + "\""]
        let keys: [(ValueCipher.Mode, [UInt8])] = [
            (.aesGCM, fixtureKey), (.chacha20, fixtureKey),
            (.aesGCM, Array(fixtureKey.prefix(16))), (.aesGCM, Array(fixtureKey.prefix(24))),
        ]
        for (mode, key) in keys {
            let cipher = try ValueCipher(key: key, mode: mode)
            for plaintext in key.count == 32 ? plaintexts : [fixtureJSON["dict"]!] {
                vectors.append(.init(mode: mode.rawValue, key_hex: hex(key), plaintext: plaintext, sealed_hex: hex(cipher.seal(Array(plaintext.utf8)))))
            }
        }
        let file = SealedVectors(
            comment: "Sealed by nanad's ValueCipher (Tests/NanaStorageTests/ValueCipherTests.swift, NANAD_WRITE_CIPHER_VECTORS=1); sealed_hex = nonce(12) || ciphertext || tag(16) of the UTF-8 plaintext, no AAD. Test keys only.",
            vectors: vectors
        )
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try (encoder.encode(file) + Data("\n".utf8)).write(to: URL(fileURLWithPath: sealedVectorsPath))
    }
}
