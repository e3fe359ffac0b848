import Foundation

/// What a database file and its WAL sidecars (`-wal`, `-shm`) were when nanad opened them, to
/// tell when someone deleted, renamed or replaced one underneath it (`cp backup.db app.db`,
/// `rm app.db*`, a copied-over `-shm`).
///
/// A connection keeps using the inode it opened, so a replaced file would keep being served
/// and written, unseen by anyone else; and SQLite maps `-shm`, so a truncated `-shm` makes the
/// next access to a page past its new end a SIGBUS. Both are caught by comparing what the path
/// names now with what was opened: a `stat` per file, before each write batch and each read
/// (about 1 µs), and every second for idle files.
struct DatabaseFiles: Sendable {
    struct Identity: @unchecked Sendable, Equatable {  // timespec: two integers
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: timespec

        static func == (a: Identity, b: Identity) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size
                && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
        }
    }

    /// Whether anything else writes the main file. In WAL mode only checkpoints write it; when
    /// nanad runs them (not `--external-checkpoints`), a main file whose size or modification
    /// time changed since the writer last touched it was overwritten in place (`cp backup.db
    /// app.db` keeps the inode).
    let mainWrittenOnlyByNanad: Bool

    let path: String
    /// The sidecars' paths, made once: `change` runs before every write batch.
    private let walPath: String
    private let shmPath: String
    private(set) var main: Identity
    private(set) var wal: Identity?
    private(set) var shm: Identity?

    /// What `path` and its sidecars are now; nil when the database file does not exist.
    init?(path: String, mainWrittenOnlyByNanad: Bool) {
        guard let main = Self.identity(of: path) else { return nil }
        self.path = path
        self.mainWrittenOnlyByNanad = mainWrittenOnlyByNanad
        self.main = main
        walPath = path + "-wal"
        shmPath = path + "-shm"
        wal = Self.identity(of: walPath)
        shm = Self.identity(of: shmPath)
    }

    /// How the files differ from those opened, or nil when they are the same. A sidecar seen
    /// for the first time is adopted; a `-shm` that grew is adopted at its new size.
    /// - Parameter onWriter: whether the caller is the file's writer, the only one that
    ///   writes the main file; only it compares the main file's size and modification time
    ///   (anyone else could see a checkpoint of its own half done).
    /// - Parameter writerQuiet: off the writer, called when the WAL is found shorter than
    ///   before: whether the writer ran nothing meanwhile (else the shrinking may be its own).
    mutating func change(onWriter: Bool, writerQuiet: () -> Bool = { false }) -> Change? {
        let now = Self.identity(of: path)
        if now == nil || now?.device != main.device || now?.inode != main.inode {
            let what = now == nil ? "the database file was deleted or renamed" : "the database file was replaced by another file"
            // The file nanad has open is intact, and so are its sidecars unless someone put
            // others at the path: only then may closing checkpoint into it (and remove them).
            return sidecarsAreOwnOrGone ? .moved(what) : .sidecar(what + ", and its -wal or -shm with it")
        }
        if let now, onWriter, mainWrittenOnlyByNanad,
           now.size != main.size || now.modified.tv_sec != main.modified.tv_sec || now.modified.tv_nsec != main.modified.tv_nsec {
            return .overwritten("the database file was overwritten in place")
        }
        // When nanad runs the checkpoints, only its writer shrinks the WAL (a TRUNCATE checkpoint
        // on a full disk; `journal_size_limit` at the first COMMIT after the WAL restarts), and
        // it adopts the new size after each batch or transaction step (``writerWrote()``): so
        // a WAL found shorter while the writer was quiet was cut underneath (the wal-index
        // would send reads to frames that are gone). Found shorter while the writer worked, it
        // may be the writer's own doing: the size known is kept for the writer to judge.
        let walShrinking: () -> Shrinking = { [mainWrittenOnlyByNanad] in
            !mainWrittenOnlyByNanad ? .allowed : onWriter || writerQuiet() ? .refused : .leftToTheWriter
        }
        if let problem = Self.compare(&wal, with: Self.identity(of: walPath), name: "-wal", shrinking: walShrinking) { return problem }
        return Self.compare(&shm, with: Self.identity(of: shmPath), name: "-shm", shrinking: { .refused })
    }

    /// Whether the main file is, to a `stat`, what the writer last left (size and
    /// modification time included). A hint for callers off the writer: a checkpoint running
    /// now makes it false, never true, so "true" needs no confirming on the writer.
    var mainLooksUnchanged: Bool {
        Self.identity(of: path) == main
    }

    /// The main file's size in bytes now, or nil when the path no longer names the file opened.
    var mainFileSize: Int64? {
        guard let now = Self.identity(of: path), now.device == main.device, now.inode == main.inode else { return nil }
        return now.size
    }

    /// The writer ran a batch (which may have checkpointed, or truncated the WAL through a
    /// client's `PRAGMA wal_checkpoint(TRUNCATE)`): what the main file and the WAL are now is
    /// what nanad wrote, as long as they are still the files it opened.
    mutating func writerWrote() {
        if let now = Self.identity(of: path), now.device == main.device, now.inode == main.inode { main = now }
        if let known = wal, let now = Self.identity(of: walPath), now.device == known.device, now.inode == known.inode { wal = now }
    }

    /// What changed, which decides how the old open is closed.
    enum Change: Equatable {
        /// The path no longer names the open file (deleted, renamed, another file put there),
        /// and the sidecars at the path are still its own or gone. Closing checkpoints into the
        /// open file (a renamed file keeps its WAL's rows) and SQLite removes the sidecars.
        case moved(String)
        /// The same inode with other contents (`cp backup.db app.db`). The `-wal` and `-shm`
        /// at the path belong to the old contents: closing must not checkpoint them into the
        /// new ones, and they are removed, or the next open would replay them.
        case overwritten(String)
        /// A `-wal` or `-shm` was replaced, deleted or truncated (a `-shm` mapping past its
        /// new end is a SIGBUS). Closing touches neither: no checkpoint; the files stay.
        case sidecar(String)

        var reason: String {
            switch self {
            case .moved(let r), .overwritten(let r), .sidecar(let r): r
            }
        }
    }

    /// Whether the `-wal` and `-shm` at the path are the ones opened (the `-shm` not shrunk)
    /// or absent.
    private var sidecarsAreOwnOrGone: Bool {
        for (suffix, known) in [("-wal", wal), ("-shm", shm)] {
            guard let now = Self.identity(of: path + suffix) else { continue }
            guard let known, now.device == known.device, now.inode == known.inode else { return false }
            if suffix == "-shm", now.size < known.size { return false }
        }
        return true
    }

    /// Removes the `-wal` and `-shm` at the path when they are still the ones nanad had open
    /// (after its connections to them closed): left there, the next open would replay the old
    /// file's WAL over the new file. A sidecar someone put there in their place is left alone.
    func removeOwnSidecars() {
        for (suffix, known) in [("-wal", wal), ("-shm", shm)] {
            guard let known, let now = Self.identity(of: path + suffix), now.device == known.device, now.inode == known.inode else { continue }
            unlink(path + suffix)
        }
    }

    /// What a sidecar found shorter than before means.
    private enum Shrinking {
        /// Nothing: its new size is adopted (a WAL under external checkpoints).
        case allowed
        /// It was changed underneath (a `-shm`, whose mapping must never shrink; a WAL nanad's
        /// writer did not shrink).
        case refused
        /// Not for this caller to judge: the size known is kept for the writer's next look.
        case leftToTheWriter
    }

    private static func compare(_ known: inout Identity?, with now: Identity?, name: String, shrinking: () -> Shrinking) -> Change? {
        guard let before = known else {
            known = now
            return nil
        }
        guard let now else { return .sidecar("its \(name) file was deleted") }
        guard now.device == before.device, now.inode == before.inode else { return .sidecar("its \(name) file was replaced by another file") }
        if now.size < before.size {
            switch shrinking() {
            case .allowed: break
            case .refused: return .sidecar("its \(name) file was truncated (from \(before.size) to \(now.size) bytes)")
            case .leftToTheWriter: return nil
            }
        }
        known = now
        return nil
    }

    private static func identity(of path: String) -> Identity? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size), modified: info.st_mtim)
    }
}
