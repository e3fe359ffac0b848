import NanaStorage
import NanaWire

// The near-cache (proto/PROTOCOL.md §10): a tracking handle's board in the `open` reply, and
// its `get`, `contains` and `batch_get` replies with the stamps read before each value.
extension ConnectionHandler {
    /// `open`'s and `table`'s reply; a tracking handle gets its file's board and a token to
    /// fetch it with, or the reason it has none.
    func openReply(_ id: Int64, _ table: KeyValueTable, tracking: Bool, legacyPlaintext: Bool = false) -> NanaValue {
        var reply: NanaParams = ["db": .int(id), "table": .string(table.name)]
        if legacyPlaintext {
            logger.warning("encrypted table holds plaintext values, read as legacy ones (allow_legacy_plaintext)", metadata: [
                "db.path": "\(table.path)", "table": "\(table.name)",
            ])
            reply["legacy_plaintext"] = true
        }
        guard tracking else { return .map(reply) }
        guard let boards = state.boards, let handout = state.boardHandout else {
            reply["near_cache_refused"] = "the near-cache is off on this nanad"
            return .map(reply)
        }
        // A connection's peer is known once it is admitted; without one (an embedded channel,
        // the fuzz target) the board is made and bumped, but its token is no real uid's.
        let uid = peer?.uid ?? UInt32.max
        do {
            let (board, tableWord) = try table.nearCacheBoard(in: boards)
            let token = handout.grant(board, to: uid)
            reply["board"] = [
                "socket": .string(handout.path), "token": .binary(token),
                "generation": .uint(board.generation), "words": .int(Int64(board.words)),
                "table_word": .int(Int64(tableWord)),
            ]
        } catch {
            logger.warning("no near-cache board for a tracking handle", metadata: ["db.path": "\(table.path)", "error": "\(error)"])
            reply["near_cache_refused"] = .string(error.message)
        }
        return .map(reply)
    }

    /// `[found, value, key_word, key_stamp, table_stamp, expires_in]`; the stamps are nil
    /// inside the session's transaction (whose reads must not be cached).
    func trackedGet(_ msgid: UInt32, _ table: KeyValueTable, _ key: String, owner: TransactionToken?) {
        let stamps = owner == nil ? table.stamps(of: key) : nil
        switch owner == nil ? table.cached(key) : nil {
        case .present(let value): reply(msgid, .encoded(Self.trackedValue(value, stamps, Self.life(table, key))))
        case .absent: reply(msgid, .encoded(Self.trackedValue(nil, stamps, Self.life(table, key))))
        case nil:
            respondLater(msgid, { table.get(key, owner: owner, missed: owner == nil, completion: $0) }) { value in
                .encoded(Self.trackedValue(value, stamps, Self.life(table, key)))
            }
        }
    }

    /// `[found, key_word, key_stamp, table_stamp, expires_in]`.
    func trackedContains(_ msgid: UInt32, _ table: KeyValueTable, _ key: String, owner: TransactionToken?) {
        let stamps = owner == nil ? table.stamps(of: key) : nil
        let answer: @Sendable (Bool) -> Reply = { found in
            .value(.array([.bool(found)] + Self.stampFields(stamps, withTable: true) + [Self.life(table, key).map(NanaValue.double) ?? .nil]))
        }
        switch owner == nil ? table.cached(key) : nil {
        case .present: reply(msgid, answer(true))
        case .absent: reply(msgid, answer(false))
        case nil: respondLater(msgid, { table.contains(key, owner: owner, missed: owner == nil, completion: $0) }) { answer($0) }
        }
    }

    /// `[values, table_stamp, [[key, key_word, key_stamp, expires_in], …]]`: every key asked for
    /// (once), found or not, so that a client can cache absence too.
    func trackedBatchGet(_ msgid: UInt32, _ table: KeyValueTable, _ keys: [String], owner: TransactionToken?) {
        var seen = Set<NanaKey>()
        let unique = keys.filter { seen.insert(NanaKey($0)).inserted }
        let stamps: [TrackedStamps?] = unique.map { owner == nil ? table.stamps(of: $0) : nil }
        respondLater(msgid, { table.batchGet(keys, owner: owner, completion: $0) }) { rows in
            let writer = MessagePackWriter(initialCapacity: 256 + rows.count * 48 + unique.count * 32)
            writer.writeArrayHeader(3)
            writer.writeMapHeader(rows.count)
            for (key, value) in rows {
                writer.writeString(key)
                writer.writeEncoded(value.bytes)
            }
            if let tableStamp = stamps.first??.tableStamp { writer.writeUInt(tableStamp) } else { writer.writeNil() }
            writer.writeArrayHeader(unique.count)
            for (key, stamp) in zip(unique, stamps) {
                writer.writeArrayHeader(4)
                writer.writeString(key)
                if let stamp {
                    writer.writeInt(Int64(stamp.keyWord))
                    writer.writeUInt(stamp.keyStamp)
                } else {
                    writer.writeNil()
                    writer.writeNil()
                }
                if let life = Self.life(table, key) { writer.write(.double(life)) } else { writer.writeNil() }
            }
            return .encoded(EncodedValue(bytes: writer.bytes))
        }
    }

    /// When a TTL table's entry for `key` expires: the daemon's entry's remaining life, or the
    /// table's TTL when it holds none.
    static func life(_ table: KeyValueTable, _ key: String) -> Double? {
        guard let ttl = table.cacheTimeToLive else { return nil }
        return table.remainingLife(of: key) ?? ttl
    }

    static func stampFields(_ stamps: TrackedStamps?, withTable: Bool) -> [NanaValue] {
        guard let stamps else { return withTable ? [.nil, .nil, .nil] : [.nil, .nil] }
        let fields: [NanaValue] = [.int(Int64(stamps.keyWord)), .uint(stamps.keyStamp)]
        return withTable ? fields + [.uint(stamps.tableStamp)] : fields
    }

    /// A tracked `get` reply around the cached bytes of the value, without decoding them.
    static func trackedValue(_ value: EncodedValue?, _ stamps: TrackedStamps?, _ life: Double?) -> EncodedValue {
        let writer = MessagePackWriter(initialCapacity: 64 + (value?.bytes.count ?? 0))
        writer.writeArrayHeader(6)
        writer.writeBool(value != nil)
        if let value { writer.writeEncoded(value.bytes) } else { writer.writeNil() }
        for field in stampFields(stamps, withTable: true) { writer.write(field) }
        if let life { writer.write(.double(life)) } else { writer.writeNil() }
        return EncodedValue(bytes: writer.bytes)
    }
}
