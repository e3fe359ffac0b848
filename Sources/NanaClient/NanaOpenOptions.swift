import NanaWire

/// NanaSQLite's constructor options that shape how a table behaves. In nanad they belong to
/// the table, which every process shares: the first open while nobody else uses the table
/// decides, and an open that states different settings while it is in use is refused with a
/// `ValueError`, so no client silently gets behaviour it did not ask for.
public struct NanaOpenOptions: Sendable, Hashable {
    /// Write-behind (NanaSQLite's v2 mode); `nil` writes through (each write is committed
    /// before it is acknowledged).
    public var writeBehind: NanaWriteBehind?
    /// The daemon's shared cache of the table (NanaSQLite's `cache_strategy`).
    public var cache: NanaCacheStrategy
    /// Value encryption (NanaSQLite's `encryption_key` / `encryption_mode`). Sub-tables opened
    /// with ``NanaDatabase/table(_:)`` inherit it.
    public var encryption: NanaEncryption?
    /// Constraints the daemon enforces for every client (added if not already declared).
    public var constraints: [NanaConstraint]

    /// Whether the open states its settings; see ``current``.
    private var statesSettings = true

    public init(writeBehind: NanaWriteBehind? = nil, cache: NanaCacheStrategy = .unbounded(), encryption: NanaEncryption? = nil, constraints: [NanaConstraint] = []) {
        self.writeBehind = writeBehind
        self.cache = cache
        self.encryption = encryption
        self.constraints = constraints
    }

    /// States no settings: shares whatever the table uses now (or used last), and no key. For tools (nanactl) that look at a table without deciding how it behaves.
    public static let current: NanaOpenOptions = {
        var options = NanaOpenOptions()
        options.statesSettings = false
        return options
    }()

    /// The `open` arguments. Every setting is stated, defaults included, so that a conflict
    /// with the table's current settings is reported rather than inherited.
    var parameters: NanaParams {
        guard statesSettings else { return [:] }
        var params: NanaParams = ["v2_mode": .bool(writeBehind != nil)]
        switch cache {
        case .unbounded(let limit):
            params["cache_strategy"] = "unbounded"
            params["cache_size"] = limit.map { .int(Int64($0)) } ?? .nil
        case .lru(let capacity):
            params["cache_strategy"] = "lru"
            params["cache_size"] = .int(Int64(capacity))
        case .ttl(let seconds, let limit, let persistent):
            params["cache_strategy"] = "ttl"
            params["cache_ttl"] = .double(seconds)
            params["cache_size"] = limit.map { .int(Int64($0)) } ?? .nil
            params["cache_persistence_ttl"] = .bool(persistent)
        }
        if let encryption {
            params["encryption_key"] = .binary(encryption.key)
            params["encryption_mode"] = .string(encryption.mode.rawValue)
            if encryption.allowsLegacyPlaintext { params["allow_legacy_plaintext"] = true }
        }
        if !constraints.isEmpty { params["constraints"] = .array(constraints.map(\.value)) }
        if let w = writeBehind {
            params["v2_config"] = [
                "flush_mode": .string(w.flushMode.rawValue),
                "flush_interval": .double(w.flushInterval),
                "flush_count": .int(Int64(w.flushCount)),
                "chunk_size": .int(Int64(w.chunkSize)),
                "max_dlq_size": w.maxDLQSize.map { .int(Int64($0)) } ?? .nil,
                "enable_metrics": .bool(w.enableMetrics),
            ]
        }
        return params
    }
}

/// Write-behind settings (NanaSQLite's `V2Config`). A write is acknowledged once the daemon has
/// staged it in memory; every client reads staged writes at once; a background flusher
/// commits them. A SIGKILL of the daemon loses what is staged and not yet flushed — at most
/// about one flush's worth in `immediate` mode, `flushCount` writes in `count` mode,
/// `flushInterval` seconds of writes in `time` mode, everything since the last `flush()` in
/// `manual` mode. SIGTERM and a clean shutdown flush everything first.
public struct NanaWriteBehind: Sendable, Hashable {
    public enum FlushMode: String, Sendable, Hashable, CaseIterable {
        case immediate, count, time, manual
    }

    public var flushMode: FlushMode
    /// Seconds between flushes in `time` mode.
    public var flushInterval: Double
    /// Writes that trigger a flush in `count` mode.
    public var flushCount: Int
    /// Rows per transaction when flushing.
    public var chunkSize: Int
    /// Dead letters kept (oldest dropped first); `nil` keeps all.
    public var maxDLQSize: Int?
    /// Whether ``NanaDatabase/writeBehindMetrics()`` reports anything.
    public var enableMetrics: Bool

    public init(flushMode: FlushMode = .immediate, flushInterval: Double = 3.0, flushCount: Int = 100, chunkSize: Int = 1000, maxDLQSize: Int? = 1000, enableMetrics: Bool = false) {
        self.flushMode = flushMode
        self.flushInterval = flushInterval
        self.flushCount = flushCount
        self.chunkSize = chunkSize
        self.maxDLQSize = maxDLQSize
        self.enableMetrics = enableMetrics
    }
}

/// NanaSQLite's cache strategies, for the daemon's one shared cache of a table.
public enum NanaCacheStrategy: Sendable, Hashable {
    /// Every value read stays cached; with a limit, the oldest inserted is evicted first.
    case unbounded(limit: Int? = nil)
    /// At most `capacity` entries; the least recently used is evicted.
    case lru(capacity: Int)
    /// An entry expires `seconds` after it was written or loaded (reads do not extend it).
    /// `persistent` (NanaSQLite's `cache_persistence_ttl`): rows themselves are deleted
    /// `seconds` after they were written, by a time stored in the file, whether or not anyone
    /// reads them, across daemon restarts.
    case ttl(seconds: Double, limit: Int? = nil, persistent: Bool = false)
}

/// Encryption of stored values, byte-compatible with NanaSQLite (nonce ‖ ciphertext ‖ tag).
/// The key goes to the daemon over its socket when the table is opened and stays in the
/// daemon's memory only (never in its configuration or on disk).
public struct NanaEncryption: Sendable, Hashable {
    public enum Mode: String, Sendable, Hashable { case aesGCM = "aes-gcm", chacha20 = "chacha20" }
    public var key: [UInt8]
    public var mode: Mode
    /// NanaSQLite's `allow_legacy_plaintext`: plaintext values of the table (written before it
    /// was encrypted) are read as they are instead of refused. For a migration only: anyone
    /// who can write the file could plant such values. Every session of the table must agree.
    public var allowsLegacyPlaintext: Bool
    /// - Parameter key: 16, 24 or 32 bytes for AES-GCM; 32 for ChaCha20-Poly1305.
    public init(key: [UInt8], mode: Mode = .aesGCM, allowsLegacyPlaintext: Bool = false) {
        self.key = key
        self.mode = mode
        self.allowsLegacyPlaintext = allowsLegacyPlaintext
    }
}

/// A rule the daemon enforces on every write to a table, from every process (NanaSQLite's
/// `UniqueHook`, `ForeignKeyHook`, `CheckHook`, declared as data). A violation is a
/// `NanaSQLiteValidationError` and writes nothing; batch writes are checked row by row.
/// Fields are dotted paths into an object value (`"address.city"`).
public struct NanaConstraint: Sendable, Hashable {
    let value: NanaValue

    private init(_ fields: NanaParams, keyPrefix: String?, message: String?) {
        var fields = fields
        if let keyPrefix { fields["key_prefix"] = .string(keyPrefix) }
        if let message { fields["message"] = .string(message) }
        value = .map(fields)
    }

    init(value: NanaValue) { self.value = value }

    /// No two rows share the field's value (rows without it are not checked).
    public static func unique(_ field: String, keyPrefix: String? = nil, message: String? = nil) -> NanaConstraint {
        NanaConstraint(["type": "unique", "field": .string(field)], keyPrefix: keyPrefix, message: message)
    }

    /// The field's value must be a key of `table` in the same file (rows without it are not checked).
    public static func foreignKey(_ field: String, references table: String, keyPrefix: String? = nil, message: String? = nil) -> NanaConstraint {
        NanaConstraint(["type": "foreign_key", "field": .string(field), "table": .string(table)], keyPrefix: keyPrefix, message: message)
    }

    /// `field op value` must hold, with `op` one of `==`, `!=`, `<`, `<=`, `>`, `>=`.
    public static func check(_ field: String, _ op: String, _ value: NanaValue, keyPrefix: String? = nil, message: String? = nil) -> NanaConstraint {
        NanaConstraint(["type": "check", "field": .string(field), "op": .string(op), "value": value], keyPrefix: keyPrefix, message: message)
    }

    /// Each field must be present and not null.
    public static func required(_ fields: [String], keyPrefix: String? = nil, message: String? = nil) -> NanaConstraint {
        NanaConstraint(["type": "required", "fields": .array(fields.map(NanaValue.string))], keyPrefix: keyPrefix, message: message)
    }
}
