import Foundation
import NIOConcurrencyHelpers
import NIOCore

/// Work that storage threads hand back to one event loop, delivered in batches.
///
/// A group commit completes many calls at once. Posting each with `eventLoop.execute` would
/// wake the loop once per call; the mailbox wakes it once per batch and runs them in order.
///
/// A mailbox made with ``init(drainedOnCurrentThread:)`` is for an `EmbeddedEventLoop`, which
/// must never be called from another thread: work is queued, and the thread that made the
/// mailbox runs it with ``drain(waitingUntil:)`` (the fuzz harness, `FuzzConnection`).
package final class LoopMailbox: Sendable {
    let eventLoop: any EventLoop
    private let queue = NIOLockedValueBox<[@Sendable () -> Void]>([])
    /// The thread that drains a manual mailbox (nil: the event loop drains it).
    private let owner: pthread_t?
    private let posted: ConditionLock<Int>?

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.owner = nil
        self.posted = nil
    }

    /// A mailbox drained by hand on the calling thread, which must be `eventLoop`'s.
    package init(drainedOnCurrentThread eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
        self.owner = pthread_self()
        self.posted = ConditionLock(value: 0)
    }

    /// Whether the caller runs on the loop (so work can run at once instead of being posted).
    var inEventLoop: Bool {
        if let owner { return pthread_equal(owner, pthread_self()) != 0 }
        return eventLoop.inEventLoop
    }

    func post(_ work: @escaping @Sendable () -> Void) {
        let first = queue.withLockedValue { queue in
            queue.append(work)
            return queue.count == 1
        }
        if let posted {
            posted.lock()
            posted.unlock(withValue: 1)
            return
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

    /// Manual mailboxes: runs what was posted, first waiting up to `deadline` for something to
    /// be posted if nothing is. Returns how many items ran.
    @discardableResult
    package func drain(waitingUntil deadline: NIODeadline?) -> Int {
        guard let posted else { return 0 }
        if let deadline {
            let now = NIODeadline.now()
            if deadline > now, posted.lock(whenValue: 1, timeoutSeconds: Double((deadline - now).nanoseconds) / 1e9) {
                posted.unlock(withValue: 0)
            }
        } else {
            posted.lock()
            posted.unlock(withValue: 0)
        }
        let work = queue.withLockedValue { queue in
            let work = queue
            queue.removeAll(keepingCapacity: true)
            return work
        }
        for item in work { item() }
        return work.count
    }
}
