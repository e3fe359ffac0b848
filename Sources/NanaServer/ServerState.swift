import Foundation
import Logging
import NanaStorage
import Synchronization

/// What every connection of one server shares.
package final class ServerState: Sendable {
    package let configuration: ServerConfiguration
    package let registry: DatabaseRegistry
    let logger: Logger
    package let connections = Atomic<Int>(0)
    let totalConnections = Atomic<Int>(0)
    let requests = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    /// Requests waiting on storage, across all connections (shutdown drains them).
    package let inFlight = Atomic<Int>(0)
    let nextConnectionID = Atomic<Int>(0)
    /// Calls by method (indexed as ``WireMethod/all``, then one for unknown names) and errors
    /// by type, merged in from each connection now and then.
    let callCounts = Mutex<[Int]>(Array(repeating: 0, count: WireMethod.all.count + 1))
    let errorCounts = Mutex<[String: Int]>([:])

    func merge(calls: inout [Int], errors: inout [String: Int]) {
        callCounts.withLock { total in
            for i in calls.indices where calls[i] != 0 {
                total[i] += calls[i]
                calls[i] = 0
            }
        }
        if !errors.isEmpty { errorCounts.withLock { total in for (k, v) in errors { total[k, default: 0] += v } } }
        errors.removeAll(keepingCapacity: true)
    }

    /// Calls so far by method name; unknown names are counted together as "(unknown)".
    var callsByMethod: [(String, Int)] {
        let counts = callCounts.withLock { $0 }
        return counts.indices.compactMap { i in
            guard counts[i] > 0 else { return nil }
            return (i < WireMethod.all.count ? WireMethod.all[i].name : "(unknown)", counts[i])
        }.sorted { $0.0 < $1.0 }
    }

    /// The near-cache's boards and their handout; nil when the near-cache is off or could not
    /// be set up (then `open`'s `near_cache` is answered without a board).
    let boards: BoardDirectory?
    let boardHandout: BoardHandout?
    /// This run of the daemon, for `hello`: a client tells a restarted daemon from the same one.
    let instance = String((0..<4).map { _ in String(format: "%04x", UInt16.random(in: .min ... .max)) }.joined())
    /// When this run started (seconds since 1970), for `hello`.
    let startedAt = Date().timeIntervalSince1970

    package init(configuration: ServerConfiguration, registry: DatabaseRegistry, logger: Logger, boards: BoardDirectory? = nil, boardHandout: BoardHandout? = nil) {
        self.configuration = configuration
        self.registry = registry
        self.logger = logger
        self.boards = boardHandout == nil ? nil : boards
        self.boardHandout = boards == nil ? nil : boardHandout
    }
}
