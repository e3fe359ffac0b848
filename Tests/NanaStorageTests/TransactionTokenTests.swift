import Foundation
import Synchronization
import Testing

@testable import NanaStorage

@Suite struct TransactionTokenTests {
    @Test func isOpenOnlyWhilePendingOrActive() {
        let token = TransactionToken(timeout: .seconds(30))
        #expect(token.isOpen)
        token.set(.active)
        #expect(token.isOpen)
        for ended in [TransactionToken.State.committed, .rolledBack, .timedOut] {
            token.set(ended)
            #expect(!token.isOpen, "\(ended)")
        }
    }

    /// The writer's BEGIN moves a token from pending to active while the event loop asks whether
    /// it is open (a disconnect deciding what to roll back). Asking `currentState` twice could
    /// answer "neither" in between; `isOpen` must never.
    @Test func isOpenNeverMissesThePendingToActiveStep() {
        final class Round: Sendable {
            let token = TransactionToken(timeout: .seconds(30))
            let begun = Atomic<Bool>(false)
            let misses = Atomic<Int>(0)
            let done = DispatchSemaphore(value: 0)
        }
        var misses = 0
        for _ in 0..<2_000 {
            let round = Round()
            Thread {
                while !round.begun.load(ordering: .acquiring) {
                    if !round.token.isOpen { round.misses.add(1, ordering: .relaxed) }
                }
                if !round.token.isOpen { round.misses.add(1, ordering: .relaxed) }
                round.done.signal()
            }.start()
            round.token.set(.active)
            round.begun.store(true, ordering: .releasing)
            round.done.wait()
            misses += round.misses.load(ordering: .relaxed)
        }
        #expect(misses == 0)
    }
}
