import NanaWire

// The protocol's methods (proto/PROTOCOL.md section 9), each declared once. The order is the
// order of the docs' method table. To add a method: declare it here with its access class,
// write its handler in the ConnectionHandler file of its concern, run `tools/method-docs.sh`
// to update the docs' tables, and add it to `ReadOnlyAccessTests.sampleCalls` (a test fails
// until every declared method is there).

extension WireParameter {
    static let key = WireParameter("key", .key)
    static let value = WireParameter("value", .value)
    static let defaultValue = WireParameter("default", .value, default: "None")
    static let keys = WireParameter("keys", .keys)
    static let mapping = WireParameter("mapping", .mapping)
    static let tableName = WireParameter("table_name", .identifier)
    static let optionalTableName = WireParameter("table_name", .identifier, default: "the handle's table")
    static let sql = WireParameter("sql", .sql)
    static let sqlParameters = WireParameter("parameters", .sqlParameters, default: "None")
    static let whereClause = WireParameter("where", .sql)
    static let optionalWhere = WireParameter("where", .sql, default: "None")

    /// The expression guard's per-call overrides (PROTOCOL 9.6f).
    static let guardOverrides: [WireParameter] = [
        WireParameter("strict_sql_validation", .bool, default: "the handle's"),
        WireParameter("allowed_sql_functions", .identifiers, default: "None"),
        WireParameter("forbidden_sql_functions", .identifiers, default: "None"),
        WireParameter("override_allowed", .bool, default: "False"),
    ]

    /// `open`'s settings of the file and the handle.
    static let openParameters: [WireParameter] = [
        WireParameter("db_path", .path),
        WireParameter("table", .identifier, default: "\"data\""),
        WireParameter("bulk_load", .bool, default: "False"),
        WireParameter("optimize", .bool, default: "True"),
        WireParameter("cache_size_mb", .int, default: "64"),
        WireParameter("strict_sql_validation", .bool, default: "True"),
        WireParameter("max_workers", .int, default: "None"),
        WireParameter("lock_timeout", .number, default: "None"),
        WireParameter("warn_duplicate_table_instance", .bool, default: "True"),
        WireParameter("allowed_sql_functions", .identifiers, default: "None"),
        WireParameter("forbidden_sql_functions", .identifiers, default: "None"),
        WireParameter("max_clause_length", .int, default: "1000"),
        WireParameter("near_cache", .bool, default: "False"),
        WireParameter("cache_consistency", .string, default: "\"manual\""),
    ]

    /// `open`'s write-behind (v2) settings of the table (PROTOCOL 9.10).
    static let writeBehindParameters: [WireParameter] = [
        WireParameter("v2_mode", .bool, default: "False"),
        WireParameter("v2_config", .map, default: "None"),
        WireParameter("flush_mode", .string, default: "\"immediate\""),
        WireParameter("flush_interval", .number, default: "3.0"),
        WireParameter("flush_count", .int, default: "100"),
        WireParameter("v2_chunk_size", .int, default: "1000"),
        WireParameter("v2_max_dlq_size", .int, default: "1000"),
        WireParameter("v2_enable_metrics", .bool, default: "False"),
        WireParameter("memory_first", .bool, default: "False"),
        WireParameter("memory_flush_interval", .number, default: "5.0"),
    ]

    /// `table`'s own cache settings for the child's table (NanaSQLite's `table()` takes them);
    /// unstated, the child asks for its parent's.
    static let childCacheParameters: [WireParameter] = [
        WireParameter("cache_strategy", .string, default: "the parent's"),
        WireParameter("cache_size", .int, default: "the parent's"),
        WireParameter("cache_ttl", .number, default: "the parent's"),
        WireParameter("cache_persistence_ttl", .bool, default: "the parent's"),
    ]

    /// `open`'s cache, encryption and constraint settings of the table (PROTOCOL 9.11–9.13).
    static let tableOptionParameters: [WireParameter] = [
        WireParameter("cache_strategy", .string, default: "\"unbounded\""),
        WireParameter("cache_size", .int, default: "None"),
        WireParameter("cache_ttl", .number, default: "None"),
        WireParameter("cache_persistence_ttl", .bool, default: "False"),
        WireParameter("encryption_key", .string, default: "None"),
        WireParameter("encryption_mode", .string, default: "\"aes-gcm\""),
        WireParameter("allow_legacy_plaintext", .bool, default: "False"),
        WireParameter("constraints", .list, default: "None"),
    ]
}

extension WireMethod {
    /// Every method of the protocol.
    public static let all: [WireMethod] = [
        // Session (7.1, 9.1–9.3)
        WireMethod("hello", .connection, [WireParameter("protocol", .int), WireParameter("client", .string, default: "None")],
                   result: "map", section: "7.1") { h, m, a throws(NanaRemoteError) in try h.hello(m, a) },
        WireMethod("ping", .connection, [], result: "`\"pong\"`", section: "9.1") { h, m, _ throws(NanaRemoteError) in h.reply(m, .value("pong")) },
        WireMethod("open", .handle, WireParameter.openParameters + WireParameter.writeBehindParameters + WireParameter.tableOptionParameters,
                   result: "`{db, table, board?, legacy_plaintext?}`", section: "9.2") { h, m, a throws(NanaRemoteError) in try h.open(m, a) },
        WireMethod("table", .handle, [.db, .tableName] + WireParameter.childCacheParameters, result: "`{db, table, board?, legacy_plaintext?}`", section: "9.3") { h, m, a throws(NanaRemoteError) in try h.subTable(m, a) },
        WireMethod("close", .handle, [.db], result: "nil", section: "9.3") { h, m, a throws(NanaRemoteError) in try h.close(m, a) },

        // Dict interface (9.4)
        WireMethod("get", .read, [.db, .key, .defaultValue], result: "value or `default`; tracked: list (§10.4)", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.get(m, a) },
        WireMethod("set", .write, [.db, .key, .value], result: "nil", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.set(m, a) },
        WireMethod("delete", .write, [.db, .key], result: "nil", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.delete(m, a) },
        WireMethod("contains", .read, [.db, .key], result: "bool; tracked: list (§10.4)", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.contains(m, a) },
        WireMethod("len", .read, [.db], result: "int", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.len(m, a) },
        WireMethod("keys", .read, [.db], result: "array of str", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.keys(m, a) },
        WireMethod("values", .read, [.db], result: "array", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.scan(m, a, as: .values) },
        WireMethod("items", .read, [.db], result: "array of `[key, value]`", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.scan(m, a, as: .items) },
        WireMethod("to_dict", .read, [.db], result: "map", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.scan(m, a, as: .dictionary) },
        WireMethod("copy", .read, [.db], result: "map", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.scan(m, a, as: .dictionary) },
        WireMethod("load_all", .read, [.db], result: "nil", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.scan(m, a, as: .nothing) },
        WireMethod("pop", .write, [.db, .key, WireParameter("default", .value, default: "KeyError")], result: "value or `default`", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.pop(m, a) },
        WireMethod("setdefault", .write, [.db, .key, .defaultValue], result: "value", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.setDefault(m, a) },
        WireMethod("update", .write, [.db, .mapping], result: "nil", section: "9.5") { h, m, a throws(NanaRemoteError) in try h.batchUpdate(m, a) },
        WireMethod("clear", .write, [.db], result: "nil", section: "9.4") { h, m, a throws(NanaRemoteError) in try h.clear(m, a) },

        // Batches (9.5)
        WireMethod("batch_update", .write, [.db, .mapping], result: "nil", section: "9.5") { h, m, a throws(NanaRemoteError) in try h.batchUpdate(m, a) },
        WireMethod("batch_update_partial", .write, [.db, .mapping], result: "map str → str", section: "9.5") { h, m, a throws(NanaRemoteError) in try h.batchUpdatePartial(m, a) },
        WireMethod("batch_get", .read, [.db, .keys], result: "map; tracked: list (§10.4)", section: "9.5") { h, m, a throws(NanaRemoteError) in try h.batchGet(m, a) },
        WireMethod("batch_delete", .write, [.db, .keys], result: "nil", section: "9.5") { h, m, a throws(NanaRemoteError) in try h.batchDelete(m, a) },

        // Cache control (9.6): the shared cache, never the file.
        WireMethod("refresh", .read, [.db, WireParameter("key", .key, default: "None")], result: "nil", section: "9.6") { h, m, a throws(NanaRemoteError) in try h.refresh(m, a) },
        WireMethod("is_cached", .read, [.db, .key], result: "bool", section: "9.6") { h, m, a throws(NanaRemoteError) in try h.isCached(m, a) },
        WireMethod("get_fresh", .read, [.db, .key, .defaultValue], result: "value or `default`", section: "9.6") { h, m, a throws(NanaRemoteError) in try h.getFresh(m, a) },
        WireMethod("clear_cache", .read, [.db], result: "nil", section: "9.6") { h, m, a throws(NanaRemoteError) in try h.clearCache(m, a) },

        // Atomic updates (9.6a)
        WireMethod("increment", .write, [.db, .key, WireParameter("amount", .number, default: "1"), WireParameter("field", .string, default: "None"), WireParameter("default", .number, default: "None")],
                   result: "the new value", section: "9.6a") { h, m, a throws(NanaRemoteError) in try h.increment(m, a) },
        WireMethod("patch", .write, [.db, .key, WireParameter("changes", .map), WireParameter("create", .bool, default: "False")],
                   result: "the new value", section: "9.6a") { h, m, a throws(NanaRemoteError) in try h.patch(m, a) },

        // Direct SQL (9.6b)
        WireMethod("execute", .statement, [.db, .sql, .sqlParameters], result: "`{columns, rows, rowcount, lastrowid}`", section: "9.6b") { h, m, a throws(NanaRemoteError) in try h.execute(m, a) },
        WireMethod("execute_many", .write, [.db, .sql, WireParameter("parameters_list", .list)], result: "nil", section: "9.6b") { h, m, a throws(NanaRemoteError) in try h.executeMany(m, a) },
        WireMethod("fetch_one", .statement, [.db, .sql, .sqlParameters], result: "row or nil", section: "9.6b") { h, m, a throws(NanaRemoteError) in try h.fetch(m, a, one: true) },
        WireMethod("fetch_all", .statement, [.db, .sql, .sqlParameters], result: "array of rows", section: "9.6b") { h, m, a throws(NanaRemoteError) in try h.fetch(m, a, one: false) },

        // SQL helpers (9.6c)
        WireMethod("sql_insert", .write, [.db, .tableName, WireParameter("data", .map)], result: "int (rowid)", section: "9.6c") { h, m, a throws(NanaRemoteError) in try h.sqlInsert(m, a) },
        WireMethod("sql_update", .write, [.db, .tableName, WireParameter("data", .map), .whereClause, .sqlParameters], result: "int (rows changed)", section: "9.6c") { h, m, a throws(NanaRemoteError) in try h.sqlUpdate(m, a) },
        WireMethod("sql_delete", .write, [.db, .tableName, .whereClause, .sqlParameters], result: "int (rows changed)", section: "9.6c") { h, m, a throws(NanaRemoteError) in try h.sqlDelete(m, a) },
        WireMethod("upsert", .write, [.db, WireParameter("table_name", .identifier, default: "None"), WireParameter("data", .value, default: "None"),
                                      WireParameter("conflict_columns", .identifiers, default: "None"), WireParameter("key", .key, default: "None"), WireParameter("value", .value, default: "None")],
                   result: "int (rowid) or nil", section: "9.6c") { h, m, a throws(NanaRemoteError) in try h.upsert(m, a) },
        WireMethod("query", .read, [.db, .optionalTableName, WireParameter("columns", .identifiers, default: "None"), .optionalWhere, .sqlParameters,
                                    WireParameter("order_by", .sql, default: "None"), WireParameter("limit", .int, default: "None")] + WireParameter.guardOverrides,
                   result: "array of maps", section: "9.6c") { h, m, a throws(NanaRemoteError) in try h.query(m, a, paginated: false) },
        WireMethod("query_with_pagination", .read, [.db, .optionalTableName, WireParameter("columns", .identifiers, default: "None"), .optionalWhere, .sqlParameters,
                                                    WireParameter("order_by", .sql, default: "None"), WireParameter("limit", .int, default: "None"),
                                                    WireParameter("offset", .int, default: "None"), WireParameter("group_by", .sql, default: "None")] + WireParameter.guardOverrides,
                   result: "array of maps", section: "9.6c") { h, m, a throws(NanaRemoteError) in try h.query(m, a, paginated: true) },
        WireMethod("count", .read, [.db, .optionalTableName, .optionalWhere, .sqlParameters] + WireParameter.guardOverrides, result: "int", section: "9.6c") { h, m, a throws(NanaRemoteError) in try h.count(m, a) },
        WireMethod("exists", .read, [.db, .tableName, .whereClause, .sqlParameters], result: "bool", section: "9.6c") { h, m, a throws(NanaRemoteError) in try h.exists(m, a) },

        // Schema (9.6d)
        WireMethod("create_table", .schema, [.db, .tableName, WireParameter("columns", .map), WireParameter("if_not_exists", .bool, default: "True"), WireParameter("primary_key", .identifier, default: "None")],
                   result: "nil", section: "9.6d") { h, m, a throws(NanaRemoteError) in try h.createTable(m, a) },
        WireMethod("create_index", .schema, [.db, WireParameter("index_name", .identifier), .tableName, WireParameter("columns", .identifiers),
                                             WireParameter("unique", .bool, default: "False"), WireParameter("if_not_exists", .bool, default: "True")],
                   result: "nil", section: "9.6d") { h, m, a throws(NanaRemoteError) in try h.createIndex(m, a) },
        WireMethod("drop_table", .schema, [.db, .tableName, WireParameter("if_exists", .bool, default: "True")], result: "nil", section: "9.6d") { h, m, a throws(NanaRemoteError) in
            try h.dropObject(m, a, kind: .table, nameParameter: "table_name")
        },
        WireMethod("drop_index", .schema, [.db, WireParameter("index_name", .identifier), WireParameter("if_exists", .bool, default: "True")], result: "nil", section: "9.6d") { h, m, a throws(NanaRemoteError) in
            try h.dropObject(m, a, kind: .index, nameParameter: "index_name")
        },
        WireMethod("alter_table_add_column", .schema, [.db, .tableName, WireParameter("column_name", .identifier), WireParameter("column_type", .string), .defaultValue],
                   result: "nil", section: "9.6d") { h, m, a throws(NanaRemoteError) in try h.addColumn(m, a) },
        WireMethod("table_exists", .read, [.db, .tableName], result: "bool", section: "9.6d") { h, m, a throws(NanaRemoteError) in try h.tableExists(m, a) },
        WireMethod("list_tables", .read, [.db], result: "array of str", section: "9.6d") { h, m, a throws(NanaRemoteError) in try h.listTables(m, a) },
        WireMethod("get_table_schema", .read, [.db, .optionalTableName], result: "array of maps", section: "9.6d") { h, m, a throws(NanaRemoteError) in try h.tableSchema(m, a) },
        WireMethod("list_indexes", .read, [.db, WireParameter("table_name", .identifier, default: "None")], result: "array of maps", section: "9.6d") { h, m, a throws(NanaRemoteError) in try h.listIndexes(m, a) },

        // Utilities (9.6e)
        WireMethod("vacuum", .admin, [.db], result: "nil", section: "9.6e") { h, m, a throws(NanaRemoteError) in try h.vacuum(m, a) },
        WireMethod("pragma", .statement, [.db, WireParameter("pragma_name", .string), WireParameter("value", .value, default: "None")],
                   result: "value (reading) or nil", section: "9.6e") { h, m, a throws(NanaRemoteError) in try h.pragma(m, a) },
        WireMethod("get_db_size", .read, [.db], result: "int", section: "9.6e") { h, m, a throws(NanaRemoteError) in try h.dbSize(m, a) },

        // Counters (9.7)
        WireMethod("stats", .read, [WireParameter("db", .handle, default: "None")], result: "map", section: "9.7") { h, m, a throws(NanaRemoteError) in try h.stats(m, a) },
        WireMethod("close_file", .admin, [WireParameter("db_path", .path)], result: "bool", section: "9.7") { h, m, a throws(NanaRemoteError) in try h.closeFile(m, a) },

        // Transactions (9.8): they hold the file's writer.
        WireMethod("begin_transaction", .write, [.db], result: "nil", section: "9.8") { h, m, a throws(NanaRemoteError) in try h.beginTransaction(m, a) },
        WireMethod("commit", .write, [.db], result: "nil", section: "9.8") { h, m, a throws(NanaRemoteError) in try h.endTransaction(m, a, commit: true) },
        WireMethod("rollback", .write, [.db], result: "nil", section: "9.8") { h, m, a throws(NanaRemoteError) in try h.endTransaction(m, a, commit: false) },
        WireMethod("in_transaction", .read, [.db], result: "bool", section: "9.8") { h, m, a throws(NanaRemoteError) in try h.inTransaction(m, a) },

        // Backup and restore (9.9). `backup` only reads its own file; its destination is judged
        // by the rules as a write to that path.
        WireMethod("backup", .read, [.db, WireParameter("dest_path", .path, aliases: ["target_path"]), WireParameter("verify", .bool, default: "True"),
                                     WireParameter("flush", .bool, default: "True"), WireParameter("allow_incomplete", .bool, default: "False")],
                   result: "nil", section: "9.9") { h, m, a throws(NanaRemoteError) in try h.backup(m, a) },
        WireMethod("restore", .admin, [.db, WireParameter("src_path", .path, aliases: ["source_path"])], result: "nil", section: "9.9") { h, m, a throws(NanaRemoteError) in try h.restore(m, a) },

        // Write-behind (9.10)
        WireMethod("flush", .admin, [.db, WireParameter("wait", .bool, default: "False")], result: "nil", section: "9.10") { h, m, a throws(NanaRemoteError) in try h.flush(m, a) },
        WireMethod("get_dlq", .read, [.db], result: "list of maps", section: "9.10") { h, m, a throws(NanaRemoteError) in try h.deadLetters(m, a) },
        WireMethod("retry_dlq", .admin, [.db], result: "int", section: "9.10") { h, m, a throws(NanaRemoteError) in try h.retryDeadLetters(m, a) },
        WireMethod("clear_dlq", .admin, [.db], result: "int", section: "9.10") { h, m, a throws(NanaRemoteError) in try h.clearDeadLetters(m, a) },
        WireMethod("get_v2_metrics", .read, [.db], result: "map", section: "9.10") { h, m, a throws(NanaRemoteError) in try h.writeBehindMetrics(m, a) },

        // Constraints (9.13)
        WireMethod("add_constraint", .schema, [.db, WireParameter("constraint", .map)], result: "bool", section: "9.13") { h, m, a throws(NanaRemoteError) in try h.changeConstraint(m, a, add: true) },
        WireMethod("drop_constraint", .schema, [.db, WireParameter("constraint", .map)], result: "bool", section: "9.13") { h, m, a throws(NanaRemoteError) in try h.changeConstraint(m, a, add: false) },
        WireMethod("list_constraints", .read, [.db], result: "list of maps", section: "9.13") { h, m, a throws(NanaRemoteError) in try h.listConstraints(m, a) },
    ]
}
