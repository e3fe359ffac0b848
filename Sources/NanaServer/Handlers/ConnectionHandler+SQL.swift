import NanaStorage
import NanaWire

// Direct SQL: `execute`, `execute_many`, `fetch_one`, `fetch_all`. Rows cross the wire as
// arrays of values: NULL → nil, INTEGER → int, REAL → float, TEXT → str, BLOB → bin.
extension ConnectionHandler {
    func execute(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let owner = try transactionOwner(database)
        let sql = try args.string("sql")
        let parameters = try Self.sqlParameters(args.params["parameters"], method: args.method)
        let readOnly = isReadOnly(args)
        respondLater(msgid, { database.execute(sql, parameters: parameters, readOnly: readOnly, owner: owner, completion: $0) }) { result in
            .value([
                "columns": .array(result.columns.map(NanaValue.string)),
                "rows": .array(result.rows.map(Self.row)),
                "rowcount": .int(Int64(result.changes)),
                "lastrowid": .int(result.lastInsertRowID),
            ])
        }
    }

    func executeMany(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let database = try table(args).database
        let owner = try transactionOwner(database)
        let sql = try args.string("sql")
        guard case .array(let lists) = try args.value("parameters_list") else {
            throw NanaRemoteError(.typeError, "execute_many(): 'parameters_list' must be a list of lists")
        }
        var parametersList: [[SQLValue]] = []
        parametersList.reserveCapacity(lists.count)
        for list in lists { parametersList.append(try Self.sqlParameters(list, method: args.method)) }
        respondLater(msgid, { database.executeMany(sql, parametersList: parametersList, owner: owner, completion: $0) }) { _ in .value(.nil) }
    }

    func fetch(_ msgid: UInt32, _ args: Arguments, one: Bool) throws(NanaRemoteError) {
        let database = try table(args).database
        let owner = try transactionOwner(database)
        let sql = try args.string("sql")
        let parameters = try Self.sqlParameters(args.params["parameters"], method: args.method)
        let readOnly = isReadOnly(args)
        respondLater(msgid, { database.fetch(sql, parameters: parameters, readOnly: readOnly, owner: owner, completion: $0) }) { result in
            if one { return .value(result.rows.first.map(Self.row) ?? .nil) }
            return .value(.array(result.rows.map(Self.row)))
        }
    }

    static func row(_ values: [SQLValue]) -> NanaValue {
        .array(values.map { value in
            switch value {
            case .null: .nil
            case .integer(let i): .int(i)
            case .real(let d): .double(d)
            case .text(let s): .string(s)
            case .blob(let b): .binary(b)
            }
        })
    }

    /// Positional parameters (a list; nil for none). Booleans bind as 0/1, as Python's drivers do.
    static func sqlParameters(_ value: NanaValue?, method: String) throws(NanaRemoteError) -> [SQLValue] {
        guard let value, !value.isNil else { return [] }
        guard case .array(let items) = value else {
            throw NanaRemoteError(.typeError, "\(method)(): parameters must be a list, not \(value.typeName)")
        }
        var out: [SQLValue] = []
        out.reserveCapacity(items.count)
        for item in items {
            switch item {
            case .nil: out.append(.null)
            case .bool(let b): out.append(.integer(b ? 1 : 0))
            case .int(let i): out.append(.integer(i))
            case .uint: throw NanaRemoteError(.valueError, "\(method)(): an integer parameter is over the 64-bit signed range")
            case .double(let d): out.append(.real(d))
            case .string(let s): out.append(.text(s))
            case .binary(let b): out.append(.blob(b))
            case .array, .map:
                throw NanaRemoteError(.typeError, "\(method)(): a parameter of type \(item.typeName) is not supported")
            }
        }
        return out
    }
}
