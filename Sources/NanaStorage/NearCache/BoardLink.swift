import Synchronization

/// A database file's board, made when the first near-cache client asks for one, and shared by
/// the caches of the file's tables, which bump it under their own locks.
final class BoardLink: Sendable {
    private let state = Mutex<(board: Board?, retired: Bool)>((nil, false))

    /// The board, if a client asked for one.
    var current: Board? { state.withLock { $0.board } }

    /// The file's board, made in `directory` on first use.
    func board(in directory: BoardDirectory) throws(StorageError) -> Board {
        try state.withLock { (state) throws(StorageError) -> Board in
            guard !state.retired else {
                throw StorageError(.closed, "the database file is no longer served; open it again")
            }
            if let board = state.board { return board }
            let board = try directory.makeBoard()
            state.board = board
            return board
        }
    }

    /// The file is no longer served (closed or retired): its board is invalidated and removed,
    /// and no other is made for this open of it.
    func retire() {
        let board = state.withLock { state -> Board? in
            state.retired = true
            return state.board
        }
        board?.retire()
    }
}

/// The stamps a tracked read vouches for its value with: the words of the key's and its
/// table's stamps on the board, and what they held just before the value was read.
public struct TrackedStamps: Sendable, Hashable {
    public var keyWord: Int
    public var keyStamp: UInt64
    public var tableWord: Int
    public var tableStamp: UInt64
}
