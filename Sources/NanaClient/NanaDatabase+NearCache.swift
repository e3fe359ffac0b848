import NanaWire
import OrderedCollections

// The reads of a tracking handle (PROTOCOL §10): answered from the near-cache while the
// board's stamps vouch for the entry, else one round trip whose reply fills it.
extension NanaDatabase {
    /// This handle's near-cache counters; nil when it was opened with ``NanaNearCache/off``.
    /// While the daemon offers no board (started with `--near-cache-slots 0`), nothing is
    /// kept and every read counts as a miss.
    public var nearCacheStatistics: NanaNearCacheStatistics? { nearCache?.statistics }

    /// The value of `key`, or nil when it is missing.
    /// - Parameter lookedUp: the caller has just missed in the near-cache (do not count twice).
    func trackedGet(_ key: String, lookedUp: Bool = false) async throws -> NanaValue? {
        if !lookedUp, let nearCache, let answer = nearCache.lookup(key, needsValue: true) {
            if case .value(let value) = answer { return value }
            return nil
        }
        let sentAt = NearCacheTable.now()
        let (reply, connection) = try await callTracked("get", ["key": .string(key)])
        guard let fields = reply.arrayValue, fields.count == 6, let found = fields[0].boolValue else {
            throw NanaClientError(.protocolViolation, "unexpected tracked get reply: \(reply)")
        }
        let value: NanaValue? = found ? .some(fields[1]) : .none  // not `nil`: NanaValue takes the literal as its own .nil
        if let nearCache, let stamps = Self.stamps(fields[2], fields[3], fields[4]) {
            nearCache.fill(key, value.map(NearCacheAnswer.value) ?? .absent, stamps, expiresIn: fields[5].doubleValue, sentAt: sentAt, connectionID: connection.id)
        }
        return value
    }

    func trackedContains(_ key: String, lookedUp: Bool = false) async throws -> Bool {
        if !lookedUp, let nearCache, let answer = nearCache.lookup(key, needsValue: false) {
            if case .absent = answer { return false }
            return true
        }
        let sentAt = NearCacheTable.now()
        let (reply, connection) = try await callTracked("contains", ["key": .string(key)])
        guard let fields = reply.arrayValue, fields.count == 5, let found = fields[0].boolValue else {
            throw NanaClientError(.protocolViolation, "unexpected tracked contains reply: \(reply)")
        }
        if let nearCache, let stamps = Self.stamps(fields[1], fields[2], fields[3]) {
            nearCache.fill(key, found ? .exists : .absent, stamps, expiresIn: fields[4].doubleValue, sentAt: sentAt, connectionID: connection.id)
        }
        return found
    }

    /// The values of the keys that exist, in the order asked: hits from the near-cache, the
    /// rest in one `batch_get`.
    func trackedBatchGet(_ keys: [String]) async throws -> NanaParams {
        var known: [NanaKey: NearCacheAnswer] = [:]  // by bytes, as the daemon tells keys apart
        var missing: [String] = []
        var asked = Set<NanaKey>()
        for key in keys where asked.insert(NanaKey(key)).inserted {
            if let nearCache, let answer = nearCache.lookup(key, needsValue: true) { known[NanaKey(key)] = answer } else { missing.append(key) }
        }
        if !missing.isEmpty {
            let sentAt = NearCacheTable.now()
            let (reply, connection) = try await callTracked("batch_get", ["keys": .array(missing.map(NanaValue.string))])
            guard let fields = reply.arrayValue, fields.count == 3, let values = fields[0].mapValue, let perKey = fields[2].arrayValue else {
                throw NanaClientError(.protocolViolation, "unexpected tracked batch_get reply: \(reply)")
            }
            for key in missing { known[NanaKey(key)] = values[NanaKey(key)].map(NearCacheAnswer.value) ?? .absent }
            if let nearCache {
                for item in perKey {
                    guard let item = item.arrayValue, item.count == 4, let key = item[0].stringValue, let answer = known[NanaKey(key)],
                          let stamps = Self.stamps(item[1], item[2], fields[1]) else { continue }
                    nearCache.fill(key, answer, stamps, expiresIn: item[3].doubleValue, sentAt: sentAt, connectionID: connection.id)
                }
            }
        }
        var result = NanaParams()
        for key in keys.map({ NanaKey($0) }) where result[key] == nil {
            if case .value(let value)? = known[key] { result[key] = value }
        }
        return result
    }

    /// The stamps of a tracked reply; nil inside a transaction (the daemon sends none).
    static func stamps(_ keyWord: NanaValue, _ keyStamp: NanaValue, _ tableStamp: NanaValue) -> NearCacheStamps? {
        guard let word = keyWord.int64Value, let key = keyStamp.uint64Value, let table = tableStamp.uint64Value else { return nil }
        return NearCacheStamps(keyWord: Int(word), keyStamp: key, tableStamp: table)
    }
}
