import NanaWire
import Testing

@testable import NanaClient

/// The near-cache's bounded store: CLOCK (second chance) eviction, by entries and by bytes.
@Suite struct NearCacheStoreTests {
    private static let stamps = NearCacheStamps(keyWord: 300, keyStamp: 1, tableStamp: 1)

    private func put(_ store: inout NearCacheStore, _ key: String, bytes: Int = 100) {
        store.put(NanaKey(key), .value(.string(key)), Self.stamps, deadline: .max, bytes: bytes)
    }

    private func keys(_ store: NearCacheStore) -> [String] {
        var keys: [String] = []
        var slot = store.head
        while slot != NearCacheStore.none {
            keys.append(store.slots[slot].key.string)
            slot = store.slots[slot].next
        }
        return keys
    }

    @Test func theOldestEntryNotReadSinceGoesFirst() {
        var store = NearCacheStore(maximumEntries: 3, maximumBytes: 10_000)
        for key in ["a", "b", "c"] { put(&store, key) }
        store.touch(store.index["a"]!.slot)
        put(&store, "d")  // a is passed over (to the back, unmarked), b goes
        #expect(keys(store) == ["c", "a", "d"])
        #expect(store.index["b"] == nil)
        #expect(!store.used[store.index["a"]!.slot], "passing over clears the mark")
        for key: NanaKey in ["c", "a", "d"] { store.touch(store.index[key]!.slot) }
        put(&store, "e")  // every entry marked: each loses its mark in turn, then the oldest goes
        #expect(keys(store) == ["a", "d", "e"])
        #expect(store.index["e"] != nil, "the new entry is never the one evicted")
        put(&store, "a")  // a refill goes to the back
        #expect(keys(store) == ["d", "e", "a"])
        #expect(store.index.count == 3 && store.bytes == 300)
    }

    @Test func bytesAreBoundedToo() {
        var store = NearCacheStore(maximumEntries: 100, maximumBytes: 1000)
        for i in 0..<10 { put(&store, "k\(i)", bytes: 150) }
        #expect(store.bytes <= 1000)
        #expect(keys(store) == (4..<10).map { "k\($0)" })
        put(&store, "huge", bytes: 1001)
        #expect(store.index["huge"] == nil, "an entry larger than the whole store is not kept")
        #expect(store.bytes == 900)
    }

    @Test func removingAndReusingSlotsKeepsTheListWhole() {
        var store = NearCacheStore(maximumEntries: 10, maximumBytes: 10_000)
        for key in ["a", "b", "c", "d"] { put(&store, key) }
        store.remove(store.index["b"]!.slot)
        store.remove(store.index["d"]!.slot)
        put(&store, "e")
        #expect(keys(store) == ["a", "c", "e"])
        #expect(store.slots.count == 4, "freed slots are reused")
        store.removeAll()
        #expect(keys(store).isEmpty && store.bytes == 0 && store.index.isEmpty)
    }

    @Test func aFillUnderANewTableStampDropsEveryEntryReadUnderTheOld() {
        var store = NearCacheStore(maximumEntries: 10, maximumBytes: 10_000)
        for key in ["a", "b", "c"] { put(&store, key) }
        #expect(store.tableStamp == 1)
        let moved = NearCacheStamps(keyWord: 301, keyStamp: 5, tableStamp: 2)
        store.put("d", .value(.int(4)), moved, deadline: .max, bytes: 100)
        #expect(keys(store) == ["d"], "a, b and c were read before the table changed")
        #expect(store.tableStamp == 2 && store.invalidations == 3 && store.bytes == 100)
        #expect(store.index["d"]?.keyStamp == 5 && store.index["d"]?.keyWord == 301)
        store.tableMoved()
        #expect(store.index.isEmpty && store.tableStamp == nil && store.invalidations == 4)
    }

    @Test func anEntryIsFortyEightBytes() {
        // What a hit reads; with 10,000 entries the index is about the size of L2. NanaValue's
        // boxed map keeps a value to 17 bytes (a String and the case).
        #expect(MemoryLayout<NanaValue>.size == 17)
        #expect(MemoryLayout<NearCacheStore.Entry>.stride == 48)
    }

    @Test func sizesGrowWithTheValue() {
        #expect(NearCacheTable.cost("k", .value(.string(String(repeating: "x", count: 1000)))) > 1000)
        #expect(NearCacheTable.cost("k", .absent) < NearCacheTable.cost("k", .value(.int(1))) + 16)
        #expect(NearCacheTable.size(of: ["a": [1, 2, 3]]) > NearCacheTable.size(of: [1, 2, 3]))
    }
}
