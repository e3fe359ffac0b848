import Foundation
import Synchronization
import Testing

@testable import NanaStorage

/// The writer's queue: spinning before sleeping (``JobQueue/takeBatch(limit:spinning:)``).
@Suite struct JobQueueTests {
    /// Takes one batch on another thread; returns what it took.
    private func takeOnAnotherThread(_ queue: JobQueue<Int>, spinning: UInt64) -> @Sendable () -> [Int]? {
        final class Taken: Sendable {
            let batch = Mutex<[Int]?>(nil)
            let done = DispatchSemaphore(value: 0)
        }
        let taken = Taken()
        Thread {
            let batch = queue.takeBatch(limit: 10, spinning: spinning)
            taken.batch.withLock { $0 = batch }
            taken.done.signal()
        }.start()
        return {
            taken.done.wait()
            return taken.batch.withLock { $0 }
        }
    }

    @Test func aJobPushedWhileTheTakerSpinsIsFoundAwake() {
        let queue = JobQueue<Int>()
        let result = takeOnAnotherThread(queue, spinning: 5_000_000_000)
        usleep(20_000)
        #expect(queue.push(7))
        #expect(result() == [7])
        #expect(queue.takerCounts == (1, 0))
    }

    @Test func withoutSpinningTheTakerSleepsUntilWoken() {
        let queue = JobQueue<Int>()
        let result = takeOnAnotherThread(queue, spinning: 0)
        usleep(20_000)
        #expect(queue.push(7))
        #expect(result() == [7])
        #expect(queue.takerCounts == (0, 1))
    }

    @Test func aSpinThatFindsNothingEndsInSleep() {
        let queue = JobQueue<Int>()
        let result = takeOnAnotherThread(queue, spinning: 10_000_000)  // 10 ms
        usleep(300_000)
        #expect(queue.push(7))
        #expect(result() == [7])
        #expect(queue.takerCounts == (0, 1), "the job came after the spin ended")
    }

    @Test func jobsAlreadyQueuedAreTakenWithoutSpinning() {
        let queue = JobQueue<Int>()
        #expect(queue.push(1) && queue.push(2))
        #expect(queue.takeBatch(limit: 10, spinning: 5_000_000_000) == [1, 2])
        #expect(queue.takerCounts == (0, 0))
    }

    @Test func closingEndsASpin() {
        let queue = JobQueue<Int>()
        let result = takeOnAnotherThread(queue, spinning: 5_000_000_000)
        usleep(20_000)
        queue.close()
        #expect(result() == nil)
    }
}
