import NanaStorage
import NanaWire

// The table settings of `open` besides write-behind: cache strategy, encryption, constraints;
// and the constraint calls.
extension ConnectionHandler {
    /// What an `open` asks of the table.
    static func tableRequest(_ args: Arguments) throws(NanaRemoteError) -> TableRequest {
        var request = TableRequest(writeBehind: try writeBehindRequest(args))
        try cacheRequest(args, into: &request)
        request.cipher = try cipher(args)
        if let list = args.params["constraints"], !list.isNil {
            guard case .array(let items) = list else { throw NanaRemoteError(.typeError, "open(): 'constraints' must be a list of dicts") }
            for item in items { request.constraints.append(try constraint(item)) }
        }
        return request
    }

    /// The cache settings an `open` (or a `table`) states, into `request`; those it does not
    /// state are left as they are.
    static func cacheRequest(_ args: Arguments, into request: inout TableRequest) throws(NanaRemoteError) {
        if let cache = try cacheStrategy(args) { request.cache = cache }
        if args.has("cache_persistence_ttl") {
            let persistent = try args.bool("cache_persistence_ttl", default: false)
            // NanaSQLite silently ignores it without a TTL cache; a daemon that deletes rows
            // by time should not be switched on or off by accident.
            if persistent, case .ttl? = request.cache {} else if persistent {
                throw NanaRemoteError(.valueError, "cache_persistence_ttl needs cache_strategy='ttl' with a cache_ttl")
            }
            request.persistentTTL = persistent
        }
    }

    /// NanaSQLite's `cache_strategy` / `cache_size` / `cache_ttl`; `nil` when none is stated.
    /// Unknown strategies are refused (NanaSQLite falls back to unbounded).
    private static func cacheStrategy(_ args: Arguments) throws(NanaRemoteError) -> CacheStrategy? {
        guard args.has("cache_strategy") || args.has("cache_size") || args.has("cache_ttl") || args.has("cache_persistence_ttl") else { return nil }
        let size: Int? = try {
            () throws(NanaRemoteError) -> Int? in
            guard let v = args.params["cache_size"], !v.isNil else { return nil }
            guard case .int(let n) = v else { throw NanaRemoteError(.valueError, "cache_size must be a positive integer, not \(v.typeName)") }
            return Int(clamping: n)
        }()
        let ttl: Double? = try {
            () throws(NanaRemoteError) -> Double? in
            switch args.params["cache_ttl"] {
            case nil, .nil?: return nil
            case .int(let i)?: return Double(i)
            case .double(let d)?: return d
            case let other?: throw NanaRemoteError(.valueError, "cache_ttl must be a positive number of seconds, not \(other.typeName)")
            }
        }()
        let name = try args.optionalString("cache_strategy") ?? "unbounded"
        let strategy: CacheStrategy
        switch name {
        case "unbounded": strategy = .unbounded(limit: size)
        case "lru": strategy = .lru(capacity: size ?? 0)
        case "ttl": strategy = .ttl(seconds: ttl ?? 0, limit: size)
        default: throw NanaRemoteError(.valueError, "Unknown cache_strategy '\(name)': expected 'unbounded', 'lru' or 'ttl'")
        }
        do { return try strategy.validated() } catch { throw NanaRemoteError(error) }
    }

    /// The key travels over the socket (0600, peer-checked) and lives only in nanad's memory;
    /// see PROTOCOL 9.2 for why the client holds it rather than nanad's configuration.
    private static func cipher(_ args: Arguments) throws(NanaRemoteError) -> ValueCipher? {
        let legacyPlaintext = try args.bool("allow_legacy_plaintext", default: false)
        guard let key = args.params["encryption_key"], !key.isNil else {
            _ = try args.optionalString("encryption_mode")  // a mode without a key does nothing, as in NanaSQLite
            return nil  // and so does allow_legacy_plaintext
        }
        let bytes: [UInt8]
        switch key {
        case .string(let s): bytes = Array(s.utf8)  // NanaSQLite encodes a str key as UTF-8, as is
        case .binary(let b): bytes = b
        default: throw NanaRemoteError(.typeError, "encryption_key must be bytes or str, not \(key.typeName)")
        }
        guard !bytes.isEmpty else { throw NanaRemoteError(.validation, "encryption_key must be a non-empty str or bytes value") }
        let modeName = try args.optionalString("encryption_mode") ?? "aes-gcm"
        do throws(StorageError) {
            return try ValueCipher(key: bytes, mode: try ValueCipher.mode(named: modeName), readsLegacyPlaintext: legacyPlaintext)
        } catch {
            throw NanaRemoteError(error)
        }
    }

    /// One constraint: `{"type": "unique", "field": …}`, `{"type": "foreign_key", "field": …,
    /// "table": …}`, `{"type": "check", "field": …, "op": …, "value": …}`, `{"type":
    /// "required", "fields": [...]}`, each with optional `key_prefix` and `message`.
    static func constraint(_ value: NanaValue) throws(NanaRemoteError) -> TableConstraint {
        guard case .map(let m) = value, case .string(let type)? = m["type"] else {
            throw NanaRemoteError(.valueError, "a constraint is a dict with a 'type' (unique, foreign_key, check, required)")
        }
        func text(_ name: String) throws(NanaRemoteError) -> String {
            guard case .string(let s)? = m[NanaKey(name)] else { throw NanaRemoteError(.valueError, "\(type) constraint needs '\(name)' (a str)") }
            return s
        }
        func optionalText(_ name: String) throws(NanaRemoteError) -> String? {
            switch m[NanaKey(name)] {
            case nil, .nil?: return nil
            case .string(let s)?: return s
            case let other?: throw NanaRemoteError(.valueError, "constraint '\(name)' must be a str, not \(other.typeName)")
            }
        }
        let allowed: Set<String>
        let rule: TableConstraint.Rule
        switch type {
        case "unique":
            allowed = ["type", "field", "key_prefix", "message"]
            rule = .unique(field: try text("field"))
        case "foreign_key":
            allowed = ["type", "field", "table", "key_prefix", "message"]
            rule = .foreignKey(field: try text("field"), table: try text("table"))
        case "check":
            allowed = ["type", "field", "op", "value", "key_prefix", "message"]
            let op = try text("op")
            guard let comparison = TableConstraint.Comparison(rawValue: op) else {
                throw NanaRemoteError(.valueError, "check constraint 'op' must be one of \(TableConstraint.Comparison.allCases.map(\.rawValue).joined(separator: " ")), not '\(op)'")
            }
            let operand: SQLValue
            switch m["value"] {
            case .int(let i)?: operand = .integer(i)
            case .double(let d)?: operand = .real(d)
            case .string(let s)?: operand = .text(s)
            case .bool(let b)?: operand = .integer(b ? 1 : 0)  // json_extract gives JSON true as 1
            default: throw NanaRemoteError(.valueError, "check constraint 'value' must be a number, str or bool")
            }
            rule = .check(field: try text("field"), comparison: comparison, value: operand)
        case "required":
            allowed = ["type", "fields", "key_prefix", "message"]
            guard case .array(let items)? = m["fields"] else { throw NanaRemoteError(.valueError, "required constraint needs 'fields' (a list of str)") }
            var fields: [String] = []
            for item in items {
                guard case .string(let s) = item else { throw NanaRemoteError(.valueError, "required constraint 'fields' must be a list of str") }
                fields.append(s)
            }
            rule = .required(fields: fields)
        default:
            throw NanaRemoteError(.valueError, "unknown constraint type '\(type)' (unique, foreign_key, check, required)")
        }
        for name in m.keys.map(\.string) where !allowed.contains(name) {
            throw NanaRemoteError(.valueError, "\(type) constraint has no option '\(name)'")
        }
        let prefix = try optionalText("key_prefix"), message = try optionalText("message")
        do throws(StorageError) {
            return try TableConstraint(rule, keyPrefix: prefix, message: message)
        } catch {
            throw NanaRemoteError(error)
        }
    }

    static func constraintValue(_ c: TableConstraint) -> NanaValue {
        var m: NanaParams
        switch c.rule {
        case .unique(let field): m = ["type": "unique", "field": .string(field)]
        case .foreignKey(let field, let table): m = ["type": "foreign_key", "field": .string(field), "table": .string(table)]
        case .check(let field, let comparison, let value):
            let operand: NanaValue = switch value {
            case .integer(let i): .int(i)
            case .real(let d): .double(d)
            case .text(let s): .string(s)
            case .null, .blob: .nil
            }
            m = ["type": "check", "field": .string(field), "op": .string(comparison.rawValue), "value": operand]
        case .required(let fields): m = ["type": "required", "fields": .array(fields.map(NanaValue.string))]
        }
        if let prefix = c.keyPrefix { m["key_prefix"] = .string(prefix) }
        if let message = c.message { m["message"] = .string(message) }
        return .map(m)
    }

    /// `add_constraint`, `drop_constraint`.
    func changeConstraint(_ msgid: UInt32, _ args: Arguments, add: Bool) throws(NanaRemoteError) {
        let table = try table(args)
        let constraint = try Self.constraint(try args.value("constraint"))
        // The change runs on the writer outside any client transaction: inside the
        // session's own it would wait for its COMMIT (found by nanafuzz-dispatch).
        if try transactionOwner(table.database) != nil {
            throw NanaRemoteError(.transaction, "Cannot change constraints while a transaction is in progress. Please commit or rollback first.")
        }
        respondLater(msgid, { add ? table.addConstraint(constraint, completion: $0) : table.dropConstraint(constraint, completion: $0) }) { .value(.bool($0)) }
    }

    func listConstraints(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        reply(msgid, .value(.array(try table(args).declaredConstraints.map(Self.constraintValue))))
    }
}
