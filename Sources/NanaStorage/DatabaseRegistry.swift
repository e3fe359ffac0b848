import NanaWire
import Foundation
import Logging
import Synchronization

/// The database files of one data folder, each opened once and shared by every session.
///
/// Clients name files relative to the folder; absolute paths, `..` and symbolic links that
/// lead outside it are refused, so no client can reach a file the daemon was not given.
///
/// A file is open while sessions hold it (each ``open(_:options:create:completion:)`` is one
/// hold, given back with ``Database/release()``). Once nobody holds it and nothing is left to
/// write, it is closed after ``idleCloseDelay`` (checkpointed, its threads stopped, its `-wal`
/// and `-shm` removed by SQLite), and the next open opens it afresh. A file found deleted,
/// renamed or replaced underneath (``DatabaseFiles``) is retired at once and forgotten, so the
/// next open opens what the path names now.
public final class DatabaseRegistry: Sendable {
    /// The data folder, with symbolic links resolved.
    public let dataDirectory: String
    /// How long a file nobody holds stays open (open/close churn stays cheap); nil: until shutdown.
    public let idleCloseDelay: Duration?
    /// Most files open at once (each has a writer thread and up to a few connections, three
    /// descriptors each). Past it, the file nobody has used for longest is closed first; when
    /// every one is in use, the open is refused.
    public let maximumOpenFiles: Int
    private let decoder: any StoredValueDecoder
    private let logger: Logger
    private let state = Mutex(State())
    /// Closes files (idle, retired, to make room) one at a time. Closing blocks until the
    /// file's writer thread has finished; on Dispatch's shared pool each blocked close made it
    /// start another thread (a burst of idle files left a dozen behind).
    private let closer = DispatchQueue(label: "nanad-file-closer")
    /// Files closed because nobody used them, and files retired because they changed underneath.
    private let idleClosed = Atomic<Int>(0)
    private let replacements = Atomic<Int>(0)
    /// Every second, the open files are compared with their paths (cached reads never reach
    /// SQLite, where the writer and readers compare them before each batch and read).

    private struct State {
        var open: [NanaKey: Database] = [:]
        var opening: [NanaKey: [@Sendable (Result<Database, StorageError>) -> Void]] = [:]
        /// Files being closed (idle or retired), which shutdown still waits for; opens of their
        /// paths wait for the close to finish (and a replaced file's sidecars to go).
        var closing: [NanaKey: Database] = [:]
        var waitingForClose: [NanaKey: [@Sendable () -> Void]] = [:]
        var closed = false
    }

    /// - Parameter dataDirectory: created if missing.
    public init(dataDirectory: String, decoder: any StoredValueDecoder, logger: Logger, idleCloseDelay: Duration? = nil, maximumOpenFiles: Int = 256) throws(StorageError) {
        do {
            try FileManager.default.createDirectory(atPath: dataDirectory, withIntermediateDirectories: true)
        } catch {
            throw StorageError(.connection, "cannot create data folder \(dataDirectory): \(error.localizedDescription)")
        }
        guard let real = Self.realPath(dataDirectory) else {
            throw StorageError(.connection, "cannot resolve data folder \(dataDirectory)")
        }
        self.dataDirectory = real
        self.decoder = decoder
        self.logger = logger
        self.idleCloseDelay = idleCloseDelay
        self.maximumOpenFiles = max(1, maximumOpenFiles)
        watchFiles()
        if idleCloseDelay != nil { closeIdleFiles() }
    }

    /// Closes the files nobody has held for the idle delay, looking again every half delay
    /// (at most every second). One sweep rather than a timer per release keeps closing a
    /// handle cheap.
    private func closeIdleFiles() {
        guard let delay = idleCloseDelay else { return }
        let delayNanoseconds = UInt64(delay.components.seconds) * 1_000_000_000 + UInt64(delay.components.attoseconds / 1_000_000_000)
        let interval = min(max(delayNanoseconds / 2, 50_000_000), 1_000_000_000)
        closer.asyncAfter(deadline: .now() + .nanoseconds(Int(interval))) { [weak self] in
            guard let self, !self.state.withLock({ $0.closed }) else { return }
            let now = DispatchTime.now().uptimeNanoseconds
            for db in self.databases where db.holderCount == 0 && db.lastReleased != 0 && now &- db.lastReleased >= delayNanoseconds {
                // Rows still staged or queued wait for a later sweep; dead letters keep it open.
                self.close(db, ifIdle: true)
            }
            self.closeIdleFiles()
        }
    }

    private func watchFiles() {
        DispatchQueue.global().asyncAfter(deadline: .now() + 1) { [weak self] in
            guard let self, !self.state.withLock({ $0.closed }) else { return }
            for db in self.databases where db.checkFiles() && db.writeQueueDepth == 0 {
                db.verifyFiles { _ in }  // the main file's contents, on its writer
            }
            self.watchFiles()
        }
    }

    /// The absolute path of `relativePath` inside the data folder, or a validation error.
    public func resolve(_ relativePath: String) throws(StorageError) -> String {
        func refuse(_ why: String) -> StorageError {
            StorageError(.validation, "db_path '\(relativePath)' is refused: \(why)")
        }
        guard !relativePath.isEmpty else { throw refuse("it is empty") }
        guard !relativePath.utf8.contains(0) else { throw refuse("it contains a NUL byte") }
        guard relativePath != ":memory:" else {
            throw StorageError(.notSupported, "in-memory databases (':memory:') are not served by nanad; name a file in the data folder")
        }
        guard !relativePath.hasPrefix("/") else { throw refuse("absolute paths are not allowed; name a file inside the data folder") }
        guard !relativePath.hasSuffix("/") else { throw refuse("it names a folder, not a file") }
        let components = relativePath.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.contains("..") else { throw refuse("'..' is not allowed") }
        guard let last = components.last, last != "." else { throw refuse("it names a folder, not a file") }
        let parent = ([dataDirectory] + components.dropLast().map(String.init)).joined(separator: "/")
        guard let realParent = Self.realPath(parent) else { throw refuse("its folder does not exist in the data folder") }
        let candidate = realParent + "/" + last
        // A symbolic link inside the folder must not lead out of it, nor dangle (SQLite would
        // create its target wherever it points).
        var info = stat()
        let exists = lstat(candidate, &info) == 0
        if exists && (info.st_mode & S_IFMT) == S_IFDIR { throw refuse("it names a folder, not a file") }
        let resolved: String
        if exists && (info.st_mode & S_IFMT) == S_IFLNK {
            guard let target = Self.realPath(candidate) else { throw refuse("it is a symbolic link to a missing file") }
            resolved = target
        } else {
            resolved = candidate
        }
        guard resolved == dataDirectory || resolved.hasPrefix(dataDirectory + "/") else {
            throw refuse("it leads outside the data folder")
        }
        return resolved
    }

    /// Opens (or shares) the database at `relativePath`. The first open's options win.
    /// - Parameter create: whether a missing file is created (false for a peer that may only
    ///   read it: the open fails instead, and nothing appears in the data folder).
    public func open(_ relativePath: String, options: DatabaseOptions, create: Bool = true, completion: @escaping @Sendable (Result<Database, StorageError>) -> Void) {
        let path: String
        do { path = try resolve(relativePath) } catch { return completion(.failure(error)) }
        if !create, state.withLock({ $0.open[NanaKey(path)] == nil }), access(path, F_OK) != 0 {
            return completion(.failure(StorageError(.validation, "'\(relativePath)' does not exist, and this user may only read it")))
        }
        // A file changed underneath since it was opened is retired (and forgotten) here.
        if let existing = state.withLock({ $0.open[NanaKey(path)] }) { existing.checkFiles() }
        enum Next { case done(Database), verify(Database), wait, start, makeRoom, closed }
        let next: Next = state.withLock { state in
            if state.closed { return .closed }
            if state.closing[NanaKey(path)] != nil {
                state.waitingForClose[NanaKey(path), default: []].append {
                    self.open(relativePath, options: options, create: create, completion: completion)
                }
                return .wait
            }
            if let db = state.open[NanaKey(path)], !db.isRetired {
                let idle = db.holderCount == 0
                db.hold()
                // Nobody held it: someone may have copied over it meanwhile. When the file does
                // not look as the writer left it, only the writer can tell whether it wrote it
                // (no session's transaction can be holding that writer).
                return idle && !db.mainFileLooksUnchanged ? .verify(db) : .done(db)
            }
            if state.opening[NanaKey(path)] != nil {
                state.opening[NanaKey(path)]!.append(completion)
                return .wait
            }
            if state.open.count + state.opening.count + state.closing.count >= maximumOpenFiles { return .makeRoom }
            state.opening[NanaKey(path)] = [completion]
            return .start
        }
        switch next {
        case .done(let db): completion(.success(db))
        case .verify(let db):
            db.verifyFiles { served in
                if served { return completion(.success(db)) }
                db.release()
                self.open(relativePath, options: options, create: create, completion: completion)
            }
        case .wait: break
        case .makeRoom:
            // Closing joins a writer thread: not on the caller's thread (an event loop).
            closer.async {
                guard self.closeLeastRecentlyUsed() else {
                    return completion(.failure(StorageError(.connection, "nanad has \(self.maximumOpenFiles) database files open and every one is in use (--max-open-files); close some handles, or raise the limit")))
                }
                self.open(relativePath, options: options, create: create, completion: completion)
            }
        case .closed: completion(.failure(StorageError(.closed, "nanad is shutting down")))
        case .start:
            logger.info("opening database", metadata: ["db.path": "\(path)"])
            Database.open(path: path, options: options, decoder: decoder, logger: logger) { result in
                let waiters = self.state.withLock { state in
                    let waiters = state.opening.removeValue(forKey: NanaKey(path)) ?? []
                    if case .success(let db) = result {
                        state.open[NanaKey(path)] = db
                        for _ in waiters { db.hold() }
                    }
                    return waiters
                }
                if case .success(let db) = result { self.watch(db) }
                waiters.forEach { $0(result) }
            }
        }
    }

    public func open(_ relativePath: String, options: DatabaseOptions = DatabaseOptions(), create: Bool = true) async throws(StorageError) -> Database {
        let result = await withCheckedContinuation { continuation in
            open(relativePath, options: options, create: create) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// The databases open now.
    public var databases: [Database] { state.withLock { Array($0.open.values) } }

    /// Files closed so far because nobody used them.
    public var idleClosedCount: Int { idleClosed.load(ordering: .relaxed) }
    /// Files retired so far because they were deleted, renamed or replaced underneath.
    public var replacementsDetected: Int { replacements.load(ordering: .relaxed) }

    /// Closes every database (finishing queued writes) and refuses new opens.
    public func closeAll() {
        let all = state.withLock { state in
            state.closed = true
            return Array(state.open.values) + Array(state.closing.values)
        }
        for db in all { db.close() }
    }

    /// Closes `relativePath` now if nobody holds it (`nanactl files --close`). False when it
    /// is not open, or in use, or has writes left.
    public func closeIfIdle(_ relativePath: String) throws(StorageError) -> Bool {
        let path = try resolve(relativePath)
        guard let db = state.withLock({ $0.open[NanaKey(path)] }) else { return false }
        return close(db, ifIdle: true)
    }

    // MARK: Lifecycle

    /// Closes the open file nobody has held for longest; false when every file is in use.
    private func closeLeastRecentlyUsed() -> Bool {
        let candidates = state.withLock { Array($0.open.values) }
            .filter { $0.holderCount == 0 }
            .sorted { $0.lastReleased < $1.lastReleased }
        for db in candidates where close(db, ifIdle: true) { return true }
        // Another open may have made room meanwhile (a close finished).
        return state.withLock { $0.open.count + $0.opening.count + $0.closing.count < maximumOpenFiles }
    }

    private func watch(_ db: Database) {
        db.lifecycle.withLock {
            $0 = { [weak self] db in self?.forgetRetired(db) }
        }
    }

    /// Forgets `db` and closes it (on this thread: callers are not event loops).
    @discardableResult
    private func close(_ db: Database, ifIdle: Bool) -> Bool {
        let taken = state.withLock { state -> Bool in
            guard state.open[NanaKey(db.path)] === db, !ifIdle || (db.holderCount == 0 && db.isQuiescent) else { return false }
            state.open[NanaKey(db.path)] = nil
            state.closing[NanaKey(db.path)] = db
            return true
        }
        guard taken else { return false }
        logger.info("closing a database nobody uses", metadata: ["db.path": "\(db.path)"])
        db.close()
        idleClosed.wrappingAdd(1, ordering: .relaxed)
        closed(db)
        returnFreedMemory()
        return true
    }

    private let lastTrim = Atomic<UInt64>(0)
    private let trimScheduled = Atomic<Bool>(false)

    /// Hands memory freed by closed files back to the system, at most once a second: glibc
    /// keeps what a thread's arena freed (each file's threads and page caches), so the
    /// resident size would stay at its peak long after the files went idle.
    private func returnFreedMemory() {
        let now = DispatchTime.now().uptimeNanoseconds
        let last = lastTrim.load(ordering: .relaxed)
        guard now &- last > 1_000_000_000, lastTrim.compareExchange(expected: last, desired: now, ordering: .relaxed).exchanged else {
            // One more after the burst, for what the closes skipped here freed.
            if !trimScheduled.exchange(true, ordering: .relaxed) {
                closer.asyncAfter(deadline: .now() + 1.1) { [weak self] in
                    self?.trimScheduled.store(false, ordering: .relaxed)
                    self?.returnFreedMemory()
                }
            }
            return
        }
        _ = Self.mallocTrim?(0)
    }

    /// glibc's `malloc_trim`, which Swift's Glibc module does not export (malloc.h is not in
    /// it); nil on another C library.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "malloc_trim") else { return nil }  // RTLD_DEFAULT
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
    }()

    /// `db`'s close finished: the opens that waited for it go ahead.
    private func closed(_ db: Database) {
        let waiting = state.withLock { state in
            state.closing[NanaKey(db.path)] = nil
            return state.waitingForClose.removeValue(forKey: NanaKey(db.path)) ?? []
        }
        waiting.forEach { $0() }
    }

    /// A retired file is forgotten at once (the next open opens the path again) and closed
    /// once its threads have failed what was queued.
    private func forgetRetired(_ db: Database) {
        let forgotten = state.withLock { state -> Bool in
            guard state.open[NanaKey(db.path)] === db else { return false }
            state.open[NanaKey(db.path)] = nil
            state.closing[NanaKey(db.path)] = db
            return true
        }
        guard forgotten else { return }
        replacements.wrappingAdd(1, ordering: .relaxed)
        closer.async {
            db.close()
            db.removeStaleSidecars()
            self.closed(db)
        }
    }

    /// `absolutePath` (as ``resolve(_:)`` returns it) relative to the data folder.
    public func relativePath(of absolutePath: String) -> String {
        absolutePath.hasPrefix(dataDirectory + "/") ? String(absolutePath.dropFirst(dataDirectory.count + 1)) : absolutePath
    }

    static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }
}
