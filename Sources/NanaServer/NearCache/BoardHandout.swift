import CNanaBoard
import Foundation
import Logging
import NanaStorage
import Synchronization

/// Hands near-cache boards to clients as read-only descriptors, over a side socket
/// (`<socket>.board`) served by one thread of its own.
///
/// Why a side socket outside SwiftNIO: a descriptor travels as SCM_RIGHTS ancillary data, and
/// NIO's stream channels carry none (only its datagram channels read control messages). The
/// exchange is one short request and one reply per board, so a blocking thread is simpler than
/// teaching NIO a new channel type.
///
/// The exchange (proto/PROTOCOL.md §10.3): the client sends `NBRD` and the 16-byte token an
/// `open` with `near_cache` returned; the daemon checks that the token is live (single use, 10 s)
/// and that the peer's uid (SO_PEERCRED) is the uid of the connection it was given to, and
/// answers one status byte, with the descriptor attached when the status is 0, else followed by
/// a message. One poll loop waits on every connection at once (up to ``maximumPending``), so a
/// client that connects and says nothing delays nobody.
package final class BoardHandout: Sendable {
    enum Status: UInt8 {
        case granted = 0
        case unknownToken = 1
        case wrongPeer = 2
        case unavailable = 3
        case badRequest = 4
    }

    static let requestMagic: [UInt8] = Array("NBRD".utf8)
    static let tokenLength = 16
    static let grantLifetime: UInt64 = 10_000_000_000
    /// How long one client may take to send its request.
    static let requestTimeoutMilliseconds: Int32 = 500

    private struct Grant {
        let board: Board
        let uid: UInt32
        let expires: UInt64
    }

    let path: String
    private let listener: Int32
    private let grants = Mutex<[[UInt8]: Grant]>([:])
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)
    private let logger: Logger

    /// Binds `path` (removing a stale socket there) with `mode` and `group`, and starts serving.
    package init(path: String, mode: UInt16, group: gid_t?, logger: Logger) throws {
        self.path = path
        self.logger = logger
        var status = stat()
        if lstat(path, &status) == 0 {
            guard status.st_mode & S_IFMT == S_IFSOCK else { throw NanadError("\(path) exists and is not a socket; refusing to replace it") }
            unlink(path)  // the main socket's probe already showed no other nanad serves here
        }
        let fd = nana_unix_listen(path, UInt32(0o777 & ~mode), 64)
        guard fd >= 0 else {
            throw NanadError("cannot listen on the near-cache socket \(path): \(String(cString: strerror(errno)))")
        }
        _ = chmod(path, mode_t(mode))
        if let group, chown(path, uid_t.max, group) != 0 {
            logger.warning("cannot set the near-cache socket's group", metadata: ["gid": "\(group)", "error": "\(String(cString: strerror(errno)))"])
        }
        listener = fd
        let handout = self
        let thread = Thread { handout.serve() }
        thread.name = "nanad-boards"
        thread.start()
    }

    /// A token for one client of uid `uid` to fetch `board` with.
    func grant(_ board: Board, to uid: UInt32) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        let token = (0..<Self.tokenLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let now = DispatchTime.now().uptimeNanoseconds
        grants.withLock { grants in
            grants = grants.filter { $0.value.expires > now }
            grants[token] = Grant(board: board, uid: uid, expires: now + Self.grantLifetime)
        }
        return token
    }

    /// Stops serving and removes the socket; waits for the thread.
    func stop() {
        guard !stopping.exchange(true, ordering: .acquiringAndReleasing) else { return }
        finished.wait()
        close(listener)
        unlink(path)
        grants.withLock { $0.removeAll() }
    }

    /// A connection whose request has not fully arrived.
    private struct Pending {
        let fd: Int32
        var request: [UInt8] = []
        let deadline: UInt64
    }

    /// Connections waited on at once; past it the oldest is dropped. A client that connects and
    /// sends nothing therefore holds one of these for the request timeout, and delays no one.
    static let maximumPending = 64

    /// One poll loop over the listener and every connection still sending its request.
    private func serve() {
        var pending: [Pending] = []
        defer {
            for connection in pending { close(connection.fd) }
            finished.signal()
        }
        let wanted = Self.requestMagic.count + Self.tokenLength
        while !stopping.load(ordering: .acquiring) {
            var now = DispatchTime.now().uptimeNanoseconds
            var soonest: Int32 = 200
            if let deadline = pending.map(\.deadline).min() {
                soonest = deadline > now ? Int32(min(UInt64(200), (deadline - now) / 1_000_000 + 1)) : 0
            }
            var descriptors = [pollfd(fd: listener, events: Int16(POLLIN), revents: 0)]
            for connection in pending { descriptors.append(pollfd(fd: connection.fd, events: Int16(POLLIN), revents: 0)) }
            guard poll(&descriptors, nfds_t(descriptors.count), soonest) >= 0 else { continue }
            now = DispatchTime.now().uptimeNanoseconds
            dropExpiredGrants(now)
            var finished: Set<Int32> = []
            for (index, descriptor) in descriptors.enumerated().dropFirst() where descriptor.revents != 0 {
                var connection = pending[index - 1]
                var buffer = [UInt8](repeating: 0, count: wanted - connection.request.count)
                let n = buffer.withUnsafeMutableBytes { recv(connection.fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
                if n < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                if n <= 0 {
                    finished.insert(connection.fd)  // hung up (or failed) before asking
                    continue
                }
                connection.request += buffer[..<n]
                pending[index - 1] = connection
                if connection.request.count == wanted || !Self.requestMagic.starts(with: connection.request.prefix(Self.requestMagic.count)) {
                    answer(connection.fd, connection.request)
                    finished.insert(connection.fd)
                }
            }
            for connection in pending where !finished.contains(connection.fd) && connection.deadline <= now {
                refuse(connection.fd, .badRequest, "expected NBRD and a 16-byte token within \(Self.requestTimeoutMilliseconds) ms")
                finished.insert(connection.fd)
            }
            if !finished.isEmpty {
                for fd in finished { close(fd) }
                pending.removeAll { finished.contains($0.fd) }
            }
            if descriptors[0].revents & Int16(POLLIN) != 0 {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { continue }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                if pending.count >= Self.maximumPending {
                    close(pending.removeFirst().fd)
                }
                pending.append(Pending(fd: client, deadline: now + UInt64(Self.requestTimeoutMilliseconds) * 1_000_000))
            }
        }
    }

    /// Forgets the tokens nobody redeemed in time (a client that already maps a file's board
    /// leaves the next token of that file unused): each holds its board, and so the board's
    /// descriptor and mapping, after the file itself is closed.
    private func dropExpiredGrants(_ now: UInt64) {
        grants.withLock { grants in
            guard grants.values.contains(where: { $0.expires <= now }) else { return }
            grants = grants.filter { $0.value.expires > now }
        }
    }

    /// Answers a complete request (or one that is not NBRD).
    private func answer(_ client: Int32, _ request: [UInt8]) {
        guard request.count == Self.requestMagic.count + Self.tokenLength, request.starts(with: Self.requestMagic) else {
            return refuse(client, .badRequest, "expected NBRD and a 16-byte token")
        }
        let token = Array(request[Self.requestMagic.count...])
        let now = DispatchTime.now().uptimeNanoseconds
        guard let grant = grants.withLock({ $0.removeValue(forKey: token) }), grant.expires > now else {
            return refuse(client, .unknownToken, "unknown or expired near-cache token")
        }
        var peer = PeerCredentials()
        var length = socklen_t(MemoryLayout<PeerCredentials>.size)
        guard getsockopt(client, PeerCredentials.socketLevel, PeerCredentials.option, &peer, &length) == 0, peer.uid == grant.uid else {
            logger.warning("refused a near-cache board to a peer other than the one it was granted to", metadata: ["peer.uid": "\(peer.uid)", "granted.uid": "\(grant.uid)"])
            return refuse(client, .wrongPeer, "this token was granted to another user")
        }
        let descriptor: Int32
        do throws(StorageError) { descriptor = try grant.board.readOnlyDescriptor() } catch {
            return refuse(client, .unavailable, error.message)
        }
        var status = Status.granted.rawValue
        _ = nana_send_with_descriptor(client, &status, 1, descriptor)
        close(descriptor)
    }

    private func refuse(_ client: Int32, _ status: Status, _ message: String) {
        let reply = [status.rawValue] + Array(message.utf8.prefix(255))
        _ = reply.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }
}
