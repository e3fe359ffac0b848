import Dispatch
import Logging
import Synchronization

/// How a database file is opened. The first open of a file decides; later opens share it.
public struct DatabaseOptions: Sendable, Hashable {
    /// NanaSQLite's `optimize`: WAL, synchronous NORMAL, mmap and page-cache PRAGMAs.
    public var optimize = true
    /// NanaSQLite's `cache_size_mb`: SQLite's page cache per connection.
    public var cacheSizeMB = 64
    /// How long a connection waits for a lock held by another process (NanaSQLite sets none).
    public var busyTimeoutMilliseconds: Int32 = 5000
    /// Read-only connections of the file kept open between reads (they run on the process's
    /// shared ``ReaderPool``; a read that finds none idle opens another, closed after use).
    public var readerCount = 2
    /// Most write requests committed in one transaction.
    public var maximumBatchSize = 1024
    /// WAL size (pages) at which the writer checkpoints when it has nothing else to do.
    /// 0 leaves checkpoints to an external tool such as Litestream (and to SQLite at close).
    public var checkpointWhenIdlePages: Int32 = 1000
    /// WAL size (pages) at which the writer checkpoints even with work waiting.
    public var checkpointForcedPages: Int32 = 10000
    /// SQLite's `journal_size_limit`: once a checkpoint has copied all of the WAL, the next
    /// write truncates a bigger WAL back to this many bytes, so a burst's WAL gives its disk
    /// space back (SQLite's default keeps it at its largest).
    public var journalSizeLimitBytes: Int64 = 4 << 20
    /// Longest one call of clients' SQL (`execute`, `execute_many`, `fetch_*`, the SQL helpers)
    /// may run before SQLite interrupts it; 0: no limit. On the writer such a call holds every
    /// client's writes to the file: a recursive query that never ends held them forever (found
    /// by nanafuzz-dispatch).
    public var statementTimeLimitMilliseconds: Int64 = 30_000
    /// How long the writer keeps looking for the next write (yielding the CPU) before it
    /// sleeps, in µs, after a batch of one write; 0 sleeps at once. Costs CPU only while writes
    /// keep coming. After a batch of several it sleeps at once: under load the writes queue
    /// meanwhile, and a bigger batch costs less per write than the spin saves.
    public var writerSpinMicroseconds = 100

    public init() {}
}

/// Counters a database keeps about its writer.
public struct WriterStatistics: Sendable, Hashable {
    /// Transactions committed.
    public var commits = 0
    /// Write requests committed.
    public var writes = 0
    /// Write requests that failed.
    public var failedWrites = 0
    /// The largest number of requests one transaction held.
    public var largestBatch = 0
    /// WAL checkpoints the writer ran.
    public var checkpoints = 0
    /// Writes refused because the disk was full, and whether it is full now.
    public internal(set) var diskFull = DiskFullEpisode()
    /// Group-commit batch sizes: `batchSizes[i]` counts transactions of up to
    /// `batchSizeBounds[i]` requests (the last bucket: more than the second-last bound).
    public var batchSizes = [Int](repeating: 0, count: WriterStatistics.batchSizeBounds.count)
    public static let batchSizeBounds = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, Int.max]
    /// Client transactions that held the writer, and for how long in all.
    public var clientTransactions = 0
    public var clientTransactionMilliseconds = 0.0
    /// Other sessions' write requests found waiting when a client transaction ended: each
    /// waited for it.
    public var writesDelayedByTransactions = 0

    mutating func recordBatch(_ size: Int) {
        let bucket = Self.batchSizeBounds.firstIndex { size <= $0 } ?? Self.batchSizeBounds.count - 1
        batchSizes[bucket] += 1
    }
}

/// One SQLite file owned by the daemon: a writer thread with the only read-write connection,
/// read-only connections on reader threads, and the key-value tables with their shared caches.
///
/// Writes are group-committed: the writer takes every request waiting in its queue, runs them
/// in one `BEGIN IMMEDIATE` transaction, commits, then updates the caches and completes each
/// request. No request is answered before the COMMIT that holds it.
public final class Database: Sendable {
    public let path: String
    public let options: DatabaseOptions
    let decoder: any StoredValueDecoder
    let logger: Logger

    let writeQueue = JobQueue<WriteJob>()
    /// Idle read-only connections, and whether reads are still taken (``stopReads()``).
    private let readers = Mutex((idle: [IdleConnection](), accepting: true))

    /// A read-only connection between reads. A connection is used by one thread at a time;
    /// the pool hands it from thread to thread only through ``readers``' lock.
    private struct IdleConnection: @unchecked Sendable {
        let connection: SQLiteConnection
    }
    /// Reads submitted and not yet finished, which closing waits for.
    private let readsInFlight = DispatchGroup()
    private let tables = Mutex<[String: KeyValueTable]>([:])
    /// Tables the open client transaction created; published at COMMIT, forgotten otherwise.
    let tablesCreatedInTransaction = Mutex<[String: KeyValueTable]>([:])
    /// The near-cache board, once a client asked for one.
    let boardLink = BoardLink()
    /// Commits by other programs, for `cache_consistency="auto"` sessions (``noticeOutsideWrites()``).
    let outsideWrites = OutsideWriteWatch()
    private let tablesMade = Atomic<Int>(0)
    let statistics = Mutex(WriterStatistics())
    /// Jobs of client transactions whose BEGIN has not reached the writer yet (writer thread).
    let parkedJobs = Mutex<[WriteJob]>([])
    /// The client transaction the writer serves, if any (read only by ``writerDiagnostics``).
    let servedTransaction = Mutex<TransactionToken?>(nil)
    private let closed = DispatchSemaphore(value: 0)
    private let isClosing = Atomic<Bool>(false)

    /// The files as opened, to tell when one is replaced underneath (nil until the writer opened them).
    private let files = Mutex<DatabaseFiles?>(nil)
    /// Odd while the writer runs a batch or a client transaction's step (work that may shrink
    /// the WAL), even between them; see ``DatabaseFiles/change(onWriter:writerQuiet:)``.
    private let writerEpoch = Atomic<UInt64>(0)
    /// Set once the file was found deleted, renamed or replaced: nothing more runs on it.
    private let retiredFlag = Atomic<Bool>(false)
    private let retirement = Mutex<DatabaseFiles.Change?>(nil)
    /// Sessions holding the file open (``DatabaseRegistry/open(_:options:create:completion:)``
    /// hands out one hold per open; ``release()`` gives it back).
    private let holders = Atomic<Int>(0)
    private let releasedAt = Atomic<UInt64>(0)

    /// When the last holder let go (uptime nanoseconds; 0: never held and released).
    var lastReleased: UInt64 { releasedAt.load(ordering: .relaxed) }
    /// What the registry does when the file is retired.
    let lifecycle = Mutex<(@Sendable (Database) -> Void)?>(nil)

    private init(path: String, options: DatabaseOptions, decoder: any StoredValueDecoder, logger: Logger) {
        self.path = path
        self.options = options
        self.decoder = decoder
        self.logger = logger
    }

    /// Opens `path` on a new writer thread and calls `completion` there once the file is open
    /// (or could not be opened).
    public static func open(
        path: String,
        options: DatabaseOptions,
        decoder: any StoredValueDecoder,
        logger: Logger,
        completion: @escaping @Sendable (Result<Database, StorageError>) -> Void
    ) {
        let database = Database(path: path, options: options, decoder: decoder, logger: logger)
        startThread(name: "nanad-writer") { database.runWriter(opened: completion) }
    }

    /// Opens `path` and waits for it.
    public static func open(path: String, options: DatabaseOptions = DatabaseOptions(), decoder: any StoredValueDecoder, logger: Logger) async throws(StorageError) -> Database {
        let result = await withCheckedContinuation { continuation in
            open(path: path, options: options, decoder: decoder, logger: logger) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    public var writerStatistics: WriterStatistics { statistics.withLock { $0 } }

    /// Write requests waiting for the writer.
    public var writeQueueDepth: Int { writeQueue.count }

    /// Batches the writer found while it spun before sleeping
    /// (``DatabaseOptions/writerSpinMicroseconds``), and times it went to sleep.
    public var writerWakeups: (foundSpinning: Int, slept: Int) { writeQueue.takerCounts }

    /// What the writer is doing, for hang reports (nanafuzz-dispatch): whether a client
    /// transaction holds it and in what state, and how many jobs wait for a BEGIN.
    public var writerDiagnostics: String {
        let held = servedTransaction.withLock { $0 }
        let parked = parkedJobs.withLock { $0.count }
        var queued: [String: Int] = [:]
        for job in writeQueue.snapshot {
            let owner = job.owner.map { $0 === held ? "the held transaction's" : "another transaction's (\($0.currentState))" } ?? "no transaction's"
            queued["\(job.mode) of \(owner)", default: 0] += 1
        }
        let summary = queued.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        var report = "client transaction \(held.map { "held (\($0.currentState))" } ?? "none"), parked jobs \(parked), queued: [\(summary)]"
        if let held, !held.history.isEmpty {
            report += "\n  the held transaction's history:\n    " + held.history.joined(separator: "\n    ")
        }
        return report
    }

    /// The tables opened so far.
    public var openTables: [KeyValueTable] { tables.withLock { Array($0.values) } }

    // MARK: Holders and replacement

    /// Sessions holding the file open.
    public var holderCount: Int { holders.load(ordering: .relaxed) }

    func hold() { holders.wrappingAdd(1, ordering: .relaxed) }

    /// Gives back one hold of ``DatabaseRegistry/open(_:options:create:completion:)``; the file
    /// may be closed once nobody holds it (after the registry's idle delay).
    public func release() {
        let left = holders.subtract(1, ordering: .acquiringAndReleasing).newValue
        if left == 0 { releasedAt.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed) }
    }

    /// Whether closing now loses or waits for nothing: no write queued or staged, no client
    /// transaction, and no v2 dead letter (the queue lives in memory, and closing loses it).
    var isQuiescent: Bool {
        writeQueue.isEmpty && servedTransaction.withLock { $0 == nil }
            && openTables.allSatisfy { $0.writeBehind.isDrained && $0.writeBehind.deadLetterCount == 0 }
    }

    /// Why the file was retired (deleted, renamed or replaced underneath), or nil.
    public var replacement: String? { retiredFlag.load(ordering: .relaxed) ? retirement.withLock { $0?.reason } : nil }

    var isRetired: Bool { retiredFlag.load(ordering: .relaxed) }

    /// Compares the path's files with those opened; on a difference retires the database.
    /// False when it is retired (now or before).
    @discardableResult
    func checkFiles(onWriter: Bool = false) -> Bool {
        if isRetired { return false }
        let epoch = writerEpoch.load(ordering: .acquiring)
        let quiet = { epoch & 1 == 0 && self.writerEpoch.load(ordering: .acquiring) == epoch }
        guard let problem = files.withLock({ $0?.change(onWriter: onWriter, writerQuiet: quiet) }) else { return true }
        retire(problem)
        return false
    }

    /// The main file's size in bytes (NanaSQLite's `get_db_size`): what the file holds, without
    /// the writes still in its WAL. Throws when the path no longer names the file served.
    public func mainFileSize() throws(StorageError) -> Int64 {
        guard checkFiles(), let size = files.withLock({ $0?.mainFileSize }) else { throw closedError }
        return size
    }

    /// Whether the main file looks as the writer left it (``DatabaseFiles/mainLooksUnchanged``).
    var mainFileLooksUnchanged: Bool { files.withLock { $0?.mainLooksUnchanged ?? false } }

    /// Has the writer compare the files with those opened, the main file's contents included
    /// (it waits for the writer's queue), and says whether the file is still served.
    func verifyFiles(completion: @escaping @Sendable (Bool) -> Void) {
        submit(WriteJob(
            mode: .exclusive,
            run: { _ in WriteOutcome { completion(!self.isRetired) } },  // the writer checked before running it
            fail: { _ in completion(false) }
        ))
    }

    /// After the old connections closed: the sidecars of a replaced file go too (see
    /// ``DatabaseFiles/removeOwnSidecars()``).
    func removeStaleSidecars() {
        switch retirement.withLock({ $0 }) {
        case .moved?, .overwritten?: files.withLock { $0?.removeOwnSidecars() }
        case .sidecar?, nil: break
        }
    }

    /// Whether the connections may checkpoint as they close (SQLite itself will not into a
    /// file that moved; see ``checkpointMovedFile(_:)``).
    private var mayCheckpointAtClose: Bool { !isRetired }

    /// A file renamed away keeps the rows its WAL holds: the writer checkpoints them into it
    /// (its sidecars at the old name are removed after; they must not meet a new file there).
    private func checkpointMovedFile(_ connection: SQLiteConnection) {
        guard case .moved? = retirement.withLock({ $0 }) else { return }
        do { try connection.checkpoint() } catch {
            logger.warning("could not checkpoint a database file that moved", metadata: ["db.path": "\(path)", "error": "\(error)"])
        }
    }

    /// Stops serving the file: every call from now on fails with ``closedError``, queued ones
    /// included, and the connections close without a checkpoint (which would read the
    /// `-shm` mapping). The registry forgets it, so the next open opens the path afresh.
    private func retire(_ change: DatabaseFiles.Change) {
        let first = retirement.withLock { retired -> Bool in
            guard retired == nil else { return false }
            retired = change
            return true
        }
        guard first, !retiredFlag.exchange(true, ordering: .acquiringAndReleasing) else { return }
        logger.warning("database file changed underneath nanad; it is no longer served, and the next open opens the path again",
                       metadata: ["db.path": "\(path)", "reason": "\(change.reason)"])
        writeQueue.close()
        readers.withLock { $0.accepting = false }
        boardLink.retire()
        lifecycle.withLock { $0 }?(self)
    }

    /// What a call on a closed or retired database fails with.
    var closedError: StorageError {
        if let reason = replacement {
            return StorageError(.database, "The database file '\(path)' changed underneath nanad (\(reason)); nothing was written to it. Open the database again to use the file now at that path.")
        }
        return StorageError(.closed, "Database connection is closed (\(path)).")
    }

    /// Finishes queued work, closes the readers and then the writer (whose close checkpoints
    /// the WAL), and waits for all of it. Safe to call more than once.
    public func close() {
        if isClosing.exchange(true, ordering: .acquiringAndReleasing) {
            closed.wait()
            closed.signal()
            return
        }
        // Write-behind tables flush what they staged while the writer still takes jobs.
        let flushed = DispatchGroup()
        for table in openTables where !isRetired {
            table.expiry.stop()
            flushed.enter()
            table.writeBehind.shutDown { flushed.leave() }
        }
        flushed.wait()
        for table in openTables where table.writeBehind.deadLetterCount > 0 {
            // The queue lives in memory: say what is lost (keys and errors were logged when
            // each row failed; values never are).
            logger.error("write-behind rows still in the dead-letter queue are lost at close", metadata: [
                "db.path": "\(path)", "table": "\(table.name)", "rows": "\(table.writeBehind.deadLetterCount)",
            ])
        }
        writeQueue.close()
        closed.wait()
        closed.signal()  // let a second caller through too
        boardLink.retire()
        outsideWrites.close()
        for table in openTables { table.expiry.stop() }
        // Tables point back at their database: forget them so that a closed database is freed
        // (nanad closes databases only when it stops; the fuzz harness closes one data folder
        // after another, and leaked them all).
        tables.withLock { $0.removeAll() }
        tablesCreatedInTransaction.withLock { $0.removeAll() }
    }

    // MARK: Tables

    /// The near-cache board of this open of the file, once a client asked for one.
    public var board: Board? { boardLink.current }

    /// A number for a new table's stamp on the near-cache board.
    func nextTableIndex() -> Int { tablesMade.wrappingAdd(1, ordering: .relaxed).oldValue }

    /// The key-value table `name` (validated, created if missing), shared by every session.
    /// - Parameter owner: the client transaction the caller is in on this file, if any (the
    ///   writer is its own until it ends).
    /// - Parameter create: whether a missing table is created (false for a peer that may only
    ///   read the file: the call fails instead, and the file is not touched).
    public func table(named requestedName: String, owner: TransactionToken? = nil, create: Bool = true, completion: @escaping @Sendable (Result<KeyValueTable, StorageError>) -> Void) {
        let name: String
        do { name = try Identifier.validated(requestedName) } catch { return completion(.failure(error)) }
        let quoted = "\"\(name)\""
        let canonical = Identifier.canonical(name)
        if let existing = tables.withLock({ $0[canonical] }) { return completion(.success(existing)) }
        if !create { return existingTable(name, quoted: quoted, completion: completion) }
        submit(WriteJob(
            mode: .statement,
            run: { connection throws(StorageError) in
                let existed = try connection.tableExists(name)
                try connection.execute("CREATE TABLE IF NOT EXISTS \(quoted) (key TEXT PRIMARY KEY, value TEXT)")
                let register: @Sendable (KeyValueTable) -> KeyValueTable = { candidate in
                    self.tables.withLock { tables in
                        if let existing = tables[canonical] { return existing }
                        tables[canonical] = candidate
                        return candidate
                    }
                }
                if existed || owner == nil {
                    return WriteOutcome { completion(.success(register(KeyValueTable(database: self, name: name, quoted: quoted)))) }
                }
                // Created inside a client transaction: shared only once the CREATE is committed
                // (after a ROLLBACK the table never existed for anyone else); until then every
                // open of it in the transaction gets the same object.
                let candidate = self.tablesCreatedInTransaction.withLock { pending in
                    if let table = pending[canonical] { return table }
                    let table = KeyValueTable(database: self, name: name, quoted: quoted)
                    pending[canonical] = table
                    return table
                }
                return WriteOutcome(
                    publish: { _ = register(candidate) },
                    complete: { completion(.success(candidate)) }
                )
            },
            fail: { completion(.failure($0)) }
        ).owned(by: owner))
    }

    /// The committed table `name`, looked up on a reader, or a validation error if there is none.
    private func existingTable(_ name: String, quoted: String, completion: @escaping @Sendable (Result<KeyValueTable, StorageError>) -> Void) {
        submitRead(ReadJob(
            run: { connection in
                do throws(StorageError) {
                    guard try connection.tableExists(name) else {
                        return completion(.failure(StorageError(.validation, "table '\(name)' does not exist, and this user may only read this database")))
                    }
                    let table = self.tables.withLock { tables in
                        let canonical = Identifier.canonical(name)
                        if let existing = tables[canonical] { return existing }
                        let table = KeyValueTable(database: self, name: name, quoted: quoted)
                        tables[canonical] = table
                        return table
                    }
                    completion(.success(table))
                } catch {
                    completion(.failure(error))
                }
            },
            fail: { completion(.failure($0)) }
        ))
    }

    public func table(named name: String) async throws(StorageError) -> KeyValueTable {
        let result = await withCheckedContinuation { continuation in
            table(named: name) { continuation.resume(returning: $0) }
        }
        return try result.get()
    }

    /// Counts a write-behind chunk the flusher committed.
    func recordFlush(rows: Int) {
        guard rows > 0 else { return }
        let ended = statistics.withLock {
            $0.commits += 1
            $0.writes += rows
            $0.largestBatch = max($0.largestBatch, rows)
            $0.recordBatch(rows)
            return $0.diskFull.committed()
        }
        logDiskFull(ended)
    }

    /// Calls `completion` once every write-behind table of this file has flushed what it
    /// staged: raw SQL and SQL helpers run after it, as in NanaSQLite, where writes staged
    /// before a statement reach the file before it.
    public func afterStagedWrites(_ completion: @escaping @Sendable () -> Void) {
        let pending = openTables.filter { $0.writeBehind.isActive && !$0.writeBehind.isDrained }
        guard !pending.isEmpty else { return completion() }
        let remaining = Atomic<Int>(pending.count)
        for table in pending {
            table.writeBehind.flush {
                if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 { completion() }
            }
        }
    }

    // MARK: Jobs

    func submit(_ job: WriteJob) {
        if !writeQueue.push(job) {
            job.owner?.trace("\(job.mode) refused: the queue is closed")
            job.fail(closedError)
        }
    }

    func submitRead(_ job: ReadJob) {
        let accepted = readers.withLock { state -> Bool in
            guard state.accepting else { return false }
            readsInFlight.enter()
            return true
        }
        guard accepted else { return job.fail(closedError) }
        ReaderPool.shared.submit(ReaderPool.Read(database: self, job: job))
    }

    // MARK: Writer thread

    private func runWriter(opened: @Sendable (Result<Database, StorageError>) -> Void) {
        let connection: SQLiteConnection
        do {
            connection = try SQLiteConnection(path: path, readOnly: false, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
            if options.optimize {
                // NanaSQLite's PRAGMAs, in its order (behaviour spec §1.5).
                try connection.execute("PRAGMA journal_mode = WAL")
                try connection.execute("PRAGMA synchronous = NORMAL")
                // No mmap_size (NanaSQLite sets 256 MiB): a mapped database file that someone
                // truncates underneath (`cp small-backup.db app.db`) turns the next read of a
                // page past its end into a SIGBUS that takes every client down. Reads go
                // through pread instead; the shared cache answers most of them anyway.
                try connection.execute("PRAGMA cache_size = -\(options.cacheSizeMB * 1024)")
                try connection.execute("PRAGMA temp_store = MEMORY")
                try connection.execute("PRAGMA page_size = 4096")
                // SQLite's own checkpoint runs inside COMMIT and stalls every writer behind it
                // for milliseconds; the writer checkpoints between batches instead (below).
                try connection.execute("PRAGMA wal_autocheckpoint = 0")
                try connection.execute("PRAGMA journal_size_limit = \(options.journalSizeLimitBytes)")
            }
        } catch {
            writeQueue.close()
            while let batch = writeQueue.takeBatch(limit: .max) { batch.forEach { $0.fail(error) } }
            closed.signal()
            opened(.failure(error))
            return
        }
        files.withLock { $0 = DatabaseFiles(path: path, mainWrittenOnlyByNanad: options.checkpointWhenIdlePages > 0) }
        opened(.success(self))

        let wal = WALMonitor(connection)
        var transaction: ClientTransaction?
        var lastBatchSize = 1
        while true {
            if let open = transaction {
                // A client holds the writer: only its jobs run; everyone else's wait in the queue.
                writerEpoch.add(1, ordering: .releasing)
                transaction = serveTransaction(open, on: connection)
                files.withLock { $0?.writerWrote() }
                writerEpoch.add(1, ordering: .releasing)
                if transaction == nil {
                    servedTransaction.withLock { $0 = nil }
                    let held = Double(DispatchTime.now().uptimeNanoseconds - open.started.uptimeNanoseconds) / 1e6
                    let waiting = writeQueue.count
                    statistics.withLock {
                        $0.clientTransactions += 1
                        $0.clientTransactionMilliseconds += held
                        $0.writesDelayedByTransactions += waiting
                    }
                }
                continue
            }
            // Spin only after a lone write: under load, a writer that sleeps wakes to a bigger batch.
            let spin = lastBatchSize <= 1 ? UInt64(options.writerSpinMicroseconds) * 1000 : 0
            guard let batch = writeQueue.takeBatch(limit: options.maximumBatchSize, spinning: spin) else { break }
            lastBatchSize = batch.count
            writerEpoch.add(1, ordering: .releasing)
            defer { writerEpoch.add(1, ordering: .releasing) }
            // Nothing is written, or acknowledged, into a file that is no longer at the path.
            guard checkFiles(onWriter: true) else {
                let error = closedError
                batch.forEach { $0.fail(error) }
                continue
            }
            let pagesBefore = wal.pages
            transaction = process(batch, on: connection)
            if let transaction { servedTransaction.withLock { $0 = transaction.token } }
            if transaction == nil { checkpointIfDue(wal, on: connection) }
            // A checkpoint (ours, or one a client's SQL ran) wrote the main file. Single rows
            // only grow the WAL (the next check adopts its size), unless a COMMIT restarted it
            // after a checkpoint and `journal_size_limit` cut it short: two `stat`s saved per
            // commit (see docs/BENCHMARKS.md, session 12).
            let onlyGrewTheWAL = transaction == nil && pagesBefore > 0 && wal.pages > pagesBefore
                && batch.allSatisfy { $0.isSingleRow && $0.mode == .statement }
            if !onlyGrewTheWAL { files.withLock { $0?.writerWrote() } }
        }
        let stranded = parkedJobs.withLock { parked in
            defer { parked.removeAll() }
            return parked
        }
        for job in stranded {
            job.owner?.trace("\(job.mode) stranded at close")
            job.fail(closedError)
        }
        stopReads()
        wal.detach()
        checkpointMovedFile(connection)  // after the readers closed: nothing holds the WAL back
        if !mayCheckpointAtClose { connection.skipCheckpointOnClose() }
        connection.close()  // before anyone is told the file is closed
        logger.debug("database closed", metadata: ["db.path": "\(path)"])
        closed.signal()
    }

    /// Runs a batch; returns the client transaction a BEGIN in it opened (the jobs after that
    /// BEGIN go back to the front of the queue, to wait for it or run inside it).
    private func process(_ batch: [WriteJob], on connection: SQLiteConnection) -> ClientTransaction? {
        var start = 0
        while start < batch.count {
            let job = batch[start]
            if job.mode != .begin, let owner = job.owner, owner.currentState == .pending {
                // Its BEGIN is still waiting for staged rows to be flushed: keep it for then.
                park(job)
                start += 1
                continue
            }
            switch job.mode {
            case .exclusive:
                runExclusive(job, on: connection)
                start += 1
                continue
            case .begin:
                let opened = begin(job, on: connection)
                // The transaction's jobs that arrived before its BEGIN run first (inside it, or
                // failing as after a failed BEGIN).
                let parked = job.owner.map(unpark) ?? []
                writeQueue.pushFront(parked + Array(batch[(start + 1)...]))
                if opened != nil { return opened }
                return nil
            case .commit, .rollback:
                job.owner?.trace("\(job.mode) found no transaction (\(job.owner.map { "\($0.currentState)" } ?? "no owner"))")
                job.fail(StorageError(.transaction, "No transaction in progress."))
                start += 1
                continue
            case .statement, .savepoint:
                if let owner = job.owner {
                    // Its transaction already ended (timed out or rolled back).
                    job.fail(owner.endedError)
                    start += 1
                    continue
                }
            }
            var end = start
            while end < batch.count, batch[end].owner == nil, batch[end].mode == .statement || batch[end].mode == .savepoint { end += 1 }
            commit(batch[start..<end], on: connection)
            start = end
        }
        return nil
    }

    /// Checkpoints (PASSIVE: never waits for readers) when the WAL is big enough and the queue
    /// is empty, or when it is much bigger whatever is queued. Checkpoints stay on the writer:
    /// SQLite 3.40 can corrupt a WAL that one connection resets while another checkpoints.
    /// On a disk short of room the WAL is truncated every few hundred KB of growth instead
    /// (``isDiskLow(_:)``), so that it does not eat the space rows need.
    private func checkpointIfDue(_ wal: WALMonitor, on connection: SQLiteConnection) {
        let idle = options.checkpointWhenIdlePages
        guard idle > 0 else { return }
        if isDiskLow(wal) {
            makeRoom(on: connection)
            wal.pages = 0
            return
        }
        guard wal.pages >= idle else { return }
        guard wal.pages >= options.checkpointForcedPages || writeQueue.isEmpty else { return }
        do {
            try connection.checkpoint()
            statistics.withLock { $0.checkpoints += 1 }
        } catch {
            logger.warning("checkpoint failed", metadata: ["db.path": "\(path)", "error": "\(error)"])
        }
        wal.pages = 0
    }

    private func runExclusive(_ job: WriteJob, on connection: SQLiteConnection) {
        do {
            let outcome = try job.run(connection)
            outcome.publish()
            outcome.complete()
        } catch {
            job.fail(error)
        }
    }

    /// Runs jobs in one transaction; each job's effects are published only after COMMIT. A
    /// batch refused for lack of room is retried once after the WAL is truncated (see
    /// ``makeRoom(on:)``); refused again, every job fails with the disk-full error.
    private func commit(_ jobs: ArraySlice<WriteJob>, on connection: SQLiteConnection) {
        var attempt = attemptBatch(jobs, on: connection)
        if case .diskFull = attempt {
            makeRoom(on: connection)
            attempt = attemptBatch(jobs, on: connection)
        }
        switch attempt {
        case .committed(let results, let failures):
            let ended = statistics.withLock { statistics -> DiskFullEpisode.Transition in
                statistics.commits += 1
                statistics.writes += results.count - failures
                statistics.failedWrites += failures
                statistics.largestBatch = max(statistics.largestBatch, jobs.count)
                statistics.recordBatch(jobs.count)
                return statistics.diskFull.committed()
            }
            logDiskFull(ended)
            for result in results {
                switch result {
                case .ran(let outcome, _):
                    outcome.publish()
                    outcome.complete()
                case .failed(let fail, let error):
                    fail(error)
                }
            }
        case .rolledBack(let results, let error):
            // SQLite rolled the transaction back (an I/O error, say): nothing in it was
            // written. Jobs that had failed by themselves keep their own error.
            let error = writeFailedError(error)
            for result in results {
                switch result {
                case .ran(_, let fail): fail(error)
                case .failed(let fail, let own): fail(writeFailedError(own))
                }
            }
            jobs.dropFirst(results.count).forEach { $0.fail(error) }
        case .diskFull(let error):
            let refused = diskFullError(error)
            recordDiskFull(refused: jobs.count)
            jobs.forEach { $0.fail(refused) }
        }
    }

    /// What one try of a batch came to. Nothing is answered during a try: a batch refused for
    /// lack of room runs again, and its jobs must not have been answered by the first try.
    private enum BatchAttempt {
        /// Committed; `failures` of the results are jobs that failed by themselves.
        case committed([JobResult], failures: Int)
        /// Rolled back as a whole after the results so far (the rest never ran).
        case rolledBack([JobResult], StorageError)
        /// Rolled back because the disk (or the file's size limit) has no room.
        case diskFull(StorageError)
    }

    private enum JobResult {
        case ran(WriteOutcome, fail: @Sendable (StorageError) -> Void)
        case failed(@Sendable (StorageError) -> Void, StorageError)
    }

    private func attemptBatch(_ jobs: ArraySlice<WriteJob>, on connection: SQLiteConnection) -> BatchAttempt {
        do {
            try connection.executePrepared("BEGIN IMMEDIATE")
        } catch {
            return error.isDiskFull ? .diskFull(error) : .rolledBack([], error)
        }
        var results: [JobResult] = []
        results.reserveCapacity(jobs.count)
        var failures = 0
        for job in jobs {
            do {
                if job.mode == .savepoint { try connection.execute("SAVEPOINT nana_job") }
                let action = try job.run(connection)
                if job.mode == .savepoint { try connection.execute("RELEASE nana_job") }
                results.append(.ran(action, fail: job.fail))
            } catch {
                if error.isDiskFull {
                    // The whole batch is tried again after making room, so it goes as a whole.
                    if !connection.isAutocommit { try? connection.execute("ROLLBACK") }
                    return .diskFull(error)
                }
                if connection.isAutocommit {
                    // SQLite rolled the whole transaction back: nothing in this batch was written.
                    results.append(.failed(job.fail, error))
                    return .rolledBack(results, error)
                }
                if job.mode == .savepoint {
                    try? connection.execute("ROLLBACK TO nana_job; RELEASE nana_job")
                }
                failures += 1
                results.append(.failed(job.fail, error))
            }
        }
        do {
            try connection.executePrepared("COMMIT")
        } catch {
            try? connection.execute("ROLLBACK")
            if error.isDiskFull { return .diskFull(error) }
            return .rolledBack(results.map { result in
                if case .ran(_, let fail) = result { return .failed(fail, error) }
                return result
            }, error)
        }
        return .committed(results, failures: failures)
    }

    // MARK: Reads

    /// Runs one read on a pool thread (``ReaderPool``), on an idle read-only connection of
    /// this file or a new one.
    func runRead(_ job: ReadJob) {
        defer { readsInFlight.leave() }
        guard checkFiles() else { return job.fail(closedError) }
        let connection: SQLiteConnection
        if let idle = readers.withLock({ $0.idle.popLast() }) {
            connection = idle.connection
        } else {
            do {
                connection = try SQLiteConnection(path: path, readOnly: true, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
                if options.optimize { try connection.execute("PRAGMA cache_size = -\(options.cacheSizeMB * 1024)") }
            } catch {
                logger.error("reader could not open the database", metadata: ["db.path": "\(path)", "error": "\(error)"])
                return job.fail(error)
            }
        }
        job.run(connection)
        let returned = IdleConnection(connection: connection)
        let surplus = readers.withLock { state -> IdleConnection? in
            guard state.accepting, state.idle.count < max(1, options.readerCount) else { return returned }
            state.idle.append(returned)
            return nil
        }
        if let surplus = surplus?.connection {
            if !mayCheckpointAtClose { surplus.skipCheckpointOnClose() }
            surplus.close()
        }
    }

    /// Takes no more reads, waits for those running, and closes the idle connections.
    private func stopReads() {
        readers.withLock { $0.accepting = false }
        readsInFlight.wait()
        let idle = readers.withLock { state in
            defer { state.idle.removeAll() }
            return state.idle
        }
        for connection in idle.map(\.connection) {
            if !mayCheckpointAtClose { connection.skipCheckpointOnClose() }
            connection.close()
        }
    }
}

/// What a write job does after it ran: `publish` its effects on shared state (caches) once
/// they are committed, and `complete` its caller. Outside a client transaction both run after
/// the group COMMIT; inside one, `complete` runs at once and `publish` waits for the client's
/// COMMIT (and is dropped on ROLLBACK), so no other session sees uncommitted data.
struct WriteOutcome: Sendable {
    let publish: @Sendable () -> Void
    let complete: @Sendable () -> Void

    init(publish: @escaping @Sendable () -> Void = {}, complete: @escaping @Sendable () -> Void) {
        self.publish = publish
        self.complete = complete
    }
}

/// One request for the writer.
struct WriteJob: Sendable {
    enum Mode: Sendable {
        /// One statement: atomic by itself inside the group transaction.
        case statement
        /// Several statements: wrapped in a savepoint so that a failure undoes only this job.
        case savepoint
        /// Runs alone, outside any transaction (VACUUM, checkpoints).
        case exclusive
        /// A client transaction's BEGIN, COMMIT or ROLLBACK (`owner` says whose).
        case begin, commit, rollback
    }

    let mode: Mode
    /// The client transaction this job belongs to; such jobs run only inside it.
    var owner: TransactionToken? = nil
    /// Writes one row of a key-value table, and nothing else: it can only grow the WAL.
    var isSingleRow = false
    let run: @Sendable (SQLiteConnection) throws(StorageError) -> WriteOutcome
    let fail: @Sendable (StorageError) -> Void

}

/// One request for a reader.
struct ReadJob: Sendable {
    let run: @Sendable (SQLiteConnection) -> Void
    let fail: @Sendable (StorageError) -> Void
}
