import Synchronization
import Testing

@testable import NanaStorage

/// A clock the test moves by hand, so that TTL tests never sleep.
final class ManualClock: Sendable {
    private let nanoseconds = Mutex<UInt64>(0)

    func advance(seconds: Double) { nanoseconds.withLock { $0 += UInt64(seconds * 1e9) } }

    var now: @Sendable () -> UInt64 { { self.nanoseconds.withLock { $0 } } }
}

private func value(_ n: Int) -> EncodedValue { EncodedValue(bytes: Array("\(n)".utf8)) }

extension TableCache {
    /// A writer committing one key, as KeyValueTable publishes it.
    func write(_ key: String, _ n: Int) { apply([.set(key, value(n))]) }

    /// A reader's miss path: read `sequence`, then fill.
    func load(_ key: String, _ entry: CacheEntry) { fill(key, entry, readAt: sequence) }

    func cachedKeys(_ candidates: [String]) -> [String] { candidates.filter { contains($0) } }
}

@Suite struct TableCacheTests {
    // MARK: Eviction order

    @Test func fifoLimitEvictsByFirstInsertionAndUpdatesDoNotMove() {
        let cache = TableCache(strategy: .unbounded(limit: 3))
        for key in ["a", "b", "c"] { cache.write(key, 1) }
        cache.write("a", 2)  // an update: "a" stays first in line
        cache.write("d", 1)
        #expect(cache.cachedKeys(["a", "b", "c", "d"]) == ["b", "c", "d"])
        cache.write("e", 1)
        #expect(cache.cachedKeys(["a", "b", "c", "d", "e"]) == ["c", "d", "e"])
        #expect(cache.statistics.evictions == 2)
    }

    @Test func ttlLimitMovesAReSetKeyToTheBack() {
        let cache = TableCache(strategy: .ttl(seconds: 60, limit: 3), now: ManualClock().now)
        for key in ["a", "b", "c"] { cache.write(key, 1) }
        cache.write("a", 2)  // re-set: "a" goes to the back, "b" is now first in line
        cache.write("d", 1)
        #expect(cache.cachedKeys(["a", "b", "c", "d"]) == ["a", "c", "d"])
        #expect(cache.lookup("a") == .present(value(2)))
    }

    @Test func lruEvictsTheLeastRecentlyUsedAndReadsAndWritesRefresh() {
        let cache = TableCache(strategy: .lru(capacity: 3))
        for key in ["a", "b", "c"] { cache.write(key, 1) }
        #expect(cache.lookup("a") == .present(value(1)))  // "b" is now least recently used
        cache.write("d", 1)
        #expect(cache.cachedKeys(["a", "b", "c", "d"]) == ["a", "c", "d"])
        cache.write("c", 2)  // a write refreshes too: "a" is now least recently used
        cache.load("e", .present(value(1)))  // so does a fill of a new key, at the back
        #expect(cache.cachedKeys(["a", "b", "c", "d", "e"]) == ["c", "d", "e"])
        #expect(cache.statistics.evictions == 2)
    }

    @Test(arguments: [CacheStrategy.unbounded(limit: 2), .lru(capacity: 2), .ttl(seconds: 60, limit: 2)])
    func absenceMarkersTakeCapacityAndAreEvictable(strategy: CacheStrategy) {
        let cache = TableCache(strategy: strategy, now: ManualClock().now)
        cache.load("gone", .absent)
        cache.apply([.remove("deleted")])
        #expect(cache.statistics.absentKeys == 2)
        cache.write("v", 1)
        #expect(!cache.contains("gone"))
        #expect(cache.lookup("deleted") == .absent)
        let statistics = cache.statistics
        #expect(statistics.absentKeys == 1)
        #expect(statistics.entries == 1)
        #expect(statistics.evictions == 1)
    }

    @Test func plainUnboundedCapsAbsenceMarkersButNotValues() {
        let cache = TableCache()
        let limit = TableCache.absentMarkerLimit
        #expect(limit == 65_536)
        cache.apply((0..<(limit + 10)).map { .set("v\($0)", value($0)) })
        cache.apply([.remove("became-value")])
        cache.write("became-value", 1)  // leaves the absence order: it must never be evicted
        for n in 0..<(limit + 10) { cache.load("m\(n)", .absent) }
        let statistics = cache.statistics
        #expect(statistics.entries == limit + 11)
        #expect(statistics.absentKeys == limit)
        #expect(statistics.evictions == 10)
        #expect(statistics.capacity == nil)
        #expect(cache.cachedKeys(["m0", "m9", "m10", "m\(limit + 9)"]) == ["m10", "m\(limit + 9)"])
        #expect(cache.lookup("v0") == .present(value(0)))
        #expect(cache.lookup("became-value") == .present(value(1)))
    }

    // MARK: TTL

    @Test func ttlEntriesExpireOnLookupWithoutSliding() {
        let clock = ManualClock()
        let cache = TableCache(strategy: .ttl(seconds: 10, limit: nil), now: clock.now)
        cache.write("a", 1)
        clock.advance(seconds: 9)
        #expect(cache.lookup("a") == .present(value(1)))  // a read does not extend the life
        clock.advance(seconds: 1)
        #expect(cache.lookup("a") == nil)
        var statistics = cache.statistics
        #expect(statistics.hits == 1)
        #expect(statistics.misses == 1)
        #expect(statistics.expirations == 1)
        #expect(statistics.entries == 0)

        cache.load("a", .present(value(2)))  // loading sets a fresh life, as writing does
        clock.advance(seconds: 9.5)
        #expect(cache.lookup("a") == .present(value(2)))
        cache.write("a", 3)  // at 19.5 s: lives until 29.5 s
        clock.advance(seconds: 9.5)
        #expect(cache.lookup("a") == .present(value(3)))
        clock.advance(seconds: 0.5)
        #expect(cache.lookup("a") == nil)
        statistics = cache.statistics
        #expect(statistics.expirations == 2)
    }

    @Test func lookupExpiresAnEntryTheSweepHasNotReached() {
        let clock = ManualClock()
        let cache = TableCache(strategy: .ttl(seconds: 1, limit: nil), now: clock.now)
        let count = 2 * TableCache.sweepBudget
        cache.apply((0..<count).map { .set("k\($0)", value($0)) })
        clock.advance(seconds: 1)
        #expect(cache.lookup("k\(count - 1)") == nil)  // the last to expire, far behind the sweep
        #expect(cache.statistics.misses == 1)
    }

    @Test func expiredAbsenceMarkersExpireToo() {
        let clock = ManualClock()
        let cache = TableCache(strategy: .ttl(seconds: 1, limit: nil), now: clock.now)
        cache.load("gone", .absent)
        #expect(cache.lookup("gone") == .absent)
        clock.advance(seconds: 1)
        #expect(cache.lookup("gone") == nil)
    }

    @Test func mutatingCallsSweepExpiredEntriesFromTheFront() {
        let clock = ManualClock()
        let cache = TableCache(strategy: .ttl(seconds: 10, limit: nil), now: clock.now)
        cache.write("a", 1)
        cache.write("b", 1)
        clock.advance(seconds: 5)
        cache.write("c", 1)
        clock.advance(seconds: 5)
        #expect(cache.statistics.entries == 3)  // expired, but nothing has touched the cache yet
        cache.write("d", 1)
        var statistics = cache.statistics
        #expect(statistics.entries == 2)  // "a" and "b" swept without being looked up
        #expect(statistics.expirations == 2)

        // The sweep is incremental: one call removes a bounded number.
        let many = 3 * TableCache.sweepBudget
        cache.apply((0..<many).map { .set("k\($0)", value($0)) })
        clock.advance(seconds: 10)
        let before = cache.statistics.entries
        cache.forget("unrelated")
        statistics = cache.statistics
        #expect(before - statistics.entries == TableCache.sweepBudget)
        for _ in 0..<3 { cache.forget("unrelated") }
        #expect(cache.statistics.entries == 0)
    }

    @Test func containsIsFalseAfterExpiry() {
        let clock = ManualClock()
        let cache = TableCache(strategy: .ttl(seconds: 5, limit: nil), now: clock.now)
        cache.write("a", 1)
        cache.load("gone", .absent)
        clock.advance(seconds: 4.999)
        #expect(cache.contains("a"))
        #expect(cache.contains("gone"))
        clock.advance(seconds: 0.001)
        #expect(!cache.contains("a"))
        #expect(!cache.contains("gone"))
        #expect(cache.statistics.hits == 0)  // `contains` does not count
    }

    // MARK: Completeness

    @Test(arguments: [CacheStrategy.unbounded(limit: 10), .lru(capacity: 10), .ttl(seconds: 60, limit: nil)])
    func boundedCachesNeverClaimToHoldEveryRow(strategy: CacheStrategy) {
        let cache = TableCache(strategy: strategy, now: ManualClock().now)
        cache.fillAll([("a", value(1)), ("b", value(2))], readAt: cache.sequence)
        #expect(!cache.isFullyLoaded)
        #expect(cache.lookup("a") == .present(value(1)))
        #expect(cache.lookup("never-seen") == nil)
        cache.apply([.removeAll])
        #expect(!cache.isFullyLoaded)
        #expect(!cache.contains("a"))
    }

    @Test func plainUnboundedIsCompleteAfterAFullScan() {
        let cache = TableCache()
        cache.fillAll([("a", value(1))], readAt: cache.sequence)
        #expect(cache.isFullyLoaded)
        #expect(cache.lookup("never-seen") == .absent)
        #expect(cache.contains("never-seen"))
        cache.forget("a")
        #expect(!cache.isFullyLoaded)
        cache.apply([.removeAll])
        #expect(cache.isFullyLoaded)  // the table is empty and we know it
        cache.clear()
        #expect(!cache.isFullyLoaded)
    }

    @Test func aKeyForgottenDuringAFullScanKeepsTheCacheIncomplete() {
        let cache = TableCache()
        let readAt = cache.sequence
        cache.forget("added-by-direct-sql")  // the scan may have missed it
        cache.fillAll([("a", value(1))], readAt: readAt)
        #expect(!cache.isFullyLoaded)
        #expect(cache.lookup("added-by-direct-sql") == nil)
    }

    // MARK: Strategies

    @Test func validationRejectsWithNanaSQLiteMessages() throws {
        let lru = "cache_size must be a positive integer when using LRU strategy"
        let ttl = "cache_ttl must be a positive value when using TTL strategy"
        let rejected: [(CacheStrategy, String)] = [
            (.lru(capacity: 0), lru),
            (.lru(capacity: -5), lru),
            (.ttl(seconds: 0, limit: nil), ttl),
            (.ttl(seconds: -1, limit: nil), ttl),
            (.ttl(seconds: .nan, limit: nil), ttl),
            (.ttl(seconds: .infinity, limit: nil), "cache_ttl must be a finite value when using TTL strategy"),
            (.ttl(seconds: 1, limit: 0), "cache_size must be a positive integer when using TTL strategy"),
            (.unbounded(limit: 0), "cache_size must be a positive integer when using unbounded strategy"),
            (.unbounded(limit: -1), "cache_size must be a positive integer when using unbounded strategy"),
        ]
        for (strategy, message) in rejected {
            #expect(throws: StorageError(.valueError, message)) { try strategy.validated() }
        }
        let accepted: [CacheStrategy] = [
            .default, .unbounded(limit: 1), .lru(capacity: 1), .ttl(seconds: 0.001, limit: nil), .ttl(seconds: 1e300, limit: 1),
        ]
        for strategy in accepted { #expect(try strategy.validated() == strategy) }

        #expect(CacheStrategy.default == .unbounded(limit: nil))
        #expect(CacheStrategy.default.isComplete)
        #expect(!CacheStrategy.unbounded(limit: 1).isComplete)
        #expect(!CacheStrategy.lru(capacity: 1).isComplete)
        #expect(!CacheStrategy.ttl(seconds: 1, limit: nil).isComplete)
    }

    @Test func aHugeTTLNeverExpires() {
        let clock = ManualClock()
        let cache = TableCache(strategy: .ttl(seconds: 1e300, limit: nil), now: clock.now)
        clock.advance(seconds: 1e9)
        cache.write("a", 1)
        clock.advance(seconds: 1e9)
        #expect(cache.lookup("a") == .present(value(1)))
    }

    @Test func statisticsCountHitsMissesAndCapacity() {
        let cache = TableCache(strategy: .lru(capacity: 2))
        #expect(cache.lookup("a") == nil)
        cache.load("a", .present(value(1)))
        cache.load("b", .absent)
        #expect(cache.lookup("a") == .present(value(1)))
        #expect(cache.lookup("b") == .absent)
        cache.write("c", 1)  // evicts "a", read before "b"
        #expect(cache.statistics == CacheStatistics(entries: 1, absentKeys: 1, hits: 2, misses: 1, evictions: 1, expirations: 0, capacity: 2))

        #expect(TableCache().statistics.capacity == nil)
        #expect(TableCache(strategy: .unbounded(limit: 7)).statistics.capacity == 7)
        #expect(TableCache(strategy: .ttl(seconds: 1, limit: nil)).statistics.capacity == nil)
        #expect(TableCache(strategy: .ttl(seconds: 1, limit: 4)).statistics.capacity == 4)
    }

    // MARK: Coherence

    @Test(arguments: [CacheStrategy.lru(capacity: 1), .unbounded(limit: 1), .ttl(seconds: 60, limit: 1)])
    func aFillAfterAWriteIsRefusedEvenWhenTheWrittenEntryWasEvicted(strategy: CacheStrategy) {
        let cache = TableCache(strategy: strategy, now: ManualClock().now)
        let readAt = cache.sequence  // a slow reader reads the old value of "k" from SQLite…
        cache.write("k", 2)  // …the writer commits a new one…
        cache.write("other", 1)  // …which is evicted…
        #expect(!cache.contains("k"))
        cache.fill("k", .present(value(1)), readAt: readAt)  // …before the reader gets back
        #expect(cache.lookup("k") == nil)
        cache.load("k", .present(value(2)))  // a read that began after the write is fine
        #expect(cache.lookup("k") == .present(value(2)))
    }

    @Test func aFillAfterAnExpiredWriteIsRefused() {
        let clock = ManualClock()
        let cache = TableCache(strategy: .ttl(seconds: 1, limit: nil), now: clock.now)
        let readAt = cache.sequence
        cache.apply([.remove("k")])
        clock.advance(seconds: 2)
        cache.fill("k", .present(value(1)), readAt: readAt)
        #expect(cache.lookup("k") == nil)
    }

    @Test func aFillAfterAClearIsRefused() {
        let cache = TableCache()
        var readAt = cache.sequence
        cache.clear()
        cache.fill("k", .present(value(1)), readAt: readAt)
        #expect(!cache.contains("k"))

        readAt = cache.sequence
        cache.apply([.removeAll])
        cache.fill("k", .present(value(1)), readAt: readAt)
        cache.fillAll([("k", value(1))], readAt: readAt)
        #expect(cache.lookup("k") == .absent)  // known empty, not the stale row
    }

    @Test func aFillAfterForgetIsRefused() {
        let cache = TableCache()
        let readAt = cache.sequence
        cache.forget("k")
        cache.fill("k", .present(value(1)), readAt: readAt)
        #expect(!cache.contains("k"))
    }

    @Test func aFillWithNoInterveningWriteIsAccepted() throws {
        let cache = TableCache(strategy: .lru(capacity: 10))
        let otherSlot = try #require((0..<100).map { "other\($0)" }.first {
            TableCache.writeStampSlot(of: $0) != TableCache.writeStampSlot(of: "k")
        })
        let readAt = cache.sequence
        cache.write(otherSlot, 1)  // a write to a key in another slot does not matter
        cache.fill("k", .present(value(1)), readAt: readAt)
        #expect(cache.lookup("k") == .present(value(1)))
        // A fill never replaces a live entry, which is at least as new.
        cache.fill("k", .present(value(0)), readAt: cache.sequence)
        #expect(cache.lookup("k") == .present(value(1)))
    }

    @Test func aWriteToAKeySharingTheSlotOnlyCostsTheFill() throws {
        let cache = TableCache()
        let slot = TableCache.writeStampSlot(of: "k")
        let neighbour = try #require((0..<1_000_000).lazy.map { "n\($0)" }.first { TableCache.writeStampSlot(of: $0) == slot })
        let readAt = cache.sequence
        cache.write(neighbour, 1)
        cache.fill("k", .present(value(1)), readAt: readAt)
        #expect(!cache.contains("k"))
        cache.load("k", .present(value(1)))
        #expect(cache.contains("k"))
    }

    @Test func fillAllSkipsKeysWrittenDuringTheScan() {
        let cache = TableCache()
        let readAt = cache.sequence
        cache.write("a", 2)
        cache.apply([.remove("b")])
        cache.fillAll([("a", value(1)), ("b", value(1)), ("c", value(1))], readAt: readAt)
        #expect(cache.lookup("a") == .present(value(2)))
        #expect(cache.lookup("b") == .absent)
        #expect(cache.lookup("c") == .present(value(1)))
        #expect(cache.isFullyLoaded)
    }

    @Test func fillAllSkipsKeysWrittenDuringTheScanEvenWhenEvicted() {
        let cache = TableCache(strategy: .lru(capacity: 2))
        let readAt = cache.sequence
        cache.write("a", 2)
        cache.write("x", 1)
        cache.write("y", 1)  // evicts the writer's "a"
        cache.fillAll([("a", value(1)), ("c", value(1))], readAt: readAt)
        #expect(!cache.contains("a"))
        #expect(cache.lookup("c") == .present(value(1)))
    }
}
