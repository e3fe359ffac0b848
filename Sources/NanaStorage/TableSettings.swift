import Synchronization

/// How a key-value table behaves: NanaSQLite's per-instance options that, in a daemon, belong
/// to the table every session shares.
public struct TableSettings: Sendable {
    /// Write-behind (v2) settings; `nil` writes through (v1).
    public var writeBehind: WriteBehindConfiguration?

    public init(writeBehind: WriteBehindConfiguration? = nil) {
        self.writeBehind = writeBehind
    }
}

/// The settings an `open` asked for. A field left `nil` was not stated: it takes the table's
/// current setting while other sessions use the table, the default otherwise.
public struct TableRequest: Sendable {
    /// `.some(nil)` asks for write-through explicitly.
    public var writeBehind: WriteBehindConfiguration??

    public init(writeBehind: WriteBehindConfiguration?? = nil) {
        self.writeBehind = writeBehind
    }
}

extension KeyValueTable {
    /// Starts a session's use of the table with the settings it asked for.
    ///
    /// While other sessions use the table, its settings stay as they are: a request that
    /// states different ones is refused with a `ValueError` naming the setting, so no client
    /// gets write-behind (or write-through) it did not ask for. When nobody uses it, the
    /// request decides (unstated settings take their defaults); leaving write-behind first
    /// flushes what is staged. Balance every success with ``detach()``.
    public func attach(_ request: TableRequest, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        enum Step { case attached, refused(StorageError), drainFirst }
        let step: Step = usage.withLock { users in
            let current = writeBehind.configuration
            if users > 0 {
                if let wanted = request.writeBehind, wanted != current {
                    return .refused(StorageError(.valueError, "table '\(name)' is open in \(Self.describe(current)) by another session; this open asked for \(Self.describe(wanted)). Open it with the same settings, or leave them out to share the current ones."))
                }
                users += 1
                return .attached
            }
            let wanted = request.writeBehind ?? nil
            if wanted != current {
                guard writeBehind.configure(wanted) else { return .drainFirst }
            }
            users += 1
            return .attached
        }
        switch step {
        case .attached: completion(.success(()))
        case .refused(let error): completion(.failure(error))
        case .drainFirst:
            // Staged rows must reach the file before write-behind is turned off; then try again
            // (another session may have attached meanwhile).
            writeBehind.flush { self.attach(request, completion: completion) }
        }
    }

    /// Ends one session's use of the table.
    public func detach() {
        usage.withLock { users in users = max(0, users - 1) }
    }

    /// Sessions using the table now.
    public var users: Int { usage.withLock { $0 } }

    public var settings: TableSettings { TableSettings(writeBehind: writeBehind.configuration) }

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
        guard writeBehind.isActive || !writeBehind.isDrained else { completion?(); return }
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
}
