import NanaWire
// Async forms of the table's callback API, for tests and tools. The work still runs on the
// storage threads; only the waiting is async.
extension KeyValueTable {
    private func awaiting<T: Sendable>(
        _ operation: (@escaping @Sendable (Result<T, StorageError>) -> Void) -> Void
    ) async throws(StorageError) -> T {
        let result = await withCheckedContinuation { continuation in
            operation { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    public func get(_ key: String) async throws(StorageError) -> EncodedValue? { try await awaiting { get(key, completion: $0) } }
    public func getFresh(_ key: String) async throws(StorageError) -> EncodedValue? { try await awaiting { getFresh(key, completion: $0) } }
    public func contains(_ key: String) async throws(StorageError) -> Bool { try await awaiting { contains(key, completion: $0) } }
    public func count() async throws(StorageError) -> Int { try await awaiting { count(completion: $0) } }
    public func keys() async throws(StorageError) -> [String] { try await awaiting { keys(completion: $0) } }
    public func items() async throws(StorageError) -> [(String, EncodedValue)] { try await awaiting { items(completion: $0) } }
    public func batchGet(_ keys: [String]) async throws(StorageError) -> [(String, EncodedValue)] { try await awaiting { batchGet(keys, completion: $0) } }
    public func set(_ key: String, _ value: StorableValue) async throws(StorageError) { try await awaiting { set(key, value, completion: $0) } }
    public func delete(_ key: String) async throws(StorageError) { try await awaiting { delete(key, completion: $0) } }
    public func pop(_ key: String) async throws(StorageError) -> EncodedValue? { try await awaiting { pop(key, completion: $0) } }
    public func setDefault(_ key: String, _ value: StorableValue) async throws(StorageError) -> EncodedValue { try await awaiting { setDefault(key, value, completion: $0) } }
    public func batchUpdate(_ rows: [(String, StorableValue)]) async throws(StorageError) { try await awaiting { batchUpdate(rows, completion: $0) } }
    public func batchUpdatePartial(_ rows: [(String, StorableValue)]) async throws(StorageError) -> [NanaKey: String] { try await awaiting { batchUpdatePartial(rows, completion: $0) } }
    public func batchDelete(_ keys: [String]) async throws(StorageError) { try await awaiting { batchDelete(keys, completion: $0) } }
    public func update(_ key: String, transform: @escaping @Sendable (EncodedValue?) throws(StorageError) -> StorableValue) async throws(StorageError) -> EncodedValue {
        try await awaiting { update(key, transform: transform, completion: $0) }
    }
    public func clear() async throws(StorageError) { try await awaiting { clear(completion: $0) } }
}
