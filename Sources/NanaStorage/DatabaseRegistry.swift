import Foundation
import Logging
import Synchronization

/// The database files of one data folder, each opened once and shared by every session.
///
/// Clients name files relative to the folder; absolute paths, `..` and symbolic links that
/// lead outside it are refused, so no client can reach a file the daemon was not given.
public final class DatabaseRegistry: Sendable {
    /// The data folder, with symbolic links resolved.
    public let dataDirectory: String
    private let decoder: any StoredValueDecoder
    private let logger: Logger
    private let state = Mutex(State())

    private struct State {
        var open: [String: Database] = [:]
        var opening: [String: [@Sendable (Result<Database, StorageError>) -> Void]] = [:]
        var closed = false
    }

    /// - Parameter dataDirectory: created if missing.
    public init(dataDirectory: String, decoder: any StoredValueDecoder, logger: Logger) throws(StorageError) {
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
        if !create, state.withLock({ $0.open[path] == nil }), access(path, F_OK) != 0 {
            return completion(.failure(StorageError(.validation, "'\(relativePath)' does not exist, and this user may only read it")))
        }
        enum Next { case done(Database), wait, start, closed }
        let next: Next = state.withLock { state in
            if state.closed { return .closed }
            if let db = state.open[path] { return .done(db) }
            if state.opening[path] != nil {
                state.opening[path]!.append(completion)
                return .wait
            }
            state.opening[path] = [completion]
            return .start
        }
        switch next {
        case .done(let db): completion(.success(db))
        case .wait: break
        case .closed: completion(.failure(StorageError(.closed, "nanad is shutting down")))
        case .start:
            logger.info("opening database", metadata: ["db.path": "\(path)"])
            Database.open(path: path, options: options, decoder: decoder, logger: logger) { result in
                let waiters = self.state.withLock { state in
                    if case .success(let db) = result { state.open[path] = db }
                    return state.opening.removeValue(forKey: path) ?? []
                }
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

    /// Closes every database (finishing queued writes) and refuses new opens.
    public func closeAll() {
        let all = state.withLock { state in
            state.closed = true
            return Array(state.open.values)
        }
        for db in all { db.close() }
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
