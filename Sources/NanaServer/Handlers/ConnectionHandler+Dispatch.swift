import Foundation
import NanaStorage
import NanaWire

// From a decoded request to its handler: the method's declaration, its argument names, and
// the access rules of the handle it names. Every handler reads its arguments already checked
// against its declaration in `WireMethod.all`.
extension ConnectionHandler {
    /// Runs one request: finds its declaration, checks its argument names and the handle's
    /// access rule against it, and calls its handler.
    func dispatch(msgid: UInt32, method name: String, arguments: Arguments) {
        guard let index = WireMethod.index[name] else {
            count(WireMethod.all.count)
            return reply(msgid, .error(NanaRemoteError(.protocolError, "unknown method '\(name)'")))
        }
        count(index)
        let method = WireMethod.all[index]
        do throws(NanaRemoteError) {
            let args = try arguments.checked(against: method)
            try checkAccess(method, args)
            try noticeOutsideWrites(method, args)
            try method.handler(self, msgid, args)
        } catch {
            reply(msgid, .error(error))
        }
    }

    /// What a call does with a path it names.
    enum PathUse {
        /// `open`'s `db_path`: any rule admitting the peer to the file (read-only or not).
        case open
        /// `restore`'s source: the same.
        case read
        /// `backup`'s destination: a rule admitting the peer to the file that is not read-only.
        case write
    }

    /// The rule that admits this peer to `path` for `use`, or an error when rules exist and
    /// none does. The path is judged as the file it resolves to inside the data folder
    /// (symbolic links followed), so no name reaches a file its rules do not cover.
    func accessRule(for path: String, to use: PathUse) throws(NanaRemoteError) -> AccessRule? {
        let rules = state.configuration.rules
        guard !rules.isEmpty else { return nil }
        let relative: String
        do { relative = state.registry.relativePath(of: try state.registry.resolve(path)) } catch { throw NanaRemoteError(error) }
        let uid = peer?.uid ?? UInt32.max, gid = peer?.gid ?? UInt32.max
        guard let rule = rules.first(where: { $0.admits(uid: uid, gid: gid) && $0.covers(database: relative) }) else {
            throw NanaRemoteError(.connection, use == .write ? "uid \(uid) is not allowed to write '\(path)'" : "uid \(uid) is not allowed to open '\(path)'")
        }
        if use == .write, rule.readOnly {
            throw NanaRemoteError(.validation, "'\(path)' is read-only for this user; it cannot be written")
        }
        return rule
    }

    /// Refuses what the handle's rule does not admit: a method on its deny-list, and on a
    /// read-only rule every method whose access class it does not admit (deny by default: see
    /// ``AccessClass``). Raw SQL on a read-only handle is judged by SQLite, in `execute`.
    func checkAccess(_ method: WireMethod, _ args: Arguments) throws(NanaRemoteError) {
        guard !state.configuration.rules.isEmpty, method.takesHandle, let id = args.params["db"]?.int64Value,
              case .success(let handle) = session.table(id), let rule = handle.access else { return }
        if rule.deniedMethods.contains(method.name) {
            throw NanaRemoteError(.validation, "\(method.name)() is not allowed on this database for this user")
        }
        if rule.readOnly && !method.access.admittedReadOnly {
            throw NanaRemoteError(.validation, "this database is read-only for this user: \(method.name)() is a \(method.access.rawValue) method")
        }
    }

    /// On a handle opened with `cache_consistency="auto"`, every call first looks for commits
    /// made to the file around nanad and drops its caches if there were (PROTOCOL 9.2). A
    /// blocking SQLite call on the event loop, on purpose: it reads the WAL index in shared
    /// memory (microseconds), and it must finish before the call reads a cache.
    func noticeOutsideWrites(_ method: WireMethod, _ args: Arguments) throws(NanaRemoteError) {
        guard session.watchesOutsideWrites, method.takesHandle, let id = args.params["db"]?.int64Value, case .success(let handle) = session.table(id),
              handle.outsideWrites else { return }
        do { try handle.table.database.noticeOutsideWrites() } catch { throw NanaRemoteError(error) }
    }

    /// Whether raw SQL on this handle must only read.
    func isReadOnly(_ args: Arguments) -> Bool {
        guard let id = args.params["db"]?.int64Value, case .success(let handle) = session.table(id) else { return false }
        return handle.access?.readOnly ?? false
    }
}
