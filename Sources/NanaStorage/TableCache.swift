import Synchronization

/// What the cache knows about a key.
public enum CacheEntry: Sendable, Hashable {
    case present(EncodedValue)
    /// Known to be missing (NanaSQLite's negative cache).
    case absent
}

/// How the writer changes the cache after a COMMIT.
enum CacheChange: Sendable {
    case set(String, EncodedValue)
    case remove(String)
    case removeAll
}

/// The one cache of a table, shared by every session (NanaSQLite's unbounded strategy with
/// negative caching).
///
/// Coherence rule: the writer installs an entry for every key it writes, after COMMIT; a reader
/// that read SQLite on a miss only fills a key that has no entry, and only if the cache was not
/// cleared since the read began (`epoch`). So a slow reader can never put back a value older
/// than one the writer installed.
final class TableCache: Sendable {
    private struct State {
        var entries: [String: CacheEntry] = [:]
        var epoch: UInt64 = 0
        var hits = 0
        var misses = 0
        /// Every row is in `entries` (after `load_all`, or `clear`).
        var allLoaded = false
    }

    private let state = Mutex(State())

    func lookup(_ key: String) -> CacheEntry? {
        state.withLock { state in
            let entry = state.entries[key]
            if entry != nil {
                state.hits += 1
            } else if state.allLoaded {
                state.hits += 1
                return .absent
            } else {
                state.misses += 1
            }
            return entry
        }
    }

    /// Whether the key has an entry (value or absence), without counting a hit or miss.
    func contains(_ key: String) -> Bool {
        state.withLock { $0.entries[key] != nil || $0.allLoaded }
    }

    var epoch: UInt64 { state.withLock { $0.epoch } }

    /// Fills a key read from SQLite, unless the writer or a clear got there first.
    func fill(_ key: String, _ entry: CacheEntry, readAt epoch: UInt64) {
        state.withLock { state in
            guard state.epoch == epoch, state.entries[key] == nil else { return }
            state.entries[key] = entry
        }
    }

    /// Fills every row of a full scan and marks the cache complete, under the same rule.
    func fillAll(_ rows: [(String, EncodedValue)], readAt epoch: UInt64) {
        state.withLock { state in
            guard state.epoch == epoch else { return }
            for (key, value) in rows where state.entries[key] == nil {
                state.entries[key] = .present(value)
            }
            state.allLoaded = true
        }
    }

    func apply(_ changes: [CacheChange]) {
        state.withLock { state in
            for change in changes {
                switch change {
                case .set(let key, let value): state.entries[key] = .present(value)
                case .remove(let key): state.entries[key] = .absent
                case .removeAll:
                    state.entries.removeAll()
                    state.epoch &+= 1
                    state.allLoaded = true  // the table is empty and we know it
                }
            }
        }
    }

    func forget(_ key: String) {
        state.withLock { state in
            state.entries[key] = nil
            state.epoch &+= 1
            if state.allLoaded { state.allLoaded = false }
        }
    }

    func clear() {
        state.withLock { state in
            state.entries.removeAll()
            state.epoch &+= 1
            state.allLoaded = false
        }
    }

    var isFullyLoaded: Bool { state.withLock { $0.allLoaded } }

    var statistics: CacheStatistics {
        state.withLock { state in
            var present = 0
            for entry in state.entries.values { if case .present = entry { present += 1 } }
            return CacheStatistics(entries: present, absentKeys: state.entries.count - present, hits: state.hits, misses: state.misses)
        }
    }
}

/// Counters of a table's cache.
public struct CacheStatistics: Sendable, Hashable {
    public var entries: Int
    public var absentKeys: Int
    public var hits: Int
    public var misses: Int
}
