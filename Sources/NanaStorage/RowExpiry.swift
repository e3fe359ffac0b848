import Dispatch
import Foundation
import Synchronization

/// Persistent TTL (NanaSQLite's `cache_persistence_ttl`, done as its spec recommends): every
/// write stores the row's expiry time in a side table of the same file, and the writer deletes
/// rows whose time has passed, whether or not any process has read them, across restarts.
///
/// NanaSQLite starts the clock when a key enters one process's cache, so a row nobody reads
/// after a restart never expires. Here the clock starts when the row is written (rows found
/// without an expiry when the table is opened get `now + ttl`). Rows are deleted within
/// `min(ttl / 2, 1 s)` of expiring. Writes by raw SQL do not set an expiry.
final class RowExpiry: Sendable {
    static let sideTable = "_nanad_expiry"
    private static let createSQL = [
        "CREATE TABLE IF NOT EXISTS \(sideTable) (tbl TEXT NOT NULL, key TEXT NOT NULL, expires_at REAL NOT NULL, PRIMARY KEY (tbl, key)) WITHOUT ROWID",
        "CREATE INDEX IF NOT EXISTS \(sideTable)_due ON \(sideTable)(expires_at)",
    ]

    private struct State {
        var ttl: Double?
        var timer: (any DispatchSourceTimer)?
    }

    private let state = Mutex(State())
    private let active = Atomic<Bool>(false)
    /// The table's name as the side table records it.
    private let table: String

    init(table: String) { self.table = Identifier.canonical(table) }

    var ttl: Double? { state.withLock { $0.ttl } }

    private func now() -> Double { Date().timeIntervalSince1970 }

    /// Records (or renews) `key`'s expiry after a write. Called inside the write's transaction.
    func touch(_ key: String, on connection: SQLiteConnection) throws(StorageError) {
        guard active.load(ordering: .acquiring), let ttl else { return }
        try run("INSERT OR REPLACE INTO \(Self.sideTable) (tbl, key, expires_at) VALUES (?1, ?2, ?3)", [.text(table), .text(key), .real(now() + ttl)], on: connection)
    }

    /// Forgets `key`'s expiry after a delete.
    func forget(_ key: String, on connection: SQLiteConnection) throws(StorageError) {
        guard active.load(ordering: .acquiring) else { return }
        try run("DELETE FROM \(Self.sideTable) WHERE tbl = ?1 AND key = ?2", [.text(table), .text(key)], on: connection)
    }

    func forgetAll(on connection: SQLiteConnection) throws(StorageError) {
        guard active.load(ordering: .acquiring) else { return }
        try run("DELETE FROM \(Self.sideTable) WHERE tbl = ?1", [.text(table)], on: connection)
    }

    /// Turns persistent expiry on (with `ttl` seconds) or off for `owner`. On: the side table
    /// is created, rows without an expiry get one, expired rows are deleted at once, and a
    /// timer keeps deleting them. `completion` runs once that first purge committed.
    func configure(_ ttl: Double?, for owner: KeyValueTable, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        let previous: (any DispatchSourceTimer)? = state.withLock { state in
            defer { state.timer = nil }
            state.ttl = ttl
            return state.timer
        }
        previous?.cancel()
        active.store(ttl != nil, ordering: .releasing)
        guard let ttl else { return completion(.success(())) }
        let name = table
        let quoted = "\"\(owner.name)\""
        owner.database.submit(WriteJob(
            mode: .statement,
            run: { connection throws(StorageError) in
                for sql in Self.createSQL { try connection.execute(sql) }
                try self.run("INSERT OR IGNORE INTO \(Self.sideTable) (tbl, key, expires_at) SELECT ?1, key, ?2 FROM \(quoted)", [.text(name), .real(self.now() + ttl)], on: connection)
                let expired = try self.deleteExpired(from: quoted, on: connection)
                return WriteOutcome(publish: { owner.cache.apply(expired.map { .remove($0) }) }, complete: { completion(.success(())) })
            },
            fail: { completion(.failure($0)) }
        ))
        let interval = max(0.05, min(ttl / 2, 1.0))
        state.withLock { state in
            let timer = DispatchSource.makeTimerSource(queue: .global())
            timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(20))
            timer.setEventHandler { [weak self, weak owner] in
                guard let self, let owner else { return }
                self.purge(owner, quoted: quoted)
            }
            timer.resume()
            state.timer = timer
        }
    }

    private func purge(_ owner: KeyValueTable, quoted: String) {
        guard active.load(ordering: .acquiring) else { return }
        owner.database.submit(WriteJob(
            mode: .statement,
            run: { connection throws(StorageError) in
                let expired = try self.deleteExpired(from: quoted, on: connection)
                return WriteOutcome(publish: { if !expired.isEmpty { owner.cache.apply(expired.map { .remove($0) }) } }, complete: {})
            },
            fail: { _ in }  // closing: the next open purges
        ))
    }

    /// Deletes the rows whose time has passed; returns their keys.
    private func deleteExpired(from quoted: String, on connection: SQLiteConnection) throws(StorageError) -> [String] {
        let moment = now()
        let due = try connection.cachedStatement("SELECT key FROM \(Self.sideTable) WHERE tbl = ?1 AND expires_at <= ?2")
        let keys = try due.withReset { (s) throws(StorageError) -> [String] in
            try s.bind([.text(table), .real(moment)])
            var keys: [String] = []
            while try s.step() { keys.append(s.columnString(0)) }
            return keys
        }
        guard !keys.isEmpty else { return [] }
        for key in keys { try run("DELETE FROM \(quoted) WHERE key = ?1", [.text(key)], on: connection) }
        try run("DELETE FROM \(Self.sideTable) WHERE tbl = ?1 AND expires_at <= ?2", [.text(table), .real(moment)], on: connection)
        return keys
    }

    private func run(_ sql: String, _ parameters: [SQLValue], on connection: SQLiteConnection) throws(StorageError) {
        let statement = try connection.cachedStatement(sql)
        try statement.withReset { (s) throws(StorageError) in
            try s.bind(parameters)
            try s.run()
        }
    }

    func stop() {
        let timer: (any DispatchSourceTimer)? = state.withLock { state in
            defer { state.timer = nil }
            return state.timer
        }
        timer?.cancel()
    }
}
