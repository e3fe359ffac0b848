import Foundation
import Synchronization

/// One client session's transaction on one file (NanaSQLite's `begin_transaction`).
///
/// While it is open the writer is its own: its jobs run inside it, every other session's
/// writes wait in the queue (their reads go on, from readers and the shared cache, seeing
/// committed data only), and what its writes would change in the shared caches is held back
/// until COMMIT. It ends with the client's COMMIT or ROLLBACK, with the session (the server
/// rolls it back when the connection drops), or when `timeout` passes.
public final class TransactionToken: Sendable {
    public enum State: Sendable, Equatable {
        case pending, active, committed, rolledBack, timedOut
        /// Rolled back because its file changed underneath (deleted, replaced: see `DatabaseFiles`).
        case lost
    }

    /// The longest the transaction may hold the writer.
    public let timeout: Duration
    private let state = Mutex(State.pending)

    public init(timeout: Duration) {
        self.timeout = timeout
    }

    public var currentState: State { state.withLock { $0 } }

    /// Whether the transaction is being opened or is open (one read of the state: testing
    /// `currentState` against `.pending` and then `.active` can see neither while the writer's
    /// BEGIN moves it from one to the other, and a disconnect then skipped its rollback, which
    /// left it holding the writer until its timeout; found by nanafuzz-dispatch, run 14).
    public var isOpen: Bool {
        state.withLock { $0 == .pending || $0 == .active }
    }

    func set(_ new: State) {
        state.withLock { $0 = new }
        trace("state \(new)")
    }

    #if FUZZING
    /// What happened to the token, in order (fuzz builds only: printed in hang reports).
    private let events = Mutex<[String]>([])
    private static let clock = ContinuousClock()
    private static let epoch = clock.now

    /// Records a step of the token's life (fuzz builds only; a no-op otherwise).
    public func trace(_ event: String) {
        let at = Self.epoch.duration(to: Self.clock.now)
        events.withLock { $0.append("\(at) [\(Thread.current.name ?? "?")] \(event)") }
    }

    /// The steps recorded by ``trace(_:)``.
    public var history: [String] { events.withLock { $0 } }
    #else
    @inline(__always) public func trace(_ event: @autoclosure () -> String) {}
    public var history: [String] { [] }
    #endif

    /// Why a job of an ended transaction cannot run.
    public var endedError: StorageError {
        switch currentState {
        case .timedOut:
            StorageError(.transaction, "The transaction was rolled back because it held the database longer than the transaction timeout (\(timeout)).")
        case .lost:
            StorageError(.transaction, "The transaction was rolled back because its database file changed underneath nanad (deleted, renamed or replaced); nothing of it was committed.")
        default:
            StorageError(.transaction, "No transaction in progress.")
        }
    }
}

/// The writer's record of the open client transaction (writer thread only).
final class ClientTransaction {
    let token: TransactionToken
    let deadline: Date
    let started = DispatchTime.now()
    /// Cache updates of its writes, published at COMMIT.
    var held: [@Sendable () -> Void] = []

    init(token: TransactionToken) {
        self.token = token
        let seconds = Double(token.timeout.components.seconds) + Double(token.timeout.components.attoseconds) / 1e18
        self.deadline = Date(timeIntervalSinceNow: seconds)
    }
}

extension Database {
    /// Opens `token`'s transaction (BEGIN IMMEDIATE) once the writer is free.
    ///
    /// Rows staged by v2 tables of the file before it are flushed first. Without that, a call
    /// received before `begin_transaction` that waits for such rows (a scan, raw SQL) was
    /// queued only once they were flushed, and so behind the transaction: it waited for the
    /// client's COMMIT (found by nanafuzz-dispatch). The session's calls that arrive while the
    /// BEGIN waits are parked by the writer until it runs (``park(_:)``).
    public func begin(_ token: TransactionToken, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        token.trace("BEGIN asked for")
        afterStagedWrites {
            token.trace("BEGIN queued")
            self.submitControl(.begin, token, completion)
        }
    }

    /// Commits `token`'s transaction and publishes its writes to the shared caches.
    public func commit(_ token: TransactionToken, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        token.trace("COMMIT queued")
        submitControl(.commit, token, completion)
    }

    /// Rolls `token`'s transaction back; its writes never reach the shared caches.
    public func rollback(_ token: TransactionToken, completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        token.trace("ROLLBACK queued")
        submitControl(.rollback, token, completion)
    }

    private func submitControl(_ mode: WriteJob.Mode, _ token: TransactionToken, _ completion: @escaping @Sendable (Result<Void, StorageError>) -> Void) {
        submit(WriteJob(mode: mode, owner: token, run: { _ in WriteOutcome { completion(.success(())) } }, fail: { error in
            // A BEGIN refused before it ran (the file closed or was retired meanwhile) ends
            // the transaction: left pending, its other calls would wait for it forever.
            if mode == .begin, token.currentState == .pending { token.set(.rolledBack) }
            completion(.failure(error))
        }))
    }

    /// Sets aside a job of a transaction whose BEGIN is not queued yet (it waits for staged
    /// rows to be flushed); writer thread only.
    func park(_ job: WriteJob) {
        job.owner?.trace("\(job.mode) parked")
        parkedJobs.withLock { $0.append(job) }
    }

    /// The parked jobs of `token`, in the order they arrived.
    func unpark(_ token: TransactionToken) -> [WriteJob] {
        parkedJobs.withLock { parked in
            let mine = parked.filter { $0.owner === token }
            parked.removeAll { $0.owner === token }
            token.trace("unparked \(mine.map { "\($0.mode)" })")
            return mine
        }
    }

    /// Runs a BEGIN job; returns the transaction it opened.
    func begin(_ job: WriteJob, on connection: SQLiteConnection) -> ClientTransaction? {
        guard let token = job.owner else { return nil }
        token.trace("BEGIN runs")
        guard token.currentState == .pending else {
            // A token is begun once. Opening it again after its ROLLBACK would leave a
            // transaction nobody will end holding the writer until its timeout (the shape of
            // the hang nanafuzz-dispatch reports, tools/fuzz/README.md "Open").
            job.fail(StorageError(.transaction, "This transaction already ended; begin a new one."))
            return nil
        }
        do {
            try connection.execute("BEGIN IMMEDIATE")
            token.set(.active)
            try job.run(connection).complete()
            return ClientTransaction(token: token)
        } catch {
            token.set(.rolledBack)
            job.fail(StorageError(.database, "Failed to begin transaction: \(error.message)", sqliteCode: error.sqliteCode))
            return nil
        }
    }

    /// Serves the open transaction's jobs until it ends (returns nil) or for one more round.
    func serveTransaction(_ transaction: ClientTransaction, on connection: SQLiteConnection) -> ClientTransaction? {
        let token = transaction.token
        guard let jobs = writeQueue.takeMatching(until: transaction.deadline, where: { $0.owner === token }) else {
            // Shutting down (or the file was retired): an uncommitted transaction is rolled
            // back, as SQLite would.
            try? connection.execute("ROLLBACK")
            token.set(isRetired ? .lost : .rolledBack)
            tablesCreatedInTransaction.withLock { $0.removeAll() }
            return nil
        }
        if jobs.isEmpty {
            try? connection.execute("ROLLBACK")
            token.set(.timedOut)
            tablesCreatedInTransaction.withLock { $0.removeAll() }
            logger.info("client transaction rolled back after its timeout", metadata: ["db.path": "\(path)", "timeout": "\(token.timeout)"])
            return nil
        }
        for (index, job) in jobs.enumerated() {
            switch job.mode {
            case .begin:
                token.trace("BEGIN refused inside the transaction")
                job.fail(StorageError(.transaction, "Transaction already in progress. SQLite does not support nested transactions."))
            case .commit:
                // No COMMIT is acknowledged into a file that is no longer at the path.
                guard checkFiles(onWriter: true) else {
                    try? connection.execute("ROLLBACK")
                    token.set(.lost)
                    tablesCreatedInTransaction.withLock { $0.removeAll() }
                    job.fail(closedError)
                    jobs[(index + 1)...].forEach { $0.fail(closedError) }
                    return nil
                }
                do {
                    try connection.execute("COMMIT")
                } catch {
                    job.fail(StorageError(.database, "Failed to commit transaction: \(error.message)", sqliteCode: error.sqliteCode))
                    continue  // still open: the client may roll back
                }
                token.set(.committed)
                statistics.withLock { $0.commits += 1 }
                transaction.held.forEach { $0() }
                tablesCreatedInTransaction.withLock { $0.removeAll() }
                finish(job, on: connection, requeue: jobs[(index + 1)...])
                return nil
            case .rollback:
                try? connection.execute("ROLLBACK")
                token.set(.rolledBack)
                tablesCreatedInTransaction.withLock { $0.removeAll() }
                finish(job, on: connection, requeue: jobs[(index + 1)...])
                return nil
            case .exclusive:
                do { try job.run(connection).complete() } catch { job.fail(error) }
            case .statement, .savepoint:
                do {
                    if job.mode == .savepoint { try connection.execute("SAVEPOINT nana_job") }
                    let outcome = try job.run(connection)
                    if job.mode == .savepoint { try connection.execute("RELEASE nana_job") }
                    outcome.complete()
                    transaction.held.append(outcome.publish)
                } catch {
                    if connection.isAutocommit {
                        // SQLite rolled the whole transaction back (I/O error, disk full).
                        token.set(.rolledBack)
                        tablesCreatedInTransaction.withLock { $0.removeAll() }
                        job.fail(error)
                        writeQueue.pushFront(Array(jobs[(index + 1)...]))
                        return nil
                    }
                    if job.mode == .savepoint { try? connection.execute("ROLLBACK TO nana_job; RELEASE nana_job") }
                    job.fail(error)
                }
            }
        }
        return transaction
    }

    private func finish(_ job: WriteJob, on connection: SQLiteConnection, requeue rest: ArraySlice<WriteJob>) {
        do { try job.run(connection).complete() } catch { job.fail(error) }
        writeQueue.pushFront(Array(rest))
    }
}

extension WriteJob {
    func owned(by token: TransactionToken?) -> WriteJob {
        var job = self
        job.owner = token
        return job
    }
}
