import Foundation

/// Who may open which database files, and what they may do there (issue #5). Rules are
/// checked in order at `open`; the first whose peer and database both match decides. With no
/// rules every peer the socket admits may do everything; with rules, a file no rule matches
/// cannot be opened.
public struct AccessRule: Sendable, Hashable, Codable {
    /// Peers the rule is for: a uid in `uids` or a gid in `gids`; both empty means everyone.
    public var uids: Set<UInt32> = []
    public var gids: Set<UInt32> = []
    /// Database paths (relative to the data folder) as shell patterns (`*.db`, `reports/*`);
    /// empty means every file.
    public var databases: [String] = []
    /// Read-only: only methods of an access class a read-only rule admits (``AccessClass``),
    /// with raw SQL judged by SQLite itself.
    public var readOnly = false
    /// Methods refused on databases this rule admits (`execute`, `restore`, …).
    public var deniedMethods: Set<String> = []

    public init(uids: Set<UInt32> = [], gids: Set<UInt32> = [], databases: [String] = [], readOnly: Bool = false, deniedMethods: Set<String> = []) {
        self.uids = uids
        self.gids = gids
        self.databases = databases
        self.readOnly = readOnly
        self.deniedMethods = deniedMethods
    }

    enum CodingKeys: String, CodingKey {
        case uids, gids, databases
        case readOnly = "read_only"
        case deniedMethods = "deny_methods"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        uids = try c.decodeIfPresent(Set<UInt32>.self, forKey: .uids) ?? []
        gids = try c.decodeIfPresent(Set<UInt32>.self, forKey: .gids) ?? []
        databases = try c.decodeIfPresent([String].self, forKey: .databases) ?? []
        readOnly = try c.decodeIfPresent(Bool.self, forKey: .readOnly) ?? false
        deniedMethods = try c.decodeIfPresent(Set<String>.self, forKey: .deniedMethods) ?? []
        // A misspelt name would deny nothing: refuse the configuration instead.
        for name in deniedMethods where WireMethod.named(name) == nil {
            throw DecodingError.dataCorruptedError(forKey: .deniedMethods, in: c, debugDescription: "deny_methods names '\(name)', which is not a method of the protocol")
        }
    }

    func admits(uid: UInt32, gid: UInt32) -> Bool {
        (uids.isEmpty && gids.isEmpty) || uids.contains(uid) || gids.contains(gid)
    }

    func covers(database path: String) -> Bool {
        databases.isEmpty || databases.contains { fnmatch($0, path, 0) == 0 }
    }
}
