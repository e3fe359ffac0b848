import NanaWire
import OrderedCollections

// Client-side hooks (spec §6): setting them, and the hooked forms of the methods that run them.
// The public methods in NanaDatabase.swift branch here only when `hooks` is not empty, so a
// database without hooks makes the same single call as before. A method whose key no hook
// applies to (`keyPrefix`) also makes just its own call.
//
// Costs with hooks, per call: `set`, `update`, the batch writes and `upsert(key:)` add one
// `batch_get` when a hook applying to a written key wants old values; `setDefault`, `delete`,
// `pop` and `batchDelete` add one `batch_get` first, to learn which keys exist (delete hooks run
// for existing keys only, as in NanaSQLite, and `setDefault` runs `beforeWrite` only when it will
// write). Those reads and the write are separate requests: another client may write in between.
extension NanaDatabase {
    /// This handle with `hooks` instead of its current ones (NanaSQLite's `hooks=`). The handle
    /// on the daemon is the same; only this value and the tables opened from it run the hooks.
    public func withHooks(_ hooks: [any NanaHook]) -> NanaDatabase {
        NanaDatabase(self, hooks: hooks)
    }

    /// This handle with `hooks` followed by a ``ModelHook`` for `validator` (NanaSQLite's
    /// `hooks=…, validator=…, coerce=…`, which appends the validator's hook after `hooks`).
    public func withHooks<Model: Codable & Sendable>(_ hooks: [any NanaHook] = [], validator: Model.Type, coerce: Bool = false) -> NanaDatabase {
        NanaDatabase(self, hooks: hooks + [ModelHook(validator, coerce: coerce)])
    }

    // MARK: Plumbing

    /// The default sent in place of the caller's when the answer must tell a missing key from a
    /// stored value: stored values are JSON, so they never come back as binary.
    private static let missing = NanaValue.binary([])

    private static func isMissing(_ value: NanaValue) -> Bool {
        if case .binary = value { return true }
        return false
    }

    private func send(_ method: String, _ params: NanaParams) async throws -> NanaValue {
        try await call(method, params)
    }

    private func activeHooks(for key: String) -> [any NanaHook] {
        hooks.filter { $0.applies(to: key) }
    }

    /// The stored values of `keys` (those that exist), with no hooks.
    private func storedValues(_ keys: [String]) async throws -> NanaParams {
        if isTracking { return try await trackedBatchGet(keys) }
        return try await send("batch_get", ["keys": .array(keys.map(NanaValue.string))]).mapValue ?? [:]
    }

    private func runBeforeWrite(_ hooks: [any NanaHook], _ key: String, _ value: NanaValue) async throws -> NanaValue {
        var value = value
        for hook in hooks { value = try await hook.beforeWrite(self, key: key, value: value) }
        return value
    }

    private func runAfterRead(_ hooks: [any NanaHook], _ key: String, _ value: NanaValue) async throws -> NanaValue {
        var value = value
        for hook in hooks { value = try await hook.afterRead(self, key: key, value: value) }
        return value
    }

    private func runOnWriteSuccess(_ hooks: [any NanaHook], _ key: String, _ value: NanaValue, old: NanaValue?) async {
        for hook in hooks { await hook.onWriteSuccess(self, key: key, value: value, oldValue: hook.wantsOldValue ? old : nil) }
    }

    private func runOnDeleteSuccess(_ hooks: [any NanaHook], _ key: String, old: NanaValue?) async {
        for hook in hooks { await hook.onDeleteSuccess(self, key: key, oldValue: hook.wantsOldValue ? old : nil) }
    }

    // MARK: Reads

    /// `get` and `get_fresh`: `afterRead` only when the key exists; a missing key returns
    /// `defaultValue` as given.
    func hookedGet(_ method: String, _ key: String, default defaultValue: NanaValue) async throws -> NanaValue {
        let active = activeHooks(for: key)
        if method == "get", isTracking {
            guard let value = try await trackedGet(key) else { return defaultValue }
            return active.isEmpty ? value : try await runAfterRead(active, key, value)  // hooks run on hits too
        }
        guard !active.isEmpty else { return try await send(method, ["key": .string(key), "default": defaultValue]) }
        let value = try await send(method, ["key": .string(key), "default": Self.missing])
        if Self.isMissing(value) { return defaultValue }
        return try await runAfterRead(active, key, value)
    }

    func hookedBatchGet(_ keys: [String]) async throws -> NanaParams {
        var values = try await storedValues(keys)
        for (key, value) in values {
            let active = activeHooks(for: key.string)
            if !active.isEmpty { values[key] = try await runAfterRead(active, key.string, value) }
        }
        return values
    }

    // MARK: Writes

    /// `set` and `upsert(key:_:)`.
    func hookedSet(_ method: String, _ key: String, _ value: NanaValue) async throws {
        let active = activeHooks(for: key)
        guard !active.isEmpty else {
            _ = try await send(method, ["key": .string(key), "value": value])
            return
        }
        let stored = try await runBeforeWrite(active, key, value)
        let old: NanaValue? = if active.contains(where: \.wantsOldValue) { try await storedValues([key])[NanaKey(key)] } else { nil }
        _ = try await send(method, ["key": .string(key), "value": stored])
        await runOnWriteSuccess(active, key, stored, old: old)
    }

    private typealias HookedKeys = [(key: String, hooks: [any NanaHook])]

    /// The values `beforeWrite` makes of `mapping` and the keys some hook applies to. A throwing
    /// `beforeWrite` is rethrown, or with `collectingRefusals` left out and returned.
    private func transformed(_ mapping: NanaParams, collectingRefusals: Bool = false) async throws -> (values: NanaParams, hooked: HookedKeys, refused: [(String, any Error)]) {
        var values = NanaParams()
        values.reserveCapacity(mapping.count)
        var hooked: HookedKeys = []
        var refused: [(String, any Error)] = []
        for (key, value) in mapping {
            let active = activeHooks(for: key.string)
            if active.isEmpty {
                values[key] = value
                continue
            }
            do {
                values[key] = try await runBeforeWrite(active, key.string, value)
                hooked.append((key.string, active))
            } catch {
                guard collectingRefusals else { throw error }
                refused.append((key.string, error))
            }
        }
        return (values, hooked, refused)
    }

    private func oldValues(of hooked: HookedKeys) async throws -> NanaParams {
        let keys = hooked.filter { $0.hooks.contains(where: \.wantsOldValue) }.map(\.key)
        if keys.isEmpty { return [:] }
        return try await storedValues(keys)
    }

    /// `update` and `batch_update`: all or nothing, a throwing `beforeWrite` included.
    func hookedUpdate(_ method: String, _ mapping: NanaParams) async throws {
        let (stored, hooked, _) = try await transformed(mapping)
        let old = try await oldValues(of: hooked)
        _ = try await send(method, ["mapping": .map(stored)])
        for (key, active) in hooked {
            await runOnWriteSuccess(active, key, stored[NanaKey(key)] ?? .nil, old: old[NanaKey(key)])
        }
    }

    /// A key whose `beforeWrite` throws is refused with NanaSQLite's message; the others are
    /// stored as by the daemon's `batch_update_partial`.
    func hookedBatchUpdatePartial(_ mapping: NanaParams) async throws -> [NanaKey: String] {
        let (stored, hooked, refusals) = try await transformed(mapping, collectingRefusals: true)
        var refused: [NanaKey: String] = [:]
        for (key, error) in refusals {
            let reason = (error as? NanaRemoteError)?.message ?? "\(error)"
            refused[NanaKey(key)] = "Value for key '\(key)' failed schema validation: \(reason) / キー '\(key)' の値がスキーマに違反しています: \(reason)"
        }
        guard !stored.isEmpty else { return refused }
        let old = try await oldValues(of: hooked)
        let skipped = try await send("batch_update_partial", ["mapping": .map(stored)]).mapValue ?? [:]
        for (key, reason) in skipped { refused[key] = reason.stringValue ?? "\(reason)" }
        for (key, active) in hooked where skipped[NanaKey(key)] == nil {
            await runOnWriteSuccess(active, key, stored[NanaKey(key)] ?? .nil, old: old[NanaKey(key)])
        }
        return refused
    }

    /// An existing key: its value through `afterRead`. A missing one: `defaultValue` through
    /// `beforeWrite`, stored, and returned through `afterRead`.
    func hookedSetDefault(_ key: String, _ defaultValue: NanaValue) async throws -> NanaValue {
        let active = activeHooks(for: key)
        guard !active.isEmpty else { return try await send("setdefault", ["key": .string(key), "default": defaultValue]) }
        if let existing = try await storedValues([key])[NanaKey(key)] {
            return try await runAfterRead(active, key, existing)
        }
        let stored = try await runBeforeWrite(active, key, defaultValue)
        let result = try await send("setdefault", ["key": .string(key), "default": stored])
        // Another client may have stored the key since the read; then the daemon kept its value.
        if result == stored { await runOnWriteSuccess(active, key, stored, old: nil) }
        return try await runAfterRead(active, key, result)
    }

    // MARK: Deletes

    func hookedDelete(_ key: String) async throws {
        let active = activeHooks(for: key)
        guard !active.isEmpty else {
            _ = try await send("delete", ["key": .string(key)])
            return
        }
        guard try await storedValues([key])[NanaKey(key)] != nil else { throw NanaRemoteError(.keyError, key) }
        for hook in active { try await hook.beforeDelete(self, key: key) }
        // `pop` deletes exactly as `delete` does and answers the value it deleted.
        let old = try await send("pop", ["key": .string(key)])
        await runOnDeleteSuccess(active, key, old: old)
    }

    /// `pop`, with `defaultValue` nil for the form that throws `KeyError`.
    func hookedPop(_ key: String, default defaultValue: NanaValue?) async throws -> NanaValue {
        let active = activeHooks(for: key)
        guard !active.isEmpty else {
            var params: NanaParams = ["key": .string(key)]
            if let defaultValue { params["default"] = defaultValue }
            return try await send("pop", params)
        }
        func missing() throws -> NanaValue {
            guard let defaultValue else { throw NanaRemoteError(.keyError, key) }
            return defaultValue
        }
        guard try await storedValues([key])[NanaKey(key)] != nil else { return try missing() }
        for hook in active { try await hook.beforeDelete(self, key: key) }
        let old = try await send("pop", ["key": .string(key), "default": Self.missing])
        if Self.isMissing(old) { return try missing() }  // deleted by another client since the read
        await runOnDeleteSuccess(active, key, old: old)
        return try await runAfterRead(active, key, old)
    }

    /// `beforeDelete` for every key that exists (any throw deletes nothing), one `batch_delete`,
    /// then `onDeleteSuccess` for those keys.
    func hookedBatchDelete(_ keys: [String]) async throws {
        var hooked: HookedKeys = []
        var seen = Set<NanaKey>()
        for key in keys where seen.insert(NanaKey(key)).inserted {
            let active = activeHooks(for: key)
            if !active.isEmpty { hooked.append((key, active)) }
        }
        guard !hooked.isEmpty else {
            _ = try await send("batch_delete", ["keys": .array(keys.map(NanaValue.string))])
            return
        }
        let existing = try await storedValues(hooked.map(\.key))
        hooked.removeAll { existing[NanaKey($0.key)] == nil }
        for (key, active) in hooked {
            for hook in active { try await hook.beforeDelete(self, key: key) }
        }
        _ = try await send("batch_delete", ["keys": .array(keys.map(NanaValue.string))])
        for (key, active) in hooked {
            await runOnDeleteSuccess(active, key, old: existing[NanaKey(key)])
        }
    }
}
