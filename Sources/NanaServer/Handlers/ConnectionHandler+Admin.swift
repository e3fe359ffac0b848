import Dispatch
import NanaStorage
import NanaWire

// The file's upkeep: `vacuum`, `pragma`, `backup`, `restore`. Paths are files inside the data
// folder, like `db_path` (absolute paths and `..` refused), and each is judged by the access
// rules for what the call does with it; NanaStorage checks the rest (`DatabaseRegistry+Backup`).
extension ConnectionHandler {
    /// Writable PRAGMAs that would change the file for every client of the daemon in ways its
    /// design depends on (WAL for concurrent readers, the writer's own locking and checkpoints).
    static let daemonOwnedPragmas: Set<String> = ["journal_mode", "locking_mode", "query_only", "wal_autocheckpoint", "busy_timeout", "cache_size", "mmap_size"]

    func vacuum(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let owner = try transactionOwner(database)
        respondLater(msgid, { database.vacuum(owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func dbSize(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let size = try storage { () throws(StorageError) in try database.mainFileSize() }
        reply(msgid, .value(.int(size)))
    }

    func pragma(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let owner = try transactionOwner(database)
        let name = try args.string("pragma_name")
        let value: SQLValue?
        switch args.params["value"] ?? .nil {
        case .nil: value = nil
        case .int(let i): value = .integer(i)
        case .double(let d): value = .real(d)
        case .string(let s): value = .text(s)
        case let other: throw NanaRemoteError(.valueError, "PRAGMA value must be int, float or str, not \(other.typeName)")
        }
        if isReadOnly(args), value != nil {
            // Without a value every PRAGMA SQLGuard admits only reads (its list has no acting
            // one such as wal_checkpoint or optimize).
            throw NanaRemoteError(.validation, "this database is read-only for this user: pragma() would set '\(name)'")
        }
        let sql = try storage { () throws(StorageError) in try SQLGuard.pragmaSQL(name, value: value) }
        // After SQLGuard: a setting NanaSQLite would refuse (an unknown name, a malformed value)
        // gets NanaSQLite's ValueError; only a valid one is refused for being nanad's.
        if value != nil, Self.daemonOwnedPragmas.contains(name) {
            throw NanaRemoteError(.validation, "PRAGMA '\(name)' is managed by nanad for every client of the file and cannot be set through pragma()")
        }
        respondLater(msgid, { database.pragma(sql, owner: owner, completion: $0) }) { result in
            .value(value == nil ? (Self.row([result]).arrayValue?.first ?? .nil) : .nil)
        }
    }

    func backup(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let requested = try args.string("dest_path")
        if requested == ":memory:" || requested.hasPrefix("file::memory:") {
            throw NanaRemoteError(.validation, "dest_path must be a file, not an in-memory database")
        }
        let verify = try args.bool("verify", default: true)
        let flush = try args.bool("flush", default: true)
        let allowIncomplete = try args.bool("allow_incomplete", default: false)
        let destination = try resolvePath(requested)
        // The destination is judged as a write to that path: no peer replaces (or creates) a
        // file its rules do not let it write.
        _ = try accessRule(for: requested, to: .write)
        // Staged v2 rows are flushed first, unless the session's own transaction holds the
        // writer (the flush would wait for its COMMIT; found by nanafuzz-dispatch), or the
        // peer may only read the file (the flush would write it). The copy is of committed
        // data either way.
        let flushFirst = flush && !holdsTransaction(on: database) && !isReadOnly(args)
        let registry = state.registry
        respondLater(msgid, {
            registry.backup(database, to: destination, verify: verify, flushingStagedRows: flushFirst, allowIncomplete: allowIncomplete, completion: $0)
        }) { _ in .value(.nil) }
    }

    func restore(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let id = try args.int("db")
        let handle = try self.handle(id)
        guard handle.root == id else {
            throw NanaRemoteError(.connection, "restore() can only be called on the instance that opened the database, not on a table() child")
        }
        let database = handle.table.database
        if try transactionOwner(database) != nil {
            throw NanaRemoteError(.transaction, "Cannot restore while a transaction is in progress. Please commit or rollback first.")
        }
        let requested = try args.string("src_path")
        let source = try resolvePath(requested)
        // The source is judged as an open of that path: no peer reads a file through restore
        // that it may not open.
        _ = try accessRule(for: requested, to: .read)
        let registry = state.registry
        respondLater(msgid, { registry.restore(database, from: source, completion: $0) }) { _ in .value(.nil) }
    }

    /// Closes a database file nobody uses now, without waiting for the idle delay
    /// (`nanactl files --close`). Whether it was closed: not when it is not open, in use, or
    /// has writes left.
    func closeFile(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let path = try args.string("db_path")
        // Judged as a write: it changes the folder (SQLite removes -wal and -shm at close).
        _ = try accessRule(for: path, to: .write)
        let registry = state.registry
        respondLater(msgid, { (done: @escaping @Sendable (Result<Bool, StorageError>) -> Void) in
            // Closing checkpoints and joins the file's threads: not on the event loop.
            DispatchQueue.global().async { done(Result { () throws(StorageError) in try registry.closeIfIdle(path) }) }
        }) { .value(.bool($0)) }
    }

    private func resolvePath(_ path: String) throws(NanaRemoteError) -> String {
        try storage { () throws(StorageError) in try state.registry.resolve(path) }
    }
}
