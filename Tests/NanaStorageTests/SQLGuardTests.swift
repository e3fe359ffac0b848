import NanaStorage
import Testing

/// The guard layer the SQL helper methods call (behaviour spec §7.1, §7.2, §14.2–8, §15.7).
@Suite struct SQLGuardTests {
    let policy = SQLFunctionPolicy()

    /// The error `body` throws, or nil if it returns.
    private func failure(_ body: () throws(StorageError) -> Void) -> StorageError? {
        do { try body(); return nil } catch { return error }
    }

    private func validationError(_ expression: String, _ context: SQLExpressionContext,
                                 policy: SQLFunctionPolicy = SQLFunctionPolicy(), strict: Bool? = nil,
                                 allowed: [String]? = nil, forbidden: [String]? = nil, overrideAllowed: Bool = false) -> StorageError? {
        failure { () throws(StorageError) in
            try SQLGuard.validate(expression, context: context, policy: policy, strict: strict, allowed: allowed,
                                  forbidden: forbidden, overrideAllowed: overrideAllowed)
        }
    }

    private static let notAllowed = " is not in the allowed list. Use 'allowed_sql_functions' to permit it if you trust this function."

    // MARK: Accepted expressions

    @Test(arguments: [
        "age > ?",
        "name = ? AND (age > ? OR age < ?)",
        "id IN (?, ?, ?)",
        "id NOT IN (1, 2)",
        "NOT (a = 1)",
        "EXISTS (SELECT 1 FROM t WHERE t.x = y)",
        "COUNT(*) > 1",
        "lower(name) = ?",
        "\"weird col\" = ?",
        "CAST(x AS INTEGER) > 1",
        "a BETWEEN (1) AND (2)",
        "CASE WHEN (a > 1) THEN (1) ELSE (0) END = 1",
        "x IS NOT NULL AND (y LIKE ?)",
        "name = 'it''s (not) a call: load_extension(1)'",
        "[bracketed] = :p AND `ticked` = @q AND $r = ?1",
        "a || b = ?",
        "COALESCE(a, 0) + IFNULL(b, 1) >= ROUND(c, 2)",
        "x IN (SELECT y FROM other WHERE z = ?)",
        "count ( * ) > 1",
    ])
    func acceptsWhereClauses(_ expression: String) throws {
        #expect(try SQLGuard.validate(expression, context: .whereClause, policy: policy) == [])
        #expect(try SQLGuard.validate(expression, context: .none, policy: policy) == [])
    }

    @Test func acceptsOtherContexts() throws {
        for expression in ["name", "name, age", "t.name DESC, age ASC", "\"weird col\" DESC", "LOWER(name)", "[a], `b`"] {
            try SQLGuard.validate(expression, context: .orderBy, policy: policy)
            try SQLGuard.validate(expression, context: .groupBy, policy: policy)
        }
        for expression in ["name", "COUNT(*)", "COUNT(*) AS n", "t.name", "age * 2 AS double_age", "\"weird col\"", "*"] {
            try SQLGuard.validate(expression, context: .column, policy: policy)
        }
        #expect(try SQLGuard.validate("", context: .whereClause, policy: policy) == [])
    }

    // MARK: Structural refusals: messages per step

    @Test func stepMessages() {
        // 1. ORDER BY / GROUP BY characters.
        #expect(validationError("a = 1", .orderBy) == StorageError(.valueError, "Invalid order_by clause: contains forbidden characters."))
        #expect(validationError("a; DROP TABLE t", .groupBy) == StorageError(.valueError, "Invalid group_by clause: contains forbidden characters."))
        // 2. Subquery keywords.
        #expect(validationError("(SELECT password FROM users)", .orderBy) == StorageError(.valueError, "Invalid order_by clause: subquery keywords are not permitted."))
        #expect(validationError("(SELECT password FROM users)", .groupBy) == StorageError(.valueError, "Invalid group_by clause: subquery keywords are not permitted."))
        #expect(validationError("(SELECT password FROM users)", .column) == StorageError(.valueError, "Invalid column clause: subquery keywords are not permitted."))
        // 3. Safe characters.
        #expect(validationError("1; DROP TABLE users", .whereClause) == StorageError(.valueError, "Invalid where clause: Potentially dangerous SQL pattern or invalid characters detected."))
        #expect(validationError("a % 2", .none) == StorageError(.valueError, "Invalid: Potentially dangerous SQL pattern or invalid characters detected."))
        #expect(validationError("a;", .column) == StorageError(.valueError, "Invalid column name: Potentially dangerous SQL pattern or invalid characters detected."))
        // 4. Comments.
        #expect(validationError("1 -- x", .whereClause) == StorageError(.valueError, "Invalid where clause: Potentially dangerous SQL pattern"))
        #expect(validationError("1 /* x */", .none) == StorageError(.valueError, "Invalid: Potentially dangerous SQL pattern"))
        #expect(validationError("a /* x */", .column) == StorageError(.valueError, "Invalid column name: Potentially dangerous SQL pattern"))
        // 5. Write/DDL keywords.
        #expect(validationError("x = 1 AND DELETE", .whereClause) == StorageError(.valueError, "Invalid where clause: Potentially dangerous SQL pattern"))
        // 6. Length (policy).
        #expect(validationError(String(repeating: "a", count: 1001), .whereClause) == StorageError(.validation, "SQL expression exceeds maximum length of 1000 characters."))
        // 9. Functions (policy).
        #expect(validationError("randomblob(1000000000)", .whereClause) == StorageError(.validation, "SQL function 'RANDOMBLOB'" + Self.notAllowed))
    }

    /// Payloads, each refused in the contexts listed.
    @Test(arguments: [
        ("1; DROP TABLE users", [SQLExpressionContext.whereClause, .orderBy, .groupBy, .column, .none]),
        ("1 -- x", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("1 /* x */", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("1 */", [.orderBy, .groupBy]),
        ("name = 'x' UNION SELECT password FROM users", [.orderBy, .groupBy, .column]),
        ("name UNION SELECT password FROM users", [.orderBy, .groupBy, .column]),
        ("(SELECT password FROM users)", [.orderBy, .groupBy, .column]),
        ("(select password from users)", [.orderBy, .groupBy, .column]),
        ("name LIMIT 1", [.orderBy, .groupBy]),
        ("name, (SELECT 1) x", [.orderBy, .groupBy, .column]),
        ("a EXCEPT b", [.orderBy, .groupBy, .column]),
        ("a INTERSECT b", [.orderBy, .groupBy, .column]),
        ("a JOIN b", [.orderBy, .groupBy, .column]),
        ("a WHERE b", [.orderBy, .groupBy]),
        ("a HAVING b", [.orderBy, .groupBy]),
        ("a OFFSET 1", [.orderBy, .groupBy]),
        ("load_extension('x')", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("\"LOAD_EXTENSION\"('x')", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("`load_extension`('x')", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("[load_extension]('x')", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("lOaD_eXtEnSiOn(1)", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("load_extension (1)", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("randomblob(1000000000)", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("zeroblob(1000000000)", [.whereClause, .column, .none]),
        ("sqlite_version()", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("'a' || char(59)", [.whereClause, .column, .none]),
        ("x IN (SELECT name FROM pragma_table_info('users'))", [.whereClause, .none]),
        ("abs$(1) = 1", [.whereClause, .column, .none]),
        ("x = 1 AND DELETE", [.whereClause, .column, .none]),
        ("REPLACE(a, 'b', 'c') = ?", [.whereClause, .column, .none]),
        ("replace(a, 'b', 'c')", [.orderBy, .groupBy]),
        ("\"DELETE\" = 1", [.whereClause, .column, .none]),
        ("[drop]", [.orderBy, .groupBy, .column]),
        ("a = 1 OR ATTACH", [.whereClause, .none]),
        ("name = 'é'", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("名前 = ?", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("name\u{00A0}= ?", [.whereClause, .none]),
        ("name LIKE 'a%'", [.whereClause, .column, .none]),
        ("a = 1\tOR b = 2", [.whereClause, .column, .none]),
        ("a = 1\nOR b = 2", [.whereClause, .column, .none]),
        ("name\n", [.orderBy, .groupBy]),
        ("a # b", [.whereClause, .column, .none]),
        ("a & b", [.whereClause, .column, .none]),
        ("~a", [.whereClause, .column, .none]),
        ("a ^ b", [.whereClause, .column, .none]),
        ("{a}", [.whereClause, .column, .none]),
        ("a = \u{0}", [.whereClause, .column, .none]),
        // Quotes or parentheses left open (or closed without opening) would pair with another clause.
        ("a = 'x", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("' or zeroblob(1) or ''", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("\"a", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("`a", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("[a", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("a = 1) OR (1 = 1", [.whereClause, .column, .none]),
        ("(a", [.whereClause, .orderBy, .groupBy, .column, .none]),
        ("a)", [.whereClause, .orderBy, .groupBy, .column, .none]),
        // A ' inside a quoted name must not start a "literal" that hides the call after it.
        ("\"a'\" = load_extension(1) OR 'b'", [.whereClause, .column, .none]),
        ("[a'] = load_extension(1) OR 'b'", [.whereClause, .column, .none]),
        ("`a'` = load_extension(1) OR 'b'", [.whereClause, .column, .none]),
        ("\"a\"\"'\" = load_extension(1) OR 'b'", [.whereClause, .column, .none]),
        // Quoted keywords are names: a call, not a keyword.
        ("\"IN\"(1)", [.whereClause, .column, .none]),
        ("\"weird col\"(1)", [.whereClause, .column, .none]),
        ("x REGEXP (?)", [.whereClause, .none]),
        // REGEXP and MATCH call functions without a parenthesis.
        ("x REGEXP ?", [.whereClause, .column, .none]),
        ("x match 'a'", [.whereClause, .column, .none]),
        // SQLite ends a hex literal at the first non-hex character: `0x1regexp` is `0x1 REGEXP`.
        ("0x1regexp 'a'", [.whereClause, .column, .none]),
        ("?2regexp 'a'", [.whereClause, .column, .none]),
        ("0x1load_extension(1)", [.whereClause, .column, .none]),
        ("0x1select 1", [.column]),
        ("0x1UPDATE", [.whereClause, .column, .none]),
    ])
    func refusesPayload(_ payload: String, _ contexts: [SQLExpressionContext]) {
        for context in contexts {
            let error = validationError(payload, context)
            // NanaSQLite's families: ValueError for structure, NanaSQLiteValidationError for policy.
            let policyFailure = error?.message.hasPrefix("SQL function") ?? false
            #expect(error?.kind == (policyFailure ? .validation : .valueError), "\(payload) in \(context)")
            // Structural refusals stay refusals when the handle or the call is not strict.
            if !(error?.message.hasPrefix("SQL function") ?? true) {
                #expect(validationError(payload, context, strict: false) != nil, "\(payload) in \(context), not strict")
                #expect(validationError(payload, context, policy: SQLFunctionPolicy(strict: false)) != nil, "\(payload) in \(context), handle not strict")
            }
        }
    }

    @Test func numbersEndWhereSQLiteEndsThem() throws {
        #expect(validationError("0x1regexp 'a'", .whereClause) == StorageError(.validation, "SQL function 'REGEXP'" + Self.notAllowed))
        #expect(validationError("0x1load_extension(1)", .whereClause) == StorageError(.validation, "SQL function 'LOAD_EXTENSION'" + Self.notAllowed))
        #expect(validationError("0x1select 1", .column) == StorageError(.valueError, "Invalid column clause: subquery keywords are not permitted."))
        // Hex digits stay in the number, as in SQLite: 0xDE then LETE.
        try SQLGuard.validate("x = 0xDELETE", context: .whereClause, policy: policy)
        try SQLGuard.validate("x = 0xff AND y = 1.5e10 AND z IN (1, 2)", context: .whereClause, policy: policy)
        try SQLGuard.validate("a1b2 = ?", context: .whereClause, policy: policy)
    }

    @Test func doubleQuotedNamesAreSeenByTheFunctionScan() {
        #expect(validationError("\"LOAD_EXTENSION\"('x')", .whereClause) == StorageError(.validation, "SQL function 'LOAD_EXTENSION'" + Self.notAllowed))
        #expect(validationError("lOaD_eXtEnSiOn(1)", .whereClause) == StorageError(.validation, "SQL function 'LOAD_EXTENSION'" + Self.notAllowed))
        #expect(validationError("'a' || char(59)", .whereClause) == StorageError(.validation, "SQL function 'CHAR'" + Self.notAllowed))
        #expect(validationError("sqlite_version()", .column) == StorageError(.validation, "SQL function 'SQLITE_VERSION'" + Self.notAllowed))
        // A name in a string literal is not a call.
        #expect(validationError("name = 'load_extension(1)'", .whereClause) == nil)
    }

    // MARK: Function policy

    @Test func allowAndForbidListsIgnoreCase() throws {
        #expect(validationError("JSON_EXTRACT(value, '$.a') = ?", .whereClause) == StorageError(.validation, "SQL function 'JSON_EXTRACT'" + Self.notAllowed))
        try SQLGuard.validate("JSON_EXTRACT(value, '$.a') = ?", context: .whereClause, policy: policy, allowed: ["json_extract"])
        try SQLGuard.validate("json_extract(value, '$.a') = ?", context: .whereClause, policy: SQLFunctionPolicy(allowed: ["json_extract"]))
        // Properties set directly, not through init, are upper-cased on use.
        var direct = SQLFunctionPolicy()
        direct.allowed = ["hex"]
        try SQLGuard.validate("hex(x) = ?", context: .whereClause, policy: direct)
        direct.forbidden = ["count"]
        #expect(validationError("COUNT(*) > 1", .whereClause, policy: direct) == StorageError(.validation, "SQL function 'COUNT' is explicitly forbidden."))

        #expect(validationError("count(*) > 1", .whereClause, forbidden: ["Count"]) == StorageError(.validation, "SQL function 'COUNT' is explicitly forbidden."))
        #expect(validationError("abs(x) > 1", .whereClause, policy: SQLFunctionPolicy(forbidden: ["abs"])) == StorageError(.validation, "SQL function 'ABS' is explicitly forbidden."))
        // Forbidden beats allowed.
        #expect(validationError("hex(x) = ?", .whereClause, allowed: ["hex"], forbidden: ["HEX"]) == StorageError(.validation, "SQL function 'HEX' is explicitly forbidden."))
        // The call's forbidden list replaces the handle's, even when empty.
        try SQLGuard.validate("abs(x) > 1", context: .whereClause, policy: SQLFunctionPolicy(forbidden: ["ABS"]), forbidden: [])
        // REGEXP is a call even as an operator: refused by default, accepted once allowed.
        #expect(validationError("name REGEXP ?", .whereClause) == StorageError(.validation, "SQL function 'REGEXP'" + Self.notAllowed))
        try SQLGuard.validate("name REGEXP ?", context: .whereClause, policy: policy, allowed: ["regexp"])
        // A forbidden keyword is not a function: IN stays usable.
        try SQLGuard.validate("id IN (1, 2)", context: .whereClause, policy: policy, forbidden: ["IN"])
    }

    @Test func forbiddingEverythingRefusesOnlyCalls() throws {
        let all = SQLFunctionPolicy(forbidden: ["*"])
        #expect(try SQLGuard.validate("age > ?", context: .whereClause, policy: all) == [])
        #expect(try SQLGuard.validate("id IN (?, ?) AND NOT (a = 1)", context: .whereClause, policy: all) == [])
        #expect(try SQLGuard.validate("name", context: .orderBy, policy: all) == [])
        #expect(validationError("COUNT(*) > 1", .whereClause, policy: all) == StorageError(.validation, "All SQL functions are forbidden for this expression."))
        #expect(validationError("name REGEXP ?", .whereClause, policy: all) == StorageError(.validation, "All SQL functions are forbidden for this expression."))
        #expect(validationError("\"abs\"(x) > 1", .whereClause, forbidden: ["*"]) == StorageError(.validation, "All SQL functions are forbidden for this expression."))
        // Allowed lists do not override "*".
        #expect(validationError("abs(x) > 1", .whereClause, allowed: ["abs"], forbidden: ["*"]) != nil)
        // The call may lift the handle's "*".
        try SQLGuard.validate("abs(x) > 1", context: .whereClause, policy: all, forbidden: ["HEX"])
        // Not strict: one warning, and the scan stops there.
        #expect(try SQLGuard.validate("randomblob(1) AND load_extension(1)", context: .whereClause, policy: all, strict: false)
                == ["All SQL functions are forbidden for this expression."])
    }

    @Test func overrideAllowedUsesOnlyTheCallsList() throws {
        let handle = SQLFunctionPolicy(allowed: ["HEX"])
        try SQLGuard.validate("hex(x) = ?", context: .whereClause, policy: handle)
        try SQLGuard.validate("abs(x) > 1", context: .whereClause, policy: handle, allowed: ["abs"], overrideAllowed: true)
        #expect(validationError("COUNT(*) > 1", .whereClause, policy: handle, allowed: ["abs"], overrideAllowed: true)
                == StorageError(.validation, "SQL function 'COUNT'" + Self.notAllowed))
        #expect(validationError("hex(x) = ?", .whereClause, policy: handle, allowed: ["abs"], overrideAllowed: true)
                == StorageError(.validation, "SQL function 'HEX'" + Self.notAllowed))
        #expect(validationError("COUNT(*) > 1", .whereClause, overrideAllowed: true) != nil)
        // Keywords need no allowing, even with nothing allowed.
        try SQLGuard.validate("id IN (1) AND EXISTS (SELECT 1 FROM t) AND CAST(x AS TEXT) = ?", context: .whereClause, policy: policy, overrideAllowed: true)
    }

    @Test func notStrictTurnsPolicyFailuresIntoWarnings() throws {
        let lax = SQLFunctionPolicy(strict: false)
        #expect(try SQLGuard.validate("randomblob(8) = randomblob(8) OR hex(x) = sqlite_version()", context: .whereClause, policy: lax) == [
            "SQL function 'RANDOMBLOB'" + Self.notAllowed,
            "SQL function 'HEX'" + Self.notAllowed,
            "SQL function 'SQLITE_VERSION'" + Self.notAllowed,
        ])
        #expect(try SQLGuard.validate("abs(x) > 1", context: .whereClause, policy: lax, forbidden: ["ABS"]) == ["SQL function 'ABS' is explicitly forbidden."])
        let long = "a = " + String(repeating: "1", count: 1000)
        #expect(try SQLGuard.validate(long, context: .whereClause, policy: lax) == ["SQL expression exceeds maximum length of 1000 characters."])
        // The call's strictness wins over the handle's, both ways.
        #expect(try SQLGuard.validate("hex(x) = ?", context: .whereClause, policy: policy, strict: false).count == 1)
        #expect(validationError("hex(x) = ?", .whereClause, policy: lax, strict: true) != nil)
        // Structural checks still throw.
        #expect(validationError("1; DROP TABLE users", .whereClause, policy: lax) != nil)
        #expect(validationError("x = 1 AND DELETE", .whereClause, policy: lax) != nil)
        #expect(validationError("(SELECT 1)", .orderBy, policy: lax) != nil)
    }

    @Test func clauseLength() throws {
        let exactly = String(repeating: "a", count: 1000)
        try SQLGuard.validate(exactly, context: .whereClause, policy: policy)
        #expect(validationError(exactly + "a", .whereClause) == StorageError(.validation, "SQL expression exceeds maximum length of 1000 characters."))
        #expect(validationError("abcdef", .whereClause, policy: SQLFunctionPolicy(maximumClauseLength: 5))
                == StorageError(.validation, "SQL expression exceeds maximum length of 5 characters."))
        try SQLGuard.validate(exactly + exactly, context: .whereClause, policy: SQLFunctionPolicy(maximumClauseLength: nil))
        try SQLGuard.validate(exactly + exactly, context: .whereClause, policy: SQLFunctionPolicy(maximumClauseLength: 0))
    }

    // MARK: create_table column types

    @Test(arguments: ["TEXT", "INTEGER PRIMARY KEY", "REAL NOT NULL", "DECIMAL(10, 2)", "TEXT DEFAULT 0",
                      "INTEGER NOT NULL DEFAULT 0 CHECK (x >= 0 AND x IN (1, 2, 3))", "VARCHAR (255) UNIQUE",
                      "TEXT CHECK (length(x) < 10)", "INTEGER DEFAULT (abs(1))", "REAL DEFAULT 1.5", "TEXT COLLATE NOCASE"])
    func acceptsColumnTypes(_ type: String) throws {
        try SQLGuard.validateColumnType(type, column: "c")
    }

    @Test(arguments: ["TEXT); DROP TABLE x; --", "TEXT DEFAULT 'x') --", "TEXT, evil INTEGER", "TEXT /* */", "INT(1,2",
                      "INT(1))", "INT)(", "TEXT DEFAULT \"x\"", "TEXT DEFAULT 'x'", "TEXT DEFAULT `x`", "INTEGER DEFAULT -1",
                      "", "TEXT;", "TEXT -- x", "TÉXT", "TEXT DEFAULT [x]",
                      "INTEGER CHECK (load_extension(char(47,116,109,112)))", "BLOB DEFAULT (randomblob(1000000000))",
                      "INTEGER CHECK ((zeroblob (10)))", "TEXT CHECK (x REGEXP y)", "INTEGER CHECK (0x1load_extension(1))"])
    func refusesColumnTypes(_ type: String) {
        let error = failure { () throws(StorageError) in try SQLGuard.validateColumnType(type, column: "c") }
        #expect(error?.kind == .validation)
        #expect(error?.message.hasPrefix("Invalid or dangerous column type for 'c': ") == true)
    }

    // MARK: alter_table_add_column

    @Test(arguments: ["TEXT", "VARCHAR(255)", "DOUBLE PRECISION", "DECIMAL (10, 2)", "TEXT DEFAULT 1", "INTEGER NOT NULL",
                      "UNSIGNED BIG INT", "NUMERIC( 10 , 2 )", "t"])
    func acceptsAddColumnTypes(_ type: String) throws {
        try SQLGuard.validateAddColumnType(type)
    }

    @Test(arguments: ["TEXT; DROP", "INT)--", "", " TEXT", "TEXT ", "TEXT\n", "1TEXT", "_TEXT", "VARCHAR()", "VARCHAR(255", "VARCHAR(a)",
                      "VARCHAR(1)(2)", "VARCHAR(1) NOT NULL", "TEXT DEFAULT 'x'", "TEXT DEFAULT -1", "TÉXT", "TEXT,b INT"])
    func refusesAddColumnTypes(_ type: String) {
        #expect(failure { () throws(StorageError) in try SQLGuard.validateAddColumnType(type) }
                == StorageError(.valueError, "Invalid or dangerous column type: \(type)"))
    }

    @Test func defaultLiterals() throws {
        #expect(try SQLGuard.defaultLiteral(.text("it's")) == "'it''s'")
        #expect(try SQLGuard.defaultLiteral(.text("'quoted'")) == "'quoted'")
        #expect(try SQLGuard.defaultLiteral(.text("''")) == "''")
        #expect(try SQLGuard.defaultLiteral(.text("'")) == "''''")
        #expect(try SQLGuard.defaultLiteral(.text("x'); DROP TABLE t; --")) == "'x''); DROP TABLE t; --'")
        #expect(try SQLGuard.defaultLiteral(.text("")) == "''")
        #expect(try SQLGuard.defaultLiteral(.text("名前")) == "'名前'")
        #expect(try SQLGuard.defaultLiteral(.integer(5)) == "5")
        #expect(try SQLGuard.defaultLiteral(.integer(-5)) == "-5")
        #expect(try SQLGuard.defaultLiteral(.integer(1)) == "1")  // True arrives as 1
        #expect(try SQLGuard.defaultLiteral(.real(1.5)) == "1.5")
        #expect(try SQLGuard.defaultLiteral(.real(-0.25)) == "-0.25")
        #expect(try SQLGuard.defaultLiteral(.null) == "NULL")
        #expect(try SQLGuard.defaultLiteral(nil) == nil)
        #expect(failure { () throws(StorageError) in _ = try SQLGuard.defaultLiteral(.blob([1, 2])) }?.kind == .valueError)
        #expect(failure { () throws(StorageError) in _ = try SQLGuard.defaultLiteral(.real(.infinity)) }?.kind == .valueError)
        #expect(failure { () throws(StorageError) in _ = try SQLGuard.defaultLiteral(.real(.nan)) }?.kind == .valueError)
        #expect(failure { () throws(StorageError) in _ = try SQLGuard.defaultLiteral(.text("a\u{0}b")) }?.kind == .valueError)
    }

    // MARK: pragma

    @Test func pragmas() throws {
        #expect(try SQLGuard.pragmaSQL("journal_mode", value: nil) == "PRAGMA journal_mode")
        #expect(try SQLGuard.pragmaSQL("schema_version", value: nil) == "PRAGMA schema_version")
        #expect(try SQLGuard.pragmaSQL("table_info", value: .null) == "PRAGMA table_info")
        #expect(try SQLGuard.pragmaSQL("user_version", value: .integer(5)) == "PRAGMA user_version = 5")
        #expect(try SQLGuard.pragmaSQL("cache_size", value: .integer(-2000)) == "PRAGMA cache_size = -2000")
        #expect(try SQLGuard.pragmaSQL("journal_mode", value: .text("wal")) == "PRAGMA journal_mode = 'wal'")
        #expect(try SQLGuard.pragmaSQL("synchronous", value: .text("NORMAL")) == "PRAGMA synchronous = 'NORMAL'")
        #expect(try SQLGuard.pragmaSQL("busy_timeout", value: .real(2.5)) == "PRAGMA busy_timeout = 2.5")

        #expect(SQLGuard.readablePragmas.count == 20)
        #expect(SQLGuard.writablePragmas == SQLGuard.readablePragmas.subtracting(["schema_version", "table_info", "index_list", "index_info", "database_list"]))

        func refusal(_ name: String, _ value: SQLValue?) -> StorageError? {
            failure { () throws(StorageError) in _ = try SQLGuard.pragmaSQL(name, value: value) }
        }
        let unknown = refusal("writable_schema", .integer(1))
        #expect(unknown?.kind == .valueError)
        #expect(unknown?.message.hasPrefix("PRAGMA 'writable_schema' is not allowed. Allowed: auto_vacuum, busy_timeout, ") == true)
        #expect(refusal("Journal_Mode", nil)?.kind == .valueError)
        #expect(refusal("main.journal_mode", nil)?.kind == .valueError)
        #expect(refusal("journal_mode; DROP TABLE t", nil)?.kind == .valueError)
        #expect(refusal("schema_version", .integer(1)) == StorageError(.valueError, "PRAGMA 'schema_version' is read-only or unsafe to set"))
        #expect(refusal("table_info", .text("users")) == StorageError(.valueError, "PRAGMA 'table_info' is read-only or unsafe to set"))
        for bad in ["x; DROP", "wal'", "", "a b", "wal\n", "wál", "(1)"] {
            #expect(refusal("journal_mode", .text(bad)) == StorageError(.valueError, "PRAGMA string value must contain only alphanumeric, underscore, dash, or dot characters"), "\(bad)")
        }
        #expect(refusal("user_version", .blob([1])) == StorageError(.valueError, "PRAGMA value must be int, float or str"))
        #expect(refusal("user_version", .real(.nan))?.kind == .valueError)
        #expect(try SQLGuard.pragmaSQL("journal_mode", value: .text("my-mode.v_2")) == "PRAGMA journal_mode = 'my-mode.v_2'")
    }

    @Test func policyInitialiserUpperCases() {
        let p = SQLFunctionPolicy(strict: false, allowed: ["json_extract", "Hex"], forbidden: ["abs", "*"], maximumClauseLength: nil)
        #expect(p.allowed == ["JSON_EXTRACT", "HEX"])
        #expect(p.forbidden == ["ABS", "*"])
        #expect(p.maximumClauseLength == nil)
        #expect(!p.strict)
        #expect(SQLFunctionPolicy().maximumClauseLength == 1000)
        #expect(SQLFunctionPolicy.defaultAllowed.count == 18)
    }

    /// Linear scanning: a megabyte of nesting or quoting is refused or accepted quickly.
    @Test func largeInputsStayLinear() throws {
        let deep = String(repeating: "(", count: 500_000) + "1" + String(repeating: ")", count: 500_000)
        try SQLGuard.validate(deep, context: .whereClause, policy: SQLFunctionPolicy(maximumClauseLength: nil))
        let quotes = String(repeating: "''", count: 500_000)
        try SQLGuard.validate("a = '" + quotes + "'", context: .whereClause, policy: SQLFunctionPolicy(maximumClauseLength: nil))
        #expect(validationError(String(repeating: "a(", count: 500_000), .whereClause) != nil)
    }
}
