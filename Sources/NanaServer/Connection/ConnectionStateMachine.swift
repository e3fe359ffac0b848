/// Where a client transaction stands, as the connection needs to know it.
enum ClientTransactionPhase: Equatable {
    /// Being opened (its BEGIN is queued or running) or open.
    case open
    /// Committed or rolled back.
    case ended
    /// Rolled back by the daemon (after its timeout, or because its file changed underneath);
    /// reported once to the session.
    case timedOut(message: String)
}

/// A client transaction's token, as the state machine sees it: an identity and its phase.
protocol ClientTransactionToken: AnyObject {
    /// Read once per question: the writer moves it on its own thread.
    var phase: ClientTransactionPhase { get }
}

/// One connection's state without its I/O, in the style of valkey-swift's
/// `ValkeyChannelHandler.StateMachine` and postgres-nio's `ConnectionStateMachine`: the
/// connection handler feeds it events (a call started or completed, a timer fired, the channel
/// stopped being writable, went idle or inactive) and does what the returned action says
/// (reply, stop or resume reading, arm or cancel a timer, start a held call, roll back, close).
///
/// It holds what used to be loose flags on the handler: whether the connection is active,
/// closing after a protocol error or closed; the calls waiting on storage and which of them a
/// timeout already answered; the calls held until the calls started before them completed
/// (`begin_transaction`'s barrier); and the session's transaction on each database file.
///
/// - `Deferred`: a held call's start (the handler's closure; a number in tests).
/// - `Database`: a database file, by identity.
/// - `Token`: a client transaction.
struct ConnectionStateMachine<Deferred, Database: AnyObject, Token: ClientTransactionToken> {
    enum State: Equatable {
        /// Reading requests and answering them.
        case active
        /// A protocol error was answered; nothing more is read or answered, and the channel
        /// closes once that answer is written.
        case closing
        /// The channel is gone. Calls still waiting on storage complete without a reply.
        case closed
    }

    /// A call waiting on storage, numbered in the order calls started.
    struct Call: Hashable {
        let number: UInt64
    }

    struct Limits {
        /// Reading stops at this many calls waiting on storage and resumes at half of it.
        var maximumCallsInFlight: Int
        /// Whether each call gets a timer (a request timeout is configured).
        var timesCalls: Bool
    }

    private(set) var state: State = .active
    let limits: Limits

    /// Calls waiting on storage.
    private(set) var callsInFlight = 0
    private var nextCallNumber: UInt64 = 0
    /// With a request timeout, the timed calls in flight: false while waiting, true once their
    /// timer fired and the timeout was answered (their late result is then dropped).
    private var timedCalls: [Call: Bool] = [:]
    /// Starts held until every call started before them completed: each counts the calls it
    /// still waits for. (A count rather than a set of numbers keeps the common case, nothing
    /// held, free of work.)
    private var held: [(after: UInt64, remaining: Int, start: Deferred)] = []
    /// Starts whose calls have all completed, to run in order (``nextReleasedStart()``).
    private var released: [Deferred] = []

    /// The session's transaction on each database file, one at most per file.
    private var transactions: [ObjectIdentifier: (database: Database, token: Token)] = [:]

    init(limits: Limits) {
        self.limits = limits
    }

    // MARK: Reading

    /// Whether a frame that arrived should be handled (nothing is, once closing).
    var acceptsFrames: Bool { state == .active }

    enum ViolationAction: Equatable {
        /// Write the error, then close the channel once it is written.
        case answerAndCloseAfterFlush
        /// Already closing or closed: nothing more is said.
        case ignore
    }

    /// A protocol violation (a malformed or oversized frame, a refused peer).
    mutating func protocolViolation() -> ViolationAction {
        guard state == .active else { return .ignore }
        state = .closing
        return .answerAndCloseAfterFlush
    }

    enum CloseAction: Equatable {
        case close
        case none
    }

    /// The channel stopped (or started again) accepting writes: a client that does not read
    /// its replies piled them up past the reply-buffer limit.
    mutating func writabilityChanged(isWritable: Bool) -> CloseAction {
        guard !isWritable, state == .active else { return .none }
        state = .closing
        return .close
    }

    /// The idle timeout passed with no request: close, unless a call or a transaction is open.
    func idleTimeoutPassed() -> CloseAction {
        guard state == .active, callsInFlight == 0, transactions.isEmpty else { return .none }
        return .close
    }

    /// The channel is gone. Returns the transactions to roll back: a client that is gone
    /// cannot commit, and the writer is released at once.
    mutating func channelInactive() -> [(database: Database, token: Token)] {
        state = .closed
        let abandoned = transactions.values.filter { $0.token.phase == .open }
        transactions.removeAll()
        return abandoned
    }

    // MARK: Calls waiting on storage

    enum StartAction: Equatable {
        /// Nothing to do but wait.
        case none
        /// Arm the call's timer.
        case armTimer
        /// Stop reading from the client until its calls drain (backpressure).
        case stopReading
        /// Both.
        case armTimerAndStopReading
    }

    /// A call was sent to storage.
    mutating func callStarted() -> (Call, StartAction) {
        let call = Call(number: nextCallNumber)
        nextCallNumber += 1
        callsInFlight += 1
        if limits.timesCalls { timedCalls[call] = false }
        let stop = callsInFlight == limits.maximumCallsInFlight
        switch (limits.timesCalls, stop) {
        case (false, false): return (call, .none)
        case (true, false): return (call, .armTimer)
        case (false, true): return (call, .stopReading)
        case (true, true): return (call, .armTimerAndStopReading)
        }
    }

    enum TimerAction: Equatable {
        /// Answer the call with the timeout error now; its result will be dropped.
        case answerTimeout
        case none
    }

    /// `call`'s timer fired.
    mutating func timerFired(_ call: Call) -> TimerAction {
        guard state == .active, timedCalls[call] == false else { return .none }
        timedCalls[call] = true
        return .answerTimeout
    }

    struct Completion: Equatable {
        /// Write the call's reply (false once closing or closed, or when the timeout answered it).
        var reply: Bool
        /// Cancel the call's timer (it has not fired).
        var cancelTimer: Bool
        /// Start reading from the client again.
        var resumeReading: Bool
        /// Starts were released: run each ``nextReleasedStart()`` returns.
        var releasedStarts: Bool
    }

    /// `call` completed on storage and its result is back on the event loop.
    mutating func callCompleted(_ call: Call) -> Completion {
        callsInFlight -= 1
        var completion = Completion(reply: state == .active, cancelTimer: false, resumeReading: false, releasedStarts: false)
        if limits.timesCalls, let answered = timedCalls.removeValue(forKey: call) {
            completion.cancelTimer = !answered
            if answered { completion.reply = false }
        }
        if state == .active, callsInFlight == limits.maximumCallsInFlight / 2 {
            completion.resumeReading = true
        }
        if !held.isEmpty {
            for i in held.indices where call.number < held[i].after { held[i].remaining -= 1 }
            // A later start waits for everything an earlier one waits for, so they leave in order.
            while let first = held.first, first.remaining == 0 {
                held.removeFirst()
                released.append(first.start)
            }
            completion.releasedStarts = !released.isEmpty
        }
        return completion
    }

    /// Holds `start` until every call started so far has completed; returns it when none is
    /// waiting, to run at once. `begin_transaction` starts through here: a call received before
    /// it may still queue writer work in a later step (an `open` creating its table, then adding
    /// constraints), which queued after the BEGIN would wait for the session's own COMMIT.
    /// Starts are held even once the channel is gone: a held BEGIN must still run so that the
    /// ROLLBACK the disconnect queued for its transaction ends it.
    mutating func startAfterEarlierCalls(_ start: Deferred) -> Deferred? {
        guard callsInFlight > 0 else { return start }
        held.append((nextCallNumber, callsInFlight, start))
        return nil
    }

    /// The next start a completion released, in the order they were held.
    mutating func nextReleasedStart() -> Deferred? {
        released.isEmpty ? nil : released.removeFirst()
    }

    // MARK: Client transactions

    enum TransactionLookup {
        case none
        case open(Token)
        /// The daemon rolled it back after its timeout; the session forgets it now, and the
        /// call that asked reports this once.
        case timedOut(message: String)
    }

    /// The session's transaction on `database`, forgetting one that ended.
    mutating func transaction(on database: Database) -> TransactionLookup {
        let key = ObjectIdentifier(database)
        guard let entry = transactions[key] else { return .none }
        switch entry.token.phase {
        case .open:
            return .open(entry.token)
        case .ended:
            transactions[key] = nil
            return .none
        case .timedOut(let message):
            transactions[key] = nil
            return .timedOut(message: message)
        }
    }

    /// The open transaction on the first file that `matches`, and that file (for `open` of
    /// another table of a file the session holds a transaction on).
    func transaction(where matches: (Database) -> Bool) -> Database? {
        transactions.values.first { matches($0.database) }?.database
    }

    /// Whether the session holds a transaction being opened or open on `database`, without
    /// forgetting or reporting one that ended.
    func holdsTransaction(on database: Database) -> Bool {
        transactions[ObjectIdentifier(database)]?.token.phase == .open
    }

    /// `begin_transaction` was accepted: `token` is now the session's transaction on `database`.
    mutating func transactionBegan(_ token: Token, on database: Database) {
        transactions[ObjectIdentifier(database)] = (database, token)
    }

    /// `token` ended (its commit or rollback replied, or its BEGIN failed): forgets it, unless
    /// another transaction has taken its place. A reply to `rollback` can arrive after a
    /// pipelined `begin_transaction` opened the next transaction on the file; forgetting by
    /// file alone lost that one, which then held the writer until its timeout (found by
    /// nanafuzz-dispatch).
    mutating func transactionEnded(_ token: Token, on database: Database) {
        let key = ObjectIdentifier(database)
        if transactions[key]?.token === token { transactions[key] = nil }
    }

    enum HandleCloseAction: Equatable {
        case close
        /// A transaction is open on the handle's file: commit or roll back first.
        case refuseOpenTransaction
    }

    /// `close` of a handle on `database`.
    mutating func handleClosing(on database: Database) -> HandleCloseAction {
        let key = ObjectIdentifier(database)
        guard let entry = transactions[key] else { return .close }
        if entry.token.phase == .open { return .refuseOpenTransaction }
        transactions[key] = nil  // it ended on its own
        return .close
    }
}
