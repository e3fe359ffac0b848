import Foundation
import NanaClient
import NanaWire
import Testing

/// The Swift client against the real daemon: every method of this protocol version, their
/// errors, and the connection's behaviour under concurrency, cancellation and loss.
@Suite(.serialized) struct ClientTests {
    @Test func everyDictMethodThroughTheDaemon() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        #expect(client.serverInfo["server"] == "nanad")
        let db = try await client.open("methods.db")
        #expect(db.table == "data")

        try await db.set("doc", ["name": "Ada", "tags": ["x", "y"], "n": 1, "f": 1.0, "ok": true, "none": .nil])
        #expect(try await db.get("doc") == ["name": "Ada", "tags": ["x", "y"], "n": 1, "f": 1.0, "ok": true, "none": .nil])
        #expect(try await db.get("missing") == .nil)
        #expect(try await db.get("missing", default: 42) == 42)
        #expect(try await db.contains("doc"))
        #expect(try await !db.contains("missing"))
        #expect(try await db.count() == 1)

        try await db.update(["a": 1, "b": 2])
        try await db.batchUpdate(["c": 3, "d": 4])
        #expect(try await db.count() == 5)
        #expect(Set(try await db.keys()) == ["doc", "a", "b", "c", "d"])
        #expect(Set(try await db.values()).contains(4))
        #expect(try await db.items().first { $0.key == "c" }?.value == 3)
        #expect(try await db.toDict()["d"] == 4)
        #expect(try await db.copy().count == 5)
        #expect(try await db.batchGet(["a", "zz", "c"]) == ["a": 1, "c": 3])

        #expect(try await db.pop("a") == 1)
        #expect(try await db.pop("a", default: "gone") == "gone")
        await expectRemote(.keyError) { _ = try await db.pop("a") }
        await expectRemote(.keyError) { try await db.delete("a") }
        try await db.delete("b")
        #expect(try await db.setDefault("c", 99) == 3)
        #expect(try await db.setDefault("e", 99) == 99)
        #expect(try await db.get("e") == 99)
        try await db.batchDelete(["c", "e", "never"])
        #expect(try await db.count() == 2)

        let rejected = try await db.batchUpdatePartial(["good": 1, "bad": .binary([1, 2]), "nan": .double(.nan)])
        #expect(Set(rejected.keys) == ["bad", "nan"])
        #expect(rejected["bad"]?.hasPrefix("Skipped key 'bad' during partial batch update") == true)
        #expect(try await db.get("good") == 1)
        #expect(try await !db.contains("bad"))

        try await db.loadAll()
        #expect(try await db.isCached("good"))
        try await db.clearCache()
        #expect(try await !db.isCached("good"))
        #expect(try await db.getFresh("good") == 1)
        #expect(try await db.isCached("good"))
        try await db.refresh("good")
        try await db.refresh()
        #expect(try await !db.isCached("good"))

        try await db.clear()
        #expect(try await db.count() == 0)
        #expect(try await db.toDict().isEmpty)
        await client.close()
        try await daemon.stop()
    }

    @Test func typesStayExactThroughSQLite() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("types.db")
        let values: [String: NanaValue] = [
            "true": true, "one": 1, "five": 5.0, "fiveInt": 5, "max": .int(Int64.max), "min": .int(Int64.min),
            "umax": .uint(UInt64.max), "str": "héllo 🌍", "empty": "", "list": [1, 1.0, true, .nil],
            "map": ["z": 1, "a": 2], "deep": (0..<200).reduce(NanaValue(1)) { v, _ in [v] },
        ]
        for (key, value) in values { try await db.set(key, value) }
        try await db.clearCache()  // every read below comes back from the SQLite file
        for (key, value) in values {
            #expect(try await db.get(key) == value, "\(key)")
        }
        #expect(try await db.get("map").mapValue.map { Array($0.keys) } == ["z", "a"])
        #expect(try await db.get("true") != 1)
        #expect(try await db.get("five") != 5)
        await client.close()
        try await daemon.stop()
    }

    @Test func codableValues() async throws {
        struct User: Codable, Equatable, Sendable { var name: String; var age: Int; var score: Double; var admin: Bool }
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("codable.db")
        let ada = User(name: "Ada", age: 36, score: 9.5, admin: true)
        try await db.set("ada", ada)
        #expect(try await db.get("ada", as: User.self) == ada)
        #expect(try await db.get("nobody", as: User.self) == nil)
        #expect(try await db.get("ada") == ["name": "Ada", "age": 36, "score": 9.5, "admin": true])
        await client.close()
        try await daemon.stop()
    }

    @Test func badInputGetsClearErrorsAndNothingChanges() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("bad.db")
        try await db.set("k", "v")

        await expectRemote(.validation) { _ = try await client.open("x.db", table: "bad name; DROP TABLE data") }
        await expectRemote(.validation) { _ = try await db.table("users--") }
        await expectRemote(.validation) { _ = try await client.open("../escape.db") }
        await expectRemote(.validation) { _ = try await client.open("/etc/passwd") }
        await expectRemote(.notSupported) { _ = try await client.open(":memory:") }
        await expectRemote(.typeError) { try await db.set("b", .binary([1])) }
        await expectRemote(.valueError) { try await db.set("n", .double(.infinity)) }
        let tooDeep = (0..<255).reduce(NanaValue(1)) { v, _ in [v] }
        await expectRemote(.validation) { try await db.set("deep", tooDeep) }
        await expectRemote(.typeError) { _ = try await client.call("get", ["db": .int(db.handle), "key": 5]) }
        await expectRemote(.typeError) { _ = try await client.call("get", ["db": .int(db.handle)]) }
        await expectRemote(.typeError) { _ = try await client.call("get", ["db": .int(db.handle), "key": "k", "bogus": 1]) }
        await expectRemote(.protocolError) { _ = try await client.call("no_such_method") }
        await expectRemote(.closed) { _ = try await client.call("get", ["db": 999, "key": "k"]) }
        await expectRemote(.protocolError) { _ = try await client.call("hello", ["protocol": 99]) }
        await expectRemote(.typeError) { try await db.batchUpdate(["ok": 1, "bad": .binary([0])]) }
        await expectRemote(.valueError) { _ = try await client.call("open", ["db_path": "c.db", "cache_size_mb": 0]) }
        await expectRemote(.validation) { _ = try await client.call("open", ["db_path": "c.db", "lock_timeout": -1]) }
        await expectRemote(.valueError) { _ = try await client.call("open", ["db_path": "c.db", "max_workers": 0]) }
        // An unstorable default matters only when the key is missing.
        try await db.clearCache()
        #expect(try await db.setDefault("k", .binary([1])) == "v")
        await expectRemote(.typeError) { _ = try await db.setDefault("absent", .binary([1])) }

        // Nothing was written by any of it, and the connection still works.
        #expect(try await db.toDict() == ["k": "v"])
        let errors = try await client.stats()["server"]?["errors_by_type"]
        #expect((errors?["TypeError"]?.int64Value ?? 0) >= 5)
        #expect((errors?["NanaSQLiteValidationError"]?.int64Value ?? 0) >= 3)
        let sub = try await db.table("users")
        try await db.close()
        await expectRemote(.closed) { _ = try await db.get("k") }
        await expectRemote(.closed) { _ = try await sub.get("k") }  // closing the root closes its tables
        let again = try await client.open("bad.db")
        #expect(try await again.get("k") == "v")
        await client.close()
        try await daemon.stop()
    }

    @Test func garbageFramesCloseOnlyThatConnection() async throws {
        let daemon = try await Daemon.start(arguments: ["--max-frame-size", "65536"])
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("garbage.db")

        // A well-behaved client keeps working while others send garbage.
        let worker = Task {
            var errors = 0
            for i in 0..<1500 {
                do {
                    try await db.set("k\(i)", .int(Int64(i)))
                    if try await db.get("k\(i)") != .int(Int64(i)) { errors += 1 }
                } catch { errors += 1 }
            }
            return errors
        }

        let attacks: [(String, [UInt8], Bool)] = [
            ("4-billion-element array", frame([0xdd, 0xff, 0xff, 0xff, 0xff]), false),
            ("length over the maximum", [0x7f, 0xff, 0xff, 0xff, 0x00], false),
            ("non-string params key", frame([0x94, 0x00, 0x09, 0xa3] + Array("get".utf8) + [0x81, 0x01, 0x01]), true),
            ("invalid UTF-8", frame([0x94, 0x00, 0x09, 0xa2, 0xc3, 0x28, 0x80]), true),
            ("nesting 10,000 deep", frame([0x94, 0x00, 0x09, 0xa3] + Array("set".utf8) + [0x81, 0xa1, 0x76] + [UInt8](repeating: 0x91, count: 10000) + [0xc0]), true),
            ("truncated value", frame([0x94, 0x00, 0x09, 0xa3, 0x67]), true),
            ("not an array", frame([0xa5] + Array("hello".utf8)), false),
            ("ext type", frame([0x94, 0x00, 0x09, 0xd4, 0x01, 0x00, 0x80]), true),
        ]
        for (name, bytes, hasMsgid) in attacks {
            let raw = try RawSocket(path: daemon.socketPath)
            raw.send(bytes)
            let reply = try #require(raw.readFrame(), "\(name): no error frame")
            let message = try NanaMessage(try MessagePackReader.decode(reply))
            if hasMsgid {
                guard case .response(9, .failure(let error)) = message else { Issue.record("\(name): \(message)"); continue }
                #expect(error.type == .protocolError, "\(name)")
            } else {
                guard case .notification("error", let params) = message else { Issue.record("\(name): \(message)"); continue }
                #expect(params["type"] == "ProtocolError", "\(name)")
            }
            #expect(raw.isClosedByPeer(), "\(name): connection left open")
        }

        #expect(await worker.value == 0)
        // The daemon is up and lost nothing.
        let fresh = try await daemon.connect()
        #expect(try await fresh.open("garbage.db").count() == 1500)
        await fresh.close()
        await client.close()
        try await daemon.stop()
    }

    /// The daemon splits frames itself: a frame may arrive a byte at a time, several may arrive
    /// in one read, and a read may end inside a frame's length prefix or body.
    @Test func framesSplitAnyhowAcrossReadsAreAnsweredInOrder() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let raw = try RawSocket(path: daemon.socketPath)
        let writer = MessagePackWriter()
        func framed(_ msgid: UInt32, _ method: String, _ params: NanaParams) -> [UInt8] {
            writer.reset()
            writer.writeRequest(msgid: msgid, method: method, params: params)
            let body = writer.bytes
            let n = UInt32(body.count)
            return [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + body
        }
        func result(of frame: [UInt8]?) throws -> (UInt32, NanaValue?) {
            let message = try NanaMessage(try MessagePackReader.decode(try #require(frame)))
            guard case .response(let msgid, .success(let value)) = message else {
                Issue.record("not a successful response: \(message)")
                return (0, nil)
            }
            return (msgid, value)
        }

        // One frame a byte at a time, each byte its own read.
        for byte in framed(1, "hello", ["protocol": 1]) {
            raw.send([byte])
            try await Task.sleep(for: .milliseconds(2))
        }
        #expect(try result(of: raw.readFrame()).0 == 1)
        raw.send(framed(2, "open", ["db_path": "split.db"]))
        let (_, handle) = try result(of: raw.readFrame())
        let db = try #require(handle?["db"])

        // 200 sets as one stream, the first 700 bytes sent in pieces of 7 (cutting length
        // prefixes and bodies everywhere), the rest in reads of many frames each.
        var stream: [UInt8] = []
        for i in 0..<200 { stream += framed(UInt32(10 + i), "set", ["db": db, "key": .string("k\(i)"), "value": .int(Int64(i))]) }
        var offset = 0
        while offset < stream.count {
            let piece = offset < 700 ? 7 : 5000
            raw.send(Array(stream[offset..<min(offset + piece, stream.count)]))
            offset += piece
            if offset < 700 { try await Task.sleep(for: .milliseconds(1)) }
        }
        var msgids: [UInt32] = []
        for _ in 0..<200 { msgids.append(try result(of: raw.readFrame()).0) }
        #expect(msgids.sorted() == (10..<210).map { UInt32($0) })  // pipelined calls may complete in any order

        // A read ending inside a length prefix, the next one inside the body.
        let get = framed(999, "get", ["db": db, "key": "k199"])
        raw.send(Array(get[0..<2]))
        try await Task.sleep(for: .milliseconds(5))
        raw.send(Array(get[2..<9]))
        try await Task.sleep(for: .milliseconds(5))
        raw.send(Array(get[9...]))
        let (msgid, value) = try result(of: raw.readFrame())
        #expect(msgid == 999 && value == .int(199))

        let client = try await daemon.connect()
        #expect(try await client.open("split.db").count() == 200)
        await client.close()
        try await daemon.stop()
    }

    @Test func manyConcurrentCallsShareOneConnection() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("mux.db")
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<2000 {
                group.addTask {
                    try await db.set("k\(i)", .int(Int64(i)))
                    let back = try await db.get("k\(i)")
                    guard back == .int(Int64(i)) else { throw HarnessError(description: "k\(i) read \(back)") }
                }
            }
            try await group.waitForAll()
        }
        let stats = try await client.stats()
        #expect(stats["server"]?["connections"] == 1)
        #expect((stats["server"]?["calls_by_method"]?["set"]?.int64Value ?? 0) >= 2000)
        #expect((stats["server"]?["calls_by_method"]?["get"]?.int64Value ?? 0) >= 2000)
        #expect((stats["server"]?["resident_bytes"]?.int64Value ?? 0) > 0)
        #expect(try await db.count() == 2000)
        await client.close()
        try await daemon.stop()
    }

    @Test func cancelledCallThrowsCancellationAndTheConnectionCarriesOn() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("cancel.db")
        var big = NanaParams()
        for i in 0..<100_000 { big["key-\(i)"] = .int(Int64(i)) }
        let slow = Task { try await db.batchUpdate(big) }
        try await Task.sleep(for: .milliseconds(20))
        slow.cancel()
        await #expect(throws: CancellationError.self) { try await slow.value }
        // The late response is dropped; the connection works.
        try await client.ping()
        try await db.set("after", true)
        #expect(try await db.get("after") == true)
        // A task cancelled before it calls never sends anything (a near-cache hit, which makes
        // no call, still answers).
        let early = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await db.count()
        }
        await #expect(throws: CancellationError.self) { try await early.value }
        let hit = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await db.get("after")
        }
        #expect(try await hit.value == true)
        await client.close()
        try await daemon.stop()
    }

    @Test func callsFromATaskOnTheConnectionsLoop() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("loop.db")
        #expect(!client.executor.isCurrent)
        try await withTaskExecutorPreference(client.executor) {
            #expect(client.executor.isCurrent)
            for i in 0..<500 {
                try await db.set("k\(i)", .int(Int64(i)))
                #expect(try await db.get("k\(i)") == .int(Int64(i)))
                #expect(client.executor.isCurrent)  // resumed on the loop, not the global executor
            }
            // Child tasks inherit the preference; their calls are multiplexed as from anywhere.
            try await withThrowingTaskGroup(of: Bool.self) { group in
                for i in 0..<200 {
                    group.addTask {
                        let onLoop = client.executor.isCurrent
                        return try await db.get("k\(i)") == .int(Int64(i)) && onLoop && client.executor.isCurrent
                    }
                }
                for try await ok in group { #expect(ok) }
            }
            // A daemon error arrives as a thrown error here too.
            await #expect(throws: NanaRemoteError.self) { _ = try await client.call("no_such_method") }
        }
        // Cancelling a call waiting on the loop.
        var big = NanaParams()
        for i in 0..<100_000 { big["key-\(i)"] = .int(Int64(i)) }
        let slow = Task(executorPreference: client.executor) { try await db.batchUpdate(big) }
        try await Task.sleep(for: .milliseconds(20))
        slow.cancel()
        await #expect(throws: CancellationError.self) { try await slow.value }
        #expect(try await db.count() >= 500)
        await client.close()
        try await daemon.stop()
    }

    @Test func aWriteInFlightAtALossIsReportedAsOutcomeUnknownAndCallsWaitOnlyTheirDeadline() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await NanaClient.connect(configuration: NanaClientConfiguration(socketPath: daemon.socketPath, connectionTimeout: .milliseconds(300)))
        let db = try await client.open("lost.db")
        var big = NanaParams()
        for i in 0..<200_000 { big["key-\(i)"] = .string("value \(i)") }
        let inFlight = Task { try await db.batchUpdate(big) }
        try await Task.sleep(for: .milliseconds(30))
        try await daemon.stop(SIGKILL)
        do {
            try await inFlight.value
            Issue.record("a write in flight at the loss succeeded")
        } catch let error as NanaClientError {
            #expect(error.code == .outcomeUnknown, "\(error)")
            #expect(!error.isRetryable)
        }
        // No daemon: a call waits for a connection up to its deadline, then says so.
        let start = ContinuousClock.now
        do {
            _ = try await db.get("x")
            Issue.record("a call with no daemon succeeded")
        } catch let error as NanaClientError {
            #expect(error.code == .unavailable, "\(error)")
            #expect(error.isRetryable)
        }
        let waited = ContinuousClock.now - start
        #expect(waited >= .milliseconds(250) && waited < .seconds(3), "\(waited)")
        #expect(client.connectionState == .reconnecting)
        #expect(client.statistics.failedCalls == 2)
        await client.close()
        #expect(client.connectionState == .closed)
        await #expect(throws: NanaClientError(.connectionClosed, "the client was closed")) { _ = try await db.get("x") }
    }
}

func frame(_ body: [UInt8]) -> [UInt8] {
    let n = UInt32(body.count)
    return [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + body
}

func expectRemote(_ type: NanaErrorType, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected \(type), nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as NanaRemoteError {
        #expect(error.type == type, "\(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(type), got \(error)", sourceLocation: sourceLocation)
    }
}
