import Dispatch
import Synchronization
import NanaWire

/// What the cache knows about a key.
public enum CacheEntry: Sendable, Hashable {
    case present(EncodedValue)
    /// Known to be missing (NanaSQLite's negative cache).
    case absent
}

/// NanaSQLite's cache strategies (`cache_strategy`, `cache_size`, `cache_ttl`).
public enum CacheStrategy: Sendable, Hashable {
    /// `unbounded`; with a limit, FIFO by first insertion (updating a key does not move it).
    case unbounded(limit: Int?)
    /// `lru` with `cache_size` entries; reads and writes refresh recency.
    case lru(capacity: Int)
    /// `ttl`: an entry expires `seconds` after it was set (written or loaded), no sliding on read;
    /// with a limit, FIFO where re-setting a key moves it to the back.
    case ttl(seconds: Double, limit: Int?)

    public static let `default` = CacheStrategy.unbounded(limit: nil)

    /// Validates as NanaSQLite does, with its messages. NanaSQLite accepts a non-positive FIFO
    /// limit and an infinite or NaN ttl; we reject those too, in the same style.
    public func validated() throws(StorageError) -> CacheStrategy {
        switch self {
        case .unbounded(let limit?) where limit <= 0:
            throw StorageError(.valueError, "cache_size must be a positive integer when using unbounded strategy")
        case .lru(let capacity) where capacity <= 0:
            throw StorageError(.valueError, "cache_size must be a positive integer when using LRU strategy")
        case .ttl(let seconds, let limit):
            // `!(x > 0)` so that NaN is refused too.
            guard seconds > 0 else {
                throw StorageError(.valueError, "cache_ttl must be a positive value when using TTL strategy")
            }
            guard seconds.isFinite else {
                throw StorageError(.valueError, "cache_ttl must be a finite value when using TTL strategy")
            }
            if let limit, limit <= 0 {
                throw StorageError(.valueError, "cache_size must be a positive integer when using TTL strategy")
            }
        default:
            break
        }
        return self
    }

    /// Whether the cache can hold every row (only unbounded without a limit), and so may answer
    /// "absent" for a key it has never seen after a full scan.
    public var isComplete: Bool {
        if case .unbounded(limit: nil) = self { return true }
        return false
    }
}

/// How the writer changes the cache after a COMMIT.
enum CacheChange: Sendable {
    case set(String, EncodedValue)
    case remove(String)
    case removeAll
}

/// Nanoseconds of a clock that never goes backwards; the TTL clock unless a test injects one.
@Sendable func monotonicNanoseconds() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

/// The one cache of a table, shared by every session, with one of NanaSQLite's strategies and
/// negative caching (absence markers).
///
/// Coherence rule: the writer installs an entry for every key it writes, after COMMIT, and stamps
/// the key's write slot with a new `sequence` number. A reader reads `sequence` before it reads
/// SQLite and passes it as `readAt`; its fill is installed only if the key has no entry, no write
/// stamped the key's slot after `readAt`, and the cache was not cleared after `readAt`. The stamp
/// outlives the entry, so a slow reader cannot put back an old value even when the writer's entry
/// was evicted before the reader got there. Keys whose hashes share a slot only lose a fill.
final class TableCache: Sendable {
    /// Write-stamp slots; a power of two so that the slot is the hash's low bits.
    static let writeStampSlots = 4096
    /// In plain unbounded mode values are kept without limit but absence markers are not: any
    /// client can ask for any number of missing keys.
    static let absentMarkerLimit = 65_536
    /// Expired entries removed from the front of the expiry order per call, on top of one per
    /// change the call makes, so that a burst of expiries never holds the lock for long.
    static let sweepBudget = 64

    private let now: @Sendable () -> UInt64
    private let state: Mutex<State>
    /// The file's near-cache board, bumped under the lock right after each change (so a
    /// tracked read, which reads stamps before it looks up, never pairs an old value with a
    /// stamp that announced the new one).
    private let board: BoardLink?
    /// The table's number on the board.
    private let tableIndex: Int

    init(strategy: CacheStrategy = .default, board: BoardLink? = nil, tableIndex: Int = 0, now: @escaping @Sendable () -> UInt64 = monotonicNanoseconds) {
        self.now = now
        self.state = Mutex(State(strategy: strategy))
        self.board = board
        self.tableIndex = tableIndex
    }

    /// The stamps of `key` and of the table, read (acquire) before the caller reads its value;
    /// nil while the file has no board.
    func stamps(of key: String) -> TrackedStamps? {
        guard let board = board?.current else { return nil }
        let keyWord = board.keyWord(tableIndex, key)
        let tableWord = board.tableWord(tableIndex)
        return TrackedStamps(keyWord: keyWord, keyStamp: board.load(keyWord), tableWord: tableWord, tableStamp: board.load(tableWord))
    }

    /// The word of the table's stamp on `board`.
    func tableWord(on board: Board) -> Int { board.tableWord(tableIndex) }

    private func bumpKey(_ key: String, on board: Board?) {
        if let board { board.bump(board.keyWord(tableIndex, key)) }
    }

    private func bumpTable(on board: Board?) {
        if let board { board.bump(board.tableWord(tableIndex)) }
    }

    /// Seconds until `key`'s entry expires (TTL strategies; nil for the others or no entry).
    func remainingLife(of key: String) -> Double? {
        state.withLock { state in
            guard case .ttl = state.strategy, let slot = state.index[NanaKey(key)] else { return nil }
            let time = now()
            let expiresAt = state.slots[slot].expiresAt
            return expiresAt > time ? Double(expiresAt - time) / 1e9 : 0
        }
    }

    var strategy: CacheStrategy { state.withLock { $0.strategy } }

    /// Empties the cache and switches to `strategy` (a table reopened with other settings).
    /// Fills of reads that began before it are refused, as after ``clear()``.
    func reconfigure(_ strategy: CacheStrategy) {
        state.withLock { state in
            let sequence = state.sequence &+ 1
            state = State(strategy: strategy)
            state.sequence = sequence
            state.lastClear = sequence
            bumpTable(on: board?.current)
        }
    }

    /// The write-stamp slot of a key; keys that share one refuse each other's concurrent fills.
    static func writeStampSlot(of key: String) -> Int {
        Int(truncatingIfNeeded: UInt(bitPattern: key.hashValue) & UInt(writeStampSlots - 1))
    }

    /// The time TTL entries are measured against; other strategies never read the clock. Read
    /// under the lock, so that times only grow along the order list and the list stays sorted by
    /// expiry.
    private func currentTime(_ state: borrowing State) -> UInt64 {
        if case .ttl = state.strategy { return now() }
        return 0
    }

    /// The cached entry, counting a hit or a miss; `nil` means "ask SQLite". An expired entry is
    /// removed and counts as a miss.
    func lookup(_ key: String) -> CacheEntry? {
        state.withLock { state in
            let time = currentTime(state)
            state.sweep(at: time, budget: Self.sweepBudget)
            if let slot = state.index[NanaKey(key)] {
                if state.hasExpired(slot, at: time) {
                    state.expire(slot)
                    state.misses += 1
                    return nil
                }
                state.hits += 1
                if state.policy.readsRefreshRecency { state.moveToBack(slot) }
                return state.slots[slot].entry
            }
            if state.allLoaded {
                state.hits += 1
                return .absent
            }
            state.misses += 1
            return nil
        }
    }

    /// NanaSQLite's `is_cached`: the key has a live entry (value or absence), without counting a
    /// hit or miss. Unlike NanaSQLite's TTL cache, an expired key is not cached.
    func contains(_ key: String) -> Bool {
        state.withLock { state in
            let time = currentTime(state)
            if let slot = state.index[NanaKey(key)] {
                if !state.hasExpired(slot, at: time) { return true }
                state.expire(slot)
            }
            return state.allLoaded
        }
    }

    /// The number to pass as `readAt`: read it before reading SQLite.
    var sequence: UInt64 { state.withLock { $0.sequence } }

    /// Fills a key read from SQLite, unless the writer, a `forget` or a clear got there first.
    func fill(_ key: String, _ entry: CacheEntry, readAt: UInt64) {
        state.withLock { state in
            let time = currentTime(state)
            state.sweep(at: time, budget: Self.sweepBudget)
            guard state.lastClear <= readAt, state.writeStamp(of: key) <= readAt else { return }
            state.fillIfMissing(key, entry, at: time)
        }
    }

    /// Fills every row of a full scan under the same rule, skipping keys written since `readAt`,
    /// and marks the cache complete when the strategy can hold every row.
    func fillAll(_ rows: [(String, EncodedValue)], readAt: UInt64) {
        state.withLock { state in
            let time = currentTime(state)
            state.sweep(at: time, budget: Self.sweepBudget &+ rows.count)
            guard state.lastClear <= readAt else { return }
            for (key, value) in rows where state.writeStamp(of: key) <= readAt {
                state.fillIfMissing(key, .present(value), at: time)
            }
            // A key forgotten during the scan may be missing from both the rows and the cache.
            if state.policy.isComplete && state.lastForget <= readAt { state.allLoaded = true }
        }
    }

    /// The writer's changes after COMMIT; they overwrite whatever is cached.
    func apply(_ changes: [CacheChange]) {
        state.withLock { state in
            let time = currentTime(state)
            state.sweep(at: time, budget: Self.sweepBudget &+ changes.count)
            // One number for the whole commit: no reader can read `sequence` in between.
            state.sequence &+= 1
            let stamp = state.sequence
            let board = self.board?.current
            for change in changes {
                switch change {
                case .set(let key, let value):
                    state.stampWrite(of: key, stamp)
                    state.store(key, .present(value), at: time)
                    bumpKey(key, on: board)
                case .remove(let key):
                    state.stampWrite(of: key, stamp)
                    state.store(key, .absent, at: time)
                    bumpKey(key, on: board)
                case .removeAll:
                    state.removeEverything()
                    state.lastClear = stamp
                    state.allLoaded = state.policy.isComplete  // the table is empty and we know it
                    bumpTable(on: board)
                }
            }
        }
    }

    /// Drops one key so that the next read goes to SQLite, and refuses fills of it read before.
    func forget(_ key: String) {
        state.withLock { state in
            let time = currentTime(state)
            state.sweep(at: time, budget: Self.sweepBudget)
            state.sequence &+= 1
            state.stampWrite(of: key, state.sequence)
            state.lastForget = state.sequence
            if let slot = state.index[NanaKey(key)] { state.remove(slot) }
            state.allLoaded = false
            bumpKey(key, on: board?.current)
        }
    }

    func clear() {
        state.withLock { state in
            state.removeEverything()
            state.sequence &+= 1
            state.lastClear = state.sequence
            state.allLoaded = false
            bumpTable(on: board?.current)
        }
    }

    var isFullyLoaded: Bool { state.withLock { $0.allLoaded } }

    /// Counters. `entries` and `absentKeys` count what is held, so they include expired TTL
    /// entries the sweep has not reached yet; reading them does not sweep.
    var statistics: CacheStatistics {
        state.withLock { state in
            CacheStatistics(
                entries: state.presentCount, absentKeys: state.absentCount,
                hits: state.hits, misses: state.misses,
                evictions: state.evictions, expirations: state.expirations,
                capacity: state.policy.capacity
            )
        }
    }
}

// MARK: - Storage

extension TableCache {
    /// The strategy reduced to the few decisions the storage makes.
    fileprivate struct Policy {
        /// Entries in the order list beyond this are evicted from its front.
        let orderLimit: Int
        /// Whether values are in the order list; in plain unbounded mode only absence markers are.
        let ordersValues: Bool
        let readsRefreshRecency: Bool
        /// Whether writing a key that is already cached moves it to the back of the order.
        let writesMoveToBack: Bool
        /// TTL in nanoseconds; `nil` when entries never expire.
        let timeToLive: UInt64?
        let isComplete: Bool
        /// What `statistics` reports: the configured size, `nil` when unbounded.
        let capacity: Int?

        init(_ strategy: CacheStrategy) {
            isComplete = strategy.isComplete
            // Limits are clamped rather than trapped on: `init` is not the place that validates.
            switch strategy {
            case .unbounded(limit: nil):
                orderLimit = TableCache.absentMarkerLimit
                ordersValues = false
                readsRefreshRecency = false
                writesMoveToBack = false
                timeToLive = nil
                capacity = nil
            case .unbounded(limit: let limit?):
                orderLimit = max(1, limit)
                ordersValues = true
                readsRefreshRecency = false
                writesMoveToBack = false
                timeToLive = nil
                capacity = orderLimit
            case .lru(let size):
                orderLimit = max(1, size)
                ordersValues = true
                readsRefreshRecency = true
                writesMoveToBack = true
                timeToLive = nil
                capacity = orderLimit
            case .ttl(let seconds, let limit):
                orderLimit = limit.map { max(1, $0) } ?? Int.max
                ordersValues = true
                readsRefreshRecency = false
                writesMoveToBack = true
                timeToLive = Self.nanoseconds(seconds)
                capacity = limit.map { max(1, $0) }
            }
        }

        /// Saturates instead of trapping on huge, infinite or NaN durations.
        static func nanoseconds(_ seconds: Double) -> UInt64 {
            guard seconds > 0 else { return 0 }
            let nanoseconds = (seconds * 1e9).rounded(.up)
            return nanoseconds >= Double(UInt64.max) ? .max : UInt64(nanoseconds)
        }
    }

    /// One cached key: an element of a doubly linked list threaded through `State.slots` by
    /// index, so that moving or removing any entry is O(1).
    fileprivate struct Slot {
        var key: NanaKey
        var entry: CacheEntry
        /// When the entry stops being live (TTL); `.max` for strategies without expiry.
        var expiresAt: UInt64
        var previous: Int
        var next: Int
        var isInOrder: Bool
    }

    fileprivate struct State {
        static let none = -1

        let strategy: CacheStrategy
        let policy: Policy
        /// By the keys' bytes (``NanaKey``): `String` would make "é" and "e\u{301}" one entry.
        var index: [NanaKey: Int] = [:]
        var slots: [Slot] = []
        var freeSlots: [Int] = []
        /// Front of the order: the next to evict (oldest insertion, least recently used, or
        /// first to expire; with one TTL for every entry the set order is the expiry order).
        var head = State.none
        var tail = State.none
        var orderCount = 0
        var presentCount = 0
        var absentCount = 0

        var writeStamps = [UInt64](repeating: 0, count: TableCache.writeStampSlots)
        /// The last number handed out to a write, `forget` or clear.
        var sequence: UInt64 = 0
        var lastClear: UInt64 = 0
        var lastForget: UInt64 = 0
        /// Every row is cached (after a full scan, or a clear of the table); unbounded mode only.
        var allLoaded = false

        var hits = 0
        var misses = 0
        var evictions = 0
        var expirations = 0

        init(strategy: CacheStrategy) {
            self.strategy = strategy
            self.policy = Policy(strategy)
        }

        // MARK: Write stamps

        func writeStamp(of key: String) -> UInt64 { writeStamps[TableCache.writeStampSlot(of: key)] }

        mutating func stampWrite(of key: String, _ stamp: UInt64) { writeStamps[TableCache.writeStampSlot(of: key)] = stamp }

        // MARK: Entries

        func hasExpired(_ slot: Int, at time: UInt64) -> Bool { slots[slot].expiresAt <= time }

        private func expiry(at time: UInt64) -> UInt64 {
            guard let timeToLive = policy.timeToLive else { return .max }
            let (sum, overflow) = time.addingReportingOverflow(timeToLive)
            return overflow ? .max : sum
        }

        /// A reader's entry: installed only where there is no live one.
        mutating func fillIfMissing(_ key: String, _ entry: CacheEntry, at time: UInt64) {
            let key = NanaKey(key)  // hashed once for the lookup and the insert
            if let slot = index[key] {
                guard hasExpired(slot, at: time) else { return }
                expire(slot)
            }
            insert(key, entry, at: time)
        }

        /// The writer's entry: replaces whatever is cached.
        mutating func store(_ key: String, _ entry: CacheEntry, at time: UInt64) {
            let key = NanaKey(key)
            guard let slot = index[key] else { return insert(key, entry, at: time) }
            count(slots[slot].entry, by: -1)
            count(entry, by: 1)
            slots[slot].entry = entry
            slots[slot].expiresAt = expiry(at: time)
            let belongsInOrder = policy.ordersValues || entry == .absent
            if slots[slot].isInOrder && !belongsInOrder {
                unlink(slot)
            } else if !slots[slot].isInOrder && belongsInOrder {
                append(slot)
            } else if slots[slot].isInOrder && policy.writesMoveToBack {
                moveToBack(slot)
            }
            evictOverLimit(at: time)
        }

        private mutating func insert(_ key: NanaKey, _ entry: CacheEntry, at time: UInt64) {
            let new = Slot(key: key, entry: entry, expiresAt: expiry(at: time), previous: State.none, next: State.none, isInOrder: false)
            let slot: Int
            if let reused = freeSlots.popLast() {
                slots[reused] = new
                slot = reused
            } else {
                slot = slots.count
                slots.append(new)
            }
            index[new.key] = slot
            count(entry, by: 1)
            if policy.ordersValues || entry == .absent { append(slot) }
            evictOverLimit(at: time)
        }

        private mutating func count(_ entry: CacheEntry, by delta: Int) {
            if case .present = entry { presentCount += delta } else { absentCount += delta }
        }

        mutating func remove(_ slot: Int) {
            if slots[slot].isInOrder { unlink(slot) }
            index[slots[slot].key] = nil
            count(slots[slot].entry, by: -1)
            // Release the key and value now rather than when the slot is reused.
            slots[slot].key = ""
            slots[slot].entry = .absent
            freeSlots.append(slot)
        }

        mutating func expire(_ slot: Int) {
            remove(slot)
            expirations += 1
        }

        private mutating func evictOverLimit(at time: UInt64) {
            while orderCount > policy.orderLimit, head != State.none {
                if hasExpired(head, at: time) { expire(head) } else {
                    remove(head)
                    evictions += 1
                }
            }
        }

        /// Removes up to `budget` expired entries from the front of the expiry order.
        mutating func sweep(at time: UInt64, budget: Int) {
            guard policy.timeToLive != nil else { return }
            var remaining = budget
            while remaining > 0, head != State.none, hasExpired(head, at: time) {
                expire(head)
                remaining -= 1
            }
        }

        mutating func removeEverything() {
            index.removeAll()
            slots.removeAll()
            freeSlots.removeAll()
            head = State.none
            tail = State.none
            orderCount = 0
            presentCount = 0
            absentCount = 0
        }

        // MARK: Order list

        private mutating func append(_ slot: Int) {
            slots[slot].previous = tail
            slots[slot].next = State.none
            if tail != State.none { slots[tail].next = slot } else { head = slot }
            tail = slot
            slots[slot].isInOrder = true
            orderCount += 1
        }

        private mutating func unlink(_ slot: Int) {
            let previous = slots[slot].previous
            let next = slots[slot].next
            if previous != State.none { slots[previous].next = next } else { head = next }
            if next != State.none { slots[next].previous = previous } else { tail = previous }
            slots[slot].previous = State.none
            slots[slot].next = State.none
            slots[slot].isInOrder = false
            orderCount -= 1
        }

        mutating func moveToBack(_ slot: Int) {
            guard slots[slot].isInOrder, slot != tail else { return }
            unlink(slot)
            append(slot)
        }
    }
}

/// Counters of a table's cache.
public struct CacheStatistics: Sendable, Hashable {
    /// Cached values.
    public var entries: Int
    /// Cached absence markers.
    public var absentKeys: Int
    public var hits: Int
    public var misses: Int
    /// Entries dropped to stay within `capacity` (or, in plain unbounded mode, absence markers
    /// dropped beyond their cap).
    public var evictions: Int
    /// TTL entries dropped because they expired.
    public var expirations: Int
    /// The configured size; `nil` when unbounded.
    public var capacity: Int?
}
