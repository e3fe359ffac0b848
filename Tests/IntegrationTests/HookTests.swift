import Foundation
import NanaClient
import NanaWire
import Synchronization
import Testing

/// Client-side hooks and Codable validation (spec §6) against the real daemon. What a hooked
/// client stores is read back through a second connection without hooks.
@Suite(.serialized) struct HookTests {
    @Test func beforeWriteTransformIsWhatTheDaemonStores() async throws {
        try await withDaemon("transform.db") { db, plain, _ in
            // Chained in list order: "x" → "xa" → "xab".
            let hooked = db.withHooks([Append(suffix: "a"), Append(suffix: "b")])
            #expect(hooked.hooks.count == 2)
            try await hooked.set("k", "x")
            try await hooked.update(["u": "1", "n": 5])
            try await hooked.batchUpdate(["b": "2"])
            #expect(try await hooked.batchUpdatePartial(["p": "3"]).isEmpty)
            try await hooked.upsert(key: "up", "4")
            try await hooked.set("codable", "5" as String)
            #expect(try await hooked.setDefault("sd", "6") == "6ab")  // the stored value is returned
            #expect(try await hooked.setDefault("k", "zzz") == "xab")  // existing: no write, no beforeWrite
            #expect(unordered(try await plain.toDict()) == ["k": "xab", "u": "1ab", "n": 5, "b": "2ab", "p": "3ab", "up": "4ab", "codable": "5ab", "sd": "6ab"])
        }
    }

    @Test func aThrowingBeforeWriteWritesNothing() async throws {
        try await withDaemon("refuse.db") { db, plain, _ in
            let hooked = db.withHooks([CheckHook { _, value in value != "bad" }])
            await expectValidation("Check constraint failed") { try await hooked.set("a", "bad") }
            await expectValidation("Check constraint failed") { try await hooked.upsert(key: "a", "bad") }
            await expectValidation("Check constraint failed") { try await hooked.batchUpdate(["ok1": "good", "x": "bad"]) }
            await expectValidation("Check constraint failed") { try await hooked.update(["ok1": "good", "x": "bad"]) }
            await expectValidation("Check constraint failed") { _ = try await hooked.setDefault("y", "bad") }
            #expect(try await plain.count() == 0)

            // Partial: the hook's refusal in NanaSQLite's words, beside the daemon's own.
            let refused = try await hooked.batchUpdatePartial(["ok2": "good", "x": "bad", "bin": .binary([1])])
            #expect(Set(refused.keys) == ["x", "bin"])
            #expect(refused["x"] == "Value for key 'x' failed schema validation: Check constraint failed / キー 'x' の値がスキーマに違反しています: Check constraint failed")
            #expect(refused["bin"]?.hasPrefix("Skipped key 'bin' during partial batch update") == true)
            #expect(try await hooked.batchUpdatePartial(["x": "bad"]) == ["x": "Value for key 'x' failed schema validation: Check constraint failed / キー 'x' の値がスキーマに違反しています: Check constraint failed"])
            #expect(try await plain.toDict() == ["ok2": "good"])
            // setDefault on an existing key writes nothing, so the check does not run.
            #expect(try await hooked.setDefault("ok2", "bad") == "good")

            let custom = db.withHooks([CheckHook(errorMessage: "numbers only") { _, value in value.int64Value != nil }])
            await expectValidation("numbers only") { try await custom.set("n", "one") }
            try await custom.set("n", 1)
            #expect(try await plain.get("n") == 1)
        }
    }

    @Test func afterReadTransformsReads() async throws {
        try await withDaemon("read.db") { db, plain, _ in
            try await plain.batchUpdate(["a": "x", "b": "y", "null": .nil, "n": 1])
            let hooked = db.withHooks([Upper()])
            #expect(try await hooked.get("a") == "X")
            #expect(try await hooked.get("null") == "NULL-SEEN")  // a stored null is found, not missing
            #expect(try await hooked.get("missing") == .nil)
            #expect(try await hooked.get("missing", default: "dflt") == "dflt")  // defaults come back as given
            #expect(try await hooked.getFresh("a") == "X")
            #expect(try await hooked.getFresh("null") == "NULL-SEEN")
            #expect(try await hooked.getFresh("missing", default: "dflt") == "dflt")
            #expect(try await hooked.batchGet(["a", "null", "missing", "n"]) == ["a": "X", "null": "NULL-SEEN", "n": 1])
            #expect(try await hooked.get("a", as: String.self) == "X")
            #expect(try await hooked.setDefault("a", "q") == "X")
            #expect(try await hooked.setDefault("new", "q") == "Q")
            #expect(try await plain.get("new") == "q")
            #expect(try await hooked.pop("a") == "X")
            #expect(try await !plain.contains("a"))
            #expect(try await hooked.pop("b", default: "d") == "Y")
            #expect(try await hooked.pop("b", default: "d") == "d")
            await expectRemote(.keyError) { _ = try await hooked.pop("b") }
            // As in NanaSQLite, the bulk reads return stored values.
            #expect(unordered(try await hooked.toDict()) == ["null": .nil, "n": 1, "new": "q"])
            #expect(try await hooked.values().contains("q"))
            #expect(try await hooked.items().contains { $0.key == "new" && $0.value == "q" })
        }
    }

    @Test func beforeDeleteAbortsDeletes() async throws {
        try await withDaemon("delete.db") { db, plain, _ in
            try await plain.batchUpdate(["locked1": 1, "free1": 2, "free2": 3])
            let log = Recorder()
            let hooked = db.withHooks([log, Guard()])
            await expectValidation("locked") { try await hooked.delete("locked1") }
            await expectValidation("locked") { _ = try await hooked.pop("locked1") }
            await expectValidation("locked") { _ = try await hooked.pop("locked1", default: 0) }
            await expectValidation("locked") { try await hooked.batchDelete(["free1", "locked1"]) }
            #expect(try await plain.count() == 3)  // the batch deleted nothing
            #expect(log.calls.isEmpty == false)
            #expect(log.calls.filter { if case .onDeleteSuccess = $0 { true } else { false } }.isEmpty)

            // Delete hooks run for keys that exist only.
            log.reset()
            await expectRemote(.keyError) { try await hooked.delete("ghost") }
            await expectRemote(.keyError) { _ = try await hooked.pop("ghost") }
            #expect(try await hooked.pop("ghost", default: 7) == 7)
            try await hooked.batchDelete(["free2", "ghost", "free2"])
            #expect(log.calls == [.beforeDelete("free2"), .onDeleteSuccess("free2", nil)])
            try await hooked.delete("free1")
            #expect(try await plain.toDict() == ["locked1": 1])
        }
    }

    @Test func successHooksRunForSingleAndBatchWritesWithOldValues() async throws {
        try await withDaemon("success.db") { db, plain, client in
            try await plain.set("a", 1)
            let withOld = Recorder(wantsOldValue: true)
            let without = Recorder()
            let hooked = db.withHooks([withOld, without])

            try await hooked.set("a", 2)
            try await hooked.set("new", 1)
            try await hooked.batchUpdate(["a": 3, "c": 4])
            try await hooked.update(["c": 5])
            #expect(try await hooked.batchUpdatePartial(["a": 6, "bin": .binary([1])]).keys.sorted() == ["bin"])
            #expect(try await hooked.setDefault("d", 7) == 7)
            #expect(try await hooked.setDefault("d", 8) == 7)
            try await hooked.upsert(key: "e", 9)
            try await hooked.set("null", .nil)
            try await hooked.set("null", 10)  // the old value is a stored null, not "missing"
            #expect(withOld.successes == [
                .onWriteSuccess("a", 2, 1), .onWriteSuccess("new", 1, nil),
                .onWriteSuccess("a", 3, 2), .onWriteSuccess("c", 4, nil),
                .onWriteSuccess("c", 5, 4),
                .onWriteSuccess("a", 6, 3),
                .onWriteSuccess("d", 7, nil),
                .onWriteSuccess("e", 9, nil),
                .onWriteSuccess("null", .nil, nil), .onWriteSuccess("null", 10, .nil),
            ])
            #expect(without.successes == withOld.successes.map(\.withoutOldValue))

            withOld.reset()
            without.reset()
            try await hooked.delete("a")
            #expect(try await hooked.pop("c") == 5)
            try await hooked.batchDelete(["d", "e", "ghost"])
            #expect(withOld.successes == [.onDeleteSuccess("a", 6), .onDeleteSuccess("c", 5), .onDeleteSuccess("d", 7), .onDeleteSuccess("e", 9)])
            #expect(without.successes == [.onDeleteSuccess("a", nil), .onDeleteSuccess("c", nil), .onDeleteSuccess("d", nil), .onDeleteSuccess("e", nil)])

            // A write a later hook refuses is not a success for the earlier one.
            withOld.reset()
            let refusing = db.withHooks([withOld, CheckHook { _, _ in false }])
            await expectRemote(.validation) { try await refusing.set("z", 1) }
            await expectRemote(.validation) { try await refusing.batchUpdate(["z": 1]) }
            #expect(withOld.successes.isEmpty)

            // Old values cost one batch_get per write, and only when a hook wants them.
            var counts = try await callCounts(client)
            try await db.withHooks([without]).set("k", 1)
            #expect(try await callDelta(client, since: &counts) == ["set": 1])
            try await hooked.set("k", 2)
            #expect(try await callDelta(client, since: &counts) == ["set": 1, "batch_get": 1])
            try await hooked.batchUpdate(["k": 3, "l": 4])
            #expect(try await callDelta(client, since: &counts) == ["batch_update": 1, "batch_get": 1])
        }
    }

    @Test func keyPrefixScopesHooks() async throws {
        try await withDaemon("prefix.db") { db, plain, client in
            let users = CheckHook(keyPrefix: "user:") { _, value in value.mapValue != nil }
            let names = Upper(keyPrefix: "name:")
            let hooked = db.withHooks([users, names])
            try await hooked.set("other", 1)
            try await hooked.set("userX", 1)  // no colon: not the prefix
            await expectRemote(.validation) { try await hooked.set("user:1", 1) }
            try await hooked.set("user:1", ["id": 1])
            await expectRemote(.validation) { try await hooked.batchUpdate(["x": 1, "user:2": 2]) }
            #expect(try await !plain.contains("x"))

            try await plain.batchUpdate(["name:a": "x", "a": "x"])
            #expect(try await hooked.batchGet(["name:a", "a"]) == ["name:a": "X", "a": "x"])
            #expect(try await hooked.get("name:a") == "X")
            #expect(try await hooked.get("a") == "x")

            // A hook that does not apply costs nothing: one call, no read for old values.
            let scoped = db.withHooks([Recorder(wantsOldValue: true, keyPrefix: "user:")])
            var counts = try await callCounts(client)
            try await scoped.set("other", 2)
            try await scoped.delete("other")
            try await scoped.batchDelete(["a"])
            #expect(try await scoped.pop("a", default: 0) == 0)
            #expect(try await callDelta(client, since: &counts) == ["set": 1, "delete": 1, "batch_delete": 1, "pop": 1])
        }
    }

    @Test func modelHookRefusesAndCoerces() async throws {
        try await withDaemon("model.db") { db, plain, _ in
            let users = db.withHooks(validator: User.self)
            #expect(users.hooks.count == 1)
            try await users.set("ada", ["name": "Ada", "age": 36, "extra": true])
            #expect(try await plain.get("ada") == ["name": "Ada", "age": 36, "extra": true])  // stored as given
            await expectValidation("Model validation failed") { try await users.set("bad", ["name": "Bob"]) }
            await expectValidation("Model validation failed") { try await users.set("bad", ["name": "Bob", "age": "old"]) }
            await expectValidation("Model validation failed") { try await users.set("bad", "Bob") }
            await expectValidation("Model validation failed") { try await users.batchUpdate(["ok": ["name": "A", "age": 1], "bad": ["age": 1]]) }
            #expect(try await plain.keys() == ["ada"])
            try await users.set("typed", User(name: "Cy", age: 3))
            try await users.setModel("model", User(name: "Di", age: 4))  // checked by its __pydantic_data__
            #expect(try await users.getModel("model", as: User.self) == User(name: "Di", age: 4))
            #expect(try await users.get("typed", as: User.self) == User(name: "Cy", age: 3))

            let coerced = db.withHooks(validator: User.self, coerce: true)
            try await coerced.set("c", ["age": 36, "extra": true, "name": "Ada", "email": .nil])
            let stored = try #require(try await plain.get("c").mapValue)
            #expect(unordered(stored) == ["name": "Ada", "age": 36])
            try await coerced.setModel("cm", User(name: "Ed", age: 5, email: "e@x"))
            let wrapped = try #require(try await plain.get("cm")["__pydantic_data__"]?.mapValue)
            #expect(Set(wrapped.keys) == ["name", "age", "email"])
            await expectValidation("Model validation failed") { try await coerced.set("bad", ["name": 1, "age": 1]) }

            // The validator's hook runs after the others, as NanaSQLite appends it.
            let filled = db.withHooks([FillAge()], validator: User.self)
            #expect(filled.hooks.count == 2 && filled.hooks.last is ModelHook<User>)
            try await filled.set("f", ["name": "Fay"])
            #expect(try await plain.get("f") == ["name": "Fay", "age": 0])
            let wrongOrder = db.withHooks([ModelHook(User.self), FillAge()])
            await expectValidation("Model validation failed") { try await wrongOrder.set("g", ["name": "Gus"]) }

            // Scoped to a prefix, it leaves other keys alone.
            let scoped = db.withHooks([ModelHook(User.self, keyPrefix: "user:")])
            try await scoped.set("note", "anything")
            await expectValidation("Model validation failed") { try await scoped.set("user:1", "anything") }
            #expect(try await !plain.contains("user:1"))
        }
    }

    @Test func subTablesInheritHooks() async throws {
        try await withDaemon("tables.db") { db, plain, _ in
            let hooked = db.withHooks([CheckHook { _, value in value != "bad" }, Upper()])
            let sub = try await hooked.table("users")
            #expect(sub.table == "users" && sub.hooks.count == 2)
            await expectRemote(.validation) { try await sub.set("k", "bad") }
            try await plain.table("users").set("k", "x")
            #expect(try await sub.get("k") == "X")
            #expect(try await sub.table("third").hooks.count == 2)
            // A table opened from a handle without hooks has none, and changing a table's hooks
            // leaves its parent's alone.
            let plainSub = try await plain.table("users")
            #expect(plainSub.hooks.isEmpty)
            #expect(try await plainSub.get("k") == "x")
            #expect(sub.withHooks([]).hooks.isEmpty && hooked.hooks.count == 2)
            #expect(try await sub.withHooks([]).get("k") == "x")
        }
    }

    @Test func withoutHooksNothingChanges() async throws {
        try await withDaemon("plain.db") { db, _, client in
            #expect(db.hooks.isEmpty)
            for handle in [db, db.withHooks([])] {
                try await handle.clear()
                var counts = try await callCounts(client)
                try await handle.set("a", "x")
                try await handle.set("null", .nil)
                #expect(try await handle.get("a") == "x")
                #expect(try await handle.get("null") == .nil)
                #expect(try await handle.get("missing", default: 1) == 1)
                #expect(try await handle.getFresh("missing", default: 2) == 2)
                #expect(try await handle.batchGet(["a", "missing"]) == ["a": "x"])
                try await handle.update(["b": 1])
                try await handle.batchUpdate(["c": 2])
                #expect(try await handle.batchUpdatePartial(["d": 3, "bin": .binary([1])]).keys.sorted() == ["bin"])
                #expect(try await handle.setDefault("d", 9) == 3)
                #expect(try await handle.setDefault("e", 4) == 4)
                try await handle.upsert(key: "f", 5)
                #expect(try await handle.pop("f") == 5)
                #expect(try await handle.pop("f", default: "gone") == "gone")
                try await handle.delete("e")
                try await handle.batchDelete(["d", "never"])
                #expect(unordered(try await handle.toDict()) == ["a": "x", "null": .nil, "b": 1, "c": 2])
                // One request per call, as before hooks existed.
                #expect(try await callDelta(client, since: &counts) == [
                    "set": 2, "get": 3, "get_fresh": 1, "batch_get": 1, "update": 1, "batch_update": 1,
                    "batch_update_partial": 1, "setdefault": 2, "upsert": 1, "pop": 2, "delete": 1, "batch_delete": 1, "to_dict": 1,
                ])
                await expectRemote(.keyError) { try await handle.delete("never") }
                await expectRemote(.keyError) { _ = try await handle.pop("never") }
            }
        }
    }
}

// MARK: - Test hooks

/// Appends `suffix` to string values on write.
private struct Append: NanaHook {
    let suffix: String
    func beforeWrite(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue {
        guard let s = value.stringValue else { return value }
        return .string(s + suffix)
    }
}

/// Upper-cases string values on read, and shows a stored null as "NULL-SEEN".
private struct Upper: NanaHook {
    var keyPrefix: String?
    func afterRead(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue {
        if value.isNil { return "NULL-SEEN" }
        guard let s = value.stringValue else { return value }
        return .string(s.uppercased())
    }
}

/// Refuses deleting keys that start with "locked".
private struct Guard: NanaHook {
    func beforeDelete(_ db: NanaDatabase, key: String) async throws {
        if key.hasPrefix("locked") { throw NanaRemoteError(.validation, "locked") }
    }
}

/// Gives a map without "age" an age of 0.
private struct FillAge: NanaHook {
    func beforeWrite(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue {
        guard case .map(var fields) = value, fields["age"] == nil else { return value }
        fields["age"] = 0
        return .map(fields)
    }
}

private struct User: Codable, Sendable, Equatable {
    var name: String
    var age: Int
    var email: String?
}

private enum HookCall: Equatable, Sendable {
    case beforeWrite(String, NanaValue)
    case onWriteSuccess(String, NanaValue, NanaValue?)
    case afterRead(String, NanaValue)
    case beforeDelete(String)
    case onDeleteSuccess(String, NanaValue?)

    var withoutOldValue: HookCall {
        switch self {
        case .onWriteSuccess(let key, let value, _): .onWriteSuccess(key, value, nil)
        case .onDeleteSuccess(let key, _): .onDeleteSuccess(key, nil)
        default: self
        }
    }
}

/// Records every call it gets, in order.
private struct Recorder: NanaHook {
    var wantsOldValue = false
    var keyPrefix: String?
    private let log = LogBox()

    init(wantsOldValue: Bool = false, keyPrefix: String? = nil) {
        self.wantsOldValue = wantsOldValue
        self.keyPrefix = keyPrefix
    }

    final class LogBox: Sendable {
        let calls = Mutex<[HookCall]>([])
    }

    var calls: [HookCall] { log.calls.withLock { $0 } }
    var successes: [HookCall] {
        calls.filter {
            switch $0 {
            case .onWriteSuccess, .onDeleteSuccess: true
            default: false
            }
        }
    }
    func reset() { log.calls.withLock { $0 = [] } }
    private func add(_ call: HookCall) { log.calls.withLock { $0.append(call) } }

    func beforeWrite(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue {
        add(.beforeWrite(key, value))
        return value
    }
    func onWriteSuccess(_ db: NanaDatabase, key: String, value: NanaValue, oldValue: NanaValue?) async {
        add(.onWriteSuccess(key, value, oldValue))
    }
    func afterRead(_ db: NanaDatabase, key: String, value: NanaValue) async throws -> NanaValue {
        add(.afterRead(key, value))
        return value
    }
    func beforeDelete(_ db: NanaDatabase, key: String) async throws {
        add(.beforeDelete(key))
    }
    func onDeleteSuccess(_ db: NanaDatabase, key: String, oldValue: NanaValue?) async {
        add(.onDeleteSuccess(key, oldValue))
    }
}

// MARK: - Helpers

/// A daemon, a connection whose table gets hooks, and a second connection on the same file
/// without hooks for reading back what was stored.
private func withDaemon(_ file: String, _ body: (NanaDatabase, NanaDatabase, NanaClient) async throws -> Void) async throws {
    let daemon = try await Daemon.start()
    defer { daemon.removeFolder() }
    let client = try await daemon.connect()
    let other = try await daemon.connect()
    try await body(try await client.open(file), try await other.open(file), client)
    await client.close()
    await other.close()
    try await daemon.stop()
}

private func expectValidation(_ message: String, sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    do {
        try await body()
        Issue.record("expected a validation error, nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as NanaRemoteError {
        #expect(error.type == .validation, "\(error)", sourceLocation: sourceLocation)
        #expect(error.message == message, sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected a validation error, got \(error)", sourceLocation: sourceLocation)
    }
}

/// The daemon's per-method call counts, this connection's included.
private func callCounts(_ client: NanaClient) async throws -> [String: Int64] {
    let counts = try await client.stats()["server"]?["calls_by_method"]?.mapValue ?? [:]
    return counts.reduce(into: [:]) { $0[$1.key.string] = $1.value.int64Value ?? 0 }
}

/// The calls made since `counts` (the `stats` calls themselves left out), and `counts` updated.
private func callDelta(_ client: NanaClient, since counts: inout [String: Int64]) async throws -> [String: Int64] {
    let now = try await callCounts(client)
    var delta: [String: Int64] = [:]
    for (method, n) in now where method != "stats" && n != counts[method, default: 0] { delta[method] = n - counts[method, default: 0] }
    counts = now
    return delta
}

private func unordered(_ map: NanaParams) -> [String: NanaValue] {
    Dictionary(uniqueKeysWithValues: map.map { ($0.key.string, $0.value) })
}
