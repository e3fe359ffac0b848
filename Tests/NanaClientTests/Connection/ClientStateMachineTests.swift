import Testing

@testable import NanaClient

/// The client's connection lifecycle, event by event, with no socket.
@Suite struct ClientStateMachineTests {
    final class FakeConnection {}
    typealias Machine = ClientStateMachine<FakeConnection, String>

    @Test func callsWaitUntilTheFirstConnectionAndAreResumedWithIt() {
        var machine = Machine()
        let started = machine.start(), again = machine.start()
        #expect(started)
        #expect(!again, "a second start is refused")
        guard case .wait = machine.waitForConnection(1, "a") else { Issue.record("a call before the first connection must wait"); return }
        #expect(machine.publicState == .connecting)
        let connection = FakeConnection()
        guard case .resume(let waiters, let resumedWith) = machine.connected(connection) else { Issue.record("not resumed"); return }
        #expect(waiters == ["a"] && resumedWith === connection)
        #expect(machine.publicState == .ready && machine.reconnects == 0)
        guard case .use(let used) = machine.waitForConnection(2, "b") else { Issue.record("ready: used at once"); return }
        #expect(used === connection && machine.waitingCount == 0)
    }

    @Test func aLossReconnectsAtOnceThenBacksOffAndCountsTheReconnection() {
        var machine = Machine()
        _ = machine.start()
        let first = FakeConnection(), second = FakeConnection()
        _ = machine.connected(first)
        let old = machine.connectionLost(second, reason: "old"), lost = machine.connectionLost(first, reason: "EOF"), twice = machine.connectionLost(first, reason: "EOF")
        #expect(old == .none, "only the current connection's loss counts")
        #expect(lost == .reconnect)
        #expect(twice == .none, "reported twice, acted on once")
        #expect(machine.publicState == .reconnecting)
        guard case .retry(1) = machine.connectFailed("refused") else { Issue.record("attempt 1 next"); return }
        guard case .retry(2) = machine.connectFailed("refused") else { Issue.record("attempt 2 next"); return }
        _ = machine.waitForConnection(7, "w")
        let left = machine.waiterLeft(7), leftAgain = machine.waiterLeft(7)
        #expect(left?.waiter == "w" && left?.lastError == "refused", "a waiter timing out learns the last attempt's error")
        #expect(leftAgain == nil, "a waiter leaves once")
        _ = machine.connected(second)
        #expect(machine.reconnects == 1 && machine.connection === second)
    }

    @Test func closeFailsTheWaitersAndEverythingAfterIt() {
        var machine = Machine()
        _ = machine.start()
        _ = machine.waitForConnection(1, "a")
        _ = machine.waitForConnection(2, "b")
        let (waiters, connection) = machine.close()
        #expect(Set(waiters) == ["a", "b"] && connection == nil)
        #expect(machine.publicState == .closed)
        guard case .closed = machine.waitForConnection(3, "c") else { Issue.record("closed: calls fail"); return }
        guard case .close = machine.connected(FakeConnection()) else { Issue.record("a connection made after close is closed"); return }
        guard case .stop = machine.connectFailed("x") else { Issue.record("closed: the loop stops"); return }
    }

    @Test func backoffStartsAtOnceGrowsAndIsCappedAndJittered() {
        let backoff = NanaReconnectBackoff(initial: .milliseconds(10), maximum: .milliseconds(500), multiplier: 2, jitter: 0.5)
        #expect(backoff.delay(beforeAttempt: 0, random: 0.7) == .zero)
        #expect(backoff.delay(beforeAttempt: 1, random: 0) == .milliseconds(10))
        #expect(backoff.delay(beforeAttempt: 3, random: 0) == .milliseconds(40))
        #expect(backoff.delay(beforeAttempt: 30, random: 0) == .milliseconds(500))
        #expect(backoff.delay(beforeAttempt: 30, random: 1) == .milliseconds(250))
    }

    @Test func backoffSettingsOutOfRangeNeverMakeABusyLoop() {
        let zero = NanaReconnectBackoff(initial: .zero, maximum: .zero, multiplier: 0, jitter: 7)
        #expect(zero.delay(beforeAttempt: 5, random: 0) == .milliseconds(1))
        let negative = NanaReconnectBackoff(initial: .milliseconds(-5), maximum: .seconds(-1), multiplier: -3, jitter: -1)
        #expect(negative.delay(beforeAttempt: 1, random: 0.9) == .milliseconds(1))
        let flat = NanaReconnectBackoff(initial: .milliseconds(20), maximum: .seconds(1), multiplier: 0.5, jitter: 0)
        #expect(flat.delay(beforeAttempt: 9, random: 0.9) == .milliseconds(20), "a multiplier below 1 is taken as 1")
        let forever = NanaReconnectBackoff(initial: .seconds(Int64.max), maximum: .seconds(Int64.max))
        #expect(forever.delay(beforeAttempt: 3, random: 0) == .seconds(86_400))
        #expect(NanaClient.nanoseconds(.seconds(Int64.max)) == 100 * 365 * 86_400 * 1_000_000_000)
        #expect(NanaClient.nanoseconds(.milliseconds(-7)) == -7_000_000)
    }

    @Test func aTableIsOpenedOncePerConnectionWhileOtherCallsWait() {
        var binding = TableBinding<String>()
        let r1 = binding.need(on: 1)
        #expect(r1 == .open)
        let r2 = binding.need(on: 1)
        #expect(r2 == .wait)
        let r3 = binding.addWaiter("w", on: 1)
        #expect(r3)
        let addedElsewhere = binding.addWaiter("x", on: 2)
        #expect(!addedElsewhere, "no open in progress on connection 2")
        let r4 = binding.opened(11, on: 1)
        #expect(r4 == ["w"])
        let r5 = binding.need(on: 1)
        #expect(r5 == .handle(11) && binding.handle(on: 1) == 11)
        #expect(binding.handle(on: 2) == nil)
        let r6 = binding.need(on: 2)
        #expect(r6 == .open, "a handle of an old connection is worth nothing")
        let r7 = binding.addWaiter("y", on: 2)
        #expect(r7)
        let r8 = binding.openFailed(on: 2)
        #expect(r8 == ["y"])
        let r9 = binding.need(on: 2)
        #expect(r9 == .open, "a failed open is tried again by the next call")
        let r10 = binding.close().isEmpty
        #expect(r10)
        let r11 = binding.need(on: 3)
        #expect(r11 == .closed)
    }

    @Test func aTransactionLostWithItsConnectionRefusesCallsUntilCommitOrRollback() {
        var mark = TransactionMark.open(connection: 1)
        let sameConnection = mark.refuses("get", on: 1)
        #expect(!sameConnection, "same connection: the transaction goes on")
        let r12 = mark.refuses("get", on: 2)
        #expect(r12)
        let r13 = mark.refuses("set", on: 2)
        #expect(r13)
        let closing = mark.refuses("close", on: 2)
        #expect(!closing, "closing is not refused")
        let r14 = mark.refuses("rollback", on: 2)
        #expect(r14, "rollback says the transaction was lost")
        #expect(mark == .none)
        let after = mark.refuses("get", on: 2)
        #expect(!after, "and then calls go on")
    }
}
