import Testing
@testable import NanaStorage

/// The writer's disk-full episodes: one start and one end per episode, whatever the writes.
struct DiskFullEpisodeTests {
    @Test func anEpisodeStartsAtTheFirstRefusalAndEndsAtTheNextCommit() {
        var episode = DiskFullEpisode()
        #expect(!episode.isFull)
        let nothing = episode.committed()
        #expect(nothing == .none, "a commit with room to spare is no transition")
        let first = episode.refused(3)
        #expect(first == .started)
        #expect(episode.isFull && episode.episodes == 1)
        let again = episode.refused(1)
        #expect(again == .none, "more refusals in the same episode are not logged again")
        let more = episode.refused(5)
        #expect(more == .none)
        #expect(episode.refusedInEpisode == 9 && episode.refusedWrites == 9)
        let ended = episode.committed()
        #expect(ended == .ended(refused: 9))
        #expect(!episode.isFull && episode.refusedInEpisode == 0)
        let after = episode.committed()
        #expect(after == .none)
    }

    @Test func eachEpisodeIsCountedAndTheTotalsAdd() {
        var episode = DiskFullEpisode()
        for round in 1...3 {
            let started = episode.refused(2)
            #expect(started == .started)
            let ended = episode.committed()
            #expect(ended == .ended(refused: 2))
            #expect(episode.episodes == round)
        }
        #expect(episode.refusedWrites == 6)
    }

    @Test func aRefusalOfNoWritesStillStartsAnEpisode() {
        // A write-behind flush whose chunk is kept staged refuses rows, not calls; an empty
        // count must not leave the disk looking full and unlogged.
        var episode = DiskFullEpisode()
        let started = episode.refused(0)
        #expect(started == .started)
        #expect(episode.isFull)
        let ended = episode.committed()
        #expect(ended == .ended(refused: 0))
    }
}
