import Synchronization

/// A rule every write to a table must keep, whoever writes: NanaSQLite's `UniqueHook`,
/// `ForeignKeyHook` and `CheckHook`, declared as data so that a client can state them without
/// sending code, and enforced by the daemon for every process (spec §6.3 [REC]).
///
/// Fields are paths into a JSON object value: identifiers separated by dots (`address.city`).
/// A value that is not an object, or lacks the field, is not checked by `unique` and
/// `foreignKey` (NanaSQLite skips `None`), and fails `check` and `required`.
public struct TableConstraint: Sendable, Hashable, CustomStringConvertible {
    public enum Comparison: String, Sendable, Hashable, CaseIterable {
        case equal = "==", notEqual = "!=", less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="

        var sql: String { self == .equal ? "=" : rawValue }
    }

    public enum Rule: Sendable, Hashable {
        /// No two rows share the field's value.
        case unique(field: String)
        /// The field's value is a key of `table` (a key-value table of the same file).
        case foreignKey(field: String, table: String)
        /// `field <comparison> value` holds.
        case check(field: String, comparison: Comparison, value: SQLValue)
        /// Each field is present and not null.
        case required(fields: [String])
    }

    public var rule: Rule
    /// Only keys starting with this prefix are checked (NanaSQLite's `key_pattern`, reduced to
    /// the prefix form that cannot be a ReDoS pattern).
    public var keyPrefix: String?
    /// The error message for a violation (the default names the rule, never the value).
    public var message: String?

    public init(_ rule: Rule, keyPrefix: String? = nil, message: String? = nil) throws(StorageError) {
        switch rule {
        case .unique(let field): try Self.validate(field)
        case .foreignKey(let field, let table):
            try Self.validate(field)
            _ = try Identifier.validated(table)
        case .check(let field, _, _): try Self.validate(field)
        case .required(let fields):
            guard !fields.isEmpty else { throw StorageError(.valueError, "a required constraint needs at least one field") }
            for field in fields { try Self.validate(field) }
        }
        self.rule = rule
        self.keyPrefix = keyPrefix
        self.message = message
    }

    public var description: String {
        let scope = keyPrefix.map { " for keys starting with '\($0)'" } ?? ""
        switch rule {
        case .unique(let field): return "unique(\(field))\(scope)"
        case .foreignKey(let field, let table): return "foreign_key(\(field) → \(table))\(scope)"
        case .check(let field, let comparison, let value): return "check(\(field) \(comparison.rawValue) \(value))\(scope)"
        case .required(let fields): return "required(\(fields.joined(separator: ", ")))\(scope)"
        }
    }

    /// Paths are spliced into SQL (an expression index must name its path literally), so only
    /// identifiers are allowed.
    private static func validate(_ field: String) throws(StorageError) {
        let segments = field.split(separator: ".", omittingEmptySubsequences: false)
        for segment in segments {
            let bytes = Array(segment.utf8)
            guard let first = bytes.first, first == 0x5F || (first | 0x20) >= 0x61 && (first | 0x20) <= 0x7A,
                  bytes.allSatisfy({ $0 == 0x5F || ($0 | 0x20) >= 0x61 && ($0 | 0x20) <= 0x7A || $0 >= 0x30 && $0 <= 0x39 })
            else {
                throw StorageError(.valueError, "constraint field '\(field)' must be identifiers separated by dots (letters, digits, _)")
            }
        }
    }

    static func jsonPath(_ field: String) -> String { "$." + field }

    func applies(to key: String) -> Bool { keyPrefix.map(key.hasPrefix) ?? true }

    var isUnique: Bool { if case .unique = rule { return true } else { return false } }

    func violation(_ detail: String) -> StorageError {
        StorageError(.validation, message ?? detail)
    }
}

/// The constraints of one table. Checked on the writer thread, inside the transaction of the
/// write, so a check and its write are one atomic step for every client (NanaSQLite's hooks
/// check and write under a process-local lock, which other processes do not take).
final class ConstraintSet: Sendable {
    private let rules = Mutex<[TableConstraint]>([])
    private let count = Atomic<Int>(0)

    /// One atomic load: the write path asks on every write.
    var isEmpty: Bool { count.load(ordering: .acquiring) == 0 }

    var all: [TableConstraint] { rules.withLock { $0 } }

    var hasUnique: Bool { rules.withLock { $0.contains(where: \.isUnique) } }

    /// Adds `constraint` unless it is there already; returns whether it was added.
    func add(_ constraint: TableConstraint) -> Bool {
        rules.withLock { rules in
            guard !rules.contains(constraint) else { return false }
            rules.append(constraint)
            count.store(rules.count, ordering: .releasing)
            return true
        }
    }

    func remove(_ constraint: TableConstraint) -> Bool {
        rules.withLock { rules in
            guard let index = rules.firstIndex(of: constraint) else { return false }
            rules.remove(at: index)
            count.store(rules.count, ordering: .releasing)
            return true
        }
    }

    /// Throws a validation error when writing `value` under `key` would break a constraint.
    /// Runs on the writer, where every earlier write of the same batch is already visible, so
    /// duplicates inside one `batch_update` are caught too.
    func check(_ key: String, _ value: StorableValue, table: KeyValueTable, on connection: SQLiteConnection) throws(StorageError) {
        guard !isEmpty else { return }
        for constraint in all where constraint.applies(to: key) {
            try Self.check(constraint, key, value, table: table, on: connection)
        }
    }

    private static func check(_ constraint: TableConstraint, _ key: String, _ value: StorableValue, table: KeyValueTable, on connection: SQLiteConnection) throws(StorageError) {
        let json = SQLValue.text(String(decoding: value.json, as: UTF8.self))
        switch constraint.rule {
        case .unique(let field):
            let path = TableConstraint.jsonPath(field)
            // Written exactly as the index expression so that SQLite uses the index.
            let sql = "SELECT 1 FROM \"\(table.name)\" WHERE json_extract(value, '\(path)') = json_extract(?1, '\(path)') AND key != ?2 LIMIT 1"
            if try exists(sql, [json, .text(key)], on: connection) {
                throw constraint.violation("Unique constraint violation: duplicate value detected (field '\(field)')")
            }
        case .foreignKey(let field, let target):
            let reference = try scalar("SELECT json_extract(?1, ?2)", [json, .text(TableConstraint.jsonPath(field))], on: connection)
            guard reference != .null else { return }
            guard case .text(let referencedKey) = reference,
                  try table.database.keyExists(referencedKey, inTable: target, on: connection)
            else {
                throw constraint.violation("Foreign key constraint violation: referenced key not found (field '\(field)' → table '\(target)')")
            }
        case .check(let field, let comparison, let expected):
            let sql = "SELECT json_extract(?1, ?2) \(comparison.sql) ?3"
            guard try scalar(sql, [json, .text(TableConstraint.jsonPath(field)), expected], on: connection) == .integer(1) else {
                throw constraint.violation("Check constraint failed: \(field) \(comparison.rawValue) \(expected)")
            }
        case .required(let fields):
            for field in fields {
                let type = try scalar("SELECT json_type(?1, ?2)", [json, .text(TableConstraint.jsonPath(field))], on: connection)
                guard type != .null, type != .text("null") else {
                    throw constraint.violation("Required field missing: '\(field)'")
                }
            }
        }
    }

    static func exists(_ sql: String, _ parameters: [SQLValue], on connection: SQLiteConnection) throws(StorageError) -> Bool {
        let statement = try connection.cachedStatement(sql)
        return try statement.withReset { (s) throws(StorageError) -> Bool in
            try s.bind(parameters)
            return try s.step()
        }
    }

    static func scalar(_ sql: String, _ parameters: [SQLValue], on connection: SQLiteConnection) throws(StorageError) -> SQLValue {
        let statement = try connection.cachedStatement(sql)
        return try statement.withReset { (s) throws(StorageError) -> SQLValue in
            try s.bind(parameters)
            guard try s.step() else { return .null }
            return s.columnValue(0)
        }
    }
}

extension Database {
    /// Whether `key` is a key of the key-value table `table` now, staged writes included.
    func keyExists(_ key: String, inTable table: String, on connection: SQLiteConnection) throws(StorageError) -> Bool {
        let canonical = Identifier.canonical(table)
        if let target = openTables.first(where: { Identifier.canonical($0.name) == canonical }),
           target.writeBehind.isActive, let staged = target.writeBehind.staged(key) {
            if case .set = staged { return true }
            return false
        }
        guard try connection.tableExists(table) else { return false }
        return try ConstraintSet.exists("SELECT 1 FROM \"\(try Identifier.validated(table))\" WHERE key = ?1", [.text(key)], on: connection)
    }
}

extension KeyValueTable {
    /// Adds a constraint (NanaSQLite's `add_hook` with a built-in hook). A `unique` constraint
    /// first checks the rows already there and gets an expression index, so that each write's
    /// check is an index lookup; it is refused on encrypted tables (the daemon would have to
    /// decrypt every row to compare) and in v2 mode (a staged write is acknowledged before the
    /// check could see every other staged write). Returns whether it was new.
    public func addConstraint(_ constraint: TableConstraint, completion: @escaping @Sendable (Result<Bool, StorageError>) -> Void) {
        if case .foreignKey(_, let target) = constraint.rule, Identifier.canonical(target) == Identifier.canonical(name) {
            // Its check would look up this table's staged writes while holding their lock.
            return completion(.failure(StorageError(.notSupported, "a foreign key cannot reference its own table ('\(name)')")))
        }
        if constraint.isUnique {
            if cipher.current != nil {
                return completion(.failure(StorageError(.notSupported, "unique constraints are not supported on encrypted tables: the daemon would have to decrypt every row on every write")))
            }
            if writeBehind.isActive {
                return completion(.failure(StorageError(.notSupported, "unique constraints are not supported in v2 mode: a staged write is acknowledged before it could be checked against every other staged write")))
            }
        }
        database.submit(WriteJob(
            mode: .exclusive,
            run: { connection throws(StorageError) in
                if case .unique(let field) = constraint.rule {
                    let path = TableConstraint.jsonPath(field)
                    let expression = "json_extract(value, '\(path)')"
                    let duplicates = "SELECT 1 FROM \"\(self.name)\" WHERE \(expression) IS NOT NULL GROUP BY \(expression) HAVING COUNT(*) > 1 LIMIT 1"
                    if try ConstraintSet.exists(duplicates, [], on: connection) {
                        throw StorageError(.validation, "Unique constraint violation: rows already share a value of '\(field)'")
                    }
                    try connection.execute("CREATE INDEX IF NOT EXISTS \"\(Self.uniqueIndexName(self.name, field))\" ON \"\(self.name)\"(\(expression))")
                }
                let added = self.constraints.add(constraint)
                return WriteOutcome { completion(.success(added)) }
            },
            fail: { completion(.failure($0)) }
        ))
    }

    /// Removes a constraint (and a unique constraint's index); returns whether it was there.
    public func dropConstraint(_ constraint: TableConstraint, completion: @escaping @Sendable (Result<Bool, StorageError>) -> Void) {
        database.submit(WriteJob(
            mode: .exclusive,
            run: { connection throws(StorageError) in
                let removed = self.constraints.remove(constraint)
                if removed, case .unique(let field) = constraint.rule,
                   !self.constraints.all.contains(where: { $0.rule == constraint.rule }) {
                    try connection.execute("DROP INDEX IF EXISTS \"\(Self.uniqueIndexName(self.name, field))\"")
                }
                return WriteOutcome { completion(.success(removed)) }
            },
            fail: { completion(.failure($0)) }
        ))
    }

    public var declaredConstraints: [TableConstraint] { constraints.all }

    static func uniqueIndexName(_ table: String, _ field: String) -> String {
        "nanad_unique_\(table)_\(field.replacingOccurrences(of: ".", with: "__"))"
    }
}
