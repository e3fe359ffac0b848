import DequeModule
import Foundation

/// A blocking queue of jobs for the storage threads (the writer and the readers).
///
/// SQLite calls block, so they run on threads of their own, never on an event loop or the
/// Swift concurrency pool. `@unchecked Sendable`: every field is read and written only while
/// `condition` is locked.
final class JobQueue<Job: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var jobs = Deque<Job>()
    private var closed = false

    /// Adds a job; false once the queue is closed.
    func push(_ job: Job) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard !closed else { return false }
        jobs.append(job)
        condition.signal()
        return true
    }

    /// Batches that ``takeBatch(limit:spinning:)`` found while it spun, and times it slept
    /// (found nothing queued and nothing while spinning).
    private var takenWhileSpinning = 0
    private var sleeps = 0

    /// Waits for work and takes up to `limit` jobs; nil once closed and drained.
    /// - Parameter spinning: nanoseconds to keep looking for work, yielding the CPU between
    ///   looks, before sleeping on the condition. A sleeping thread's wake-up costs tens of
    ///   µs on a small VM (more than SQLite's commit): a client that sends its next write
    ///   soon after the last reply finds the writer awake (docs/BENCHMARKS.md, session 12).
    func takeBatch(limit: Int, spinning: UInt64 = 0) -> [Job]? {
        condition.lock()
        defer { condition.unlock() }
        if jobs.isEmpty && !closed && spinning > 0 {
            let until = DispatchTime.now().uptimeNanoseconds + spinning
            repeat {
                condition.unlock()
                sched_yield()
                condition.lock()
            } while jobs.isEmpty && !closed && DispatchTime.now().uptimeNanoseconds < until
            if !jobs.isEmpty { takenWhileSpinning += 1 }
        }
        if jobs.isEmpty && !closed { sleeps += 1 }
        while jobs.isEmpty && !closed { condition.wait() }
        if jobs.isEmpty { return nil }
        let n = min(limit, jobs.count)
        let batch = Array(jobs.prefix(n))
        jobs.removeFirst(n)
        return batch
    }

    /// Puts jobs back at the front, in their order (they were taken too early).
    func pushFront(_ front: [Job]) {
        guard !front.isEmpty else { return }
        condition.lock()
        jobs.insert(contentsOf: front, at: 0)
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until some jobs match `predicate` and takes all of those, leaving the others in
    /// order; `[]` when `deadline` passes first, nil once the queue is closed.
    func takeMatching(until deadline: Date, where predicate: (Job) -> Bool) -> [Job]? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if jobs.contains(where: predicate) {
                var matching: [Job] = []
                var rest = Deque<Job>()
                for job in jobs {
                    if predicate(job) { matching.append(job) } else { rest.append(job) }
                }
                jobs = rest
                return matching
            }
            if closed { return nil }
            if !condition.wait(until: deadline) && Date() >= deadline { return [] }
        }
    }

    /// Waits for one job; nil once closed and drained.
    func takeOne() -> Job? {
        condition.lock()
        defer { condition.unlock() }
        while jobs.isEmpty && !closed { condition.wait() }
        return jobs.popFirst()
    }

    /// Refuses new jobs; the ones queued are still handed out.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    var isEmpty: Bool {
        condition.lock()
        defer { condition.unlock() }
        return jobs.isEmpty
    }

    /// The jobs waiting, in order (diagnostics).
    var snapshot: [Job] {
        condition.lock()
        defer { condition.unlock() }
        return Array(jobs)
    }

    /// Batches ``takeBatch(limit:spinning:)`` found while it spun, and times it slept.
    var takerCounts: (foundSpinning: Int, slept: Int) {
        condition.lock()
        defer { condition.unlock() }
        return (takenWhileSpinning, sleeps)
    }

    var count: Int {
        condition.lock()
        defer { condition.unlock() }
        return jobs.count
    }
}

/// Starts a named thread that runs `body` once.
func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    let thread = Thread {
        // Foundation does not pass the name to the kernel on Linux; top and perf read this one.
        // (pthread_setname_np needs _GNU_SOURCE, which Swift's Glibc module does not set.)
        #if os(Linux)
        try? String(name.prefix(15)).write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
        #endif
        body()
    }
    thread.name = name
    thread.stackSize = 4 << 20
    thread.start()
}
