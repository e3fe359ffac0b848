import Dispatch
import NanaWire
import Synchronization

/// How much one handle's near-cache may hold (``NanaClient/open(_:table:bulkLoad:optimize:cacheSizeMB:options:nearCache:)``).
///
/// The near-cache keeps values this process read, and answers a read of one of them without a
/// round trip while the daemon's stamps for its key and table are unchanged (PROTOCOL §10): a
/// write any client had acknowledged before the read began is always seen.
public struct NanaNearCache: Sendable, Hashable {
    /// Entries kept (when full, the oldest not read since eviction last passed it go first).
    public var maximumEntries: Int
    /// Bytes kept, counted as the keys' and values' sizes plus a fixed overhead per entry.
    public var maximumBytes: Int

    public init(maximumEntries: Int = 10_000, maximumBytes: Int = 8 << 20) {
        self.maximumEntries = maximumEntries
        self.maximumBytes = maximumBytes
    }

    /// 10,000 entries, 8 MiB.
    public static let `default` = NanaNearCache()
    /// Every read goes to the daemon.
    public static let off = NanaNearCache(maximumEntries: 0, maximumBytes: 0)

    public var isEnabled: Bool { maximumEntries > 0 && maximumBytes > 0 }
}

/// A handle's near-cache counters.
public struct NanaNearCacheStatistics: Sendable, Hashable {
    /// Reads answered in this process.
    public var hits: Int
    /// Reads that went to the daemon (no entry, an expired one, an invalidated one, or a
    /// transaction open).
    public var misses: Int
    /// Entries dropped because their stamps had changed (another write since they were read;
    /// a change to the whole table drops every entry of the handle's store at once).
    public var invalidations: Int
    public var entries: Int
    public var bytes: Int
}

/// What the near-cache knows about a key.
enum NearCacheAnswer: Sendable {
    case value(NanaValue)
    case absent
    /// Present, value unknown (learned from `contains`); answers `contains` only.
    case exists
}

/// The stamps a tracked reply vouched for a key's answer with.
struct NearCacheStamps: Sendable {
    var keyWord: Int
    var keyStamp: UInt64
    var tableStamp: UInt64
}

/// Whether the connection a near-cache belongs to is still up: after it is lost nothing is
/// answered from memory (a new daemon may be serving writes this process cannot see).
final class ConnectionLiveness: Sendable {
    private let alive = Atomic<Bool>(true)
    var isAlive: Bool { alive.load(ordering: .acquiring) }
    func lost() { alive.store(false, ordering: .releasing) }
}

/// The board a near-cache is checked against, and the connection it came through: a new
/// connection brings a new binding, and the entries read under the old one go.
struct NearCacheBinding: Sendable {
    /// Keeps the board shared with the connection's other near-caches (``BoardLease``).
    let lease: BoardLease
    /// `lease.board`, held directly: a hit reads it without going through the lease.
    let board: MappedBoard
    /// `board.stamps`: what a hit reads, without retaining the board.
    let stamps: BoardStamps
    let tableWord: Int
    let connection: ConnectionLiveness
    /// ``ClientConnection/id``: a reply fills the near-cache only while it is bound to the
    /// connection the reply came through.
    let connectionID: UInt64
}

/// One tracking handle's near-cache: entries checked against the file's board on every hit.
///
/// It lives as long as its handle and is bound to one connection's board at a time
/// (``bind(_:)``): after a reconnection it starts empty on the new board. Unbound, every read
/// is a miss.
///
/// A near-cache of at least ``shardingThreshold`` entries is split by key hash into
/// ``shardCount`` stores, each with an equal share of the limits and a lock of its own:
/// tasks reading one handle from several threads would otherwise queue on one lock (16 tasks on
/// 2 threads read at half the rate of one task). A smaller one stays one store.
final class NearCacheTable: Sendable {
    static let shardCount = 8
    static let shardingThreshold = 1024

    private let shards: [Shard]
    /// `shards`, unretained (the table owns them through `shards`): a hit reaches its shard
    /// without a retain and a release.
    private let unretainedShards: [Unmanaged<Shard>]

    private final class Shard: Sendable {
        /// The binding lives beside the entries, under the same lock: a hit takes one lock.
        let store: Mutex<(binding: NearCacheBinding?, entries: NearCacheStore)>
        init(_ store: NearCacheStore) { self.store = Mutex((nil, store)) }
    }

    init(limits: NanaNearCache) {
        let count = limits.maximumEntries >= Self.shardingThreshold ? Self.shardCount : 1
        shards = (0..<count).map { _ in
            Shard(NearCacheStore(maximumEntries: limits.maximumEntries / count, maximumBytes: limits.maximumBytes / count))
        }
        unretainedShards = shards.map { Unmanaged.passUnretained($0) }
    }

    /// Checks entries against `binding` from now on, dropping every entry read under another;
    /// `nil` leaves the near-cache empty and answering nothing.
    func bind(_ binding: NearCacheBinding?) {
        for shard in shards {
            shard.store.withLock { store in
                store.entries.removeAll()
                store.binding = binding
            }
        }
    }

    /// The board it is bound to now (for a transaction's bypass flag).
    var board: MappedBoard? { shards[0].store.withLock { $0.binding?.board } }

    /// The key's shard: the top bits of the hash the index uses too (the low bits pick its
    /// bucket), so a hit hashes the key once.
    @inline(__always)
    private func shardIndex(of key: NanaKey) -> Int {
        shards.count > 1 ? Int(truncatingIfNeeded: key.hash >> 61) : 0
    }

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// The answer for `key` if an entry is good: not expired, and both stamps it was read with
    /// still on the board. Anything else is a miss (`nil`), and a stale entry is dropped.
    /// - Parameter needsValue: an entry that knows only that the key exists does not answer.
    func lookup(_ key: String, needsValue: Bool) -> NearCacheAnswer? {
        let key = NanaKey(key)
        return unretainedShards[shardIndex(of: key)]._withUnsafeGuaranteedRef { $0.store.withLock { shard in
            // The binding's fields read in place (`shard.binding?.…`): a copy of the binding
            // retained and released its board and its connection on every hit (a direct loop of
            // hits over 10,000 keys: 168–177 ns a hit before, 144–151 after).
            guard shard.binding?.connection.isAlive == true, shard.binding?.board.inTransaction.load(ordering: .acquiring) == false,
                  let entry = shard.entries.index[key], let board = shard.binding?.stamps /* BoardStamps: no retain */,
                  let tableWord = shard.binding?.tableWord else {
                shard.entries.misses += 1
                return nil
            }
            if entry.deadline != .max, entry.deadline <= Self.now() {
                shard.entries.remove(entry.slot)
                shard.entries.misses += 1
                return nil
            }
            guard board.load(tableWord) == shard.entries.tableStamp else {
                shard.entries.tableMoved()  // every entry was read under the old table stamp
                shard.entries.misses += 1
                return nil
            }
            guard board.load(Int(entry.keyWord)) == entry.keyStamp else {
                shard.entries.remove(entry.slot)
                shard.entries.invalidations += 1
                shard.entries.misses += 1
                return nil
            }
            if needsValue, case .exists = entry.answer {
                shard.entries.misses += 1
                return nil
            }
            shard.entries.touch(entry.slot)
            shard.entries.hits += 1
            return entry.answer
        } }
    }

    /// Keeps what a tracked reply said about `key`, unless its stamps have already moved on.
    /// - Parameters:
    ///   - expiresIn: a TTL table's remaining life of the entry, in seconds.
    ///   - sentAt: when the request left (``now()``): the life counts from there.
    ///   - connectionID: the connection the reply came through.
    func fill(_ key: String, _ answer: NearCacheAnswer, _ stamps: NearCacheStamps, expiresIn: Double?, sentAt: UInt64, connectionID: UInt64) {
        let key = NanaKey(key)
        let deadline: UInt64 = expiresIn.map { life in
            guard life > 0 else { return 0 }
            let nanoseconds = life * 1e9
            return nanoseconds >= Double(UInt64.max - sentAt) ? .max : sentAt + UInt64(nanoseconds)
        } ?? .max
        if deadline == 0 { return }
        shards[shardIndex(of: key)].store.withLock { shard in
            guard let binding = shard.binding, binding.connectionID == connectionID, binding.connection.isAlive,
                  binding.board.load(stamps.keyWord) == stamps.keyStamp, binding.board.load(binding.tableWord) == stamps.tableStamp else { return }
            // Read in place: a copy of the store would make the put below copy it whole.
            if case .exists = answer, let entry = shard.entries.index[key], case .value = entry.answer,
               entry.keyStamp == stamps.keyStamp, shard.entries.tableStamp == stamps.tableStamp {
                return  // keep the value: it says more
            }
            shard.entries.put(key, answer, stamps, deadline: deadline, bytes: Self.cost(key.string, answer))
        }
    }

    func removeAll() { for shard in shards { shard.store.withLock { $0.entries.removeAll() } } }

    var statistics: NanaNearCacheStatistics {
        shards.reduce(into: NanaNearCacheStatistics(hits: 0, misses: 0, invalidations: 0, entries: 0, bytes: 0)) { total, shard in
            shard.store.withLock { shard in
                let store = shard.entries
                total.hits += store.hits
                total.misses += store.misses
                total.invalidations += store.invalidations
                total.entries += store.index.count
                total.bytes += store.bytes
            }
        }
    }

    /// An entry's size for the byte limit: the key, the value, and the bookkeeping around them.
    static func cost(_ key: String, _ answer: NearCacheAnswer) -> Int {
        let overhead = 96
        guard case .value(let value) = answer else { return overhead + key.utf8.count }
        return overhead + key.utf8.count + size(of: value)
    }

    static func size(of value: NanaValue) -> Int {
        switch value {
        case .nil, .bool, .int, .uint, .double: 9
        case .string(let s): 16 + s.utf8.count
        case .binary(let b): 16 + b.count
        case .array(let a): a.reduce(16) { $0 + size(of: $1) }
        case .map(let m): m.reduce(32) { $0 + 16 + $1.key.string.utf8.count + size(of: $1.value) }
        @unknown default: 16
        }
    }
}

/// The entries of one near-cache, oldest first, evicted by CLOCK (second chance), the usual
/// approximation of LRU: a dictionary into slots threaded on a doubly linked list by index in
/// the order they were filled. A hit only marks its slot used (``touch(_:)``); eviction takes
/// the head, except that a used head loses its mark and goes to the back instead. An exact LRU
/// would relink the slot on every hit, writing three slots where this writes one. The Python
/// drop-in evicts the same way (_near.py).
struct NearCacheStore {
    /// What a hit reads, kept in the index itself: a hit is one dictionary lookup and the
    /// board, with no second random access into `slots` (a direct loop of hits over 10,000
    /// keys: 145–194 ns a hit with the entries in `slots`, 135–147 here; 3 interleaved pairs).
    /// Kept to 48 bytes (the table stamp is the store's, the word and slot 32-bit): with
    /// 10,000 entries the index and the board's words in use are about the size of L2.
    struct Entry {
        var answer: NearCacheAnswer
        var keyStamp: UInt64
        /// Uptime nanoseconds past which the entry is not used; `.max` for none.
        var deadline: UInt64
        /// The board word of the key's slot (a board has fewer than 2³² words).
        var keyWord: UInt32
        var storedSlot: Int32
        var slot: Int { Int(storedSlot) }
    }

    /// Eviction's bookkeeping: the CLOCK order, and what to forget.
    struct Slot {
        var key: NanaKey
        var bytes: Int
        var previous: Int
        var next: Int
    }

    static let none = -1
    let maximumEntries: Int
    let maximumBytes: Int
    /// The table stamp every entry was read under; nil while empty. A fill under a newer one
    /// (the table changed as a whole: a clear, raw SQL, a restore) drops the rest first.
    private(set) var tableStamp: UInt64?
    /// By the keys' bytes: the daemon's rows "é" and "e\u{301}" are two entries, not one
    /// `String` key.
    var index: [NanaKey: Entry] = [:]
    var slots: [Slot] = []
    /// Read since eviction last passed the slot over (CLOCK's mark), beside `slots`: a hit
    /// writes one byte of this small array.
    var used: [Bool] = []
    var free: [Int] = []
    var head = NearCacheStore.none
    var tail = NearCacheStore.none
    var bytes = 0
    var hits = 0
    var misses = 0
    var invalidations = 0

    init(maximumEntries: Int, maximumBytes: Int) {
        self.maximumEntries = maximumEntries
        self.maximumBytes = maximumBytes
    }

    mutating func put(_ key: NanaKey, _ answer: NearCacheAnswer, _ stamps: NearCacheStamps, deadline: UInt64, bytes cost: Int) {
        if stamps.tableStamp != tableStamp {
            if tableStamp != nil { tableMoved() }
            tableStamp = stamps.tableStamp
        }
        if let entry = index[key] { remove(entry.slot) }
        guard maximumEntries > 0, cost <= maximumBytes else { return }
        // Room is made before the entry goes in, so that the new entry is never the one evicted.
        while head != Self.none, index.count >= maximumEntries || bytes + cost > maximumBytes {
            let oldest = head
            if used[oldest] {
                used[oldest] = false  // a second chance: to the back, unmarked
                unlink(oldest)
                append(oldest)
            } else {
                remove(oldest)
            }
        }
        let record = Slot(key: key, bytes: cost, previous: Self.none, next: Self.none)
        let slot: Int
        if let reused = free.popLast() {
            slots[reused] = record
            used[reused] = false
            slot = reused
        } else {
            slot = slots.count
            slots.append(record)
            used.append(false)
        }
        index[key] = Entry(answer: answer, keyStamp: stamps.keyStamp, deadline: deadline, keyWord: UInt32(truncatingIfNeeded: stamps.keyWord), storedSlot: Int32(slot))
        bytes += cost
        append(slot)
    }

    /// A hit: marks the slot used, so that eviction passes it over once.
    @inline(__always)
    mutating func touch(_ slot: Int) {
        used[slot] = true
    }

    mutating func remove(_ slot: Int) {
        unlink(slot)
        index[slots[slot].key] = nil  // and the value with it
        bytes -= slots[slot].bytes
        slots[slot].key = ""
        used[slot] = false
        free.append(slot)
    }

    /// The table's stamp moved on: every entry is stale, and each counts as an invalidation.
    mutating func tableMoved() {
        invalidations += index.count
        removeAll()
    }

    mutating func removeAll() {
        tableStamp = nil
        index.removeAll()
        slots.removeAll()
        used.removeAll()
        free.removeAll()
        head = Self.none
        tail = Self.none
        bytes = 0
    }

    private mutating func append(_ slot: Int) {
        slots[slot].previous = tail
        slots[slot].next = Self.none
        if tail != Self.none { slots[tail].next = slot } else { head = slot }
        tail = slot
    }

    private mutating func unlink(_ slot: Int) {
        let previous = slots[slot].previous, next = slots[slot].next
        if previous != Self.none { slots[previous].next = next } else { head = next }
        if next != Self.none { slots[next].previous = previous } else { tail = previous }
    }
}
