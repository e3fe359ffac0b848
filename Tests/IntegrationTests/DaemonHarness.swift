import Foundation
import NanaClient
import NanaWire

/// Where `swift build` put the executables: beside this test bundle.
let binFolder: URL = {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for candidate in [here, here.deletingLastPathComponent()] where FileManager.default.isExecutableFile(atPath: candidate.appendingPathComponent("nanad").path) {
        return candidate
    }
    // `swift test` builds the products when the package's tests depend on them; .ci/run builds them first.
    return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/debug")
}()

struct HarnessError: Error, CustomStringConvertible { let description: String }

/// A real `nanad` process on a socket and data folder of its own.
final class Daemon: @unchecked Sendable {
    let folder: String
    let socketPath: String
    let dataDirectory: String
    let process = Process()
    private let log: FileHandle
    let logPath: String

    /// - Parameter environment: variables added to nanad's (the fault VFS's, say).
    init(arguments: [String] = [], folder existing: String? = nil, environment: [String: String] = [:]) throws {
        folder = existing ?? (NSTemporaryDirectory() + "nanad-it-" + UUID().uuidString.prefix(8))
        socketPath = folder + "/nanad.sock"
        dataDirectory = folder + "/data"
        try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        logPath = folder + "/nanad-\(UUID().uuidString.prefix(4)).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = binFolder.appendingPathComponent("nanad")
        process.arguments = ["--socket", socketPath, "--data-dir", dataDirectory, "--log-level", "info"] + arguments
        process.standardOutput = log
        process.standardError = log
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        }
        try process.run()
    }

    /// Starts nanad and waits until its socket accepts connections.
    static func start(arguments: [String] = [], folder: String? = nil, environment: [String: String] = [:]) async throws -> Daemon {
        let daemon = try Daemon(arguments: arguments, folder: folder, environment: environment)
        try await daemon.waitUntilServing()
        return daemon
    }

    func waitUntilServing() async throws {
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            guard process.isRunning else { throw HarnessError(description: "nanad exited early: \(logText)") }
            if let client = try? await NanaClient.connect(socketPath: socketPath) {
                await client.close()
                return
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError(description: "nanad did not start serving: \(logText)")
    }

    var logText: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    func connect() async throws -> NanaClient {
        try await NanaClient.connect(socketPath: socketPath, clientName: "integration-test")
    }

    /// Sends `signal` and waits for the process to exit; returns its exit status.
    @discardableResult
    func stop(_ signal: Int32 = SIGTERM, timeout: Duration = .seconds(20)) async throws -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            guard ContinuousClock.now < deadline else {
                kill(process.processIdentifier, SIGKILL)
                throw HarnessError(description: "nanad did not exit after signal \(signal)")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        return process.terminationStatus
    }

    func removeFolder() { try? FileManager.default.removeItem(atPath: folder) }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

/// Runs one of the package's executables as a separate OS process and collects its output.
struct ToolRun: Sendable {
    let status: Int32
    let stdout: String
    let stderr: String
}

func runTool(_ name: String, _ arguments: [String]) async throws -> ToolRun {
    try await runProgram(binFolder.appendingPathComponent(name), arguments)
}

/// Runs any program (found on PATH when not absolute) and collects its output.
func runProgram(_ executable: URL, _ arguments: [String]) async throws -> ToolRun {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    async let stdout = blocking { out.fileHandleForReading.readDataToEndOfFile() }
    async let stderr = blocking { err.fileHandleForReading.readDataToEndOfFile() }
    let (o, e) = await (stdout, stderr)
    await blocking { process.waitUntilExit() }
    return ToolRun(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

/// Runs blocking work (pipe reads, waiting for a process) on a Dispatch thread: blocking the
/// Swift concurrency pool (one thread per core) would stall every other task of the test.
func blocking<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(returning: work()) }
    }
}

/// A Unix socket of `type` (`SOCK_STREAM`, `SOCK_DGRAM`) that `operation` (`connect`, `bind`)
/// has attached to `path`.
func unixSocket(
    _ type: __socket_type, path: String, _ name: String,
    _ operation: (Int32, UnsafePointer<sockaddr>, socklen_t) -> Int32
) throws -> Int32 {
    let fd = socket(AF_UNIX, Int32(type.rawValue), 0)
    guard fd >= 0 else { throw HarnessError(description: "socket failed: \(errno)") }
    var address = sockaddr_un()
    address.sun_family = sa_family_t(AF_UNIX)
    let bytes = Array(path.utf8)
    guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
        close(fd)
        throw HarnessError(description: "socket path too long: \(path)")
    }
    withUnsafeMutableBytes(of: &address.sun_path) { raw in
        raw.copyBytes(from: bytes)
        raw[bytes.count] = 0
    }
    let rc = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { operation(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
    }
    guard rc == 0 else {
        let error = errno
        close(fd)
        throw HarnessError(description: "\(name) \(path) failed: \(error)")
    }
    return fd
}

/// A raw Unix-socket connection for sending bytes no client library would send.
/// `@unchecked Sendable`: it only wraps a descriptor; one thread writes while another reads, as sockets allow.
final class RawSocket: @unchecked Sendable {
    let fd: Int32

    init(path: String) throws {
        fd = try unixSocket(SOCK_STREAM, path: path, "connect", Glibc.connect)
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    func sendFrame(_ body: [UInt8]) {
        let n = UInt32(body.count)
        send([UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + body)
    }

    /// Reads one frame; nil at end of stream.
    func readFrame() -> [UInt8]? {
        guard let header = read(exactly: 4) else { return nil }
        let n = Int(header[0]) << 24 | Int(header[1]) << 16 | Int(header[2]) << 8 | Int(header[3])
        return read(exactly: n)
    }

    /// True when the peer has closed the connection (reads return 0).
    func isClosedByPeer() -> Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, 0) == 0
    }

    private func read(exactly n: Int) -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: n)
        var got = 0
        while got < n {
            let r = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, n - got, 0) }
            if r <= 0 { return nil }
            got += r
        }
        return buffer
    }
}
