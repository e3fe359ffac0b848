import Foundation
import NanaClient
import NanaWire
import Testing

/// The near-cache (PROTOCOL §10): the real nanad, readers and writers in separate OS processes,
/// and hostile clients as another uid.
@Suite(.serialized) struct NearCacheTests {
    /// Process A changes data, waits for the acknowledgement and tells process B over a pipe;
    /// B reads through its near-cache and must see the change: every kind of change, a
    /// ROLLBACK that must change nothing, and restarts of the daemon (SIGKILL and SIGTERM).
    @Test func aNearCacheInAnotherProcessNeverReadsOlderThanAnAcknowledgedWrite() async throws {
        let run = try await runTool("nanabench", ["coherence", "--rounds", "5000", "--restart-every", "1000"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let summary = try JSONReader.value(from: Array((run.stdout.split(separator: "\n").first ?? "").utf8))
        #expect(summary["stale"] == 0, "\(run.stdout)")
        #expect(summary["rounds"] == 5000)
        #expect(summary["restarts"] == 5)
        #expect(summary["reconnections"] == 5)
        // The check means something only if B's reads were answered from its near-cache, and
        // entries were found stale and refused.
        #expect((summary["hits"]?.int64Value ?? 0) > 5000, "\(run.stdout)")
        #expect((summary["invalidations"]?.int64Value ?? 0) > 2000, "\(run.stdout)")
    }

    /// Four processes make random gets (through their near-caches) and sets on 100 keys for
    /// 30 s; a checker confirms that every read returned a value that was current at some
    /// instant between its start and its end.
    @Test func fourProcessesReadingAndWritingForThirtySecondsReadNothingStale() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let run = try await runTool("nanabench", ["near-mix", "--socket", daemon.socketPath, "--processes", "4", "--seconds", "30", "--keys", "100"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        let summary = try JSONReader.value(from: Array((run.stdout.split(separator: "\n").first ?? "").utf8))
        #expect(summary["stale"] == 0, "\(run.stdout)")
        #expect((summary["reads"]?.int64Value ?? 0) > 10_000, "\(run.stdout)")
        #expect((summary["writes"]?.int64Value ?? 0) > 2_000, "\(run.stdout)")
        #expect((summary["hits"]?.int64Value ?? 0) > 1_000, "\(run.stdout)")
        #expect((summary["invalidations"]?.int64Value ?? 0) > 1_000, "\(run.stdout)")
        try await daemon.stop()
    }

    @Test func aHitMakesNoRoundTripAndAWriteFromAnotherClientEndsIt() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("hits.db")
        try await db.set("k", "v1")
        #expect(try await db.get("k") == "v1")  // a miss: fills the near-cache
        let before = try await getCalls(client)
        for _ in 0..<100 { #expect(try await db.get("k") == "v1") }
        #expect(try await db.contains("k"))
        #expect(try await db.batchGet(["k"]) == ["k": "v1"])
        #expect(try await getCalls(client) == before, "hits went to the daemon")
        #expect(db.nearCacheStatistics?.hits == 102)

        // Absence is cached too, and a write from another connection ends it.
        #expect(try await db.get("gone", default: 7) == 7)
        #expect(try await db.get("gone", default: 8) == 8)
        let other = try await daemon.connect()
        let writer = try await other.open("hits.db", nearCache: .off)
        try await writer.set("k", "v2")
        try await writer.set("gone", "here")
        #expect(try await db.get("k") == "v2")
        #expect(try await db.get("gone") == "here")
        #expect((db.nearCacheStatistics?.invalidations ?? 0) >= 2)

        // A handle with the near-cache off never hits; nor does a closed connection.
        #expect(try await writer.get("k") == "v2")
        #expect(writer.nearCacheStatistics == nil)
        await client.close()
        await #expect(throws: NanaClientError.self) { try await db.get("k") }
        await other.close()
        try await daemon.stop()
    }

    @Test func aClientSetsTheDefaultAndSumsItsHandlesCounters() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let plain = try await NanaClient.connect(socketPath: daemon.socketPath, nearCache: .off)
        let untracked = try await plain.open("client.db")
        try await untracked.set("k", 1)
        #expect(try await untracked.get("k") == 1)
        #expect(untracked.nearCacheStatistics == nil)
        let tracked = try await plain.open("client.db", nearCache: .default)  // the handle overrides its client
        #expect(try await tracked.get("k") == 1)
        #expect(try await tracked.get("k") == 1)
        #expect(tracked.nearCacheStatistics?.hits == 1)
        let other = try await tracked.table("other")
        try await other.set("o", 2)
        for _ in 0..<3 { #expect(try await other.get("o") == 2) }
        let total = plain.nearCacheStatistics
        #expect(total.hits == 3 && total.misses == 2 && total.entries == 2)
        await plain.close()
        try await daemon.stop()
    }

    @Test func theNearCacheStaysWithinItsLimitsAndTransactionsBypassIt() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("limits.db", nearCache: NanaNearCache(maximumEntries: 10, maximumBytes: 1 << 20))
        var rows = NanaParams()
        for i in 0..<50 { rows["k\(i)"] = .int(Int64(i)) }
        try await db.batchUpdate(rows)
        for i in 0..<50 { #expect(try await db.get("k\(i)") == .int(Int64(i))) }
        #expect(db.nearCacheStatistics?.entries == 10)
        // The ten kept are the ten read last.
        for i in 40..<50 { _ = try await db.get("k\(i)") }
        #expect(db.nearCacheStatistics?.hits == 10)

        let small = try await client.open("limits.db", table: "small", nearCache: NanaNearCache(maximumEntries: 1000, maximumBytes: 4096))
        try await small.set("big", .string(String(repeating: "x", count: 8192)))
        _ = try await small.get("big")
        #expect(small.nearCacheStatistics?.entries == 0, "an entry larger than the byte limit is not kept")
        try await small.batchUpdate(["a": 1, "b": 2])
        _ = try await small.batchGet(["a", "b", "c"])
        #expect(small.nearCacheStatistics?.entries == 3, "batch_get fills every key asked for, absent ones too")

        // Inside a transaction the session sees its own writes, not the near-cache's entry.
        #expect(try await db.get("k45") == 45)
        try await db.beginTransaction()
        try await db.set("k45", "in transaction")
        #expect(try await db.get("k45") == "in transaction")
        try await db.rollback()
        #expect(try await db.get("k45") == 45)
        await client.close()
        try await daemon.stop()
    }

    @Test func statsShowEachBoardAndTheNearCacheCanBeTurnedOff() async throws {
        let daemon = try await Daemon.start(arguments: ["--near-cache-slots", "1024"])
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("stats.db")
        try await db.set("k", 1)
        _ = try await db.get("k")
        let stats = try await client.stats()
        let file = stats["databases"]?.arrayValue?.first { $0["path"]?.stringValue?.hasSuffix("stats.db") == true }
        #expect(file?["board"]?["key_slots"] == 1024)
        #expect(file?["board"]?["bytes"] == .int(Int64((8 + 256 + 1024) * 8)))
        #expect(file?["board"]?["generation"]?.uint64Value != nil)
        #expect(stats["server"]?["near_cache"] == true)
        await client.close()
        try await daemon.stop()
        #expect((try? FileManager.default.contentsOfDirectory(atPath: daemon.socketPath + ".boards")) == nil, "shutdown removes the boards and their folder")

        let off = try await Daemon.start(arguments: ["--near-cache-slots", "0"], folder: daemon.folder)
        let plain = try await off.connect()
        let reply = try await plain.call("open", ["db_path": "stats.db", "near_cache": true])
        #expect(reply["board"] == nil)
        #expect(reply["near_cache_refused"] != nil)
        let handle = try await plain.open("stats.db")
        #expect(try await handle.get("k") == 1)
        #expect(try await handle.get("k") == 1)
        // No board offered: nothing is kept, every read is a miss.
        let counters = try #require(handle.nearCacheStatistics)
        #expect(counters.hits == 0 && counters.misses == 2 && counters.entries == 0 && counters.bytes == 0, "\(counters)")
        await plain.close()
        try await off.stop()

        let bad = try await runProgram(binFolder.appendingPathComponent("nanad"), ["--near-cache-slots", "1000", "--socket", daemon.folder + "/x.sock", "--data-dir", daemon.dataDirectory])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("power of two"), "\(bad.stderr)")
    }

    /// A daemon killed with SIGKILL leaves its boards behind; the next one bumps every table
    /// stamp on them (a client that has not noticed yet must miss) and removes them before it
    /// serves anyone.
    @Test func aKilledDaemonsBoardsAreInvalidatedBeforeTheNextOneServes() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("killed.db")
        try await db.set("k", 1)
        _ = try await db.get("k")
        let folder = daemon.socketPath + ".boards"
        let names = try FileManager.default.contentsOfDirectory(atPath: folder)
        #expect(names.count == 1)
        let path = folder + "/" + (names.first ?? "")
        let before = try Self.tableStamps(path)
        try await daemon.stop(SIGKILL)
        #expect(FileManager.default.fileExists(atPath: path), "a killed daemon cannot clean up")
        let mapped = try Self.mapTableStamps(path)
        let next = try await Daemon.start(folder: daemon.folder)
        #expect(!FileManager.default.fileExists(atPath: path))
        #expect(zip(before, mapped()).allSatisfy { $0 + 1 == $1 }, "every table stamp bumped once")
        await client.close()
        try await next.stop()
    }

    /// As another uid: a peer that may open mine.db gets its board read-only and can do
    /// nothing to it; a token granted to someone else, a forged or replayed one, and stamps
    /// sent with a call are refused; a file the rules do not admit gets no board at all.
    @Test func anotherUserCanNeitherWriteABoardNorTakeOneItWasNotGranted() async throws {
        let daemon = try await ReadOnlyAccessTests.seededDaemon(rules: """
            [{"uids": [0], "databases": ["*"]}, {"uids": [65534], "databases": ["mine.db"]}]
            """)
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let mine = try await client.open("mine.db")
        #expect(try await mine.get("mine") == true)
        let granted = try await client.call("open", ["db_path": "mine.db", "near_cache": true])
        guard case .binary(let rootToken)? = granted["board"]?["token"] else { throw HarnessError(description: "no board: \(granted)") }
        let stolen = rootToken.map { String(format: "%02x", $0) }.joined()
        let nanabench = binFolder.appendingPathComponent("nanabench").path
        func hostile(_ db: String, _ extra: [String] = []) async throws -> NanaValue {
            let run = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                                                                                   nanabench, "near-hostile", "--socket", daemon.socketPath, "--db", db] + extra)
            #expect(run.status == 0, "\(run.stderr)")
            return try JSONReader.value(from: Array(run.stdout.utf8))
        }
        let attack = try await hostile("mine.db", ["--stolen-token", stolen])
        #expect(attack["open"] == "ALLOWED")
        #expect(attack["own_token"] == "granted")
        #expect(attack["private_mapping_writes"] == "stayed private")
        for attempt in ["mmap_shared_writable", "mprotect_writable", "reopen_writable", "write_descriptor", "truncate_descriptor",
                        "chmod_descriptor", "redeem_twice", "garbage_token", "short_request", "stolen_token", "forged_stamps_in_get"] {
            #expect(attack[attempt]?.stringValue?.hasPrefix("refused") == true, "\(attempt): \(attack[attempt] ?? .nil)")
        }
        #expect(attack["stolen_token"]?.stringValue?.contains("another user") == true)
        let secret = try await hostile("secret.db")
        #expect(secret["open"]?.stringValue?.contains("not allowed to open") == true)
        #expect(secret["own_token"] == nil)

        // The board still vouches for what it did: a write is seen, an unchanged key still hits.
        let hits = mine.nearCacheStatistics?.hits ?? 0
        #expect(try await mine.get("mine") == true)
        #expect(mine.nearCacheStatistics?.hits == hits + 1)
        let other = try await daemon.connect()
        try await (try await other.open("mine.db", nearCache: .off)).set("mine", false)
        #expect(try await mine.get("mine") == false)
        await other.close()
        await client.close()
        try await daemon.stop()
    }

    /// Clients that connect to the board socket and say nothing, or half a request, or
    /// garbage, delay nobody: a client opening a tracking handle meanwhile gets its board at
    /// once, and each silent one is answered "bad request" after the request timeout.
    @Test func silentOrBrokenBoardRequestsDelayNobody() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let boardSocket = daemon.socketPath + ".board"
        var silent: [Int32] = []
        for i in 0..<20 {
            let fd = try unixSocket(SOCK_STREAM, path: boardSocket, "connect", connect)
            if i == 0 { _ = Array("NB".utf8).withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) } }
            silent.append(fd)
        }
        let garbage = try unixSocket(SOCK_STREAM, path: boardSocket, "connect", connect)
        _ = Array("GET / HTTP/1.1\r\n\r\n".utf8).withUnsafeBytes { send(garbage, $0.baseAddress, $0.count, 0) }
        let client = try await daemon.connect()
        let started = ContinuousClock.now
        let db = try await client.open("silent.db")
        #expect(db.nearCacheStatistics != nil, "no board while others were silent")
        #expect(ContinuousClock.now - started < .milliseconds(400))
        // The garbage is refused at once, the silent ones after the request timeout.
        for fd in [garbage] + silent {
            var status: UInt8 = 0xFF
            var timeout = timeval(tv_sec: 3, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            #expect(recv(fd, &status, 1, 0) == 1)
            #expect(status == 4)
            close(fd)
        }
        try await db.set("k", 1)
        #expect(try await db.get("k") == 1)
        await client.close()
        #expect(try await daemon.stop() == 0)
    }

    /// A second handle on a file reuses the board the client already maps, leaving its token
    /// unused; once the file is closed and the token has expired (10 s), the daemon holds
    /// nothing of the board (its descriptor is gone).
    @Test func anUnusedTokenHoldsNothingOnceItExpires() async throws {
        let daemon = try await Daemon.start(arguments: ["--close-idle-files-after", "0.2"])
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let baseline = try await client.stats()["server"]?["descriptors"]?.int64Value ?? -1
        let first = try await client.open("token.db")
        let second = try await client.open("token.db")
        #expect(first.nearCacheStatistics != nil && second.nearCacheStatistics != nil)
        try await first.set("k", 1)
        #expect(try await second.get("k") == 1)
        try await second.close()
        try await first.close()
        var descriptors: Int64 = .max
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            descriptors = try await client.stats()["server"]?["descriptors"]?.int64Value ?? -1
            if descriptors <= baseline { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        #expect(descriptors <= baseline, "descriptors: \(baseline) before, \(descriptors) after")
        await client.close()
        try await daemon.stop()
    }

    // MARK: Helpers

    private func getCalls(_ client: NanaClient) async throws -> Int64 {
        let calls = try await client.stats()["server"]?["calls_by_method"]
        return ["get", "contains", "batch_get"].reduce(0) { $0 + (calls?[$1]?.int64Value ?? 0) }
    }

    /// The table stamps of a board file (words 8 … 263).
    static func tableStamps(_ path: String) throws -> [UInt64] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        return (8..<264).map { word in data.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: word * 8, as: UInt64.self) } }
    }

    /// Maps a board file's table stamps, to read after the file is gone.
    static func mapTableStamps(_ path: String) throws -> () -> [UInt64] {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw HarnessError(description: "cannot open \(path)") }
        defer { close(fd) }
        guard let address = mmap(nil, 264 * 8, PROT_READ, MAP_SHARED, fd, 0), address != MAP_FAILED else { throw HarnessError(description: "cannot map \(path)") }
        let words = UnsafePointer<UInt64>(address.assumingMemoryBound(to: UInt64.self))
        nonisolated(unsafe) let board = words
        return { (8..<264).map { board[$0] } }
    }
}
