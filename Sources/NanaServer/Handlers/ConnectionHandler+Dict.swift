import Foundation
import NanaStorage
import NanaWire

// The dict interface, batches, cache control and atomic updates of a key-value table: cache
// hits are answered on the event loop, the rest is sent to storage.
extension ConnectionHandler {
    func get(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try handle(for: args)
        let table = handle.table
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        if handle.tracking { return trackedGet(msgid, table, key, owner: owner) }
        let fallback = args.params["default"] ?? .nil
        switch owner == nil ? table.cached(key) : nil {
        case .present(let value): reply(msgid, .encoded(value))
        case .absent: reply(msgid, .value(fallback))
        case nil:
            respondLater(msgid, { table.get(key, owner: owner, missed: owner == nil, completion: $0) }) { value in value.map(Reply.encoded) ?? .value(fallback) }
        }
    }

    func set(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let value = try ValueCodec.storable(try args.value("value"), using: writer)
        respondLater(msgid, { table.set(key, value, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func delete(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        if owner == nil, case .absent = table.cached(key), !table.deleteNeedsTheTable(key) { throw NanaRemoteError(.keyError, key) }
        respondLater(msgid, { table.delete(key, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func contains(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try handle(for: args)
        let table = handle.table
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        if handle.tracking { return trackedContains(msgid, table, key, owner: owner) }
        switch owner == nil ? table.cached(key) : nil {
        case .present: reply(msgid, .value(true))
        case .absent: reply(msgid, .value(false))
        case nil: respondLater(msgid, { table.contains(key, owner: owner, missed: owner == nil, completion: $0) }) { .value(.bool($0)) }
        }
    }

    func len(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.count(owner: owner, completion: $0) }) { .value(.int(Int64($0))) }
    }

    func keys(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.keys(owner: owner, completion: $0) }) { keys in .value(.array(keys.map(NanaValue.string))) }
    }

    enum ScanShape: Sendable { case values, items, dictionary, nothing }

    func scan(_ msgid: UInt32, _ args: Arguments, as shape: ScanShape) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.items(owner: owner, completion: $0) }) { rows in
            if shape == .nothing { return .value(.nil) }
            return .encoded(Self.encode(rows, as: shape))
        }
    }

    /// Builds a list or map reply from cached bytes without decoding them.
    static func encode(_ rows: [(String, EncodedValue)], as shape: ScanShape) -> EncodedValue {
        let writer = MessagePackWriter(initialCapacity: 256 + rows.count * 32)
        switch shape {
        case .values:
            writer.writeArrayHeader(rows.count)
            for (_, value) in rows { writer.writeEncoded(value.bytes) }
        case .items:
            writer.writeArrayHeader(rows.count)
            for (key, value) in rows {
                writer.writeArrayHeader(2)
                writer.writeString(key)
                writer.writeEncoded(value.bytes)
            }
        case .dictionary, .nothing:
            // A key can appear twice only if the table was built outside NanaSQLite's schema.
            writer.writeMapHeader(rows.count)
            for (key, value) in rows {
                writer.writeString(key)
                writer.writeEncoded(value.bytes)
            }
        }
        return EncodedValue(bytes: writer.bytes)
    }

    func pop(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let fallback = args.params["default"]
        respondLater(msgid, { table.pop(key, owner: owner, completion: $0) }) { (old) throws(NanaRemoteError) -> Reply in
            if let old { return .encoded(old) }
            guard let fallback else { throw NanaRemoteError(.keyError, key) }
            return .value(fallback)
        }
    }

    func storableRows(_ mapping: NanaParams) throws(NanaRemoteError) -> [(String, StorableValue)] {
        var rows: [(String, StorableValue)] = []
        rows.reserveCapacity(mapping.count)
        for (key, value) in mapping { rows.append((key.string, try ValueCodec.storable(value, using: writer))) }
        return rows
    }

    func batchUpdate(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let rows = try storableRows(try args.map("mapping"))
        respondLater(msgid, { table.batchUpdate(rows, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func batchUpdatePartial(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        var rows: [(String, StorableValue)] = []
        var rejected = NanaParams()
        // NanaSQLite's message, both halves.
        let skipped: @Sendable (String, String) -> NanaValue = { key, why in
            NanaValue.string("Skipped key '\(key)' during partial batch update: \(why) / 部分一括更新でキー '\(key)' をスキップしました: \(why)")
        }
        for (key, value) in try args.map("mapping") {
            do throws(NanaRemoteError) {
                rows.append((key.string, try ValueCodec.storable(value)))
            } catch {
                rejected[key] = skipped(key.string, error.message)
            }
        }
        let unstorable = rejected
        let storable = rows
        respondLater(msgid, { table.batchUpdatePartial(storable, owner: owner, completion: $0) }) { refused in
            // Keys a constraint refused, in the order they were given.
            var all = unstorable
            for (key, _) in storable { if let why = refused[NanaKey(key)] { all[NanaKey(key)] = skipped(key, why) } }
            return .value(.map(all))
        }
    }

    func clear(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        respondLater(msgid, { table.clear(owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func setDefault(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        if owner == nil, case .present(let value) = table.cached(key) { return reply(msgid, .encoded(value)) }
        let value: StorableValue
        do throws(NanaRemoteError) {
            value = try ValueCodec.storable(args.params["default"] ?? .nil)
        } catch {
            // The default cannot be stored; that matters only if the key is missing.
            return respondLater(msgid, { table.get(key, owner: owner, completion: $0) }) { (existing) throws(NanaRemoteError) -> Reply in
                guard let existing else { throw error }
                return .encoded(existing)
            }
        }
        respondLater(msgid, { table.setDefault(key, value, owner: owner, completion: $0) }) { .encoded($0) }
    }

    func batchGet(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try handle(for: args)
        let table = handle.table
        let owner = try transactionOwner(table.database)
        let keys = try args.strings("keys")
        if handle.tracking { return trackedBatchGet(msgid, table, keys, owner: owner) }
        respondLater(msgid, { table.batchGet(keys, owner: owner, completion: $0) }) { .encoded(Self.encode($0, as: .dictionary)) }
    }

    func batchDelete(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let keys = try args.strings("keys")
        respondLater(msgid, { table.batchDelete(keys, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func refresh(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        guard let key = try args.optionalString("key") else {
            table.clearCache()
            return reply(msgid, .value(.nil))
        }
        table.forget(key)
        respondLater(msgid, { table.get(key, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func clearCache(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        try table(args).clearCache()
        reply(msgid, .value(.nil))
    }

    func isCached(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        reply(msgid, .value(.bool(table.isCached(try args.string("key")))))
    }

    func getFresh(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let fallback = args.params["default"] ?? .nil
        respondLater(msgid, { table.getFresh(key, owner: owner, completion: $0) }) { value in value.map(Reply.encoded) ?? .value(fallback) }
    }

    func increment(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let field = try args.optionalString("field")
        let transform: @Sendable (NanaValue?) throws(StorageError) -> NanaValue
        do throws(StorageError) {
            transform = try AtomicUpdates.increment(
                key: key, amount: args.params["amount"] ?? 1, field: field,
                defaultValue: args.params["default"].flatMap { $0.isNil ? nil : $0 })
        } catch { throw NanaRemoteError(error) }
        // With `field` the reply is the whole dict; without, the number.
        respondLater(msgid, { AtomicUpdates.run(on: table, key: key, owner: owner, transform, completion: $0) }) { .encoded($0) }
    }

    func patch(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        let owner = try transactionOwner(table.database)
        let key = try args.string("key")
        let changes = try args.value("changes")
        let create = try args.bool("create", default: false)
        let transform: @Sendable (NanaValue?) throws(StorageError) -> NanaValue
        do throws(StorageError) {
            transform = try AtomicUpdates.patch(key: key, changes: changes, create: create)
        } catch { throw NanaRemoteError(error) }
        respondLater(msgid, { AtomicUpdates.run(on: table, key: key, owner: owner, transform, completion: $0) }) { .encoded($0) }
    }
}
