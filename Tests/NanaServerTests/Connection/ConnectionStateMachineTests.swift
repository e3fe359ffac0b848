import Testing

@testable import NanaServer

/// The connection's state machine alone: events in, actions out, no channel and no storage.
/// The orderings come from what the dispatcher fuzzer found (`tools/fuzz/regressions-dispatch/`,
/// named on each test), replayed here as the events the handler would feed.
@Suite struct ConnectionStateMachineTests {
    /// A client transaction whose phase the test moves (the writer moves a real one).
    final class Token: ClientTransactionToken {
        var phase: ClientTransactionPhase = .open
    }

    final class File {
        let path: String
        init(_ path: String) { self.path = path }
    }

    typealias Machine = ConnectionStateMachine<Int, File, Token>

    static func machine(maximumCallsInFlight: Int = 8, timesCalls: Bool = false) -> Machine {
        Machine(limits: .init(maximumCallsInFlight: maximumCallsInFlight, timesCalls: timesCalls))
    }

    /// Every start the last completion released, in order.
    static func released(_ machine: inout Machine) -> [Int] {
        var starts: [Int] = []
        while let start = machine.nextReleasedStart() { starts.append(start) }
        return starts
    }

    // MARK: Calls and backpressure

    @Test func readingStopsAtTheLimitAndResumesAtHalf() {
        var machine = Self.machine(maximumCallsInFlight: 4)
        var calls: [Machine.Call] = []
        for expected in [Machine.StartAction.none, .none, .none, .stopReading] {
            let (call, action) = machine.callStarted()
            #expect(action == expected)
            calls.append(call)
        }
        #expect(machine.callsInFlight == 4)
        #expect(machine.callCompleted(calls[0]).resumeReading == false)  // 3 left
        #expect(machine.callCompleted(calls[1]).resumeReading == true)   // 2 left: half
        #expect(machine.callCompleted(calls[2]).resumeReading == false)
        #expect(machine.callsInFlight == 1)
    }

    @Test func callsAreNumberedInTheOrderTheyStart() {
        var machine = Self.machine()
        let first = machine.callStarted().0, second = machine.callStarted().0
        #expect(first.number < second.number)
        #expect(machine.callCompleted(second) == .init(reply: true, cancelTimer: false, resumeReading: false, releasedStarts: false))
    }

    // MARK: Timers

    @Test func aTimedOutCallIsAnsweredOnceAndItsLateResultDropped() {
        var machine = Self.machine(timesCalls: true)
        let (call, action) = machine.callStarted()
        #expect(action == .armTimer)
        #expect(machine.timerFired(call) == .answerTimeout)
        #expect(machine.timerFired(call) == .none)
        let completion = machine.callCompleted(call)
        #expect(completion.reply == false)
        #expect(completion.cancelTimer == false)  // it fired
        #expect(machine.callsInFlight == 0)
    }

    @Test func aCallThatCompletesInTimeCancelsItsTimer() {
        var machine = Self.machine(timesCalls: true)
        let (call, _) = machine.callStarted()
        let completion = machine.callCompleted(call)
        #expect(completion.reply && completion.cancelTimer)
        #expect(machine.timerFired(call) == .none)  // a timer that fired anyway finds nothing
    }

    @Test func bothActionsAtTheLimitWithTimers() {
        var machine = Self.machine(maximumCallsInFlight: 1, timesCalls: true)
        #expect(machine.callStarted().1 == .armTimerAndStopReading)
    }

    // MARK: The barrier before begin_transaction

    /// `execute-before-begin-waits-for-the-transaction`, `table-with-inherited-constraints-before-begin`:
    /// a start held behind two calls runs when both completed, not before, and not waiting for
    /// calls that started after it.
    @Test func aHeldStartWaitsForExactlyTheCallsBeforeIt() {
        var machine = Self.machine()
        let a = machine.callStarted().0, b = machine.callStarted().0
        #expect(machine.startAfterEarlierCalls(1) == nil)
        let later = machine.callStarted().0
        #expect(machine.callCompleted(later).releasedStarts == false)
        #expect(machine.callCompleted(b).releasedStarts == false)
        #expect(machine.callCompleted(a).releasedStarts == true)
        #expect(Self.released(&machine) == [1])
        #expect(Self.released(&machine) == [])
    }

    @Test func aStartWithNothingBeforeItRunsAtOnce() {
        var machine = Self.machine()
        #expect(machine.startAfterEarlierCalls(7) == 7)
    }

    /// Two pipelined begins (`writer-held-after-pipelined-transactions-*`): the second also
    /// waits for the first's call, and they leave in the order they were held.
    @Test func heldStartsLeaveInOrder() {
        var machine = Self.machine()
        let a = machine.callStarted().0
        #expect(machine.startAfterEarlierCalls(1) == nil)
        let b = machine.callStarted().0  // the first begin's own call, say
        #expect(machine.startAfterEarlierCalls(2) == nil)
        _ = machine.callCompleted(a)
        #expect(Self.released(&machine) == [1])
        _ = machine.callCompleted(b)
        #expect(Self.released(&machine) == [2])
    }

    @Test func aLaterStartNeverOvertakesAnEarlierOne() {
        var machine = Self.machine()
        let a = machine.callStarted().0
        #expect(machine.startAfterEarlierCalls(1) == nil)
        #expect(machine.startAfterEarlierCalls(2) == nil)
        _ = machine.callCompleted(a)
        #expect(Self.released(&machine) == [1, 2])
    }

    /// `writer-held-begin-racing-a-disconnect`: a begin held when the client hangs up still
    /// starts (its BEGIN must run for the ROLLBACK the disconnect queued to end it), and the
    /// completion writes nothing.
    @Test func heldStartsAreReleasedAfterTheChannelIsGone() {
        var machine = Self.machine()
        let a = machine.callStarted().0
        #expect(machine.startAfterEarlierCalls(1) == nil)
        _ = machine.channelInactive()
        let completion = machine.callCompleted(a)
        #expect(completion.reply == false)
        #expect(completion.releasedStarts)
        #expect(Self.released(&machine) == [1])
    }

    // MARK: Closing

    /// `writer-held-with-restore-after-a-protocol-error`: after a protocol error nothing more is
    /// read, answered or timed out; the error is answered once.
    @Test func aProtocolErrorClosesAfterOneAnswer() {
        var machine = Self.machine(timesCalls: true)
        let (call, _) = machine.callStarted()
        #expect(machine.acceptsFrames)
        #expect(machine.protocolViolation() == .answerAndCloseAfterFlush)
        #expect(machine.state == .closing)
        #expect(!machine.acceptsFrames)
        #expect(machine.protocolViolation() == .ignore)
        #expect(machine.timerFired(call) == .none)
        let completion = machine.callCompleted(call)
        #expect(!completion.reply && !completion.resumeReading)
        #expect(completion.cancelTimer)
    }

    @Test func aClientThatStopsReadingIsClosedOnce() {
        var machine = Self.machine()
        #expect(machine.writabilityChanged(isWritable: true) == .none)
        #expect(machine.writabilityChanged(isWritable: false) == .close)
        #expect(machine.state == .closing)
        #expect(machine.writabilityChanged(isWritable: false) == .none)
    }

    @Test func idleClosesOnlyWithNothingOpen() {
        var machine = Self.machine()
        #expect(machine.idleTimeoutPassed() == .close)
        let (call, _) = machine.callStarted()
        #expect(machine.idleTimeoutPassed() == .none)
        _ = machine.callCompleted(call)
        let file = File("a.db"), token = Token()
        machine.transactionBegan(token, on: file)
        #expect(machine.idleTimeoutPassed() == .none)
        token.phase = .ended
        _ = machine.transaction(on: file)  // forgets it
        #expect(machine.idleTimeoutPassed() == .close)
    }

    // MARK: Client transactions

    /// `transaction-begin-pipelined-after-rollback`: the rollback's reply arrives after the next
    /// begin took the file; it forgets only its own transaction.
    @Test func anEndedTransactionForgetsOnlyItself() {
        var machine = Self.machine()
        let file = File("a.db")
        let first = Token(), second = Token()
        machine.transactionBegan(first, on: file)
        first.phase = .ended  // the ROLLBACK ran
        machine.transactionBegan(second, on: file)  // the pipelined begin_transaction
        machine.transactionEnded(first, on: file)  // the rollback's reply
        guard case .open(let held) = machine.transaction(on: file) else {
            Issue.record("the second transaction was forgotten")
            return
        }
        #expect(held === second)
        machine.transactionEnded(second, on: file)
        guard case .none = machine.transaction(on: file) else { return #expect(Bool(false)) }
    }

    @Test func aTimedOutTransactionIsReportedOnce() {
        var machine = Self.machine()
        let file = File("a.db"), token = Token()
        machine.transactionBegan(token, on: file)
        token.phase = .timedOut(message: "rolled back after 30 s")
        guard case .timedOut(let message) = machine.transaction(on: file) else { return #expect(Bool(false)) }
        #expect(message == "rolled back after 30 s")
        guard case .none = machine.transaction(on: file) else { return #expect(Bool(false)) }
        #expect(!machine.holdsTransaction(on: file))
    }

    @Test func transactionsAreKeptPerFile() {
        var machine = Self.machine()
        let a = File("a.db"), b = File("b.db")
        let ta = Token(), tb = Token()
        machine.transactionBegan(ta, on: a)
        machine.transactionBegan(tb, on: b)
        #expect(machine.holdsTransaction(on: a) && machine.holdsTransaction(on: b))
        #expect(machine.transaction(where: { $0.path == "b.db" }) === b)
        #expect(machine.transaction(where: { $0.path == "c.db" }) == nil)
        machine.transactionEnded(ta, on: a)
        #expect(!machine.holdsTransaction(on: a) && machine.holdsTransaction(on: b))
    }

    /// `writer-held-begin-racing-a-disconnect`: what is rolled back on disconnect is every
    /// transaction still open (a BEGIN queued counts), and only those.
    @Test func aDisconnectRollsBackWhatIsOpen() {
        var machine = Self.machine()
        let a = File("a.db"), b = File("b.db")
        let open = Token(), ended = Token()
        ended.phase = .ended
        machine.transactionBegan(open, on: a)
        machine.transactionBegan(ended, on: b)
        let abandoned = machine.channelInactive()
        #expect(abandoned.count == 1)
        #expect(abandoned.first?.token === open && abandoned.first?.database === a)
        #expect(machine.state == .closed)
        #expect(!machine.holdsTransaction(on: a))
    }

    @Test func aHandleClosesOnlyOutsideAnOpenTransaction() {
        var machine = Self.machine()
        let file = File("a.db"), token = Token()
        #expect(machine.handleClosing(on: file) == .close)
        machine.transactionBegan(token, on: file)
        #expect(machine.handleClosing(on: file) == .refuseOpenTransaction)
        token.phase = .ended
        #expect(machine.handleClosing(on: file) == .close)
        #expect(!machine.holdsTransaction(on: file))
    }
}
