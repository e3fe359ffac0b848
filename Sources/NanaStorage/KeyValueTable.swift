import CSQLite
import NanaWire
import Synchronization

/// A NanaSQLite key-value table, `"<name>"(key TEXT PRIMARY KEY, value TEXT)`, with its shared
/// cache. Every session that opens the same table of the same file gets this one object.
///
/// Operations complete through callbacks on storage threads (the caller hops back to its own
/// executor); ``cached(_:)`` answers from the cache on the caller's thread without blocking on
/// SQLite. Async wrappers are in `KeyValueTable+Async.swift`.
public final class KeyValueTable: Sendable {
    /// The name as first opened.
    public let name: String
    /// The file this table lives in.
    public let database: Database
    let cache: TableCache
    /// The encryption the table is open with (see ``attach(_:completion:)``).
    let cipher = CipherSlot()
    /// Declared constraints, checked on the writer before each write.
    let constraints = ConstraintSet()
    /// Persistent TTL: expiry times stored beside the rows.
    let expiry: RowExpiry
    /// NanaSQLite's v2 mode; inactive unless a session opened the table with `v2_mode`.
    let writeBehind: WriteBehind
    /// Sessions using the table (see ``attach(_:completion:)``).
    let usage = Mutex(0)
    private let sql: SQL

    struct SQL: Sendable {
        let write, replace, delete, deleteReturning, read, contains, all, count, keys, insertIfMissing, clear: String
        /// Set once SQLite refused `write` for want of a unique `key`: from then on the table's
        /// writes are `replace`. Kept for the table's life (REPLACE is right on any table).
        let upsertRefused = Flag()

        final class Flag: Sendable {
            private let value = Atomic<Bool>(false)
            var isSet: Bool { value.load(ordering: .relaxed) }
            func set() { value.store(true, ordering: .relaxed) }
        }

        init(quoted t: String) {
            // An upsert updates the row in place: one page per row. NanaSQLite's `INSERT OR
            // REPLACE` deletes the row and appends it again with a new rowid, dirtying the old
            // row's page, the last page and the key's index page: with five random keys per
            // commit, 11.2 WAL frames against 5.0 (docs/BENCHMARKS.md, session 20). So an
            // overwritten key keeps its place in `items()`, as in a dict.
            write = "INSERT INTO \(t) (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            // For a table whose `key` is not unique (made so by another program, or remade so
            // by SQL since), where the upsert does not compile.
            replace = "INSERT OR REPLACE INTO \(t) (key, value) VALUES (?, ?)"
            delete = "DELETE FROM \(t) WHERE key = ?"
            deleteReturning = "DELETE FROM \(t) WHERE key = ? RETURNING value"
            read = "SELECT value FROM \(t) WHERE key = ?"
            contains = "SELECT 1 FROM \(t) WHERE key = ? LIMIT 1"
            all = "SELECT key, value FROM \(t)"
            count = "SELECT COUNT(*) FROM \(t)"
            keys = "SELECT key FROM \(t)"
            insertIfMissing = "INSERT OR IGNORE INTO \(t) (key, value) VALUES (?, ?)"
            clear = "DELETE FROM \(t)"
        }

        func batchRead(_ count: Int, quoted t: String) -> String {
            "SELECT key, value FROM \(t) WHERE key IN (\(Array(repeating: "?", count: count).joined(separator: ",")))"
        }
    }

    /// Keys per `IN (…)` query in a batch read.
    static let batchReadChunk = 500

    private let quoted: String

    init(database: Database, name: String, quoted: String) {
        self.database = database
        self.name = name
        self.quoted = quoted
        let cache = TableCache(board: database.boardLink, tableIndex: database.nextTableIndex())
        self.cache = cache
        let sql = SQL(quoted: quoted)
        self.sql = sql
        let cipher = self.cipher
        let expiry = RowExpiry(table: name)
        self.expiry = expiry
        self.writeBehind = WriteBehind(table: name, database: database, cache: cache, logger: database.logger) {
            (connection, key, operation) throws(StorageError) in
            switch operation {
            case .set(let value):
                try Self.writeRow(key, value, sql: sql, cipher: cipher.current, on: connection)
                try expiry.touch(key, on: connection)
            case .delete:
                try Self.deleteRow(key, sql: sql, on: connection)
                try expiry.forget(key, on: connection)
            }
        }
    }

    public var path: String { database.path }

    public var cacheStatistics: CacheStatistics { cache.statistics }

    // MARK: Cache

    /// What the daemon knows about `key` without touching SQLite: a staged write (v2), else
    /// the cache. `nil` means "ask SQLite".
    public func cached(_ key: String) -> CacheEntry? {
        // A retired file answers nothing from memory: the call goes on and fails.
        if database.isRetired { return nil }
        if writeBehind.isActive, let staged = writeBehind.staged(key) { return Self.entry(staged) }
        return cache.lookup(key)
    }

    /// The stamps a tracked read of `key` vouches for its value with; read them before the
    /// value (``cached(_:)`` or a read). Nil while the file has no near-cache board.
    public func stamps(of key: String) -> TrackedStamps? { cache.stamps(of: key) }

    /// The cache's time to live (TTL strategy), or nil.
    public var cacheTimeToLive: Double? {
        if case .ttl(let seconds, _) = cache.strategy { return seconds }
        return nil
    }

    /// Seconds until the daemon's cached entry of `key` expires (TTL tables), or nil.
    public func remainingLife(of key: String) -> Double? { cache.remainingLife(of: key) }

    /// The file's near-cache board (made on first use) and the word of this table's stamp.
    public func nearCacheBoard(in directory: BoardDirectory) throws(StorageError) -> (board: Board, tableWord: Int) {
        let board = try database.boardLink.board(in: directory)
        return (board, cache.tableWord(on: board))
    }

    /// NanaSQLite's `is_cached`: the key has a cached value or is known to be absent.
    public func isCached(_ key: String) -> Bool { cache.contains(key) }

    private static func entry(_ staged: StagedOperation) -> CacheEntry {
        switch staged {
        case .set(let value): .present(value.encoded)
        case .delete: .absent
        }
    }

    /// Drops every cached entry; SQLite is untouched.
    public func clearCache() { cache.clear() }

    /// Forgets one key so that the next read goes to SQLite.
    public func forget(_ key: String) { cache.forget(key) }

    // MARK: Reads

    /// The value of `key`, from the cache or else a reader connection; `nil` when missing.
    /// Inside a client transaction (`owner`) it reads on the writer and leaves the cache alone.
    /// - Parameter missed: the caller has just looked `key` up with ``cached(_:)`` and missed;
    ///   the lookup is not repeated (it would count a second miss).
    public func get(_ key: String, owner: TransactionToken? = nil, missed: Bool = false, completion: @escaping @Sendable (Result<EncodedValue?, StorageError>) -> Void) {
        let owner = readOwner(owner)
        // Taken before the lookups: a write staged or committed after it stops the fill below.
        let epoch = cache.sequence
        if owner == nil, !missed {
            switch cached(key) {
            case .present(let value): return completion(.success(value))
            case .absent: return completion(.success(nil))
            case nil: break
            }
        }
        read(owner, completion) { connection throws(StorageError) in
            let value = try self.readValue(key, on: connection)
            if owner == nil { self.cache.fill(key, value.map(CacheEntry.present) ?? .absent, readAt: epoch) }
            return value
        }
    }

    /// Reads `key` from SQLite, bypassing the cache, and puts what it found in the cache.
    /// It runs on the writer so that nothing can commit between the read and the cache update.
    public func getFresh(_ key: String, owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<EncodedValue?, StorageError>) -> Void) {
        if writeBehind.isActive, owner != nil {
            // Inside a client transaction the writer is not free: answer from staging or a reader.
            if let staged = writeBehind.staged(key) { return completion(.success(Self.entry(staged).value)) }
            return read(nil, completion) { connection throws(StorageError) in try self.readValue(key, on: connection) }
        }
        if writeBehind.isActive {
            // A staged write is fresher than the file; otherwise read the file and cache what
            // it holds, with staging locked so that no write can slip in between.
            return readModifyWrite(key, completion) { (staged, connection) throws(StorageError) -> (StagedOperation?, EncodedValue?) in
                if let staged { return (nil, Self.entry(staged).value) }
                let value = try self.readValue(key, on: connection)
                self.cache.apply([value.map { .set(key, $0) } ?? .remove(key)])
                return (nil, value)
            }
        }
        write(.statement, owner, completion) { connection throws(StorageError) in
            let value = try self.readValue(key, on: connection)
            return (value.map { .set(key, $0) } ?? .remove(key), value)
        }
    }

    /// Whether `key` exists; a miss is remembered as absent.
    /// - Parameter missed: as for ``get(_:owner:missed:completion:)``.
    public func contains(_ key: String, owner: TransactionToken? = nil, missed: Bool = false, completion: @escaping @Sendable (Result<Bool, StorageError>) -> Void) {
        let owner = readOwner(owner)
        let epoch = cache.sequence
        if owner == nil, !missed {
            switch cached(key) {
            case .present: return completion(.success(true))
            case .absent: return completion(.success(false))
            case nil: break
            }
        }
        read(owner, completion) { connection throws(StorageError) in
            let statement = try connection.cachedStatement(self.sql.contains)
            let found = try statement.withReset { (s) throws(StorageError) -> Bool in
                s.bind(key, at: 1)
                return try s.step()
            }
            if !found && owner == nil { self.cache.fill(key, .absent, readAt: epoch) }
            return found
        }
    }

    /// Number of rows (`SELECT COUNT(*)`).
    public func count(owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<Int, StorageError>) -> Void) {
        if writeBehind.isActive, owner != nil { return itemsWithStagedWrites { completion($0.map(\.count)) } }
        afterStagedWrites(owner) { self.read(owner, completion) { connection throws(StorageError) in
            let statement = try connection.cachedStatement(self.sql.count)
            return try statement.withReset { (s) throws(StorageError) -> Int in
                _ = try s.step()
                return Int(s.columnInt64(0))
            }
        } }
    }

    /// Every key, in SQLite's order.
    public func keys(owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<[String], StorageError>) -> Void) {
        if writeBehind.isActive, owner != nil { return itemsWithStagedWrites { completion($0.map { $0.map(\.0) }) } }
        afterStagedWrites(owner) { self.read(owner, completion) { connection throws(StorageError) in
            let statement = try connection.cachedStatement(self.sql.keys)
            return try statement.withReset { (s) throws(StorageError) -> [String] in
                var keys: [String] = []
                while try s.step() { keys.append(s.columnString(0)) }
                return keys
            }
        } }
    }

    /// Every row, in SQLite's order. Always read from SQLite, so it is complete whatever the
    /// cache holds; the rows also fill the cache (NanaSQLite's `load_all`).
    public func items(owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<[(String, EncodedValue)], StorageError>) -> Void) {
        if writeBehind.isActive, owner != nil { return itemsWithStagedWrites(completion) }
        afterStagedWrites(owner) { self.readItems(owner: owner, completion: completion) }
    }

    private func readItems(owner: TransactionToken?, completion: @escaping @Sendable (Result<[(String, EncodedValue)], StorageError>) -> Void) {
        let epoch = cache.sequence
        read(owner, completion) { connection throws(StorageError) in
            let statement = try connection.cachedStatement(self.sql.all)
            let rows = try statement.withReset { (s) throws(StorageError) -> [(String, EncodedValue)] in
                var rows: [(String, EncodedValue)] = []
                while try s.step() {
                    rows.append((s.columnString(0), try self.decodeColumn(s, 1)))
                }
                return rows
            }
            if owner == nil { self.cache.fillAll(rows, readAt: epoch) }
            return rows
        }
    }

    /// The values of the keys that exist, in the order asked (repeated keys once).
    public func batchGet(_ keys: [String], owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<[(String, EncodedValue)], StorageError>) -> Void) {
        let owner = readOwner(owner)
        let epoch = cache.sequence
        // By the keys' bytes (NanaKey): as Strings, "é" and "e\u{301}" would be one key.
        var found: [NanaKey: EncodedValue] = [:]
        var missing: [String] = []
        var seen = Set<NanaKey>()
        for key in keys where seen.insert(NanaKey(key)).inserted {
            if owner != nil {
                missing.append(key)
                continue
            }
            switch cached(key) {
            case .present(let value): found[NanaKey(key)] = value
            case .absent: break
            case nil: missing.append(key)
            }
        }
        let ordered = seen.count == keys.count ? keys : { var s = Set<NanaKey>(); return keys.filter { s.insert(NanaKey($0)).inserted } }()
        if missing.isEmpty {
            return completion(.success(ordered.compactMap { key in found[NanaKey(key)].map { (key, $0) } }))
        }
        let cached = found
        let toRead = missing
        read(owner, completion) { connection throws(StorageError) in
            var results = cached
            // One snapshot for every chunk (inside a client transaction there already is one).
            if owner == nil { try connection.execute("BEGIN") }
            defer { if owner == nil { try? connection.execute("COMMIT") } }
            var start = 0
            while start < toRead.count {
                let chunk = toRead[start..<min(start + Self.batchReadChunk, toRead.count)]
                let statement = try connection.cachedStatement(self.sql.batchRead(chunk.count, quoted: self.quoted))
                try statement.withReset { (s) throws(StorageError) in
                    for (i, key) in chunk.enumerated() { s.bind(key, at: Int32(i + 1)) }
                    while try s.step() {
                        results[NanaKey(s.columnString(0))] = try self.decodeColumn(s, 1)
                    }
                }
                start += chunk.count
            }
            for key in toRead where owner == nil {
                self.cache.fill(key, results[NanaKey(key)].map(CacheEntry.present) ?? .absent, readAt: epoch)
            }
            return ordered.compactMap { key in results[NanaKey(key)].map { (key, $0) } }
        }
    }

    // MARK: Writes

    /// Stores `value` under `key`.
    public func set(_ key: String, _ value: StorableValue, owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        if writeBehind.isActive {
            if !constraints.isEmpty { return checkedStage([(key, value)], owner: owner, completion) }
            return completion(stage(owner) { () throws(StorageError) in try writeBehind.stage(CollectionOfOne((key, .set(value)))) })
        }
        write(.statement, owner, singleRow: true, completion) { connection throws(StorageError) in
            try self.writeRow(key, value, on: connection)
            return (.set(key, value.encoded), ())
        }
    }

    /// Whether a `delete` of `key` must go to the table even though the cache holds it as
    /// absent: in v2 mode, when its newest write is a dead letter (see `delete`).
    public func deleteNeedsTheTable(_ key: String) -> Bool {
        writeBehind.isActive && writeBehind.hasFailedWrite(key)
    }

    /// Deletes `key`; fails with `keyNotFound` when it does not exist. In v2 mode a key whose
    /// last write failed (a dead letter, which reads no longer show) is deleted too: the delete
    /// supersedes the letter, so `retry_dlq` will not store it (as in NanaSQLite, whose cache
    /// still holds the failed value, so that its `del` succeeds).
    public func delete(_ key: String, owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        if writeBehind.isActive {
            return readModifyWrite(key, owner: owner, countingFailedWrite: true, completion) { (staged, connection) throws(StorageError) -> (StagedOperation?, Void) in
                guard try self.exists(key, staged: staged, on: connection) else { throw StorageError(.keyNotFound, key) }
                return (.delete, ())
            }
        }
        write(.statement, owner, singleRow: true, completion) { connection throws(StorageError) in
            let statement = try connection.cachedStatement(self.sql.delete)
            try statement.withReset { (s) throws(StorageError) in
                s.bind(key, at: 1)
                try s.run()
            }
            guard connection.changes > 0 else { throw StorageError(.keyNotFound, key) }
            try self.expiry.forget(key, on: connection)
            return (.remove(key), ())
        }
    }

    /// Deletes `key` and returns the value it had, or `nil` when it did not exist.
    public func pop(_ key: String, owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<EncodedValue?, StorageError>) -> Void) {
        if writeBehind.isActive {
            return readModifyWrite(key, owner: owner, completion) { (staged, connection) throws(StorageError) -> (StagedOperation?, EncodedValue?) in
                guard let old = try self.current(key, staged: staged, on: connection) else { return (nil, nil) }
                return (.delete, old)
            }
        }
        write(.statement, owner, singleRow: true, completion) { connection throws(StorageError) in
            let statement = try connection.cachedStatement(self.sql.deleteReturning)
            let old = try statement.withReset { (s) throws(StorageError) -> EncodedValue? in
                s.bind(key, at: 1)
                guard try s.step() else { return nil }
                let value = try self.decodeColumn(s, 0)
                try s.run()
                return value
            }
            if old != nil { try self.expiry.forget(key, on: connection) }
            return (.remove(key), old)
        }
    }

    /// Returns the value of `key`, first storing `value` if the key is missing.
    public func setDefault(_ key: String, _ value: StorableValue, owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<EncodedValue, StorageError>) -> Void) {
        if writeBehind.isActive {
            return readModifyWrite(key, owner: owner, completion) { (staged, connection) throws(StorageError) -> (StagedOperation?, EncodedValue) in
                if let existing = try self.current(key, staged: staged, on: connection) { return (nil, existing) }
                try self.constraints.check(key, value, table: self, on: connection)
                return (.set(value), value.encoded)
            }
        }
        write(.statement, owner, singleRow: true, completion) { connection throws(StorageError) in
            if !self.constraints.isEmpty, try self.readValue(key, on: connection) == nil {
                try self.constraints.check(key, value, table: self, on: connection)
            }
            let insert = try connection.cachedStatement(self.sql.insertIfMissing)
            try insert.withReset { (s) throws(StorageError) in
                s.bind(key, at: 1)
                Self.bindStored(value, cipher: self.cipher.current, to: s, at: 2)
                try s.run()
            }
            if connection.changes > 0 {
                try self.expiry.touch(key, on: connection)
                return (.set(key, value.encoded), value.encoded)
            }
            guard let existing = try self.readValue(key, on: connection) else {
                throw StorageError(.database, "setdefault: row vanished inside its own transaction")
            }
            return (.set(key, existing), existing)
        }
    }

    /// Reads `key` on the writer, computes its new value from the old one (`nil` when missing)
    /// and stores it, with nothing able to write in between: NanaSQLite's `increment` and
    /// `patch`, atomic for every client of the daemon. `transform` runs on the writer thread;
    /// if it throws, nothing is written.
    public func update(
        _ key: String,
        transform: @escaping @Sendable (EncodedValue?) throws(StorageError) -> StorableValue,
        owner: TransactionToken? = nil,
        completion: @escaping @Sendable (Result<EncodedValue, StorageError>) -> Void
    ) {
        if writeBehind.isActive {
            return readModifyWrite(key, owner: owner, completion) { (staged, connection) throws(StorageError) -> (StagedOperation?, EncodedValue) in
                let new = try transform(try self.current(key, staged: staged, on: connection))
                try self.constraints.check(key, new, table: self, on: connection)
                return (.set(new), new.encoded)
            }
        }
        write(.statement, owner, singleRow: true, completion) { connection throws(StorageError) in
            let old = try self.readValue(key, on: connection)
            let new = try transform(old)
            try self.writeRow(key, new, on: connection)
            return (.set(key, new.encoded), new.encoded)
        }
    }

    /// Stores every pair in one transaction: all or nothing.
    public func batchUpdate(_ rows: [(String, StorableValue)], owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        guard !rows.isEmpty else { return completion(.success(())) }
        if writeBehind.isActive {
            if !constraints.isEmpty { return checkedStage(rows, owner: owner, completion) }
            return completion(stage(owner) { () throws(StorageError) in try writeBehind.stage(rows.lazy.map { ($0.0, .set($0.1)) }) })
        }
        write(.savepoint, owner, completion) { connection throws(StorageError) in
            for (key, value) in rows { try self.writeRow(key, value, on: connection) }
            return (.many(rows.map { .set($0.0, $0.1.encoded) }), ())
        }
    }

    /// Stores every pair that keeps the table's constraints, in one transaction, and returns
    /// the others with the violation (NanaSQLite's `batch_update_partial`, whose hooks can
    /// refuse single keys). Any other error fails the whole call.
    public func batchUpdatePartial(_ rows: [(String, StorableValue)], owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<[NanaKey: String], StorageError>) -> Void) {
        guard !rows.isEmpty else { return completion(.success([:])) }
        if constraints.isEmpty { return batchUpdate(rows, owner: owner) { completion($0.map { [:] }) } }
        if writeBehind.isActive {
            if let owner { return completion(.failure(Self.insideTransaction(owner))) }
            return database.submit(WriteJob(
                mode: .exclusive,
                run: { connection throws(StorageError) in
                    var accepted: [(String, StagedOperation)] = []
                    var rejected: [NanaKey: String] = [:]
                    for (key, value) in rows {
                        do throws(StorageError) {
                            try self.constraints.check(key, value, table: self, on: connection)
                            accepted.append((key, .set(value)))
                        } catch where error.kind == .validation {
                            rejected[NanaKey(key)] = error.message
                        }
                    }
                    try self.writeBehind.stage(accepted)
                    let refused = rejected
                    return WriteOutcome { completion(.success(refused)) }
                },
                fail: { completion(.failure($0)) }
            ))
        }
        write(.savepoint, owner, completion) { connection throws(StorageError) in
            var changes: [CacheChange] = []
            var rejected: [NanaKey: String] = [:]
            for (key, value) in rows {
                try connection.execute("SAVEPOINT nana_row")
                do throws(StorageError) {
                    try self.writeRow(key, value, on: connection)
                    try connection.execute("RELEASE nana_row")
                    changes.append(.set(key, value.encoded))
                } catch where error.kind == .validation {
                    try connection.execute("ROLLBACK TO nana_row; RELEASE nana_row")
                    rejected[NanaKey(key)] = error.message
                }
            }
            return (.many(changes), rejected)
        }
    }

    /// Deletes every key in one transaction; missing keys are ignored.
    public func batchDelete(_ keys: [String], owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        guard !keys.isEmpty else { return completion(.success(())) }
        if writeBehind.isActive {
            return completion(stage(owner) { () throws(StorageError) in try writeBehind.stage(keys.lazy.map { ($0, .delete) }) })
        }
        write(.savepoint, owner, completion) { connection throws(StorageError) in
            let statement = try connection.cachedStatement(self.sql.delete)
            for key in keys {
                try statement.withReset { (s) throws(StorageError) in
                    s.bind(key, at: 1)
                    try s.run()
                }
                try self.expiry.forget(key, on: connection)
            }
            return (.many(keys.map { .remove($0) }), ())
        }
    }

    /// Deletes every row.
    public func clear(owner: TransactionToken? = nil, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        if writeBehind.isActive {
            if let owner { return completion(.failure(Self.insideTransaction(owner))) }
            // Staged writes would be deleted anyway; a flush already running commits before
            // the DELETE below (the writer runs jobs in order).
            writeBehind.discardStaged()
        }
        write(.statement, owner, completion) { connection throws(StorageError) in
            try connection.cachedStatement(self.sql.clear).withReset { (s) throws(StorageError) in try s.run() }
            try self.expiry.forgetAll(on: connection)
            return (.removeAll, ())
        }
    }

    // MARK: Plumbing

    private func readValue(_ key: String, on connection: SQLiteConnection) throws(StorageError) -> EncodedValue? {
        let statement = try connection.cachedStatement(sql.read)
        return try statement.withReset { (s) throws(StorageError) -> EncodedValue? in
            s.bind(key, at: 1)
            guard try s.step() else { return nil }
            return try decodeColumn(s, 0)
        }
    }

    /// Checks the constraints and writes one row (v1 paths; v2 checks when it stages).
    func writeRow(_ key: String, _ value: StorableValue, on connection: SQLiteConnection) throws(StorageError) {
        try constraints.check(key, value, table: self, on: connection)
        try Self.writeRow(key, value, sql: sql, cipher: cipher.current, on: connection)
        try expiry.touch(key, on: connection)
    }

    private static func writeRow(_ key: String, _ value: StorableValue, sql: SQL, cipher: ValueCipher?, on connection: SQLiteConnection) throws(StorageError) {
        if !sql.upsertRefused.isSet {
            do {
                return try run(sql.write, key, value, cipher: cipher, on: connection)
            } catch where refusesTheUpsert(error) {
                // At the first prepare, or at a step after a schema change (SQLite prepares the
                // statement again then). Nothing was written: a statement fails whole.
                sql.upsertRefused.set()
            }
        }
        try run(sql.replace, key, value, cipher: cipher, on: connection)
    }

    private static func run(_ text: String, _ key: String, _ value: StorableValue, cipher: ValueCipher?, on connection: SQLiteConnection) throws(StorageError) {
        try connection.cachedStatement(text).withReset { (s) throws(StorageError) in
            s.bind(key, at: 1)
            bindStored(value, cipher: cipher, to: s, at: 2)
            try s.run()
        }
    }

    /// SQLite's error for an `ON CONFLICT (key)` on a table whose `key` is not unique; only
    /// that one falls back to REPLACE (which, on a table with other unique indexes, deletes).
    private static func refusesTheUpsert(_ error: StorageError) -> Bool {
        error.sqliteCode == SQLITE_ERROR && error.message.contains("ON CONFLICT clause does not match")
    }

    /// NanaSQLite's stored form: the JSON text, or with encryption a BLOB of
    /// nonce ‖ ciphertext ‖ tag.
    private static func bindStored(_ value: StorableValue, cipher: ValueCipher?, to statement: Statement, at index: Int32) {
        if let cipher {
            statement.bind(.blob(cipher.seal(value.json)), at: index)
        } else {
            statement.bind(utf8: value.json, at: index)
        }
    }

    private static func deleteRow(_ key: String, sql: SQL, on connection: SQLiteConnection) throws(StorageError) {
        let statement = try connection.cachedStatement(sql.delete)
        try statement.withReset { (s) throws(StorageError) in
            s.bind(key, at: 1)
            try s.run()
        }
    }

    // MARK: Write-behind plumbing

    /// The value `key` has now: the staged write if there is one, else the file's.
    private func current(_ key: String, staged: StagedOperation?, on connection: SQLiteConnection) throws(StorageError) -> EncodedValue? {
        if let staged { return Self.entry(staged).value }
        return try readValue(key, on: connection)
    }

    private func exists(_ key: String, staged: StagedOperation?, on connection: SQLiteConnection) throws(StorageError) -> Bool {
        if let staged { return Self.entry(staged).value != nil }
        let statement = try connection.cachedStatement(sql.contains)
        return try statement.withReset { (s) throws(StorageError) -> Bool in
            s.bind(key, at: 1)
            return try s.step()
        }
    }

    /// Stages a write-behind change, refusing it inside a client transaction (a staged write
    /// would outlive a ROLLBACK).
    private func stage(_ owner: TransactionToken?, _ body: () throws(StorageError) -> Void) -> Result<Void, StorageError> {
        if let owner { return .failure(Self.insideTransaction(owner)) }
        if database.isRetired { return .failure(database.closedError) }
        do { try body() } catch { return .failure(error) }
        return .success(())
    }

    static func insideTransaction(_ owner: TransactionToken) -> StorageError {
        StorageError(.transaction, "Explicit transactions are not supported in V2 mode: this table stages its writes (write-behind); commit or roll back the transaction open on this file first.")
    }

    /// A read-modify-write in v2 mode: on the writer thread (ordered with raw SQL), holding the
    /// staging lock, so that no other write to `key` can land between the read and the write.
    /// `body` gets the staged operation on `key` (if any) and returns the one to stage.
    private func readModifyWrite<T>(
        _ key: String,
        owner: TransactionToken? = nil,
        countingFailedWrite: Bool = false,
        _ completion: @escaping @Sendable (Result<T, StorageError>) -> Void,
        _ body: @escaping @Sendable (StagedOperation?, SQLiteConnection) throws(StorageError) -> (StagedOperation?, T)
    ) {
        if let owner { return completion(.failure(Self.insideTransaction(owner))) }
        database.submit(WriteJob(
            mode: .exclusive,
            run: { connection throws(StorageError) in
                let result = try self.writeBehind.withStaged(key, countingFailedWrite: countingFailedWrite) { (staged) throws(StorageError) in try body(staged, connection) }
                let box = UncheckedSendable(result)
                return WriteOutcome { completion(.success(box.value)) }
            },
            fail: { completion(.failure($0)) }
        ))
    }

    /// Stages rows after checking the table's constraints on the writer (they read SQLite);
    /// all or nothing, like a write-through batch.
    private func checkedStage(_ rows: [(String, StorableValue)], owner: TransactionToken?, _ completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        if let owner { return completion(.failure(Self.insideTransaction(owner))) }
        database.submit(WriteJob(
            mode: .exclusive,
            run: { connection throws(StorageError) in
                for (key, value) in rows { try self.constraints.check(key, value, table: self, on: connection) }
                try self.writeBehind.stage(rows.lazy.map { ($0.0, .set($0.1)) })
                return WriteOutcome { completion(.success(())) }
            },
            fail: { completion(.failure($0)) }
        ))
    }

    /// A v2 table is never written inside a client transaction (its writes are refused
    /// there), so reads of it ignore the transaction: committed rows plus staged writes.
    private func readOwner(_ owner: TransactionToken?) -> TransactionToken? {
        writeBehind.isActive ? nil : owner
    }

    /// Every row with the staged writes laid over the file's, for scans that cannot wait for a
    /// flush (inside a client transaction, which holds the writer the flush needs). The
    /// overlay is taken before the read, so a row committed in between is still in it.
    private func itemsWithStagedWrites(_ completion: @escaping @Sendable (Result<[(String, EncodedValue)], StorageError>) -> Void) {
        let overlay = writeBehind.snapshot()
        readItems(owner: nil) { result in
            completion(result.map { rows in
                var rows = rows.compactMap { (key, value) -> (String, EncodedValue)? in
                    switch overlay[NanaKey(key)] {
                    case nil: (key, value)
                    case .set(let staged)?: (key, staged.encoded)
                    case .delete?: nil
                    }
                }
                let present = Set(rows.map { NanaKey($0.0) })
                for (key, operation) in overlay.sorted(by: { $0.key < $1.key }) where !present.contains(key) {
                    if case .set(let value) = operation { rows.append((key.string, value.encoded)) }
                }
                return rows
            })
        }
    }

    /// Runs `body` once every write staged so far is in the file (at once outside v2): full
    /// scans and counts then read SQLite alone and still see every acknowledged write.
    /// Inside a client transaction (`owner`) it runs at once: the flush would need the writer,
    /// which the transaction holds until its owner ends it (found by nanafuzz-dispatch: the
    /// call waited for the transaction timeout). Such a read sees the file as the transaction
    /// does; rows staged by v2 writes are flushed after the transaction ends.
    private func afterStagedWrites(_ owner: TransactionToken?, _ body: @escaping @Sendable () -> Void) {
        guard owner == nil, writeBehind.isActive, !writeBehind.isDrained else { return body() }
        writeBehind.flush(completion: body)
    }

    /// NanaSQLite 1.6.2's words.
    static let legacyPlaintextRefused = StorageError(.database, "AEAD encryption is enabled but the database contains a legacy plaintext value. Use allow_legacy_plaintext=True only during an explicit migration.")

    /// Whether any stored value is plaintext (TEXT): what an encrypted table open with
    /// `allow_legacy_plaintext` reads as legacy values (the open's reply says so).
    public func holdsPlaintextValues(owner: TransactionToken?, completion: @escaping @Sendable (Result<Bool, StorageError>) -> Void) {
        read(owner, completion) { connection throws(StorageError) -> Bool in
            guard try connection.tableExists(self.name) else { return false }
            let statement = try connection.cachedStatement("SELECT EXISTS (SELECT 1 FROM \"\(self.name)\" WHERE typeof(value) = 'text')")
            return try statement.withReset { (s) throws(StorageError) -> Bool in try s.step() && s.columnInt64(0) != 0 }
        }
    }

    private func decodeColumn(_ statement: Statement, _ index: Int32) throws(StorageError) -> EncodedValue {
        if statement.columnIsNull(index) {
            return try database.decoder.decode(stored: UnsafeRawBufferPointer(start: nil, count: 0), isBlob: false)
        }
        let isBlob = statement.columnIsBlob(index)
        guard let cipher = cipher.current else {
            return try database.decoder.decode(stored: statement.columnBytes(index), isBlob: isBlob)
        }
        guard isBlob else {
            // NanaSQLite 1.6.0 read these as plaintext, which lets anyone who can write the
            // file plant values; 1.6.2 refuses them unless a migration asks (as here).
            guard cipher.readsLegacyPlaintext else { throw Self.legacyPlaintextRefused }
            return try database.decoder.decode(stored: statement.columnBytes(index), isBlob: false)
        }
        let plaintext = try cipher.open(statement.columnBytes(index))
        let decoded = plaintext.withUnsafeBytes { json in
            Result { () throws(StorageError) -> EncodedValue in try database.decoder.decode(stored: json, isBlob: false) }
        }
        return try decoded.get()
    }

    /// Runs a read on a reader, or, inside a client transaction, on the writer (to see the
    /// transaction's own writes).
    private func read<T>(
        _ owner: TransactionToken?,
        _ completion: @escaping @Sendable (Result<T, StorageError>) -> Void,
        _ body: @escaping @Sendable (SQLiteConnection) throws(StorageError) -> T
    ) {
        if let owner {
            return database.submit(WriteJob(
                mode: .statement, owner: owner,
                run: { connection throws(StorageError) in
                    let box = UncheckedSendable(try body(connection))
                    return WriteOutcome { completion(.success(box.value)) }
                },
                fail: { completion(.failure($0)) }
            ))
        }
        database.submitRead(ReadJob(
            run: { connection in
                do throws(StorageError) { completion(.success(try body(connection))) } catch { completion(.failure(error)) }
            },
            fail: { completion(.failure($0)) }
        ))
    }

    /// Queues a write; `body` returns the cache change to publish after COMMIT and the result.
    private func write<T>(
        _ mode: WriteJob.Mode,
        _ owner: TransactionToken?,
        singleRow: Bool = false,
        _ completion: @escaping @Sendable (Result<T, StorageError>) -> Void,
        _ body: @escaping @Sendable (SQLiteConnection) throws(StorageError) -> (PendingChange, T)
    ) {
        database.submit(WriteJob(
            mode: mode, owner: owner, isSingleRow: singleRow,
            run: { connection throws(StorageError) in
                let (change, result) = try body(connection)
                let box = UncheckedSendable(result)
                return WriteOutcome(publish: { self.cache.apply(change.changes) }, complete: { completion(.success(box.value)) })
            },
            fail: { completion(.failure($0)) }
        ))
    }
}

/// The cache change a write publishes after COMMIT.
enum PendingChange {
    case set(String, EncodedValue)
    case remove(String)
    case removeAll
    case many([CacheChange])

    var changes: [CacheChange] {
        switch self {
        case .set(let k, let v): [.set(k, v)]
        case .remove(let k): [.remove(k)]
        case .removeAll: [.removeAll]
        case .many(let c): c
        }
    }
}

/// Carries a result from the writer's transaction to its commit action on the same thread.
struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

extension CacheEntry {
    /// The value, or `nil` for a key known to be missing.
    var value: EncodedValue? {
        if case .present(let value) = self { return value }
        return nil
    }
}
