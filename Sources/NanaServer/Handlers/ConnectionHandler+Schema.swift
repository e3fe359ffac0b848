import NanaStorage
import NanaWire

// NanaSQLite's schema helpers (behaviour spec §7.2): create and drop tables and indexes, add a
// column, and look at the catalog. NanaStorage builds the statements (`SQLHelperStatements`).
extension ConnectionHandler {
    func createTable(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let tableName = try args.string("table_name")
        var columns: [(name: String, type: String)] = []
        for (name, type) in try args.map("columns") {
            guard case .string(let typeSQL) = type else {
                throw NanaRemoteError(.typeError, "create_table(): the type of column '\(name)' must be str")
            }
            columns.append((name.string, typeSQL))
        }
        let primaryKey = try args.optionalString("primary_key")
        let ifNotExists = try args.bool("if_not_exists", default: true)
        let sql = try storage { () throws(StorageError) in
            try SQLHelperStatements.createTable(tableName, columns: columns, primaryKey: primaryKey, ifNotExists: ifNotExists)
        }
        runTrusted(msgid, database, sql, []) { _ in .value(.nil) }
    }

    func createIndex(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let index = try args.string("index_name"), tableName = try args.string("table_name")
        let columns = try args.strings("columns")
        let unique = try args.bool("unique", default: false)
        let ifNotExists = try args.bool("if_not_exists", default: true)
        let sql = try storage { () throws(StorageError) in
            try SQLHelperStatements.createIndex(index, on: tableName, columns: columns, unique: unique, ifNotExists: ifNotExists)
        }
        runTrusted(msgid, database, sql, []) { _ in .value(.nil) }
    }

    func dropObject(_ msgid: UInt32, _ args: Arguments, kind: SQLHelperStatements.SchemaObject, nameParameter: String) throws(NanaRemoteError) {
        let database = try table(args).database
        let name = try args.string(nameParameter)
        let ifExists = try args.bool("if_exists", default: true)
        let sql = try storage { () throws(StorageError) in try SQLHelperStatements.drop(kind, name, ifExists: ifExists) }
        runTrusted(msgid, database, sql, []) { _ in .value(.nil) }
    }

    func addColumn(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let tableName = try args.string("table_name"), column = try args.string("column_name")
        let type = try args.string("column_type")
        let defaultValue: SQLValue?
        switch args.params["default"] ?? .nil {
        case .nil: defaultValue = nil
        case .string(let s): defaultValue = .text(s)
        case .int(let i): defaultValue = .integer(i)
        case .double(let d): defaultValue = .real(d)
        case .bool(let b): defaultValue = .integer(b ? 1 : 0)
        default: throw NanaRemoteError(.valueError, "alter_table_add_column(): default must be str, int, float, bool or None")
        }
        let sql = try storage { () throws(StorageError) in
            try SQLHelperStatements.addColumn(to: tableName, column: column, type: type, default: defaultValue)
        }
        runTrusted(msgid, database, sql, []) { _ in .value(.nil) }
    }

    // MARK: The catalog

    func tableExists(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let name = try args.string("table_name")
        try fetchTrusted(msgid, args, database, SQLHelperStatements.tableExists, [.text(name)]) { .value(.bool(!$0.rows.isEmpty)) }
    }

    func listTables(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        try fetchTrusted(msgid, args, database, SQLHelperStatements.listTables, []) {
            .value(.array($0.rows.compactMap { row in if case .text(let n)? = row.first { return .string(n) }; return nil }))
        }
    }

    func tableSchema(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let handle = try self.handle(for: args)
        let given = try args.optionalString("table_name") ?? handle.table.name
        let name = try storage { () throws(StorageError) in try Identifier.validated(given) }
        try fetchTrusted(msgid, args, handle.table.database, SQLHelperStatements.tableSchema, [.text(name)]) { result in
            .value(.array(result.rows.map { row in
                let v = Self.row(row).arrayValue ?? []
                return [
                    "cid": v[0], "name": v[1], "type": v[2], "notnull": .bool(v[3] != .int(0)),
                    "default_value": v[4], "pk": .bool(v[5] != .int(0)),
                ]
            }))
        }
    }

    func listIndexes(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let tableName = try args.optionalString("table_name")
        let sql = SQLHelperStatements.listIndexes(ofOneTable: tableName != nil)
        try fetchTrusted(msgid, args, database, sql, tableName.map { [.text($0)] } ?? []) { result in
            .value(.array(result.rows.map { row in
                let v = Self.row(row).arrayValue ?? []
                return ["name": v[0], "table": v[1], "sql": v[2]]
            }))
        }
    }
}
