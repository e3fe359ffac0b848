/// Linux's `struct ucred`, which Swift cannot see (glibc declares it only under _GNU_SOURCE);
/// the same three fields in the same order.
struct PeerCredentials: Sendable {
    /// SOL_SOCKET and SO_PEERCRED on Linux (Glibc's Swift module does not export them).
    static let socketLevel: Int32 = 1
    static let option: Int32 = 17

    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}
