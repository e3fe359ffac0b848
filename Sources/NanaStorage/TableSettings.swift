import Synchronization

/// How a key-value table behaves: NanaSQLite's per-instance options that, in a daemon, belong
/// to the table every session shares.
public struct TableSettings: Sendable {
    /// Write-behind (v2) settings; `nil` writes through (v1).
    public var writeBehind: WriteBehindConfiguration?
    public var cache: CacheStrategy
    /// Value encryption; `nil` stores JSON text.
    public var cipher: ValueCipher?
    /// With a TTL cache: rows themselves expire, by stored time (see ``RowExpiry``).
    public var persistentTTL: Bool

    public init(writeBehind: WriteBehindConfiguration? = nil, cache: CacheStrategy = .default, cipher: ValueCipher? = nil, persistentTTL: Bool = false) {
        self.writeBehind = writeBehind
        self.cache = cache
        self.cipher = cipher
        self.persistentTTL = persistentTTL
    }

    /// The row lifetime persistent TTL applies, if it is on.
    var rowLifetime: Double? {
        guard persistentTTL, case .ttl(let seconds, _) = cache else { return nil }
        return seconds
    }
}

/// The settings an `open` asked for. A field left `nil` was not stated: it takes the table's
/// current setting while other sessions use the table, the default otherwise. Encryption is
/// never inherited: a session reads an encrypted table only with its key.
public struct TableRequest: Sendable {
    /// `.some(nil)` asks for write-through explicitly.
    public var writeBehind: WriteBehindConfiguration??
    public var cache: CacheStrategy?
    public var cipher: ValueCipher?
    /// NanaSQLite's `cache_persistence_ttl` (only with a TTL cache).
    public var persistentTTL: Bool?
    /// Constraints to add (those already declared stay).
    public var constraints: [TableConstraint]

    public init(writeBehind: WriteBehindConfiguration?? = nil, cache: CacheStrategy? = nil, cipher: ValueCipher? = nil, persistentTTL: Bool? = nil, constraints: [TableConstraint] = []) {
        self.writeBehind = writeBehind
        self.cache = cache
        self.cipher = cipher
        self.persistentTTL = persistentTTL
        self.constraints = constraints
    }
}

/// The cipher a table is open with, read by the writer and readers for every row.
final class CipherSlot: Sendable {
    private let value = Mutex<ValueCipher?>(nil)
    var current: ValueCipher? { value.withLock { $0 } }
    func set(_ cipher: ValueCipher?) { value.withLock { $0 = cipher } }
}

extension KeyValueTable {
    /// Starts a session's use of the table with the settings it asked for.
    ///
    /// While other sessions use the table, its settings stay as they are: a request that
    /// states different ones is refused with a `ValueError` naming the setting, so no client
    /// gets write-behind, a cache or an encryption it did not ask for. When nobody uses it, the
    /// request decides (unstated settings stay as they were; the key is never assumed), after
    /// one stored row has been read to check the key or its absence: staged writes are flushed
    /// before anything changes, and the cache starts empty when the key or strategy changes,
    /// so a wrong or missing key fails the open rather than later reads. The request's
    /// constraints are then added. Balance every success with ``detach()``.
    ///
    /// - Parameter owner: the client transaction the caller holds on this file, if any. The
    ///   writer serves only that transaction until it ends, so an attach that needs the writer
    ///   outside it (flushing staged rows, switching persistent TTL, adding constraints) would
    ///   wait for the caller's own COMMIT: it is refused with a transaction error instead.
    ///
    /// - Parameter mayChangeSettings: false for a session that may only read the file: a
    ///   request that would change the table's settings (write-behind, cache strategy,
    ///   persistent TTL, constraints, or an encryption key for a table that holds no encrypted
    ///   rows) is refused with a validation error, and nothing changes.
    public func attach(_ request: TableRequest, owner: TransactionToken? = nil, mayChangeSettings: Bool = true, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        if !mayChangeSettings, !request.constraints.isEmpty {
            return completion(.failure(readOnlyRefusal("constraints")))
        }
        if owner != nil, !request.constraints.isEmpty {
            return completion(.failure(Self.settingsInTransaction(name)))
        }
        attach(request, owner: owner, readOnly: !mayChangeSettings, probed: false) { result in
            guard case .success = result, !request.constraints.isEmpty else { return completion(result) }
            self.addConstraints(request.constraints[...]) { added in
                if case .failure = added { self.detach() }
                completion(added)
            }
        }
    }

    private func addConstraints(_ pending: ArraySlice<TableConstraint>, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        guard let first = pending.first else { return completion(.success(())) }
        addConstraint(first) { result in
            if case .failure(let error) = result { return completion(.failure(error)) }
            self.addConstraints(pending.dropFirst(), completion: completion)
        }
    }

    static func settingsInTransaction(_ table: String) -> StorageError {
        StorageError(.transaction, "Cannot change the settings of table '\(table)' (write-behind, encryption, persistent TTL, constraints) while a transaction is in progress on its file. Please commit or rollback first.")
    }

    private func readOnlyRefusal(_ what: String) -> StorageError {
        StorageError(.validation, "this database is read-only for this user: opening table '\(name)' with \(what) would change it; open it without stating settings")
    }

    /// What `request` would change of the table's settings `current`, if anything (the key
    /// is judged by the probe).
    private static func change(by request: TableRequest, of current: TableSettings) -> String? {
        if let wanted = request.writeBehind, wanted != current.writeBehind { return wanted == nil ? "write-through mode" : "v2 mode" }
        if let wanted = request.cache, wanted != current.cache { return "cache strategy \(wanted) (the table uses \(current.cache))" }
        if let wanted = request.persistentTTL, wanted != current.persistentTTL { return "cache_persistence_ttl=\(wanted ? "True" : "False")" }
        return nil
    }

    private func attach(_ request: TableRequest, owner: TransactionToken?, readOnly: Bool, probed: Bool, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        enum Step { case attached, attachedExpiring(Double?), refused(StorageError), drainFirst, probe(ValueCipher?) }
        let step: Step = usage.withLock { users in
            let current = settings
            if readOnly, let what = Self.change(by: request, of: current) { return .refused(readOnlyRefusal(what)) }
            if readOnly, users > 0, request.cipher != nil, current.cipher == nil {
                return .refused(readOnlyRefusal("an encryption_key (it is open unencrypted)"))
            }
            if users > 0 {
                if let error = conflict(between: current, and: request) { return .refused(error) }
                if request.writeBehind ?? current.writeBehind != nil, constraints.hasUnique {
                    return .refused(Self.uniqueInV2)
                }
                users += 1
                return .attached
            }
            // Nobody uses the table: the request decides; what it does not state stays as it
            // is (defaults for a table not opened before), except the key, which is never
            // assumed.
            let wanted = TableSettings(
                writeBehind: request.writeBehind ?? current.writeBehind, cache: request.cache ?? current.cache,
                cipher: request.cipher, persistentTTL: request.persistentTTL ?? current.persistentTTL)
            if wanted.writeBehind != nil, constraints.hasUnique { return .refused(Self.uniqueInV2) }
            if wanted.cipher != nil, constraints.hasUnique { return .refused(Self.uniqueEncrypted) }
            // What the file holds must agree with the key (or its absence) before anything changes.
            if !probed { return .probe(wanted.cipher) }
            let cipherChanges = !Self.same(current.cipher, wanted.cipher)
            if cipherChanges, writeBehind.deadLetterCount > 0 {
                return .refused(StorageError(.database, "table '\(name)' has rows in its dead-letter queue written under another encryption setting; open it as before and retry or clear them first"))
            }
            if owner != nil {
                // Flushing staged rows and setting up persistent TTL need the writer, which
                // the caller's own transaction holds.
                let drains = (wanted.writeBehind != current.writeBehind || cipherChanges) && writeBehind.hasRows
                if drains || wanted.rowLifetime != expiry.ttl { return .refused(Self.settingsInTransaction(name)) }
            }
            if (wanted.writeBehind != current.writeBehind || cipherChanges) && writeBehind.hasRows { return .drainFirst }
            if wanted.writeBehind != current.writeBehind {
                guard writeBehind.configure(wanted.writeBehind) else { return .drainFirst }
            }
            if cipherChanges {
                cipher.set(wanted.cipher)
                cache.reconfigure(wanted.cache)  // its values were read with the old key
            } else if wanted.cache != current.cache {
                cache.reconfigure(wanted.cache)
            }
            users += 1
            if wanted.rowLifetime != expiry.ttl { return .attachedExpiring(wanted.rowLifetime) }
            return .attached
        }
        switch step {
        case .attached: completion(.success(()))
        case .attachedExpiring(let lifetime):
            // Expired rows are deleted before the open completes, so no one reads them.
            expiry.configure(lifetime, for: self) { result in
                if case .failure = result { self.detach() }
                completion(result)
            }
        case .refused(let error): completion(.failure(error))
        case .drainFirst:
            // Staged rows must reach the file under the settings they were written with; then
            // try again (another session may have attached meanwhile).
            writeBehind.flush { self.attach(request, owner: owner, readOnly: readOnly, probed: probed, completion: completion) }
        case .probe(let cipher):
            probe(with: cipher, requireEncryptedRows: readOnly && cipher != nil) { result in
                if case .failure(let error) = result { return completion(.failure(error)) }
                self.attach(request, owner: owner, readOnly: readOnly, probed: true, completion: completion)
            }
        }
    }

    private static let uniqueEncrypted = StorageError(.notSupported, "this table has a unique constraint, which an encrypted table cannot keep (the daemon would have to decrypt every row on every write); drop the constraint first")

    private static let uniqueInV2 = StorageError(.notSupported, "this table has a unique constraint, which v2 mode cannot keep (a staged write is acknowledged before it could be checked against every other staged write); open it without v2_mode or drop the constraint")

    /// Why `request` cannot share the table as it is now, if it cannot.
    private func conflict(between current: TableSettings, and request: TableRequest) -> StorageError? {
        func refuse(_ what: String) -> StorageError {
            StorageError(.valueError, "table '\(name)' is in use by another session with \(what); open it with the same settings, or leave them out to share the current ones")
        }
        if let wanted = request.writeBehind, wanted != current.writeBehind {
            return refuse("\(Self.describe(current.writeBehind)) (this open asked for \(Self.describe(wanted)))")
        }
        if let wanted = request.cache, wanted != current.cache {
            return refuse("cache strategy \(current.cache) (this open asked for \(wanted))")
        }
        if let wanted = request.persistentTTL, wanted != current.persistentTTL {
            return refuse("cache_persistence_ttl=\(current.persistentTTL ? "True" : "False")")
        }
        switch (current.cipher, request.cipher) {
        case (nil, nil): return nil
        case (nil, .some):
            return StorageError(.valueError, "table '\(name)' is open unencrypted by another session; it cannot be opened with an encryption_key until every session has closed it")
        case (.some, nil):
            return StorageError(.database, "table '\(name)' is encrypted; open it with its encryption_key")
        case (.some(let open), .some(let given)):
            guard open.matches(given) else {
                return StorageError(.database, "Failed to decrypt value: the encryption_key (or encryption_mode) differs from the one table '\(name)' is open with")
            }
            // The shared cache holds what one session read: a plaintext row read for one that
            // allows them must not reach one that refuses them.
            if open.readsLegacyPlaintext != given.readsLegacyPlaintext {
                return refuse("allow_legacy_plaintext=\(open.readsLegacyPlaintext ? "True" : "False")")
            }
            return nil
        }
    }

    /// Checks the key (or its absence) against the stored values, so that a missing or wrong
    /// key fails the open, not a later read. Without a key, the first row tells: an encrypted
    /// value (a BLOB) needs the key. With one, the first encrypted value must open with it;
    /// plaintext values beside it are left to the reads, as in NanaSQLite 1.6.2 (refused
    /// unless `allow_legacy_plaintext`), so a table being migrated to encryption opens.
    /// - Parameter requireEncryptedRows: a key is accepted only if the table holds rows it
    ///   opens (a read-only session's key must not decide how others write the table).
    private func probe(with cipher: ValueCipher?, requireEncryptedRows: Bool, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        database.submitRead(ReadJob(
            run: { connection in
                do throws(StorageError) {
                    // Created by an open client transaction: no committed row to look at.
                    guard try connection.tableExists(self.name) else {
                        if requireEncryptedRows { throw self.readOnlyRefusal("an encryption_key (it holds no encrypted rows)") }
                        return completion(.success(()))
                    }
                    guard let cipher else {
                        let statement = try connection.cachedStatement("SELECT typeof(value) FROM \"\(self.name)\" LIMIT 1")
                        try statement.withReset { (s) throws(StorageError) in
                            if try s.step(), s.columnString(0) == "blob" {
                                throw StorageError(.database, "table '\(self.name)' holds encrypted values; open it with its encryption_key")
                            }
                        }
                        return completion(.success(()))
                    }
                    let statement = try connection.cachedStatement("SELECT value FROM \"\(self.name)\" WHERE typeof(value) = 'blob' LIMIT 1")
                    try statement.withReset { (s) throws(StorageError) in
                        guard try s.step() else {
                            if requireEncryptedRows { throw self.readOnlyRefusal("an encryption_key (it holds no encrypted rows)") }
                            return
                        }
                        _ = try cipher.open(s.columnBytes(0))
                    }
                    completion(.success(()))
                } catch {
                    completion(.failure(error))
                }
            },
            fail: { completion(.failure($0)) }
        ))
    }

    private static func same(_ a: ValueCipher?, _ b: ValueCipher?) -> Bool {
        switch (a, b) {
        case (nil, nil): true
        case (let a?, let b?): a.matches(b) && a.readsLegacyPlaintext == b.readsLegacyPlaintext
        default: false
        }
    }

    /// Ends one session's use of the table.
    public func detach() {
        usage.withLock { users in users = max(0, users - 1) }
    }

    /// Sessions using the table now.
    public var users: Int { usage.withLock { $0 } }

    public var settings: TableSettings {
        TableSettings(writeBehind: writeBehind.configuration, cache: cache.strategy, cipher: cipher.current, persistentTTL: expiry.ttl != nil)
    }

    private static func describe(_ configuration: WriteBehindConfiguration?) -> String {
        guard let c = configuration else { return "write-through mode (v2_mode=False)" }
        return "v2 mode (flush_mode=\(c.flushMode.rawValue), flush_interval=\(c.flushInterval), flush_count=\(c.flushCount), chunk_size=\(c.chunkSize), max_dlq_size=\(c.maxDLQSize.map(String.init) ?? "None"), enable_metrics=\(c.enableMetrics))"
    }
}

// MARK: Write-behind management (NanaSQLite's v2 calls)

extension KeyValueTable {
    /// Asks for a flush of everything staged; `completion` (if any) runs once it is committed.
    /// Immediate on a write-through table.
    public func flush(completion: (@Sendable () -> Void)?) {
        guard writeBehind.isActive || writeBehind.hasRows else { completion?(); return }
        writeBehind.flush(completion: completion)
    }

    /// Rows the flusher could not write, oldest first. They outlive a switch back to
    /// write-through, so an operator can still see and clear them.
    public var deadLetters: [DeadLetter] { writeBehind.deadLetters }

    /// Stages the dead letters again (not over a newer staged write of the same key).
    public func retryDeadLetters() throws(StorageError) -> Int { try writeBehind.retryDeadLetters() }

    public func clearDeadLetters() -> Int { writeBehind.clearDeadLetters() }

    /// `nil` unless the table is in v2 mode with metrics on (NanaSQLite answers `{}`).
    public var writeBehindMetrics: WriteBehindMetrics? {
        guard writeBehind.configuration?.enableMetrics == true else { return nil }
        return writeBehind.metrics
    }

    /// Distinct keys staged or being flushed.
    public var stagedWrites: Int { writeBehind.stagedCount }

    /// The write-behind engine's state, as NanaSQLite's `get_status()` reports it.
    public var writeBehindStatus: WriteBehindStatus { writeBehind.status }
}
