/// Whether a file's disk is full, as its writer last found it: an episode starts at the first
/// write refused with `SQLITE_FULL` and ends at the next commit. The writer logs each start
/// and end once, so a full disk under a busy writer is two log lines, not one per write.
///
/// I/O-free; the writer thread drives it and ``WriterStatistics`` carries its counters.
public struct DiskFullEpisode: Sendable, Hashable {
    /// Episodes so far.
    public private(set) var episodes = 0
    /// Writes refused because the disk was full, over all episodes.
    public private(set) var refusedWrites = 0
    /// Writes refused in the episode under way (0 when there is none).
    public private(set) var refusedInEpisode = 0
    /// Whether the disk is full now, as far as the writer knows.
    public private(set) var isFull = false

    public init() {}

    public enum Transition: Sendable, Hashable {
        case none
        /// The first refusal after room (or since the file was opened).
        case started
        /// The first commit after refusals; how many writes the episode refused.
        case ended(refused: Int)
    }

    /// `count` writes were refused for lack of room.
    public mutating func refused(_ count: Int) -> Transition {
        let starting = !isFull
        if starting { episodes += 1 }
        isFull = true
        refusedWrites += count
        refusedInEpisode += count
        return starting ? .started : .none
    }

    /// A transaction committed: there is room again.
    public mutating func committed() -> Transition {
        guard isFull else { return .none }
        defer { isFull = false; refusedInEpisode = 0 }
        return .ended(refused: refusedInEpisode)
    }
}
