import NanaWire

/// What a method may do to a database, which decides whether an access rule admits it.
///
/// Access denies by default: a read-only rule admits only the classes whose
/// ``admittedReadOnly`` is true, so a method added later is refused there until it is declared
/// as one of them.
public enum AccessClass: String, Sendable, CaseIterable {
    /// Names no database (`hello`, `ping`).
    case connection
    /// Opens or closes a handle (`open`, `table`, `close`). An open is judged by the rules for
    /// the path it names; on a read-only rule it must find the table and state no setting that
    /// would change it.
    case handle
    /// Reads rows, the schema or the daemon's counters, and changes nothing in the file.
    case read
    /// Runs the client's own SQL. A read-only rule admits it, and SQLite judges every
    /// statement (`sqlite3_stmt_readonly`): one that would write is refused.
    case statement
    /// Changes rows, or holds the file's writer (transactions).
    case write
    /// Changes the file's schema or a table's settings (tables, indexes, columns, constraints).
    case schema
    /// Acts on what every session of the file shares: write-behind flushes and the dead-letter
    /// queue, VACUUM, backup and restore.
    case admin

    /// Whether a call of the class may be sent again when its connection was lost before the
    /// answer came (`hello`'s `repeatable`, PROTOCOL §7.1): it changes nothing in the file, or
    /// (opening and closing handles) nothing a second time.
    public var repeatable: Bool {
        switch self {
        case .connection, .handle, .read: true
        case .statement, .write, .schema, .admin: false
        }
    }

    /// Whether a read-only rule admits the class.
    public var admittedReadOnly: Bool {
        switch self {
        case .connection, .handle, .read, .statement: true
        case .write, .schema, .admin: false
        }
    }
}

/// What a parameter holds, for the method docs and for the tests that call every method.
public enum ParameterKind: String, Sendable {
    /// An integer handle returned by `open` or `table`.
    case handle
    /// A key of the key-value table (str).
    case key
    /// Any storable value.
    case value
    /// A list of keys.
    case keys
    /// A map of key → value.
    case mapping
    /// A name of a table, column or index.
    case identifier
    /// A list of names.
    case identifiers
    /// A file inside the data folder; judged by the access rules like `open`'s `db_path`.
    case path
    /// SQL text, or an expression checked by the expression guard.
    case sql
    /// A list of SQL parameters.
    case sqlParameters
    case string
    case int
    case number
    case bool
    /// A map with a shape of its own (section named by the method).
    case map
    /// A list with a shape of its own.
    case list
}

/// One named parameter of a wire method.
public struct WireParameter: Sendable {
    public let name: String
    public let kind: ParameterKind
    /// Whether a call without it is a `TypeError`.
    public let required: Bool
    /// The default, as the docs say it (`None`, `True`, `1000`); nil for required parameters.
    public let defaultText: String?
    /// Other names accepted for it (the seed's names where NanaSQLite 1.6 renamed them).
    public let aliases: [String]

    public init(_ name: String, _ kind: ParameterKind, default defaultText: String? = nil, aliases: [String] = []) {
        self.name = name
        self.kind = kind
        self.required = defaultText == nil
        self.defaultText = defaultText
        self.aliases = aliases
    }

    /// The handle every method on an open table takes.
    static let db = WireParameter("db", .handle)
}

/// The one declaration of a wire method: its name, parameters, access class and handler.
/// Dispatch, argument checks, access checks, `stats`' per-method counters and the method
/// tables of proto/PROTOCOL.md and docs/API.md all come from ``WireMethod/all``.
///
/// A class, so that dispatch takes one reference to it rather than copying its fields.
public final class WireMethod: Sendable {
    typealias Handler = @Sendable (ConnectionHandler, UInt32, Arguments) throws(NanaRemoteError) -> Void

    /// The method name of the `[0, msgid, method, params]` request.
    public let name: String
    public let access: AccessClass
    public let parameters: [WireParameter]
    /// What a successful call answers, for the docs.
    public let result: String
    /// The section of proto/PROTOCOL.md that describes it.
    public let section: String
    let handler: Handler
    /// Every name a call may use, aliases included.
    let acceptedNames: Set<String>
    /// Whether some parameter has an alias (the others skip renaming).
    let hasAliases: Bool
    /// Whether the method takes a handle (`db`).
    public let takesHandle: Bool

    init(_ name: String, _ access: AccessClass, _ parameters: [WireParameter], result: String, section: String, handler: @escaping Handler) {
        self.name = name
        self.access = access
        self.parameters = parameters
        self.result = result
        self.section = section
        self.handler = handler
        acceptedNames = Set(parameters.flatMap { [$0.name] + $0.aliases })
        hasAliases = parameters.contains { !$0.aliases.isEmpty }
        takesHandle = parameters.contains { $0.kind == .handle }
    }

    /// The parameters as PROTOCOL.md lists them: `db`, `key`, `default`?, `dest_path` (or `target_path`)?.
    public var parameterSummary: String {
        guard !parameters.isEmpty else { return "—" }
        return parameters.map { p in
            var text = "`\(p.name)`" + (p.aliases.isEmpty ? "" : " (or " + p.aliases.map { "`\($0)`" }.joined(separator: ", ") + ")")
            if !p.required { text += "?" }
            return text
        }.joined(separator: ", ")
    }
}

extension WireMethod {
    /// Declarations by name, and each name's counter index (the position in ``all``).
    static let index: [String: Int] = Dictionary(uniqueKeysWithValues: all.enumerated().map { ($1.name, $0) })

    /// The methods a client may send again after a lost connection (``AccessClass/repeatable``).
    public static let repeatableNames: [String] = all.filter(\.access.repeatable).map(\.name)

    /// The declaration of `name`, if there is one.
    public static func named(_ name: String) -> WireMethod? { index[name].map { all[$0] } }

    /// The method table of proto/PROTOCOL.md section 9 and docs/API.md, made from the
    /// declarations (a test checks that both files hold it as printed here).
    public static var markdownTable: String {
        var lines = ["| Method | Params | Access | Result | § |", "|---|---|---|---|---|"]
        for m in all {
            lines.append("| `\(m.name)` | \(m.parameterSummary) | \(m.access.rawValue) | \(m.result) | \(m.section) |")
        }
        return lines.joined(separator: "\n")
    }
}
