import NIOCore

/// A client connection's event loop as a `TaskExecutor`, so that a task can run on the thread
/// that does the connection's I/O.
///
/// A call made from another thread hands its request to the loop, and its reply wakes the
/// calling task on Swift's global executor: two thread wake-ups per round trip on top of the
/// socket's. A task that prefers this executor makes both on its own thread. Measured with
/// `nanabench` (workloads `b-loop` and `c-loop` against `b` and `c`, docs/BENCHMARKS.md), a
/// sequential get's p50 fell from 78 to 66 µs, and the rate of gets on 16 connections rose 1.3×.
///
/// ```swift
/// let client = try await NanaClient.connect()
/// let db = try await client.open("app.db")
/// try await withTaskExecutorPreference(client.executor) {
///     for key in keys { _ = try await db.get(key) }
/// }
/// ```
///
/// Child tasks made with a plain `addTask` inherit the preference; with Swift 6.3,
/// `addTask(executorPreference: nil)` does not.
///
/// Code that runs there holds up the connection's I/O (and that of every other connection on
/// the same loop) while it computes or blocks, so keep it to calls and light work. With an
/// `eventLoopGroup` of your own (not the default singleton), shut the group down only after
/// every task preferring this executor has ended: a shut-down loop drops the jobs it is given.
///
/// Written here because SwiftNIO 2.101 makes an event loop a `SerialExecutor` (for actors) but
/// not a `TaskExecutor`.
public final class ConnectionExecutor: TaskExecutor, Sendable {
    private let eventLoop: any EventLoop

    init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    /// Whether the caller is running on this executor's thread.
    public var isCurrent: Bool { eventLoop.inEventLoop }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        eventLoop.execute { job.runSynchronously(on: executor) }
    }
}
