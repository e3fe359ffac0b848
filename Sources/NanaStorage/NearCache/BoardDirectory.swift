import Foundation
import Logging

/// The private folder where the daemon keeps its near-cache boards (`<socket>.boards/`, mode
/// 0700, the daemon's uid).
///
/// Boards are files rather than memfds so that a daemon started after a crash can find the
/// boards its predecessor handed out and invalidate them before it serves anyone: a client that
/// has not yet noticed its connection is gone must miss, not hit on a board nobody bumps.
public final class BoardDirectory: Sendable {
    public let path: String
    /// Key slots of each board (`--near-cache-slots`).
    public let keySlots: Int

    /// Prepares the folder, invalidating and removing the boards a previous daemon left in it.
    /// Throws when the folder cannot be made private (it exists with another owner or wider
    /// permissions and cannot be fixed, or it is a symbolic link).
    public init(path: String, keySlots: Int = Board.defaultKeySlots, logger: Logger) throws(StorageError) {
        guard keySlots > 0, keySlots & (keySlots - 1) == 0, keySlots <= 1 << 24 else {
            throw StorageError(.valueError, "near-cache slots must be a power of two between 1 and \(1 << 24), got \(keySlots)")
        }
        self.path = path
        self.keySlots = keySlots
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw StorageError(.connection, "cannot create near-cache folder \(path): \(String(cString: strerror(errno)))")
        }
        var info = stat()
        guard lstat(path, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else {
            throw StorageError(.connection, "near-cache folder \(path) is not a directory")
        }
        guard info.st_uid == geteuid() else {
            throw StorageError(.connection, "near-cache folder \(path) belongs to uid \(info.st_uid), not to nanad's uid \(geteuid())")
        }
        if info.st_mode & 0o077 != 0, chmod(path, 0o700) != 0 {
            throw StorageError(.connection, "cannot make near-cache folder \(path) private: \(String(cString: strerror(errno)))")
        }
        var retired = 0
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] where name.hasSuffix(".board") {
            if Board.retireLeftover(at: "\(path)/\(name)") { retired += 1 }
        }
        if retired > 0 {
            logger.notice("invalidated near-cache boards a previous nanad left behind", metadata: ["boards": "\(retired)", "folder": "\(path)"])
        }
    }

    /// A fresh board for one open of a database file.
    func makeBoard() throws(StorageError) -> Board {
        try Board(creatingIn: path, keySlots: keySlots)
    }
}
