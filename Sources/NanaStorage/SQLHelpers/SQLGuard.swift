/// The checks NanaSQLite's SQL helper methods run on text from a client before it is
/// interpolated into SQL: WHERE / ORDER BY / GROUP BY / column expressions, `create_table`
/// and `alter_table_add_column` column types, ADD COLUMN defaults and `pragma()`.
///
/// This is defence in depth, not a parser (behaviour spec §7.1): values are always bound, names
/// always go through ``Identifier``, and this layer refuses expressions that could run a second
/// statement, read other tables from an ORDER BY/GROUP BY/column, call functions outside the
/// handle's allow-list, or smuggle a quote or parenthesis from one clause into the next.
///
/// Everything here scans the UTF-8 bytes by hand: linear time on any input (no ReDoS, spec §14.8)
/// and no Foundation.

/// Where an expression goes; decides which checks apply (behaviour spec §7.1).
public enum SQLExpressionContext: Sendable { case whereClause, orderBy, groupBy, column, none }

/// The SQL-function policy of a database handle (NanaSQLite's strict_sql_validation,
/// allowed_sql_functions, forbidden_sql_functions, max_clause_length).
public struct SQLFunctionPolicy: Sendable, Hashable {
    public var strict: Bool = true
    /// Extra allowed function names, stored upper-cased.
    public var allowed: Set<String> = []
    /// Forbidden function names, stored upper-cased; `"*"` forbids every function.
    public var forbidden: Set<String> = []
    /// Longest accepted expression, in characters; `nil` (or a value ≤ 0, NanaSQLite's "falsy") = unlimited.
    public var maximumClauseLength: Int? = 1000

    /// The functions every handle allows unless a call passes `override_allowed`.
    public static let defaultAllowed: Set<String> = [
        "COUNT", "SUM", "AVG", "MIN", "MAX", "ABS", "UPPER", "LOWER", "LENGTH", "ROUND",
        "COALESCE", "IFNULL", "NULLIF", "STRFTIME", "DATE", "TIME", "DATETIME", "JULIANDAY",
    ]

    public init(strict: Bool = true, allowed: [String] = [], forbidden: [String] = [], maximumClauseLength: Int? = 1000) {
        self.strict = strict
        // Upper-cased here (spec §15.7: NanaSQLite compared lists case-sensitively, so
        // `allowed_sql_functions=["json_extract"]` did nothing). The properties are public and
        // could be set to lower-case names directly, so `SQLGuard` upper-cases again on use.
        self.allowed = Set(allowed.map { $0.uppercased() })
        self.forbidden = Set(forbidden.map { $0.uppercased() })
        self.maximumClauseLength = maximumClauseLength
    }
}

public enum SQLGuard {
    // MARK: - Expressions (§7.1)

    /// Validates one expression. `overrides` are per-call settings (strict/allowed/forbidden/override_allowed) that take
    /// precedence as in the spec. Returns normally if accepted. When not strict, policy failures do not throw:
    /// return them as warnings instead (NanaSQLite emits UserWarning and continues).
    ///
    /// Which failures strictness relaxes: NanaSQLite turns *every* failure into a warning when not
    /// strict. A daemon serves many clients, so here only the **policy** checks relax — the
    /// function allow/forbid lists (including `"*"`) and the length cap. The **structural**
    /// checks (characters, `;` `--` `/*`, unbalanced quotes or parentheses, write/DDL keywords,
    /// subquery keywords outside WHERE) always throw, strict or not.
    ///
    /// Errors are NanaSQLite's, message and family: a structural failure (steps 1–5) is
    /// `StorageError(.valueError, …)`, a policy failure (steps 6–9) `.validation`. The spec
    /// (§7.1) recommends one family; programs written for NanaSQLite catch `ValueError` for
    /// the first, so the drop-in must raise it.
    @discardableResult
    public static func validate(_ expression: String, context: SQLExpressionContext, policy: SQLFunctionPolicy,
                                strict: Bool? = nil, allowed: [String]? = nil, forbidden: [String]? = nil,
                                overrideAllowed: Bool = false) throws(StorageError) -> [String] {
        if expression.isEmpty { return [] }
        let bytes = Array(expression.utf8)
        let dangerous = context.label.map { "Invalid \($0): Potentially dangerous SQL pattern" }
            ?? "Invalid: Potentially dangerous SQL pattern"

        // 1. ORDER BY / GROUP BY: names, dots, commas, parentheses and quotes only.
        if let name = context.clauseName, context == .orderBy || context == .groupBy,
           !bytes.allSatisfy(isOrderGroupByte) {
            throw StorageError(.valueError, "Invalid \(name) clause: contains forbidden characters.")
        }

        // 2. No subqueries outside WHERE (spec §14.6). Searched in the raw text, literals and
        // quoted names included: stricter than needed, and what NanaSQLite does.
        if let keywords = context.subqueryKeywords, let name = context.clauseName,
           containsWord(of: keywords, in: bytes) {
            throw StorageError(.valueError, "Invalid \(name) clause: subquery keywords are not permitted.")
        }

        // 3. The safe character set. This also refuses `;`, `%`, tab/newline and any non-ASCII
        // byte, so from here on bytes are characters.
        if !bytes.allSatisfy(isSafeByte) {
            throw StorageError(.valueError, "\(dangerous) or invalid characters detected.")
        }

        // 4. Statement separators and comments, anywhere in the raw text (`;` cannot get here
        // after step 3; kept so the step stands on its own).
        if containsStatementBreak(bytes) { throw StorageError(.valueError, dangerous) }

        // Not in NanaSQLite: every quote and parenthesis must close within the expression.
        // Otherwise one clause can open a literal that a later clause closes, and text the
        // scanner took for a literal (so never checked for functions) runs as SQL — e.g. WHERE
        // `a = 'x` with ORDER BY `' or zeroblob(1) or ''`. Balanced text is also what a
        // well-formed expression is, so nothing valid is refused.
        guard let scan = scanExpression(bytes) else { throw StorageError(.valueError, dangerous) }

        // 5. Write / DDL keywords, with literals masked but quoted-name contents kept (so a
        // column called "DELETE" and the REPLACE() function are refused, as in NanaSQLite).
        if containsWord(of: dangerousKeywords, in: scan.masked) { throw StorageError(.valueError, dangerous) }

        let isStrict = strict ?? policy.strict
        var warnings: [String] = []
        func fail(_ message: String) throws(StorageError) {
            if isStrict { throw StorageError(.validation, message) }
            warnings.append(message)
        }

        // 6. Length. Step 3 made the text ASCII, so the byte count is the character count.
        if let limit = policy.maximumClauseLength, limit > 0, bytes.count > limit {
            try fail("SQL expression exceeds maximum length of \(limit) characters.")
        }

        // 7. The call's forbidden list replaces the handle's (an empty list included).
        let forbiddenSet = Set((forbidden ?? Array(policy.forbidden)).map { $0.uppercased() })
        if forbiddenSet.contains("*") {
            // NanaSQLite refused every non-empty expression here (spec §15.7); only an
            // expression that calls a function is refused now.
            if !scan.calls.isEmpty { try fail("All SQL functions are forbidden for this expression.") }
            return warnings
        }

        // 8. Allowed = (defaults ∪ handle's, unless overridden) ∪ call's, minus forbidden.
        var allowedSet: Set<String> = []
        if !overrideAllowed {
            allowedSet = SQLFunctionPolicy.defaultAllowed
            for name in policy.allowed { allowedSet.insert(name.uppercased()) }
        }
        for name in allowed ?? [] { allowedSet.insert(name.uppercased()) }
        allowedSet.subtract(forbiddenSet)

        // 9. Every function call, in order of appearance, each name once.
        var seen = Set<String>()
        for name in scan.calls where seen.insert(name).inserted {
            if forbiddenSet.contains(name) {
                try fail("SQL function '\(name)' is explicitly forbidden.")
            } else if !allowedSet.contains(name) {
                try fail("SQL function '\(name)' is not in the allowed list. Use 'allowed_sql_functions' to permit it if you trust this function.")
            }
        }
        return warnings
    }

    // MARK: - create_table column types (§7.2, §14.2)

    /// create_table column type (§7.2 + §14.2): whitelist characters, no quotes/;/--//* , commas only inside balanced parens.
    ///
    /// Beyond NanaSQLite: a function call inside parentheses (in `CHECK (…)`, `DEFAULT (…)`,
    /// `AS (…)`) must be one of ``SQLFunctionPolicy/defaultAllowed``. The character whitelist
    /// alone admits `INTEGER CHECK (load_extension(char(47,116)))` or
    /// `BLOB DEFAULT (randomblob(1000000000))`, which run on every insert. Outside
    /// parentheses a name before `(` is a type (`DECIMAL(10, 2)`) or a constraint keyword,
    /// never a call, so types with sizes are unaffected.
    public static func validateColumnType(_ type: String, column: String) throws(StorageError) {
        func refuse(_ reason: String) -> StorageError {
            StorageError(.validation, "Invalid or dangerous column type for '\(column)': \(reason)")
        }
        let bytes = Array(type.utf8)
        // `^[\w\s(),=<>!@#%.]+$`, ASCII only: no quotes, `;`, `-`, `/`, `*` — so no string
        // defaults and no negative numbers, as in NanaSQLite.
        guard !bytes.isEmpty, bytes.allSatisfy(isColumnTypeByte) else {
            throw refuse("contains unauthorized characters. Quote characters and semicolons are not permitted.")
        }
        var depth = 0
        var pendingName: String?  // a word followed so far only by whitespace
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if isDigit(b) {
                i = numberEnd(bytes, from: i)
                pendingName = nil
                continue
            }
            if isWordByte(b) {
                let start = i
                while i < bytes.count, isWordByte(bytes[i]) { i += 1 }
                let word = asciiUppercased(bytes[start..<i])
                if depth > 0, operatorFunctions.contains(word) {
                    throw refuse("SQL function '\(word)' is not allowed in a column definition.")
                }
                pendingName = depth > 0 ? word : nil
                continue
            }
            switch b {
            case UInt8(ascii: "("):
                if let name = pendingName, !keywords.contains(name), !SQLFunctionPolicy.defaultAllowed.contains(name) {
                    throw refuse("SQL function '\(name)' is not allowed in a column definition.")
                }
                depth += 1
            case UInt8(ascii: ")"):
                depth -= 1
                if depth < 0 { throw refuse("parentheses are not balanced.") }
            case UInt8(ascii: ","):
                // A comma at the top level would end this column and start another (1.5.6).
                if depth == 0 { throw refuse("commas are permitted only inside balanced parentheses.") }
            default:
                break
            }
            if !isWhitespace(b) { pendingName = nil }
            i += 1
        }
        if depth != 0 { throw refuse("parentheses are not balanced.") }
    }

    // MARK: - alter_table_add_column (§7.2, §14.3)

    /// alter_table_add_column type (§7.2 regex ^[A-Za-z]\w*(?:\s+\w+)*(\s*\([\d,\s]+\))?$ , ASCII only).
    ///
    /// A full match: unlike Python's `$`, a trailing newline is refused.
    public static func validateAddColumnType(_ type: String) throws(StorageError) {
        let b = Array(type.utf8)
        let n = b.count
        // `\w`, `\s`, `(` are disjoint, so greedy matching never needs to backtrack.
        func matches() -> Bool {
            guard n > 0, isLetter(b[0]) else { return false }
            var i = 1
            while i < n, isWordByte(b[i]) { i += 1 }
            // (?:\s+\w+)*
            while true {
                var j = i
                while j < n, isWhitespace(b[j]) { j += 1 }
                guard j > i, j < n, isWordByte(b[j]) else { break }
                i = j
                while i < n, isWordByte(b[i]) { i += 1 }
            }
            // (\s*\([\d,\s]+\))?
            var j = i
            while j < n, isWhitespace(b[j]) { j += 1 }
            if j < n, b[j] == UInt8(ascii: "(") {
                var k = j + 1
                while k < n, isDigit(b[k]) || b[k] == UInt8(ascii: ",") || isWhitespace(b[k]) { k += 1 }
                guard k > j + 1, k < n, b[k] == UInt8(ascii: ")") else { return false }
                i = k + 1
            }
            return i == n
        }
        guard matches() else { throw StorageError(.valueError, "Invalid or dangerous column type: \(type)") }
    }

    /// alter_table_add_column DEFAULT literal: only str/int/float/bool/nil (the caller passes them as an enum below); returns the SQL text.
    ///
    /// `nil` (no default given, Python's `default=None`) returns `nil`: no DEFAULT clause.
    /// `.null` returns `NULL` (the same column default). Booleans arrive as `.integer`.
    /// A string loses one pair of surrounding single quotes (NanaSQLite's rule, so `"'x'"` and
    /// `"x"` both give `'x'`), has `'` doubled and is re-quoted. BLOBs, non-finite floats and
    /// strings with a NUL character (which would cut the statement short) are refused.
    public static func defaultLiteral(_ value: SQLValue?) throws(StorageError) -> String? {
        guard let value else { return nil }
        switch value {
        case .null:
            return "NULL"
        case .integer(let i):
            return String(i)
        case .real(let d):
            guard d.isFinite else { throw StorageError(.valueError, "default must be a finite number, got \(d)") }
            return "\(d)"  // shortest round-trip form, as Python's str(float): 1.5, 1e+20
        case .text(let s):
            guard !s.utf8.contains(0) else { throw StorageError(.valueError, "default must not contain a NUL character") }
            var inner = Substring(s)
            if inner.utf8.count >= 2, inner.hasPrefix("'"), inner.hasSuffix("'") {
                inner = inner.dropFirst().dropLast()
            }
            var out = "'"
            for c in inner.unicodeScalars {
                if c == "'" { out += "''" } else { out.unicodeScalars.append(c) }
            }
            return out + "'"
        case .blob:
            throw StorageError(.valueError, "default must be str, int, float, bool or None")
        }
    }

    // MARK: - pragma (§7.2, §14.7)

    /// pragma allow-lists (§7.2): readable and writable sets, exact lower-case names; value rules (int/float/str, str must match ^[\w\-\.]+$ ASCII).
    public static let readablePragmas: Set<String> = [
        "foreign_keys", "journal_mode", "synchronous", "cache_size", "temp_store", "locking_mode",
        "auto_vacuum", "page_size", "encoding", "user_version", "schema_version", "wal_autocheckpoint",
        "busy_timeout", "query_only", "recursive_triggers", "secure_delete", "table_info", "index_list",
        "index_info", "database_list",
    ]
    /// The readable pragmas minus the read-only or informational ones (1.5.6 SEC-04).
    public static let writablePragmas: Set<String> = readablePragmas.subtracting([
        "schema_version", "table_info", "index_list", "index_info", "database_list",
    ])

    /// Returns the SQL for `PRAGMA name` or `PRAGMA name = value`, or throws valueError as the spec says.
    ///
    /// `nil` and `.null` both read (Python's `value=None`). Names match exactly (case-sensitive,
    /// as NanaSQLite).
    public static func pragmaSQL(_ name: String, value: SQLValue?) throws(StorageError) -> String {
        guard readablePragmas.contains(name) else {
            throw StorageError(.valueError, "PRAGMA '\(name)' is not allowed. Allowed: \(readablePragmas.sorted().joined(separator: ", "))")
        }
        guard let value, value != .null else { return "PRAGMA \(name)" }
        guard writablePragmas.contains(name) else {
            throw StorageError(.valueError, "PRAGMA '\(name)' is read-only or unsafe to set")
        }
        switch value {
        case .integer(let i):
            return "PRAGMA \(name) = \(i)"
        case .real(let d):
            guard d.isFinite else { throw StorageError(.valueError, "Invalid PRAGMA value: \(d)") }
            return "PRAGMA \(name) = \(d)"
        case .text(let s):
            // `^[\w\-\.]+$`, ASCII, full match: nothing that needs escaping inside the quotes.
            let bytes = Array(s.utf8)
            guard !bytes.isEmpty, bytes.allSatisfy({ isWordByte($0) || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }) else {
                throw StorageError(.valueError, "PRAGMA string value must contain only alphanumeric, underscore, dash, or dot characters")
            }
            return "PRAGMA \(name) = '\(s)'"
        case .blob, .null:
            throw StorageError(.valueError, "PRAGMA value must be int, float or str")
        }
    }
}

// MARK: - Contexts

extension SQLExpressionContext {
    /// The label in "Invalid <label>: Potentially dangerous SQL pattern…".
    fileprivate var label: String? {
        switch self {
        case .whereClause: "where clause"
        case .orderBy: "order_by clause"
        case .groupBy: "group_by clause"
        case .column: "column name"
        case .none: nil
        }
    }

    /// The name in "Invalid <name> clause: …" (steps 1 and 2).
    fileprivate var clauseName: String? {
        switch self {
        case .orderBy: "order_by"
        case .groupBy: "group_by"
        case .column: "column"
        case .whereClause, .none: nil
        }
    }

    fileprivate var subqueryKeywords: Set<String>? {
        switch self {
        case .orderBy, .groupBy:
            ["SELECT", "FROM", "JOIN", "UNION", "WHERE", "HAVING", "LIMIT", "OFFSET", "EXCEPT", "INTERSECT"]
        case .column:
            ["SELECT", "FROM", "JOIN", "UNION", "EXCEPT", "INTERSECT"]
        case .whereClause, .none:
            nil
        }
    }
}

// MARK: - Scanning

extension SQLGuard {
    /// Step 5's words: statements that write or change the schema.
    fileprivate static let dangerousKeywords: Set<String> = [
        "DROP", "DELETE", "UPDATE", "INSERT", "TRUNCATE", "ALTER", "ATTACH", "DETACH", "CREATE", "REINDEX", "REPLACE",
    ]

    /// SQL keywords that may stand before `(` without being a call (spec §15.7: NanaSQLite read
    /// `id IN (?, ?)`, `AND (`, `NOT (`, `EXISTS (` as calls to functions IN, AND, …).
    /// Only bare words are exempt: `"IN"(x)` is a call to a function named IN. None of these
    /// names a dangerous built-in function (LIKE and GLOB name the harmless like() and glob());
    /// MATCH and REGEXP are ``operatorFunctions`` instead.
    fileprivate static let keywords: Set<String> = [
        "AND", "OR", "NOT", "IN", "EXISTS", "BETWEEN", "LIKE", "GLOB", "IS", "ISNULL", "NOTNULL",
        "CASE", "WHEN", "THEN", "ELSE", "END", "AS", "ON", "USING", "VALUES", "SELECT", "FROM", "WHERE",
        "NULL", "DISTINCT", "ALL", "ANY", "COLLATE", "ESCAPE", "CAST",
        "BY", "HAVING", "LIMIT", "OFFSET", "JOIN", "UNION", "EXCEPT", "INTERSECT", "WITH", "RECURSIVE",
        "OVER", "FILTER", "PARTITION", "ASC", "DESC", "ROWS", "RANGE", "GROUPS",
    ]

    /// Operators SQLite runs by calling an application-defined function of the same name
    /// (`x REGEXP y` is `regexp(y, x)`; MATCH likewise). Not in NanaSQLite, which only saw calls
    /// written with a parenthesis: here the bare word counts as a call, so these operators need
    /// the function on the allow-list like any other call. (LIKE and GLOB also call functions,
    /// but built-in, harmless ones, and are too common to refuse.)
    fileprivate static let operatorFunctions: Set<String> = ["REGEXP", "MATCH"]

    fileprivate struct ExpressionScan {
        /// The text with single-quoted literals and comments blanked and the quote characters
        /// of quoted names (`"…"`, `` `…` ``, `[…]`) blanked, their contents kept.
        var masked: [UInt8]
        /// Upper-cased names of the functions called, in order (repeats included).
        var calls: [String]
    }

    /// Tokenises just enough of SQLite's grammar to find function calls: a name — a bare word
    /// that is not a keyword, or any quoted name — followed, after whitespace, by `(`. Returns
    /// nil when a literal, quoted name, comment or parenthesis is left open (or a `)` has no `(`).
    ///
    /// Quoted names are tracked (not just blanked) so that a `'` inside `"…"` does not start a
    /// "literal" that would hide real code from the scan, e.g. `"a'" = load_extension(1) or 'b'`.
    ///
    /// Where this tokeniser and SQLite's disagree, it errs towards seeing more calls: SQLite's
    /// Tcl-style parameter `$name(…)` (also `:name(…)`, `@name(…)`) swallows text up to `)`, which
    /// this scan reads as a call to `$NAME` (or `NAME`) that no allow-list holds, so it is refused.
    /// `name$x(` is one SQLite name, so `$` counts as a name character here.
    fileprivate static func scanExpression(_ b: [UInt8]) -> ExpressionScan? {
        let n = b.count
        var masked = b
        var calls: [String] = []
        var depth = 0
        // The name just before the current position, whitespace and comments aside; a `(` here makes it a call.
        var callee: String?
        let space = UInt8(ascii: " ")
        var i = 0
        while i < n {
            let c = b[i]
            let next: UInt8? = i + 1 < n ? b[i + 1] : nil
            if isWhitespace(c) { i += 1; continue }
            if c == UInt8(ascii: "-"), next == UInt8(ascii: "-") {  // unreachable after step 4; kept for robustness
                while i < n, b[i] != UInt8(ascii: "\n") { masked[i] = space; i += 1 }
                continue
            }
            if c == UInt8(ascii: "/"), next == UInt8(ascii: "*") {
                var j = i + 2
                while j + 1 < n, !(b[j] == UInt8(ascii: "*") && b[j + 1] == UInt8(ascii: "/")) { j += 1 }
                guard j + 1 < n else { return nil }
                for k in i...(j + 1) { masked[k] = space }
                i = j + 2
                continue
            }
            switch c {
            case UInt8(ascii: "'"):
                // A string literal; '' is an escaped quote. (A blob x'…' is the word x then this.)
                var j = i + 1
                while true {
                    guard j < n else { return nil }
                    if b[j] == UInt8(ascii: "'") {
                        if j + 1 < n, b[j + 1] == UInt8(ascii: "'") { j += 2; continue }
                        break
                    }
                    j += 1
                }
                for k in i...j { masked[k] = space }
                i = j + 1
                callee = nil
            case UInt8(ascii: "\""), UInt8(ascii: "`"), UInt8(ascii: "["):
                // A quoted name: "…" and `…` escape their quote by doubling it; […] has no escape.
                let close = c == UInt8(ascii: "[") ? UInt8(ascii: "]") : c
                var name: [UInt8] = []
                var j = i + 1
                while true {
                    guard j < n else { return nil }
                    if b[j] == close {
                        if close != UInt8(ascii: "]"), j + 1 < n, b[j + 1] == close {
                            name.append(close); masked[j] = space; masked[j + 1] = space
                            j += 2
                            continue
                        }
                        break
                    }
                    name.append(b[j])
                    j += 1
                }
                masked[i] = space
                masked[j] = space
                i = j + 1
                callee = asciiUppercased(name[...])
            case UInt8(ascii: "("):
                if let name = callee { calls.append(name) }
                depth += 1
                i += 1
                callee = nil
            case UInt8(ascii: ")"):
                depth -= 1
                if depth < 0 { return nil }
                i += 1
                callee = nil
            default:
                if isDigit(c) {
                    i = numberEnd(b, from: i)
                    callee = nil
                } else if isNameByte(c) {
                    // SQLite identifiers may contain `$` after the first character; taking the
                    // whole run keeps `abs$(` from passing as "no name before (".
                    let start = i
                    while i < n, isNameByte(b[i]) { i += 1 }
                    let word = asciiUppercased(b[start..<i])
                    if operatorFunctions.contains(word) {
                        // `a REGEXP b` is regexp(b, a): a call with no parenthesis.
                        calls.append(word)
                        callee = nil
                    } else {
                        callee = keywords.contains(word) ? nil : word
                    }
                } else {
                    i += 1
                    callee = nil
                }
            }
        }
        guard depth == 0 else { return nil }
        return ExpressionScan(masked: masked, calls: calls)
    }

    /// Whether `bytes` holds one of `words` as a whole word, case-insensitively — Python's
    /// `\b(?:A|B)\b` with `re.IGNORECASE`: a word is a maximal run of `\w` characters, and bytes
    /// ≥ 0x80 count as `\w` (Python's `\w` is Unicode-aware; non-ASCII input is refused later
    /// either way). One difference, stricter than Python: a run that starts with a digit starts
    /// with a number, and the word after it is checked on its own, because SQLite reads
    /// `0x1union` as `0x1 UNION` (see ``numberEnd(_:from:)``).
    fileprivate static func containsWord(of words: Set<String>, in bytes: [UInt8]) -> Bool {
        // A run longer than every keyword cannot be one: skip it without building a String.
        let longest = words.lazy.map(\.utf8.count).max() ?? 0
        var i = 0
        while i < bytes.count {
            guard isWordByte(bytes[i]) || bytes[i] >= 0x80 else { i += 1; continue }
            if isDigit(bytes[i]) { i = numberEnd(bytes, from: i); continue }
            let start = i
            while i < bytes.count, isWordByte(bytes[i]) || bytes[i] >= 0x80 { i += 1 }
            if i - start <= longest, words.contains(asciiUppercased(bytes[start..<i])) { return true }
        }
        return false
    }

    /// Where the number that starts at `i` (a digit) ends, as SQLite's tokeniser ends it: `0x`
    /// and hex digits, or decimal digits. SQLite ends a hex literal at the first non-hex
    /// character and starts a new token there, so `0x1regexp'a'` is `0x1 REGEXP 'a'` and
    /// `0x1load_extension(1)` calls load_extension; a word scan that took the whole run as one
    /// word would miss both. (After decimal digits SQLite refuses a letter outright; reading the
    /// rest as a new word is merely stricter.) The fraction and exponent of a decimal need no
    /// care: `.` splits words anyway and `e5` is no keyword.
    fileprivate static func numberEnd(_ b: [UInt8], from i: Int) -> Int {
        var j = i + 1
        if b[i] == UInt8(ascii: "0"), j + 1 < b.count, b[j] | 0x20 == UInt8(ascii: "x"), isHexDigit(b[j + 1]) {
            j += 2
            while j < b.count, isHexDigit(b[j]) { j += 1 }
            return j
        }
        while j < b.count, isDigit(b[j]) { j += 1 }
        return j
    }

    /// `;`, `--` or `/*` anywhere.
    fileprivate static func containsStatementBreak(_ b: [UInt8]) -> Bool {
        for i in b.indices {
            if b[i] == UInt8(ascii: ";") { return true }
            if i + 1 < b.count {
                if b[i] == UInt8(ascii: "-"), b[i + 1] == UInt8(ascii: "-") { return true }
                if b[i] == UInt8(ascii: "/"), b[i + 1] == UInt8(ascii: "*") { return true }
            }
        }
        return false
    }

    // MARK: Byte classes (ASCII)

    fileprivate static func isLetter(_ b: UInt8) -> Bool { (b | 0x20) >= 0x61 && (b | 0x20) <= 0x7A }
    fileprivate static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    fileprivate static func isHexDigit(_ b: UInt8) -> Bool { isDigit(b) || ((b | 0x20) >= 0x61 && (b | 0x20) <= 0x66) }
    /// Python's ASCII `\w`.
    fileprivate static func isWordByte(_ b: UInt8) -> Bool { isLetter(b) || isDigit(b) || b == UInt8(ascii: "_") }
    /// Characters of a bare SQLite name as far as the call scan cares (`\w` plus `$`).
    fileprivate static func isNameByte(_ b: UInt8) -> Bool { isWordByte(b) || b == UInt8(ascii: "$") }
    /// Python's ASCII `\s`: space, \t, \n, \v, \f, \r.
    fileprivate static func isWhitespace(_ b: UInt8) -> Bool { b == 0x20 || (b >= 0x09 && b <= 0x0D) }

    /// Step 1: `[a-zA-Z0-9_.,\s()"'`\[\]]`.
    fileprivate static func isOrderGroupByte(_ b: UInt8) -> Bool {
        if isWordByte(b) || isWhitespace(b) { return true }
        switch b {
        case UInt8(ascii: "."), UInt8(ascii: ","), UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "\""),
             UInt8(ascii: "'"), UInt8(ascii: "`"), UInt8(ascii: "["), UInt8(ascii: "]"):
            return true
        default:
            return false
        }
    }

    /// Step 3: letters, digits, `_`, space and `, . ( ) ' = < > ! + - * / " | ? : @ $ [ ]` and backtick.
    fileprivate static func isSafeByte(_ b: UInt8) -> Bool {
        if isWordByte(b) { return true }
        switch b {
        case UInt8(ascii: " "), UInt8(ascii: ","), UInt8(ascii: "."), UInt8(ascii: "("), UInt8(ascii: ")"),
             UInt8(ascii: "'"), UInt8(ascii: "="), UInt8(ascii: "<"), UInt8(ascii: ">"), UInt8(ascii: "!"),
             UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "*"), UInt8(ascii: "/"), UInt8(ascii: "\""),
             UInt8(ascii: "|"), UInt8(ascii: "?"), UInt8(ascii: ":"), UInt8(ascii: "@"), UInt8(ascii: "$"),
             UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "`"):
            return true
        default:
            return false
        }
    }

    /// create_table types: `[\w\s(),=<>!@#%.]`.
    fileprivate static func isColumnTypeByte(_ b: UInt8) -> Bool {
        if isWordByte(b) || isWhitespace(b) { return true }
        switch b {
        case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: ","), UInt8(ascii: "="), UInt8(ascii: "<"),
             UInt8(ascii: ">"), UInt8(ascii: "!"), UInt8(ascii: "@"), UInt8(ascii: "#"), UInt8(ascii: "%"),
             UInt8(ascii: "."):
            return true
        default:
            return false
        }
    }

    /// ASCII upper-casing; other bytes are kept (and decoded leniently, for messages only).
    fileprivate static func asciiUppercased(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.lazy.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, as: UTF8.self)
    }
}
