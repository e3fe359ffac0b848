import NanaClient
import Synchronization

/// A table opened on first use and kept for the life of the process. The client reopens it
/// after every restart of nanad by itself, so one `NanaDatabase` serves for good; only an open
/// that failed (nanad not there within the client's connection timeout) is tried again, by
/// the next request.
final class LazyTable: Sendable {
    private let open: @Sendable () async throws -> NanaDatabase
    private let opening = Mutex<Task<NanaDatabase, any Error>?>(nil)

    init(_ open: @escaping @Sendable () async throws -> NanaDatabase) {
        self.open = open
    }

    func table() async throws -> NanaDatabase {
        let task = opening.withLock { current in
            if let current { return current }
            let task = Task { try await open() }
            current = task
            return task
        }
        do {
            return try await task.value
        } catch {
            opening.withLock { if $0 == task { $0 = nil } }
            throw error
        }
    }
}
