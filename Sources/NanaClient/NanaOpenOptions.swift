import NanaWire

/// NanaSQLite's constructor options that shape how a table behaves. In nanad they belong to
/// the table, which every process shares: the first open while nobody else uses the table
/// decides, and an open that states different settings while it is in use is refused with a
/// `ValueError`, so no client silently gets behaviour it did not ask for.
public struct NanaOpenOptions: Sendable, Hashable {
    /// Write-behind (NanaSQLite's v2 mode); `nil` writes through (each write is committed
    /// before it is acknowledged).
    public var writeBehind: NanaWriteBehind?

    /// Whether the open states its settings; see ``current``.
    private var statesSettings = true

    public init(writeBehind: NanaWriteBehind? = nil) {
        self.writeBehind = writeBehind
    }

    /// States no settings: shares whatever the table uses now, or takes the defaults when no
    /// one uses it. For tools (nanactl) that look at a table without deciding how it behaves.
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
