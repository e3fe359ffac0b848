/// The SQL text of NanaSQLite's SQL helpers (behaviour spec §7.2), built from validated and
/// quoted identifiers, with every value left to be bound. Expressions (`where`, `order_by`,
/// `group_by`, expression columns) are put in as given: the caller has checked them with
/// ``SQLGuard/validate(_:context:policy:strict:allowed:forbidden:overrideAllowed:)`` first.
public enum SQLHelperStatements {
    /// A column of `query`: a name (quoted here) or an expression the caller has checked.
    public enum Column: Sendable {
        case name(String)
        case expression(String)
    }

    public static func insert(into table: String, columns: [String]) throws(StorageError) -> String {
        guard !columns.isEmpty else { throw StorageError(.valueError, "sql_insert(): data must not be empty") }
        return "INSERT INTO \(try Identifier.quoted(table)) (\(try quotedList(columns))) VALUES (\(placeholders(columns.count)))"
    }

    /// Binds the new values first, then the WHERE clause's parameters.
    public static func update(_ table: String, setting columns: [String], where whereClause: String) throws(StorageError) -> String {
        guard !columns.isEmpty else { throw StorageError(.valueError, "sql_update(): data must not be empty") }
        let assignments = try columns.map { (c) throws(StorageError) in "\(try Identifier.quoted(c)) = ?" }
        return "UPDATE \(try Identifier.quoted(table)) SET \(assignments.joined(separator: ", ")) WHERE \(whereClause)"
    }

    public static func delete(from table: String, where whereClause: String) throws(StorageError) -> String {
        "DELETE FROM \(try Identifier.quoted(table)) WHERE \(whereClause)"
    }

    /// `INSERT OR REPLACE`, or with `conflictColumns` `INSERT … ON CONFLICT(…) DO UPDATE SET`
    /// the other columns (`DO NOTHING` when there are none). It returns the rowid of the row
    /// written (NanaSQLite returns a stale one on the UPDATE path).
    public static func upsert(into table: String, columns: [String], conflictColumns: [String]?) throws(StorageError) -> String {
        guard !columns.isEmpty else { throw StorageError(.valueError, "upsert(): data must not be empty") }
        let head = "INTO \(try Identifier.quoted(table)) (\(try quotedList(columns))) VALUES (\(placeholders(columns.count)))"
        guard let conflictColumns else { return "INSERT OR REPLACE \(head) RETURNING rowid" }
        guard !conflictColumns.isEmpty else { throw StorageError(.valueError, "upsert(): conflict_columns must not be empty") }
        let conflicting = Set(conflictColumns.map { $0.lowercased() })
        let updates = try columns.filter { !conflicting.contains($0.lowercased()) }.map { (c) throws(StorageError) -> String in
            let q = try Identifier.quoted(c)
            return "\(q) = excluded.\(q)"
        }
        let action = updates.isEmpty ? "DO NOTHING" : "DO UPDATE SET \(updates.joined(separator: ", "))"
        return "INSERT \(head) ON CONFLICT(\(try quotedList(conflictColumns))) \(action) RETURNING rowid"
    }

    /// `query` and `query_with_pagination`. Empty clauses are left out; an OFFSET without a
    /// LIMIT gets `LIMIT -1` (SQLite needs one; NanaSQLite emits a syntax error there).
    public static func select(
        _ columns: [Column]?, from table: String, where whereClause: String? = nil, groupBy: String? = nil,
        orderBy: String? = nil, limit: Int64? = nil, offset: Int64? = nil
    ) throws(StorageError) -> String {
        var columnsSQL = "*"
        if let columns {
            guard !columns.isEmpty else { throw StorageError(.valueError, "columns must not be empty") }
            columnsSQL = try columns.map { (c) throws(StorageError) -> String in
                switch c {
                case .name(let name): try Identifier.quoted(name)
                case .expression(let expression): expression
                }
            }.joined(separator: ", ")
        }
        var sql = "SELECT \(columnsSQL) FROM \(try Identifier.quoted(table))"
        if let whereClause, !whereClause.isEmpty { sql += " WHERE \(whereClause)" }
        if let groupBy, !groupBy.isEmpty { sql += " GROUP BY \(groupBy)" }
        if let orderBy, !orderBy.isEmpty { sql += " ORDER BY \(orderBy)" }
        if limit != nil || offset != nil {
            sql += " LIMIT \(limit ?? -1)"
            if let offset { sql += " OFFSET \(offset)" }
        }
        return sql
    }

    public static func count(in table: String, where whereClause: String?) throws(StorageError) -> String {
        var sql = "SELECT COUNT(*) FROM \(try Identifier.quoted(table))"
        if let whereClause, !whereClause.isEmpty { sql += " WHERE \(whereClause)" }
        return sql
    }

    public static func exists(in table: String, where whereClause: String) throws(StorageError) -> String {
        "SELECT EXISTS(SELECT 1 FROM \(try Identifier.quoted(table)) WHERE \(whereClause))"
    }

    // MARK: Schema

    /// `columns` are names and their declared types (each type checked by
    /// ``SQLGuard/validateColumnType(_:column:)``); a `primaryKey` not already declared in a
    /// column's type becomes a table constraint.
    public static func createTable(_ table: String, columns: [(name: String, type: String)], primaryKey: String?, ifNotExists: Bool) throws(StorageError) -> String {
        guard !columns.isEmpty else { throw StorageError(.valueError, "create_table(): columns must not be empty") }
        var definitions: [String] = []
        for (name, type) in columns {
            try SQLGuard.validateColumnType(type, column: name)
            definitions.append("\(try Identifier.quoted(name)) \(type)")
        }
        if let primaryKey {
            let declared = columns.contains { $0.name.lowercased() == primaryKey.lowercased() && $0.type.uppercased().contains("PRIMARY KEY") }
            if !declared { definitions.append("PRIMARY KEY (\(try Identifier.quoted(primaryKey)))") }
        }
        return "CREATE TABLE \(ifNotExists ? "IF NOT EXISTS " : "")\(try Identifier.quoted(table)) (\(definitions.joined(separator: ", ")))"
    }

    public static func createIndex(_ index: String, on table: String, columns: [String], unique: Bool, ifNotExists: Bool) throws(StorageError) -> String {
        guard !columns.isEmpty else { throw StorageError(.valueError, "create_index(): columns must not be empty") }
        return "CREATE \(unique ? "UNIQUE " : "")INDEX \(ifNotExists ? "IF NOT EXISTS " : "")\(try Identifier.quoted(index)) ON \(try Identifier.quoted(table)) (\(try quotedList(columns)))"
    }

    public enum SchemaObject: String, Sendable {
        case table = "TABLE"
        case index = "INDEX"
    }

    public static func drop(_ kind: SchemaObject, _ name: String, ifExists: Bool) throws(StorageError) -> String {
        "DROP \(kind.rawValue) \(ifExists ? "IF EXISTS " : "")\(try Identifier.quoted(name))"
    }

    /// `alter_table_add_column`: the type checked by ``SQLGuard/validateAddColumnType(_:)``, the
    /// default written as a literal (ALTER TABLE cannot bind one).
    public static func addColumn(to table: String, column: String, type: String, default value: SQLValue?) throws(StorageError) -> String {
        try SQLGuard.validateAddColumnType(type)
        var sql = "ALTER TABLE \(try Identifier.quoted(table)) ADD COLUMN \(try Identifier.quoted(column)) \(type)"
        if let text = try SQLGuard.defaultLiteral(value) { sql += " DEFAULT \(text)" }
        return sql
    }

    /// Binds the table's name.
    public static let tableExists = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    public static let listTables = "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
    /// Binds the table's name; the columns are `cid, name, type, notnull, dflt_value, pk`.
    public static let tableSchema = #"SELECT cid, name, type, "notnull", dflt_value, pk FROM pragma_table_info(?)"#

    /// Indexes not made by SQLite itself, of one table (binding its name) or of all; the
    /// columns are `name, tbl_name, sql`.
    public static func listIndexes(ofOneTable: Bool) -> String {
        "SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%'"
            + (ofOneTable ? " AND tbl_name = ?" : "") + " ORDER BY name"
    }

    private static func quotedList(_ names: [String]) throws(StorageError) -> String {
        try names.map { (n) throws(StorageError) in try Identifier.quoted(n) }.joined(separator: ", ")
    }

    private static func placeholders(_ count: Int) -> String {
        Array(repeating: "?", count: count).joined(separator: ", ")
    }
}
