import Foundation
import Logging
import NanaServer
import NanaStorage
import NanaWire

/// A data folder of its own under the system's temporary folder, removed at the end.
struct TemporaryFolder: ~Copyable {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "nanad-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

func makeRegistry(_ folder: String) throws -> DatabaseRegistry {
    try DatabaseRegistry(dataDirectory: folder, decoder: ValueCodec(), logger: Logger(label: "test"))
}

func storable(_ value: NanaValue) throws -> StorableValue {
    try ValueCodec.storable(value)
}

func decoded(_ value: EncodedValue?) throws -> NanaValue? {
    try value.map { try MessagePackReader.decode($0.bytes) }
}

/// Runs the sqlite3 command-line shell on a file: another process reading or writing it.
@discardableResult
func sqlite3CLI(_ path: String, _ sql: String) throws -> String {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["sqlite3", path, sql]
    let pipe = Pipe()
    process.standardOutput = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw CLIError(status: process.terminationStatus) }
    return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
}

struct CLIError: Error { let status: Int32 }

let fixturesFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
