import CNanaBoard
import Foundation
import NanaWire
import Synchronization

/// What shares a mapped board between the near-caches of one connection: the connection's
/// table of boards refers to the lease weakly, and every holder of the board holds the lease
/// too, so the board goes with its last holder (see `ClientConnection.WeakBoard`).
final class BoardLease: Sendable {
    let board: MappedBoard
    init(_ board: MappedBoard) { self.board = board }
}

/// A mapped board's stamps as a plain value, for the hit path: reading through it retains
/// nothing. Valid only while its ``MappedBoard`` lives (a ``NearCacheBinding`` holds both).
struct BoardStamps: @unchecked Sendable {  // a read-only mapping, read through acquire loads
    let base: UnsafePointer<UInt64>
    let words: Int

    /// The stamp in `word`, read with acquire ordering; nil for a word outside the board.
    @inline(__always)
    func load(_ word: Int) -> UInt64? {
        guard word >= Int(NANA_BOARD_HEADER_WORDS), word < words else { return nil }
        return nana_board_load(base + word)
    }
}

/// A database file's near-cache board as this process sees it: the daemon's stamps, mapped
/// read-only (proto/PROTOCOL.md §10).
final class MappedBoard: @unchecked Sendable {  // the mapping is read-only shared memory, read through acquire loads
    let generation: UInt64
    let words: Int
    private let base: UnsafePointer<UInt64>
    /// This connection has a transaction open on the board's file: its reads go to the daemon
    /// (they must see the transaction's own writes, which bump nothing until COMMIT).
    let inTransaction = Atomic<Bool>(false)

    private init(generation: UInt64, words: Int, base: UnsafePointer<UInt64>) {
        self.generation = generation
        self.words = words
        self.base = base
    }

    deinit { munmap(UnsafeMutableRawPointer(mutating: base), words * 8) }

    /// The stamp in `word`, read with acquire ordering; nil for a word outside the board (a
    /// reply naming one is not trusted).
    @inline(__always)
    func load(_ word: Int) -> UInt64? { stamps.load(word) }

    /// The mapping's words, as a value: valid while this board lives.
    var stamps: BoardStamps { BoardStamps(base: base, words: words) }

    /// Fetches the board an `open` reply's `board` map names: connects to its side socket,
    /// sends the token, maps the descriptor that comes back, and checks its header against the
    /// reply. Blocks for at most about a second.
    static func fetch(_ offer: NanaValue) throws(NanaClientError) -> MappedBoard {
        guard let socketPath = offer["socket"]?.stringValue, case .binary(let token)? = offer["token"],
              let generation = offer["generation"]?.uint64Value, let words = offer["words"]?.int64Value,
              words > Int64(NANA_BOARD_HEADER_WORDS), words < 1 << 32 else {
            throw NanaClientError(.protocolViolation, "unexpected near-cache board offer: \(offer)")
        }
        let fd = try receiveDescriptor(socketPath, token)
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, Int64(info.st_size) == words * 8 else {
            throw NanaClientError(.protocolViolation, "the near-cache board is not the size its offer says")
        }
        let length = Int(words) * 8
        guard let address = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), address != MAP_FAILED else {
            throw NanaClientError(.connectFailed, "cannot map the near-cache board: \(String(cString: strerror(errno)))")
        }
        let base = UnsafePointer<UInt64>(address.assumingMemoryBound(to: UInt64.self))
        let board = MappedBoard(generation: generation, words: Int(words), base: base)
        let header = (0..<Int(NANA_BOARD_HEADER_WORDS)).map { nana_board_load(base + $0) }
        guard header[Int(NANA_BOARD_MAGIC_WORD)] == NANA_BOARD_MAGIC,
              header[Int(NANA_BOARD_VERSION_WORD)] == UInt64(NANA_BOARD_LAYOUT_VERSION),
              header[Int(NANA_BOARD_GENERATION_WORD)] == generation,
              UInt64(NANA_BOARD_HEADER_WORDS) + header[Int(NANA_BOARD_TABLE_SLOTS_WORD)] + header[Int(NANA_BOARD_KEY_SLOTS_WORD)] == UInt64(words) else {
            throw NanaClientError(.protocolViolation, "the near-cache board's header does not match its offer")
        }
        return board
    }

    private static func receiveDescriptor(_ socketPath: String, _ token: [UInt8]) throws(NanaClientError) -> Int32 {
        let sock = nana_unix_connect(socketPath)
        guard sock >= 0 else {
            throw NanaClientError(.connectFailed, "cannot connect to the near-cache socket \(socketPath): \(String(cString: strerror(errno)))")
        }
        defer { close(sock) }
        var timeout = timeval(tv_sec: 1, tv_usec: 0)
        setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let request = Array("NBRD".utf8) + token
        guard request.withUnsafeBytes({ send(sock, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else {
            throw NanaClientError(.connectFailed, "cannot ask for the near-cache board: \(String(cString: strerror(errno)))")
        }
        var reply = [UInt8](repeating: 0, count: 256)
        var fd: Int32 = -1
        let received = reply.withUnsafeMutableBytes { nana_receive_with_descriptor(sock, $0.baseAddress, $0.count, &fd) }
        guard received >= 1 else {
            throw NanaClientError(.connectFailed, "no near-cache board came back: \(received < 0 ? String(cString: strerror(errno)) : "the daemon hung up")")
        }
        guard reply[0] == 0, fd >= 0 else {
            if fd >= 0 { close(fd) }
            let message = String(decoding: reply[1..<received], as: UTF8.self)
            throw NanaClientError(.connectFailed, "nanad refused the near-cache board: \(message)")
        }
        return fd
    }
}
