import Foundation
import Logging
import Testing

@testable import NanaStorage

/// The board itself and the bumps `TableCache` makes on it: which change moves which stamp.
@Suite struct BoardTests {
    private static func value(_ n: Int) -> EncodedValue { EncodedValue(bytes: Array("\(n)".utf8)) }

    private struct Fixture {
        let folder: String
        let directory: BoardDirectory
        let link = BoardLink()
        let board: Board
        let cache: TableCache

        init(keySlots: Int = 1024, strategy: CacheStrategy = .default) throws {
            folder = NSTemporaryDirectory() + "nanad-board-" + UUID().uuidString.prefix(8)
            directory = try BoardDirectory(path: folder, keySlots: keySlots, logger: Logger(label: "test"))
            board = try link.board(in: directory)
            cache = TableCache(strategy: strategy, board: link, tableIndex: 3)
        }

        func stamps(_ key: String) -> TrackedStamps { cache.stamps(of: key)! }
    }

    @Test func aBoardHasItsHeaderAndStartsAtZero() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(atPath: f.folder) }
        #expect(f.board.words == 8 + Board.tableSlots + 1024)
        #expect(f.board.load(0) == 0x3144_5242_414E_414E)  // "NANABRD1"
        #expect(f.board.load(1) == 1)
        #expect(f.board.load(2) == f.board.generation)
        #expect(f.board.load(3) == UInt64(Board.tableSlots))
        #expect(f.board.load(4) == 1024)
        let info = try FileManager.default.attributesOfItem(atPath: f.board.path)
        #expect((info[.posixPermissions] as? Int) == 0o600)
        #expect((info[.size] as? Int) == f.board.words * 8)
        let s = f.stamps("k")
        #expect(s.keyStamp == 0 && s.tableStamp == 0)
        #expect(s.tableWord == 8 + 3)
        #expect(s.keyWord >= 8 + Board.tableSlots && s.keyWord < f.board.words)
    }

    @Test func eachKindOfChangeMovesItsStamp() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(atPath: f.folder) }
        var last = f.stamps("k")
        func expectMoved(key: Bool, table: Bool, _ comment: Comment) {
            let now = f.stamps("k")
            #expect((now.keyStamp != last.keyStamp) == key, comment)
            #expect((now.tableStamp != last.tableStamp) == table, comment)
            last = now
        }
        f.cache.apply([.set("k", Self.value(1))])
        expectMoved(key: true, table: false, "a write of the key")
        f.cache.apply([.set("other-key-entirely", Self.value(1))])
        expectMoved(key: f.stamps("other-key-entirely").keyWord == last.keyWord, table: false, "a write of another key moves only its slot")
        f.cache.apply([.remove("k")])
        expectMoved(key: true, table: false, "a delete")
        f.cache.forget("k")
        expectMoved(key: true, table: false, "a forget (refresh, a failed write-behind row)")
        f.cache.apply([.removeAll])
        expectMoved(key: false, table: true, "a clear of the table")
        f.cache.clear()
        expectMoved(key: false, table: true, "the cache dropped (raw SQL, restore)")
        f.cache.reconfigure(.lru(capacity: 10))
        expectMoved(key: false, table: true, "new settings")
        f.cache.fill("k", .present(Self.value(2)), readAt: f.cache.sequence)
        _ = f.cache.lookup("k")
        expectMoved(key: false, table: false, "a read, and the fill it makes, change nothing")
    }

    @Test func retiringPoisonsEveryTableAndRemovesTheFile() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(atPath: f.folder) }
        let before = f.stamps("k")
        let descriptor = try f.board.readOnlyDescriptor()
        defer { close(descriptor) }
        #expect(fcntl(descriptor, F_GETFL) & O_ACCMODE == O_RDONLY)
        f.link.retire()
        #expect(!FileManager.default.fileExists(atPath: f.board.path))
        #expect(f.stamps("k").tableStamp == before.tableStamp + 1)
        for word in 8..<(8 + Board.tableSlots) { #expect(f.board.load(word) == 1) }
        #expect(throws: StorageError.self) { try f.board.readOnlyDescriptor() }
        #expect(throws: StorageError.self) { try f.link.board(in: f.directory) }
    }

    @Test func aNewDirectoryRetiresTheBoardsItFinds() throws {
        let f = try Fixture()
        defer { try? FileManager.default.removeItem(atPath: f.folder) }
        f.cache.apply([.removeAll])
        let path = f.board.path
        let other = f.folder + "/notes.board"
        try Data("not a board".utf8).write(to: URL(fileURLWithPath: other))
        _ = try BoardDirectory(path: f.folder, logger: Logger(label: "test"))
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(FileManager.default.fileExists(atPath: other), "only boards are removed")
        #expect(f.board.load(8 + 3) == 2, "the table this fixture bumped, poisoned once more")
        #expect(f.board.load(8) == 1)
    }

    @Test func aDirectoryThatIsNotPrivateIsMadeSoOrRefused() throws {
        let folder = NSTemporaryDirectory() + "nanad-board-" + UUID().uuidString.prefix(8)
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o777])
        _ = try BoardDirectory(path: folder, logger: Logger(label: "test"))
        #expect((try FileManager.default.attributesOfItem(atPath: folder)[.posixPermissions] as? Int) == 0o700)
        #expect(chown(folder, 65534, 65534) == 0)
        #expect(throws: StorageError.self) { try BoardDirectory(path: folder, logger: Logger(label: "test")) }
        let link = folder + "-link"
        defer { unlink(link) }
        #expect(symlink(NSTemporaryDirectory(), link) == 0)
        #expect(throws: StorageError.self) { try BoardDirectory(path: link, logger: Logger(label: "test")) }
        #expect(throws: StorageError.self) { try BoardDirectory(path: folder + "-x", keySlots: 1000, logger: Logger(label: "test")) }
    }

    @Test func aTTLEntryReportsItsRemainingLife() throws {
        let clock = ManualClock()
        let cache = TableCache(strategy: .ttl(seconds: 2, limit: nil), now: clock.now)
        cache.apply([.set("k", Self.value(1))])
        clock.advance(seconds: 0.5)
        #expect(abs((cache.remainingLife(of: "k") ?? 0) - 1.5) < 0.001)
        #expect(cache.remainingLife(of: "missing") == nil)
        #expect(TableCache().remainingLife(of: "k") == nil)
    }
}
