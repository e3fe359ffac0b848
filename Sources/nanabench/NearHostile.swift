import ArgumentParser
import CNanaBoard
import Foundation
import NanaClient
import NanaWire

/// A hostile near-cache client, for the tests that run it as another uid: it tries every way it
/// can think of to write to a board, to get a board it was not granted, or to make the daemon
/// take stamps from it, and prints what each attempt came to as JSON (`"refused: …"`, or
/// `"ALLOWED"` for an attempt that worked and must not have).
struct NearHostile: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "near-hostile", abstract: "Attack the near-cache's boards; print what was refused.")

    @Option(help: "nanad's socket.") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "Database file to open with near_cache.") var db = "bench.db"
    @Option(help: "A token granted to another peer (hex), to try to redeem.") var stolenToken: String?

    func run() async throws {
        var results: [String: String] = [:]
        let boardSocket = socket + ".board"
        if let stolenToken {
            results["stolen_token"] = Self.outcome(Self.redeem(boardSocket, Self.bytes(hex: stolenToken)))
        }
        results["garbage_token"] = Self.outcome(Self.redeem(boardSocket, (0..<16).map { _ in UInt8.random(in: 0...255) }))
        results["short_request"] = Self.outcome(Self.redeem(boardSocket, [1, 2, 3]))

        let client = try await NanaClient.connect(socketPath: socket, clientName: "nanabench-near-hostile")
        let reply: NanaValue
        do {
            reply = try await client.call("open", ["db_path": .string(db), "near_cache": true])
        } catch {
            results["open"] = "refused: \(error)"
            return try Self.print(results)
        }
        results["open"] = "ALLOWED"
        let handle = reply["db"] ?? .nil
        do {
            _ = try await client.call("get", ["db": handle, "key": "k", "key_stamp": 1, "table_stamp": 1, "key_word": 9])
            results["forged_stamps_in_get"] = "ALLOWED"
        } catch { results["forged_stamps_in_get"] = "refused: \(error)" }
        guard case .binary(let token)? = reply["board"]?["token"], let words = reply["board"]?["words"]?.int64Value else {
            results["board"] = "none offered: \(reply)"
            return try Self.print(results)
        }
        let granted = Self.redeem(boardSocket, token)
        guard case .success(let fd) = granted else {
            results["own_token"] = Self.outcome(granted)
            return try Self.print(results)
        }
        defer { close(fd) }
        results["own_token"] = "granted"
        results["redeem_twice"] = Self.outcome(Self.redeem(boardSocket, token))
        let length = Int(words) * 8
        results["mmap_shared_writable"] = Self.attempt(mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) != MAP_FAILED)
        guard let shared = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), shared != MAP_FAILED else {
            results["mmap_shared_readable"] = "refused: \(String(cString: strerror(errno)))"
            return try Self.print(results)
        }
        results["mprotect_writable"] = Self.attempt(mprotect(shared, length, PROT_READ | PROT_WRITE) == 0)
        let reopened = open("/proc/self/fd/\(fd)", O_RDWR)
        results["reopen_writable"] = Self.attempt(reopened >= 0)
        if reopened >= 0 { close(reopened) }
        var garbage: UInt64 = 0xDEAD_BEEF
        results["write_descriptor"] = Self.attempt(pwrite(fd, &garbage, 8, 64) == 8)
        results["truncate_descriptor"] = Self.attempt(ftruncate(fd, 0) == 0)
        results["chmod_descriptor"] = Self.attempt(fchmod(fd, 0o666) == 0)
        // A private mapping may be written: the writes stay in this process.
        let board = shared.assumingMemoryBound(to: UInt64.self)
        let before = (0..<Int(words)).map { board[$0] }
        if let copy = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0), copy != MAP_FAILED {
            let words = copy.assumingMemoryBound(to: UInt64.self)
            for i in Int(NANA_BOARD_HEADER_WORDS)..<Int(before.count) { words[i] = 0xFFFF_FFFF }
            let changed = (Int(NANA_BOARD_HEADER_WORDS)..<before.count).contains { board[$0] == 0xFFFF_FFFF && before[$0] != 0xFFFF_FFFF }
            results["private_mapping_writes"] = changed ? "REACHED THE BOARD" : "stayed private"
        }
        try Self.print(results)
        await client.close()
    }

    static func attempt(_ worked: Bool) -> String { worked ? "ALLOWED" : "refused: \(String(cString: strerror(errno)))" }

    static func outcome(_ result: Result<Int32, RedeemFailure>) -> String {
        switch result {
        case .success(let fd):
            close(fd)
            return "ALLOWED"
        case .failure(let failure): return "refused: \(failure.message)"
        }
    }

    struct RedeemFailure: Error { let message: String }

    /// Asks the side socket for a board with `token`; the descriptor, or why not.
    static func redeem(_ path: String, _ token: [UInt8]) -> Result<Int32, RedeemFailure> {
        let sock = nana_unix_connect(path)
        guard sock >= 0 else { return .failure(RedeemFailure(message: "connect: \(String(cString: strerror(errno)))")) }
        defer { close(sock) }
        let request = Array("NBRD".utf8) + token
        _ = request.withUnsafeBytes { send(sock, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var reply = [UInt8](repeating: 0, count: 256)
        var fd: Int32 = -1
        let n = reply.withUnsafeMutableBytes { nana_receive_with_descriptor(sock, $0.baseAddress, $0.count, &fd) }
        guard n >= 1 else { return .failure(RedeemFailure(message: "no reply")) }
        guard reply[0] == 0, fd >= 0 else {
            return .failure(RedeemFailure(message: "status \(reply[0]): \(String(decoding: reply[1..<n], as: UTF8.self))"))
        }
        return .success(fd)
    }

    static func bytes(hex: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while let next = hex.index(index, offsetBy: 2, limitedBy: hex.endIndex), index < hex.endIndex {
            bytes.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }

    static func print(_ results: [String: String]) throws {
        Swift.print(try JSONWriter.string(from: .map(NanaParams(uniqueKeysWithValues: results.sorted { $0.key < $1.key }.map { (NanaKey($0.key), NanaValue.string($0.value)) }))))
    }
}
