import CNanaBoard
import Foundation
import Synchronization

/// One open database file's board of write stamps: a small file of 64-bit words that the daemon
/// maps read-write and hands to near-cache clients as a read-only descriptor
/// (proto/PROTOCOL.md §10).
///
/// Layout: ``headerWords`` words (magic, layout version, generation, table slot count, key slot
/// count), then ``tableSlots`` table stamps, then ``keySlots`` key stamps. The daemon bumps a
/// key's stamp after each change to it becomes what its cache answers, and a table's stamp after
/// a change to many keys at once (clear, raw SQL, restore, new settings); a client's cached
/// entry is good while both stamps it was read with are unchanged. Which word a key uses is the
/// daemon's secret: replies name words by index.
public final class Board: @unchecked Sendable {  // the mapping is shared memory; words are read and written only through atomics
    public static let tableSlots = 256
    public static let defaultKeySlots = 65_536
    static let headerWords = Int(NANA_BOARD_HEADER_WORDS)

    /// Unique to this daemon process and this open of the file (random).
    public let generation: UInt64
    public let keySlots: Int
    /// The board's length in words (header, table and key stamps).
    public let words: Int
    /// Where the board lives until it is retired.
    let path: String
    private let base: UnsafeMutablePointer<UInt64>
    private let descriptor: Int32
    private let retired = Atomic<Bool>(false)

    /// Creates a fresh board in `directory` (mode 0600).
    /// - Parameter keySlots: a power of two.
    init(creatingIn directory: String, keySlots: Int) throws(StorageError) {
        precondition(keySlots > 0 && keySlots & (keySlots - 1) == 0, "key slots must be a power of two")
        var generation: UInt64 = 0
        while generation == 0 { generation = UInt64.random(in: .min ... .max) }
        self.generation = generation
        self.keySlots = keySlots
        self.words = Self.headerWords + Self.tableSlots + keySlots
        self.path = "\(directory)/\(String(generation, radix: 16)).board"
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Self.failure("create", path) }
        // The umask may have taken bits away, never added them; set the mode exactly anyway.
        guard fchmod(fd, 0o600) == 0, ftruncate(fd, off_t(words * 8)) == 0,
              let mapped = Self.map(fd, words: words) else {
            let error = Self.failure("size", path)
            close(fd)
            unlink(path)
            throw error
        }
        descriptor = fd
        base = mapped
        // The header goes in before any client can be handed the board.
        nana_board_store(base + Int(NANA_BOARD_MAGIC_WORD), NANA_BOARD_MAGIC)
        nana_board_store(base + Int(NANA_BOARD_VERSION_WORD), UInt64(NANA_BOARD_LAYOUT_VERSION))
        nana_board_store(base + Int(NANA_BOARD_GENERATION_WORD), generation)
        nana_board_store(base + Int(NANA_BOARD_TABLE_SLOTS_WORD), UInt64(Self.tableSlots))
        nana_board_store(base + Int(NANA_BOARD_KEY_SLOTS_WORD), UInt64(keySlots))
    }

    deinit {
        munmap(base, words * 8)
        close(descriptor)
    }

    private static func map(_ fd: Int32, words: Int) -> UnsafeMutablePointer<UInt64>? {
        let address = mmap(nil, words * 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
        guard let address, address != MAP_FAILED else { return nil }
        return address.assumingMemoryBound(to: UInt64.self)
    }

    private static func failure(_ what: String, _ path: String) -> StorageError {
        StorageError(.connection, "cannot \(what) near-cache board \(path): \(String(cString: strerror(errno)))")
    }

    // MARK: Words

    /// The word of a table's stamp; tables beyond ``tableSlots`` share words (which only costs
    /// misses).
    func tableWord(_ tableIndex: Int) -> Int { Self.headerWords + tableIndex & (Self.tableSlots - 1) }

    /// The word of a key's stamp in a table. Swift's hash is seeded per process, so the mapping
    /// changes with every daemon (and so with every generation).
    func keyWord(_ tableIndex: Int, _ key: String) -> Int {
        var hasher = Hasher()
        hasher.combine(tableIndex)
        hasher.combine(key)
        let slot = Int(truncatingIfNeeded: UInt(bitPattern: hasher.finalize()) & UInt(keySlots - 1))
        return Self.headerWords + Self.tableSlots + slot
    }

    /// A stamp, read with acquire ordering (before the value it vouches for).
    func load(_ word: Int) -> UInt64 { nana_board_load(base + word) }

    /// Bumps a stamp with release ordering (after the change it announces became visible).
    func bump(_ word: Int) { _ = nana_board_increment(base + word) }

    /// Bumps every table stamp: every entry any client holds from this board stops being good.
    func poison() {
        for word in Self.headerWords..<(Self.headerWords + Self.tableSlots) { bump(word) }
    }

    /// A new read-only descriptor of the board, for one client. It is reopened through
    /// `/proc/self/fd`, not duplicated, so that it cannot write; the file's mode (0600, the
    /// daemon's uid) stops a peer of another uid from reopening the descriptor it receives
    /// writable through its own `/proc/self/fd`.
    public func readOnlyDescriptor() throws(StorageError) -> Int32 {
        guard !retired.load(ordering: .acquiring) else {
            throw StorageError(.closed, "the near-cache board of this file was retired; open the database again")
        }
        let fd = open("/proc/self/fd/\(descriptor)", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure("reopen", path) }
        return fd
    }

    /// The file is no longer served: every entry made from the board is invalidated and the
    /// board's file removed (clients that mapped it keep a mapping that never matches again).
    func retire() {
        guard !retired.exchange(true, ordering: .acquiringAndReleasing) else { return }
        poison()
        unlink(path)
    }

    /// Invalidates a board a previous daemon left behind (it crashed, or was killed) and removes
    /// it: its clients may not have noticed yet that their connection is gone, and must miss.
    /// - Returns: whether the file was a board (anything else is left alone).
    static func retireLeftover(at path: String) -> Bool {
        let fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG,
              info.st_size >= (headerWords + tableSlots) * 8 else { return false }
        let length = Int(info.st_size)
        guard let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), address != MAP_FAILED else { return false }
        defer { munmap(address, length) }
        let words = address.assumingMemoryBound(to: UInt64.self)
        guard nana_board_load(words + Int(NANA_BOARD_MAGIC_WORD)) == NANA_BOARD_MAGIC else { return false }
        for word in headerWords..<(headerWords + tableSlots) { _ = nana_board_increment(words + word) }
        unlink(path)
        return true
    }
}
