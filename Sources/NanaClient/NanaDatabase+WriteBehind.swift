import NanaWire

/// A write the daemon's flusher could not commit (NanaSQLite's dead-letter queue entry).
public struct NanaDeadLetter: Sendable, Hashable {
    public enum Action: String, Sendable, Hashable { case set, delete }
    public var key: String
    public var action: Action
    /// The value that was to be stored (for `set`).
    public var value: NanaValue?
    public var error: String
    /// Seconds since 1970.
    public var timestamp: Double
}

/// NanaSQLite's v2 metrics (`get_v2_metrics`), with its field names.
public struct NanaWriteBehindMetrics: Sendable, Hashable {
    public var flushCount: Int
    public var kvsItemsFlushed: Int
    public var strictTasksExecuted: Int
    public var dlqErrors: Int
    /// When the last flush finished, seconds since 1970.
    public var lastFlushTime: Double?
    public var totalFlushTimeMilliseconds: Double
    public var currentStagingCount: Int
    public var currentStrictQueueSize: Int
}

extension NanaDatabase {
    /// Flushes the table's staged writes (`flush`). With `wait`, returns once the flush it asked
    /// for has committed; rows that failed are then in ``deadLetters()``. A no-op on a
    /// write-through table.
    public func flush(wait: Bool = false) async throws {
        _ = try await call("flush", ["wait": .bool(wait)])
    }

    /// The dead-letter queue, oldest first (`get_dlq`). Every client sees the same queue.
    public func deadLetters() async throws -> [NanaDeadLetter] {
        guard case .array(let entries) = try await call("get_dlq") else {
            throw NanaClientError(.protocolViolation, "get_dlq did not answer with a list")
        }
        return try entries.map { entry throws -> NanaDeadLetter in
            guard let item = entry["item"], let key = item["key"]?.stringValue,
                  let action = item["action"]?.stringValue.flatMap(NanaDeadLetter.Action.init(rawValue:)),
                  let error = entry["error"]?.stringValue, let timestamp = entry["timestamp"]?.doubleValue
            else { throw NanaClientError(.protocolViolation, "unexpected dead letter: \(entry)") }
            return NanaDeadLetter(key: key, action: action, value: item["value"], error: error, timestamp: timestamp)
        }
    }

    /// Stages the dead letters again, except where a newer write to the same key is staged
    /// (`retry_dlq`). Returns how many were re-staged.
    @discardableResult
    public func retryDeadLetters() async throws -> Int {
        Int(try await call("retry_dlq").int64Value ?? 0)
    }

    /// Discards the dead letters (`clear_dlq`); returns how many there were.
    @discardableResult
    public func clearDeadLetters() async throws -> Int {
        Int(try await call("clear_dlq").int64Value ?? 0)
    }

    /// The v2 metrics, or `nil` when the table is not in v2 mode with metrics on.
    public func writeBehindMetrics() async throws -> NanaWriteBehindMetrics? {
        let m = try await call("get_v2_metrics")
        guard let flushCount = m["flush_count"]?.int64Value else { return nil }
        return NanaWriteBehindMetrics(
            flushCount: Int(flushCount),
            kvsItemsFlushed: Int(m["kvs_items_flushed"]?.int64Value ?? 0),
            strictTasksExecuted: Int(m["strict_tasks_executed"]?.int64Value ?? 0),
            dlqErrors: Int(m["dlq_errors"]?.int64Value ?? 0),
            lastFlushTime: m["last_flush_time"]?.doubleValue,
            totalFlushTimeMilliseconds: m["total_flush_time_ms"]?.doubleValue ?? 0,
            currentStagingCount: Int(m["current_staging_count"]?.int64Value ?? 0),
            currentStrictQueueSize: Int(m["current_strict_queue_size"]?.int64Value ?? 0))
    }
}

extension NanaDatabase {
    /// Adds a constraint the daemon enforces for every client; false when it was already there.
    /// A `unique` constraint fails if existing rows already break it.
    @discardableResult
    public func addConstraint(_ constraint: NanaConstraint) async throws -> Bool {
        try await call("add_constraint", ["constraint": constraint.value]).boolValue ?? false
    }

    /// Removes a constraint; false when it was not there.
    @discardableResult
    public func dropConstraint(_ constraint: NanaConstraint) async throws -> Bool {
        try await call("drop_constraint", ["constraint": constraint.value]).boolValue ?? false
    }

    /// The table's constraints, as the daemon holds them.
    public func constraints() async throws -> [NanaConstraint] {
        (try await call("list_constraints").arrayValue ?? []).map(NanaConstraint.init(value:))
    }
}
