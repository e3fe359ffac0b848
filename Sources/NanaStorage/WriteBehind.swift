import DequeModule
import Dispatch
import Foundation
import Logging
import NanaWire
import Synchronization

/// NanaSQLite's v2 settings (`v2_config` / the `flush_*` and `v2_*` arguments, spec §2).
public struct WriteBehindConfiguration: Sendable, Hashable {
    public enum FlushMode: String, Sendable, Hashable, CaseIterable {
        /// Every write asks for a flush at once; the flusher takes whatever has accumulated.
        case immediate
        /// A flush once `flushCount` writes are staged.
        case count
        /// A flush every `flushInterval` seconds while anything is staged.
        case time
        /// Only `flush()`, shutdown and reconfiguration flush.
        case manual
    }

    public var flushMode = FlushMode.immediate
    public var flushInterval = 3.0
    public var flushCount = 100
    /// Rows per transaction when flushing.
    public var chunkSize = 1000
    /// Dead letters kept; the oldest is dropped beyond it. `nil` keeps every one.
    public var maxDLQSize: Int? = 1000
    public var enableMetrics = false

    public init() {}

    /// Checks every field (NanaSQLite checks only two and crashes on `chunk_size=0`).
    public func validated() throws(StorageError) -> WriteBehindConfiguration {
        guard flushInterval.isFinite, flushInterval > 0 else {
            throw StorageError(.valueError, "flush_interval must be a positive number of seconds, got \(flushInterval)")
        }
        guard flushCount > 0 else { throw StorageError(.valueError, "flush_count must be a positive integer, got \(flushCount)") }
        guard chunkSize > 0 else { throw StorageError(.valueError, "chunk_size must be a positive integer, got \(chunkSize)") }
        if let maxDLQSize, maxDLQSize <= 0 {
            throw StorageError(.valueError, "max_dlq_size must be None or a positive integer, got \(maxDLQSize)")
        }
        return self
    }
}

/// A write waiting in the staging buffer: the last operation on its key wins.
public enum StagedOperation: Sendable, Hashable {
    case set(StorableValue)
    case delete
}

/// A row the flusher could not write (spec §5.4). The value is kept for `retry_dlq` and
/// returned by `get_dlq`, never logged.
public struct DeadLetter: Sendable {
    public var key: String
    public var operation: StagedOperation
    public var error: String
    /// Seconds since 1970.
    public var timestamp: Double
    /// The engine's count of staged writes when the row failed: a later write to its key
    /// supersedes it (``WriteBehind/retryDeadLetters()`` skips it).
    var sequence: UInt64 = 0
    /// Whether a newer write to its key was already staged when it failed.
    var superseded = false
}

/// NanaSQLite's `get_status()` view of a table's engine: keys staged and being flushed, how
/// long the oldest staged write has waited, whether a flush runs, and when one last succeeded.
public struct WriteBehindStatus: Sendable, Hashable {
    public var pending: Int
    public var flushing: Int
    public var oldestPendingAgeSeconds: Double?
    public var flushActive: Bool
    /// Seconds since 1970.
    public var lastSuccessfulFlushTime: Double?
}

/// NanaSQLite's `get_v2_metrics()` (spec §5.5, with the code's field names).
public struct WriteBehindMetrics: Sendable, Hashable {
    /// Flush cycles, empty ones included.
    public var flushCount = 0
    public var kvsItemsFlushed = 0
    /// Always 0: nanad runs raw SQL on the writer at once rather than in a strict lane.
    public var strictTasksExecuted = 0
    public var dlqErrors = 0
    /// When the last flush finished (seconds since 1970), not how long it took.
    public var lastFlushTime: Double?
    public var totalFlushTimeMilliseconds = 0.0
    /// Writes staged since the last flush began (calls, not distinct keys).
    public var currentStagingCount = 0
    public var currentStrictQueueSize = 0
}

/// The write-behind engine of one table: NanaSQLite's v2 mode, in the daemon.
///
/// Writes are staged in memory (coalesced per key) and acknowledged; a flush moves the staging
/// buffer aside and writes it on the database's writer thread, `chunkSize` rows per
/// transaction. Every session shares the buffer, so every read sees every staged write — the
/// guarantee NanaSQLite cannot give across processes.
///
/// Lock order: this engine's lock, then the table cache's. Staging updates the cache while
/// holding the engine lock so that two writers of one key cannot leave the cache with the
/// older value.
final class WriteBehind: Sendable {
    /// Writes the staged rows of one chunk on the writer's connection (inside a transaction the
    /// engine opened). Provided by the table: it knows the SQL and the encryption.
    typealias RowWriter = @Sendable (SQLiteConnection, String, StagedOperation) throws(StorageError) -> Void

    private struct State {
        var configuration: WriteBehindConfiguration?
        var staging: [NanaKey: StagedOperation] = [:]  // by the keys' bytes, as SQLite tells rows apart
        /// What the running flush is writing; reads see it until it is committed.
        var flushing: [NanaKey: StagedOperation] = [:]
        var flushRunning = false
        var flushAgain = false
        /// When the last flush cycle began (uptime ns): `immediate` mode paces the next.
        var lastCycleStart: UInt64 = 0
        var startedCycles: UInt64 = 0
        var finishedCycles: UInt64 = 0
        var waiters: [(cycle: UInt64, done: @Sendable () -> Void)] = []
        var deadLetters = Deque<DeadLetter>()
        /// Writes staged so far (the sequence a dead letter is stamped with).
        var stagedWrites: UInt64 = 0
        /// When the staging buffer last went from empty to holding a write (uptime ns; nil
        /// while it is empty): NanaSQLite's oldest pending write.
        var stagingSince: UInt64?
        /// When a flush cycle last finished with none of its rows failing (seconds since 1970).
        var lastSuccessfulFlush: Double?
        /// Rows of the running cycle that failed (dead-lettered, or kept staged for lack of room).
        var cycleFailures = 0
        /// For each key with a dead letter: how many letters it has, and the sequence of the
        /// last write staged to it since (0: none).
        var deadLetterKeys: [NanaKey: (letters: Int, lastWrite: UInt64)] = [:]
        var metrics = WriteBehindMetrics()
        var timer: (any DispatchSourceTimer)?
        var shutDown = false
        /// Rows the disk had no room for are back in staging, and a flush is due for them.
        var diskFullRetryScheduled = false
    }

    /// Distinct staged keys beyond which a flush starts whatever the mode, so that staging
    /// (manual or time mode under a heavy writer) cannot grow the daemon's memory without bound.
    static let stagedRowLimit = 250_000

    /// In `immediate` mode, the least time from one flush cycle's start to the next. A write
    /// after a quiet millisecond is flushed at once; under load, the next cycle waits out the
    /// rest of the pace and takes everything staged meanwhile in one commit (about 48 rows at
    /// 16 busy connections, where starting at once took 3, and each commit costs CPU that
    /// serves the writes). It bounds how long an acknowledged write waits in memory then.
    static let immediatePace: UInt64 = 1_000_000  // ns

    /// How long a new cycle must wait for the pace (nil: it may start now). Called with the
    /// lock held.
    private static func paceWait(_ state: borrowing State, now: UInt64) -> UInt64? {
        guard state.configuration?.flushMode == .immediate, state.waiters.isEmpty, !state.shutDown,
              state.staging.count < (state.configuration?.chunkSize ?? 1000) else { return nil }
        let since = now &- state.lastCycleStart
        return since < immediatePace ? immediatePace - since : nil
    }

    private let state = Mutex(State())
    private let active = Atomic<Bool>(false)
    private let cache: TableCache
    private let database: Database
    private let tableName: String
    private let writeRow: RowWriter
    private let logger: Logger

    init(table: String, database: Database, cache: TableCache, logger: Logger, writeRow: @escaping RowWriter) {
        self.tableName = table
        self.database = database
        self.cache = cache
        self.logger = logger
        self.writeRow = writeRow
    }

    /// Whether writes are staged (v2 mode). One atomic load: the hot path asks every call.
    var isActive: Bool { active.load(ordering: .acquiring) }

    var configuration: WriteBehindConfiguration? { state.withLock { $0.configuration } }

    /// Whether nothing is staged or being flushed.
    var isDrained: Bool { state.withLock { $0.staging.isEmpty && $0.flushing.isEmpty && !$0.flushRunning } }

    /// Whether rows are staged or being written. Unlike ``isDrained`` it ignores a flush cycle
    /// with no rows: two opens switching a table's settings each waited for the other's empty
    /// cycle, each completion starting the next one inline, until the stack overflowed (found
    /// by nanafuzz-dispatch).
    var hasRows: Bool { state.withLock { !$0.staging.isEmpty || !$0.flushing.isEmpty } }

    /// Turns write-behind on, changes its settings or (with `nil`) turns it off. Turning it off
    /// requires an empty buffer (flush first); returns false when rows are still staged.
    func configure(_ configuration: WriteBehindConfiguration?) -> Bool {
        let changed: Bool = state.withLock { state in
            if configuration == nil, !(state.staging.isEmpty && state.flushing.isEmpty) { return false }
            state.configuration = configuration
            state.timer?.cancel()
            state.timer = nil
            if let configuration, configuration.flushMode == .time {
                state.timer = makeTimer(every: configuration.flushInterval)
            }
            active.store(configuration != nil, ordering: .releasing)
            return true
        }
        return changed
    }

    /// `flush_interval` as a timer period: any positive finite number of seconds is accepted,
    /// but Dispatch converts the period to UInt64 nanoseconds (trapping past ~584 years, found
    /// by nanafuzz-dispatch), and a period of nanoseconds would keep a core busy; so the timer
    /// runs at least every 10⁹ s (never, in practice) and at most every millisecond.
    static func timerPeriod(_ seconds: Double) -> Double {
        min(max(seconds, 0.001), 1e9)
    }

    private func makeTimer(every seconds: Double) -> any DispatchSourceTimer {
        let interval = Self.timerPeriod(seconds)
        let timer = DispatchSource.makeTimerSource(queue: .global())
        timer.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(10))
        timer.setEventHandler { [weak self] in self?.timerFired() }
        timer.resume()
        return timer
    }

    private func timerFired() {
        let due = state.withLock { !$0.staging.isEmpty }
        if due { requestFlush(waiter: nil) }
    }

    // MARK: Staging

    /// Stages writes and updates the cache; the caller can acknowledge them once this returns.
    func stage(_ operations: some Sequence<(String, StagedOperation)>) throws(StorageError) {
        let flushNow: Bool = try state.withLock { (state) throws(StorageError) -> Bool in
            guard !state.shutDown else { throw StorageError(.closed, "Database connection is closed (\(database.path)); write-behind engine has shut down.") }
            guard let configuration = state.configuration else {
                throw StorageError(.database, "write-behind is not enabled on table '\(tableName)'")
            }
            var changes: [CacheChange] = []
            for (key, operation) in operations {
                state.staging[NanaKey(key)] = operation
                state.metrics.currentStagingCount += 1
                Self.recordWrite(key, &state)
                switch operation {
                case .set(let value): changes.append(.set(key, value.encoded))
                case .delete: changes.append(.remove(key))
                }
            }
            cache.apply(changes)
            return Self.isFlushDue(configuration, state)
        }
        if flushNow { requestFlush(waiter: nil) }
    }

    /// Counts a staged write; a key with a dead letter remembers it, so that `retry_dlq` does
    /// not store the failed row over it (NanaSQLite 1.6.2 did, when the newer write had been
    /// flushed already). Called with the lock held.
    private static func recordWrite(_ key: String, _ state: inout State) {
        state.stagedWrites &+= 1
        if state.stagingSince == nil { state.stagingSince = DispatchTime.now().uptimeNanoseconds }
        if state.deadLetterKeys[NanaKey(key)] != nil { state.deadLetterKeys[NanaKey(key)]?.lastWrite = state.stagedWrites }
    }

    private static func isFlushDue(_ configuration: WriteBehindConfiguration, _ state: borrowing State) -> Bool {
        if state.staging.count >= stagedRowLimit { return true }
        switch configuration.flushMode {
        case .immediate: return true
        case .count: return state.metrics.currentStagingCount >= configuration.flushCount
        case .time, .manual: return false
        }
    }

    /// Every staged operation, the newest per key (staging over the running flush).
    func snapshot() -> [NanaKey: StagedOperation] {
        state.withLock { $0.flushing.merging($0.staging) { _, newer in newer } }
    }

    /// The staged operation on `key`, newest first (staging, then the running flush).
    func staged(_ key: String) -> StagedOperation? {
        state.withLock { $0.staging[NanaKey(key)] ?? $0.flushing[NanaKey(key)] }
    }

    /// Runs `body` with the staged operation on `key` while holding the engine lock, so that a
    /// read-modify-write on the writer thread is atomic against other stagers. `body` may read
    /// SQLite (the writer's connection) for a key with nothing staged, and returns the
    /// operation to stage, if any.
    ///
    /// `countingFailedWrite`: when nothing is staged, `body` sees the key's failed write instead
    /// (see `failedWrite`), so that a delete can supersede it.
    func withStaged<T>(_ key: String, countingFailedWrite: Bool = false,
                       _ body: (StagedOperation?) throws(StorageError) -> (StagedOperation?, T)) throws(StorageError) -> T {
        let flushNow: Bool
        let result: T
        (flushNow, result) = try state.withLock { (state) throws(StorageError) -> (Bool, T) in
            guard !state.shutDown, let configuration = state.configuration else {
                throw StorageError(.closed, "Database connection is closed (\(database.path)); write-behind engine has shut down.")
            }
            var staged = state.staging[NanaKey(key)] ?? state.flushing[NanaKey(key)]
            if staged == nil, countingFailedWrite { staged = Self.failedWrite(key, state) }
            let (operation, result) = try body(staged)
            guard let operation else { return (false, result) }
            state.staging[NanaKey(key)] = operation
            state.metrics.currentStagingCount += 1
            Self.recordWrite(key, &state)
            switch operation {
            case .set(let value): cache.apply([.set(key, value.encoded)])
            case .delete: cache.apply([.remove(key)])
            }
            return (Self.isFlushDue(configuration, state), result)
        }
        if flushNow { requestFlush(waiter: nil) }
        return result
    }

    /// Drops every staged write (the table is being cleared; the DELETE that follows covers
    /// what was already flushing).
    func discardStaged() {
        state.withLock {
            $0.staging.removeAll()
            $0.stagingSince = nil
        }
    }

    // MARK: Flushing

    /// Asks for a flush of everything staged so far; `completion` runs once it is committed
    /// (rows that failed are in the dead-letter queue by then).
    func flush(completion: (@Sendable () -> Void)?) {
        requestFlush(waiter: completion ?? {}, explicit: true)
    }

    func flush() async {
        await withCheckedContinuation { continuation in flush { continuation.resume() } }
    }

    private func requestFlush(waiter: (@Sendable () -> Void)?, explicit: Bool = false) {
        enum Next { case none, start([(String, StagedOperation)], Int), done(@Sendable () -> Void), paced(UInt64) }
        let next: Next = state.withLock { state in
            if state.flushRunning {
                state.flushAgain = true
                if let waiter { state.waiters.append((state.startedCycles + 1, waiter)) }
                return .none
            }
            if state.staging.isEmpty && !explicit {
                return waiter.map { .done($0) } ?? .none
            }
            if waiter == nil, let wait = Self.paceWait(state, now: DispatchTime.now().uptimeNanoseconds) {
                state.flushRunning = true  // a cycle is on its way: later writes join it
                return .paced(wait)
            }
            let rows = beginCycle(&state)
            if let waiter { state.waiters.append((state.startedCycles, waiter)) }
            return .start(rows, state.configuration?.chunkSize ?? 1000)
        }
        switch next {
        case .none: break
        case .done(let waiter): waiter()
        case .start(let rows, let chunkSize): write(rows, chunkSize: chunkSize, startedAt: DispatchTime.now())
        case .paced(let wait): startCycle(after: wait)
        }
    }

    /// Starts the cycle `paceWait` held back, once its wait is over (`flushRunning` is set
    /// meanwhile, so writes and flush calls join it).
    private func startCycle(after wait: UInt64) {
        DispatchQueue.global().asyncAfter(deadline: .now() + .nanoseconds(Int(wait))) { [self] in
            let (rows, chunkSize) = state.withLock { state in (beginCycle(&state), state.configuration?.chunkSize ?? 1000) }
            write(rows, chunkSize: chunkSize, startedAt: DispatchTime.now())
        }
    }

    /// Moves staging aside for a new flush cycle. Called with the lock held.
    private func beginCycle(_ state: inout State) -> [(String, StagedOperation)] {
        state.flushRunning = true
        state.flushAgain = false
        state.lastCycleStart = DispatchTime.now().uptimeNanoseconds
        state.startedCycles += 1
        state.flushing = state.staging
        state.staging = [:]
        state.stagingSince = nil
        state.cycleFailures = 0
        state.metrics.currentStagingCount = 0
        if state.configuration?.flushMode == .time, let seconds = state.configuration?.flushInterval {
            let interval = Self.timerPeriod(seconds)
            state.timer?.schedule(deadline: .now() + interval, repeating: interval, leeway: .milliseconds(10))
        }
        return state.flushing.map { ($0.key.string, $0.value) }
    }

    /// Writes a cycle's rows, one transaction per chunk, on the writer thread.
    private func write(_ rows: [(String, StagedOperation)], chunkSize: Int, startedAt: DispatchTime) {
        guard !rows.isEmpty else { return finishCycle(flushed: 0, startedAt: startedAt) }
        let chunks = stride(from: 0, to: rows.count, by: chunkSize).map { Array(rows[$0..<min($0 + chunkSize, rows.count)]) }
        let remaining = Atomic<Int>(chunks.count)
        let flushed = Atomic<Int>(0)
        for chunk in chunks {
            database.submit(WriteJob(
                mode: .exclusive,
                run: { connection throws(StorageError) in
                    flushed.add(self.writeChunk(chunk, on: connection), ordering: .relaxed)
                    return WriteOutcome {
                        if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                            self.finishCycle(flushed: flushed.load(ordering: .relaxed), startedAt: startedAt)
                        }
                    }
                },
                fail: { error in
                    // The database closed under the flush (it flushes before closing, so only
                    // a failure to start can get here): keep the rows where retry_dlq finds them.
                    self.deadLetter(chunk, error: "flush failed: \(error.message)")
                    if remaining.subtract(1, ordering: .acquiringAndReleasing).newValue == 0 {
                        self.finishCycle(flushed: flushed.load(ordering: .relaxed), startedAt: startedAt)
                    }
                }
            ))
        }
    }

    /// One chunk in one transaction; if it fails, each row alone so that one bad row does not
    /// hold back the others (NanaSQLite's poison-pill recovery). Returns the rows written.
    /// Rows refused for lack of room are no row's fault: they stay staged (``keepStaged(_:)``).
    private func writeChunk(_ chunk: [(String, StagedOperation)], on connection: SQLiteConnection) -> Int {
        do throws(StorageError) {
            try database.retryingOnceForRoom(on: connection) { () throws(StorageError) in
                try connection.execute("BEGIN IMMEDIATE")
                do throws(StorageError) {
                    for (key, operation) in chunk { try writeRow(connection, key, operation) }
                    try connection.execute("COMMIT")
                } catch {
                    try? connection.execute("ROLLBACK")
                    throw error
                }
            }
            database.recordFlush(rows: chunk.count)
            return chunk.count
        } catch where error.isDiskFull {
            keepStaged(chunk[...])
            return 0
        } catch {
            // A row failed, or BEGIN did (the file is locked by another process past
            // busy_timeout): row by row below finds which, and records each error.
        }
        var written = 0
        for (index, (key, operation)) in chunk.enumerated() {
            do throws(StorageError) {
                try connection.execute("BEGIN IMMEDIATE")
                do throws(StorageError) {
                    try writeRow(connection, key, operation)
                    try connection.execute("COMMIT")
                    written += 1
                } catch {
                    try? connection.execute("ROLLBACK")
                    throw error
                }
            } catch where error.isDiskFull {
                keepStaged(chunk[index...])
                break
            } catch {
                deadLetter([(key, operation)], error: "KVS Poison Pill row '\(key)' failed: \(error.message)")
            }
        }
        database.recordFlush(rows: written)
        return written
    }

    /// How long rows refused for lack of room wait before the flusher tries them again.
    static let diskFullRetryDelay = DispatchTimeInterval.seconds(1)

    /// Puts rows the disk had no room for back into staging (where reads keep finding them;
    /// a newer staged write to a key wins) and has the flusher try again shortly, so they reach
    /// the file by themselves once space is freed. At shutdown nothing would try again: they go
    /// to the dead-letter queue, whose loss at close is logged.
    private func keepStaged(_ rows: ArraySlice<(String, StagedOperation)>) {
        enum Next { case retry, deadLetter }
        let next: Next? = state.withLock { state -> Next? in
            if state.shutDown { return .deadLetter }
            state.cycleFailures += rows.count
            for (key, operation) in rows where state.staging[NanaKey(key)] == nil {
                if state.stagingSince == nil { state.stagingSince = DispatchTime.now().uptimeNanoseconds }
                state.staging[NanaKey(key)] = operation
                state.metrics.currentStagingCount += 1
            }
            if state.diskFullRetryScheduled { return nil }
            state.diskFullRetryScheduled = true
            return .retry
        }
        database.recordDiskFull(refused: rows.count)
        switch next {
        case .deadLetter:
            deadLetter(Array(rows), error: "flush failed at shutdown: database or disk is full")
        case nil:
            break
        case .retry:
            DispatchQueue.global().asyncAfter(deadline: .now() + Self.diskFullRetryDelay) { [weak self] in
                guard let self else { return }
                self.state.withLock { $0.diskFullRetryScheduled = false }
                self.requestFlush(waiter: nil)
            }
        }
    }

    private func finishCycle(flushed: Int, startedAt: DispatchTime) {
        let now = DispatchTime.now().uptimeNanoseconds
        let elapsed = Double(now - startedAt.uptimeNanoseconds) / 1e6
        enum Next { case idle, again([(String, StagedOperation)], Int), paced(UInt64) }
        let (waiters, next): ([@Sendable () -> Void], Next) = state.withLock { state in
            state.flushing = [:]
            state.finishedCycles = state.startedCycles
            state.metrics.flushCount += 1
            state.metrics.kvsItemsFlushed += flushed
            state.metrics.lastFlushTime = Date().timeIntervalSince1970
            state.metrics.totalFlushTimeMilliseconds += elapsed
            if state.cycleFailures == 0 { state.lastSuccessfulFlush = state.metrics.lastFlushTime }
            let finished = state.finishedCycles
            let ready = state.waiters.filter { $0.cycle <= finished }.map(\.done)
            state.waiters.removeAll { $0.cycle <= finished }
            if state.flushAgain || (!state.waiters.isEmpty) {
                // Writes came in during the cycle. Unless someone waits for the flush (or the
                // engine is shutting down), the next cycle keeps to the pace.
                if let wait = Self.paceWait(state, now: now) {
                    return (ready, .paced(wait))  // flushRunning stays set meanwhile
                }
                return (ready, .again(beginCycle(&state), state.configuration?.chunkSize ?? 1000))
            }
            state.flushRunning = false
            return (ready, .idle)
        }
        waiters.forEach { $0() }
        switch next {
        case .idle: break
        case .again(let rows, let chunkSize): write(rows, chunkSize: chunkSize, startedAt: DispatchTime.now())
        case .paced(let wait): startCycle(after: wait)
        }
    }

    // MARK: Dead letters

    private func deadLetter(_ rows: [(String, StagedOperation)], error: String) {
        let now = Date().timeIntervalSince1970
        let dropped: Int = state.withLock { state in
            var dropped = 0
            state.cycleFailures += rows.count
            for (key, operation) in rows {
                state.deadLetters.append(DeadLetter(key: key, operation: operation, error: error, timestamp: now,
                                                    sequence: state.stagedWrites, superseded: state.staging[NanaKey(key)] != nil))
                state.deadLetterKeys[NanaKey(key), default: (0, 0)].letters += 1
                state.metrics.dlqErrors += 1
                if let limit = state.configuration?.maxDLQSize, state.deadLetters.count > limit {
                    Self.forgetLetter(state.deadLetters.removeFirst(), &state)
                    dropped += 1
                }
                // The value never reached the file: reads must not keep answering with it
                // unless a newer write is staged.
                if state.staging[NanaKey(key)] == nil { cache.forget(key) }
            }
            return dropped
        }
        // The error only: never the value (spec §14.11).
        logger.error("write-behind row failed; moved to the dead-letter queue", metadata: [
            "db.path": "\(database.path)", "table": "\(tableName)", "rows": "\(rows.count)", "error": "\(error)",
        ])
        if dropped > 0 {
            logger.warning("dead-letter queue full; dropped the oldest entries", metadata: ["table": "\(tableName)", "dropped": "\(dropped)"])
        }
    }

    /// The key's newest accepted write when it is a dead letter: it failed, and nothing was
    /// written to the key since. Reads no longer show it (`deadLetter` forgot it), but it is
    /// still the client's last word on the key until `retry_dlq` or `clear_dlq`. Called with
    /// the lock held.
    private static func failedWrite(_ key: String, _ state: borrowing State) -> StagedOperation? {
        guard let entry = state.deadLetterKeys[NanaKey(key)],
              let letter = state.deadLetters.last(where: { $0.key == key }),
              !letter.superseded, entry.lastWrite <= letter.sequence
        else { return nil }
        return letter.operation
    }

    /// Whether the key's newest accepted write is a dead letter (see `failedWrite`).
    func hasFailedWrite(_ key: String) -> Bool {
        state.withLock { state in state.deadLetterKeys.isEmpty ? false : Self.failedWrite(key, state) != nil }
    }

    private static func forgetLetter(_ letter: DeadLetter, _ state: inout State) {
        guard let entry = state.deadLetterKeys[NanaKey(letter.key)] else { return }
        state.deadLetterKeys[NanaKey(letter.key)] = entry.letters > 1 ? (entry.letters - 1, entry.lastWrite) : nil
    }

    var deadLetters: [DeadLetter] { state.withLock { Array($0.deadLetters) } }

    var deadLetterCount: Int { state.withLock { $0.deadLetters.count } }

    /// Stages every dead letter again, unless a newer write to its key is staged (NanaSQLite
    /// would overwrite it), then flushes by the usual rule. Returns how many were re-staged.
    @discardableResult
    func retryDeadLetters() throws(StorageError) -> Int {
        let letters: [DeadLetter] = try state.withLock { (state) throws(StorageError) -> [DeadLetter] in
            guard state.configuration != nil, !state.shutDown else {
                throw StorageError(.database, "table '\(tableName)' is not in v2 mode now; open it with v2_mode=True to retry its dead letters, or clear them")
            }
            defer {
                state.deadLetters.removeAll()
                state.deadLetterKeys.removeAll()
            }
            // Not over a newer write: one staged, being flushed, or already flushed.
            return state.deadLetters.filter { letter in
                !letter.superseded && state.staging[NanaKey(letter.key)] == nil && state.flushing[NanaKey(letter.key)] == nil
                    && (state.deadLetterKeys[NanaKey(letter.key)]?.lastWrite ?? 0) <= letter.sequence
            }
        }
        do {
            try stage(letters.map { ($0.key, $0.operation) })
        } catch {
            state.withLock { state in  // nothing is lost
                state.deadLetters.insert(contentsOf: letters, at: 0)
                for letter in letters { state.deadLetterKeys[NanaKey(letter.key), default: (0, 0)].letters += 1 }
            }
            throw error
        }
        return letters.count
    }

    func clearDeadLetters() -> Int {
        state.withLock { state in
            defer {
                state.deadLetters.removeAll()
                state.deadLetterKeys.removeAll()
            }
            return state.deadLetters.count
        }
    }

    var metrics: WriteBehindMetrics { state.withLock { $0.metrics } }

    /// Staged writes (distinct keys), for stats.
    var stagedCount: Int { state.withLock { $0.staging.count + $0.flushing.count } }

    var status: WriteBehindStatus {
        state.withLock { state in
            let now = DispatchTime.now().uptimeNanoseconds
            return WriteBehindStatus(pending: state.staging.count, flushing: state.flushing.count,
                          oldestPendingAgeSeconds: state.stagingSince.map { Double(now &- $0) / 1e9 },
                          flushActive: state.flushRunning, lastSuccessfulFlushTime: state.lastSuccessfulFlush)
        }
    }

    // MARK: Shutdown

    /// Refuses further writes and flushes everything staged; `completion` runs once it is
    /// committed.
    func shutDown(completion: @escaping @Sendable () -> Void) {
        let wasActive = state.withLock { state in
            state.shutDown = true
            state.timer?.cancel()
            state.timer = nil
            return state.configuration != nil || !state.staging.isEmpty
        }
        guard wasActive else { return completion() }
        flush(completion: completion)
    }
}
