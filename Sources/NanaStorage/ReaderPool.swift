import Synchronization

/// The reader threads of the process, shared by every database file: a file's reads run on
/// whichever is free, each on a read-only connection of that file (``Database`` keeps a few
/// idle ones). Threads do not grow with the number of files open: one database per tenant or
/// per job used to cost two reader threads each, for as long as the daemon ran.
///
/// A fixed pool, not Dispatch or the Swift concurrency pool: SQLite calls block, and a blocked
/// pool thread would starve unrelated work (Dispatch would spawn more threads to compensate).
public final class ReaderPool: Sendable {
    /// The pool every ``Database`` of this process uses.
    public static let shared = ReaderPool()

    private let queue = JobQueue<Read>()
    /// Threads started so far; they start on first use, up to ``threadCount``.
    private let started = Mutex(0)
    private let limit = Mutex(4)

    struct Read: Sendable {
        let database: Database
        let job: ReadJob
    }

    /// How many reader threads there are (default 4). Raising it starts more; lowering it
    /// takes effect only for threads not started yet.
    public var threadCount: Int {
        get { limit.withLock { $0 } }
        set { limit.withLock { $0 = max(1, newValue) } }
    }

    /// Threads running now.
    public var runningThreads: Int { started.withLock { $0 } }

    func submit(_ read: Read) {
        let start = started.withLock { count -> Int? in
            guard count < limit.withLock({ $0 }) else { return nil }
            count += 1
            return count - 1
        }
        if let index = start {
            startThread(name: "nanad-reader-\(index)") { [queue] in
                while let read = queue.takeOne() { read.database.runRead(read.job) }
            }
        }
        _ = queue.push(read)
    }
}
