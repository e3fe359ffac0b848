import NIOConcurrencyHelpers
import NIOCore

/// Work that storage threads hand back to one event loop, delivered in batches.
///
/// A group commit completes many calls at once. Posting each with `eventLoop.execute` would
/// wake the loop once per call; the mailbox wakes it once per batch and runs them in order.
final class LoopMailbox: Sendable {
    let eventLoop: any EventLoop
    private let queue = NIOLockedValueBox<[@Sendable () -> Void]>([])

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    func post(_ work: @escaping @Sendable () -> Void) {
        let first = queue.withLockedValue { queue in
            queue.append(work)
            return queue.count == 1
        }
        if first { eventLoop.execute { self.drain() } }
    }

    private func drain() {
        let work = queue.withLockedValue { queue in
            let work = queue
            queue.removeAll(keepingCapacity: true)
            return work
        }
        for item in work { item() }
    }
}
