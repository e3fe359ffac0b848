import Foundation
import NanaWire

/// The structure-aware seed corpus (tools/fuzz/corpus-dispatch): one connection's requests per
/// file, valid sequences built from PROTOCOL.md §7 and §9, with `[2, "wait", {}]` notifications
/// where a later call needs an earlier reply (a handle) or its effect.
enum Seeds {
    enum Step {
        case call(String, NanaParams)
        /// The harness waits for every call in flight (the daemon ignores the notification).
        case wait
        /// Bytes sent as they are.
        case raw([UInt8])
    }

    static func c(_ method: String, _ params: NanaParams = [:]) -> Step { .call(method, params) }
    static let wait = Step.wait

    static func frame(_ body: [UInt8]) -> [UInt8] {
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + body
    }

    static func encode(_ steps: [Step]) -> [UInt8] {
        var bytes: [UInt8] = []
        var msgid: UInt32 = 1
        for step in steps {
            switch step {
            case .call(let method, let params):
                bytes += Harness.request(msgid, method, params)
                msgid += 1
            case .wait:
                let writer = MessagePackWriter()
                writer.writeNotification(method: "wait", params: [:])
                bytes += frame(writer.bytes)
            case .raw(let raw):
                bytes += raw
            }
        }
        return bytes
    }

    static func write(to folder: String) throws -> Int {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for (name, steps) in all {
            try Data(encode(steps)).write(to: URL(fileURLWithPath: folder + "/" + name))
        }
        return all.count
    }

    static func deep(_ levels: Int) -> NanaValue {
        var value: NanaValue = 1
        for _ in 0..<levels { value = .array([value]) }
        return value
    }

    static let hello = c("hello", ["protocol": 1, "client": "nanafuzz-dispatch seed"])
    static let open = c("open", ["db_path": "fuzz.db"])
    static func open(_ table: String, _ options: NanaParams = [:]) -> Step {
        var params: NanaParams = ["db_path": "fuzz.db", "table": .string(table)]
        for (k, v) in options { params[k] = v }
        return .call("open", params)
    }

    static let all: [(String, [Step])] = [
        ("session", [
            hello, c("ping"), c("hello", ["protocol": 2]), c("nope"), c("stats"), c("ping", ["extra": 1]),
            open, wait, c("stats", ["db": 1]), c("stats", ["db": nil]), c("close", ["db": 1]), c("close", ["db": 1]), c("get", ["db": 1, "key": "a"]),
        ]),
        ("dict", [
            hello, open, wait,
            c("set", ["db": 1, "key": "a", "value": 1]),
            c("set", ["db": 1, "key": "b", "value": ["x": [1, 2.5, true, nil, "s"], "y": ["z": -7]]]),
            c("set", ["db": 1, "key": "", "value": "empty key"]),
            c("set", ["db": 1, "key": "nul\u{0}key", "value": -0.0]),
            wait,
            c("get", ["db": 1, "key": "a"]), c("get", ["db": 1, "key": "missing", "default": "d"]),
            c("contains", ["db": 1, "key": "a"]), c("contains", ["db": 1, "key": "z"]),
            c("len", ["db": 1]), c("keys", ["db": 1]), c("values", ["db": 1]), c("items", ["db": 1]),
            c("to_dict", ["db": 1]), c("copy", ["db": 1]), c("load_all", ["db": 1]), wait,
            c("pop", ["db": 1, "key": "a"]), c("pop", ["db": 1, "key": "z", "default": nil]), c("pop", ["db": 1, "key": "z"]),
            c("setdefault", ["db": 1, "key": "c", "default": 3]), c("setdefault", ["db": 1, "key": "c2", "default": .binary([1])]),
            c("delete", ["db": 1, "key": "b"]), c("delete", ["db": 1, "key": "zz"]), wait,
            c("clear", ["db": 1]), c("len", ["db": 1]),
        ]),
        ("batches", [
            open, wait,
            c("batch_update", ["db": 1, "mapping": ["k1": 1, "k2": "two", "k3": [1, ["n": nil]]]]),
            c("update", ["db": 1, "mapping": ["k4": nil, "k5": 1e300]]),
            c("batch_update_partial", ["db": 1, "mapping": ["ok": 1, "bad": .binary([0, 1]), "nan": .double(.nan), "deep": deep(255)]]),
            c("batch_update", ["db": 1, "mapping": ["k6": .double(.infinity)]]),
            wait,
            c("batch_get", ["db": 1, "keys": ["k1", "k2", "nope", "k1"]]),
            c("batch_delete", ["db": 1, "keys": ["k1", "nope"]]),
            c("batch_get", ["db": 1, "keys": [1]]),
            wait, c("to_dict", ["db": 1]),
        ]),
        ("cache", [
            c("open", ["db_path": "fuzz.db", "bulk_load": true]), wait,
            c("set", ["db": 1, "key": "x", "value": 1]), wait,
            c("is_cached", ["db": 1, "key": "x"]), c("refresh", ["db": 1, "key": "x"]), c("refresh", ["db": 1]),
            c("get_fresh", ["db": 1, "key": "x"]), c("get_fresh", ["db": 1, "key": "y", "default": 0]),
            c("clear_cache", ["db": 1]), c("is_cached", ["db": 1, "key": "x"]), c("get", ["db": 1, "key": "x"]), wait,
            c("stats", ["db": 1]),
        ]),
        ("atomic", [
            open, wait,
            c("increment", ["db": 1, "key": "n", "amount": 2, "default": 0]), wait,
            c("increment", ["db": 1, "key": "n", "amount": 1.5]),
            c("increment", ["db": 1, "key": "m", "field": "hits", "default": 0]),
            c("increment", ["db": 1, "key": "big", "amount": .int(Int64.max), "default": 1]),
            c("patch", ["db": 1, "key": "p", "changes": ["a": 1], "create": true]), wait,
            c("patch", ["db": 1, "key": "p", "changes": ["b": [1, 2]]]),
            c("increment", ["db": 1, "key": "p"]),
            c("patch", ["db": 1, "key": "missing", "changes": ["a": 1]]),
            c("patch", ["db": 1, "key": "p", "changes": [1]]),
            wait, c("get", ["db": 1, "key": "p"]),
        ]),
        ("sql", [
            open, wait,
            c("execute", ["db": 1, "sql": "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, name TEXT, score REAL, raw BLOB)"]), wait,
            c("execute", ["db": 1, "sql": "INSERT INTO t (name, score, raw) VALUES (?, ?, ?)", "parameters": ["a", 1.5, .binary([0xff])]]),
            c("execute_many", ["db": 1, "sql": "INSERT INTO t (name, score) VALUES (?, ?)", "parameters_list": [["b", 2], ["c", nil], ["d", true]]]),
            wait,
            c("fetch_one", ["db": 1, "sql": "SELECT * FROM t WHERE id = ?", "parameters": [1]]),
            c("fetch_all", ["db": 1, "sql": "SELECT name, score FROM t ORDER BY id"]),
            c("execute", ["db": 1, "sql": "SELECT key, value FROM data LIMIT 5"]),
            c("execute", ["db": 1, "sql": "UPDATE data SET value = '2' WHERE key = 'a'"]),
            c("execute", ["db": 1, "sql": "SELECT 1; SELECT 2"]),
            c("execute", ["db": 1, "sql": "SELECT ?", "parameters": [1, 2]]),
            c("execute", ["db": 1, "sql": "PRAGMA user_version"]),
            c("execute", ["db": 1, "sql": "BEGIN"]),
            c("execute", ["db": 1, "sql": "ATTACH 'x.db' AS x"]),
            c("execute", ["db": 1, "sql": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100) SELECT count(*) FROM c"]),
            c("fetch_all", ["db": 1, "sql": "SELECT * FROM nowhere"]),
            c("execute", ["db": 1, "sql": "DROP TABLE t"]),
        ]),
        ("sql-helpers", [
            open, wait,
            c("create_table", ["db": 1, "table_name": "people", "columns": ["id": "INTEGER PRIMARY KEY", "name": "TEXT NOT NULL", "age": "INTEGER CHECK (age >= 0)"]]), wait,
            c("create_index", ["db": 1, "index_name": "people_name", "table_name": "people", "columns": ["name"], "unique": true]),
            c("sql_insert", ["db": 1, "table_name": "people", "data": ["name": "ann", "age": 30]]), wait,
            c("sql_update", ["db": 1, "table_name": "people", "data": ["age": 31], "where": "name = ?", "parameters": ["ann"]]),
            c("upsert", ["db": 1, "table_name": "people", "data": ["id": 1, "name": "ann", "age": 32], "conflict_columns": ["id"]]),
            c("upsert", ["db": 1, "key": "kv", "value": 1]),
            c("upsert", ["db": 1, "table_name": ["name": "bob", "age": 5]]),
            wait,
            c("query", ["db": 1, "table_name": "people", "columns": ["name", "age", "COUNT(*) AS n"], "where": "age > ?", "parameters": [1], "order_by": "name ASC", "limit": 10]),
            c("query_with_pagination", ["db": 1, "table_name": "people", "limit": 1, "offset": 1, "group_by": "name"]),
            c("query", ["db": 1]),
            c("count", ["db": 1, "table_name": "people", "where": "age > 0"]),
            c("exists", ["db": 1, "table_name": "people", "where": "name = 'ann'"]),
            c("table_exists", ["db": 1, "table_name": "people"]), c("list_tables", ["db": 1]),
            c("get_table_schema", ["db": 1, "table_name": "people"]), c("get_table_schema", ["db": 1]),
            c("list_indexes", ["db": 1, "table_name": "people"]),
            c("alter_table_add_column", ["db": 1, "table_name": "people", "column_name": "email", "column_type": "VARCHAR(255)", "default": "it's"]),
            c("sql_delete", ["db": 1, "table_name": "people", "where": "age < ?", "parameters": [10]]),
            c("query", ["db": 1, "table_name": "people", "where": "1=1; DROP TABLE people"]),
            c("query", ["db": 1, "table_name": "people", "where": "load_extension('x')", "strict_sql_validation": true]),
            wait,
            c("drop_index", ["db": 1, "index_name": "people_name"]), c("drop_table", ["db": 1, "table_name": "people"]),
        ]),
        ("utilities", [
            open, wait,
            c("set", ["db": 1, "key": "a", "value": 1]),
            c("pragma", ["db": 1, "pragma_name": "user_version"]),
            c("pragma", ["db": 1, "pragma_name": "user_version", "value": 7]),
            c("pragma", ["db": 1, "pragma_name": "foreign_keys", "value": 1]),
            c("pragma", ["db": 1, "pragma_name": "journal_mode", "value": "delete"]),
            c("pragma", ["db": 1, "pragma_name": "table_info"]),
            c("vacuum", ["db": 1]), wait,
            c("backup", ["db": 1, "dest_path": "backup.db"]), wait,
            c("restore", ["db": 1, "src_path": "backup.db"]), wait,
            c("backup", ["db": 1, "dest_path": ":memory:"]), c("restore", ["db": 1, "src_path": "missing.db"]),
            c("len", ["db": 1]),
        ]),
        ("transaction", [
            open, wait,
            c("begin_transaction", ["db": 1]), c("set", ["db": 1, "key": "t", "value": 1]), c("get", ["db": 1, "key": "t"]),
            c("in_transaction", ["db": 1]), wait, c("commit", ["db": 1]), wait,
            c("begin_transaction", ["db": 1]), c("set", ["db": 1, "key": "t", "value": 2]),
            c("batch_update", ["db": 1, "mapping": ["u": 1]]), c("items", ["db": 1]),
            c("execute", ["db": 1, "sql": "INSERT INTO data (key, value) VALUES ('r', '1')"]), wait,
            c("rollback", ["db": 1]), wait, c("get", ["db": 1, "key": "t"]), c("commit", ["db": 1]),
            c("begin_transaction", ["db": 1]), c("begin_transaction", ["db": 1]), c("close", ["db": 1]), wait,
            c("set", ["db": 1, "key": "left", "value": "open"]),
        ]),
        ("transaction-tables", [
            open, wait,
            c("begin_transaction", ["db": 1]), c("table", ["db": 1, "table_name": "other"]),
            c("open", ["db_path": "fuzz.db", "table": "third", "bulk_load": true]), wait,
            c("set", ["db": 2, "key": "o", "value": 1]), c("vacuum", ["db": 1]), c("pragma", ["db": 3, "pragma_name": "user_version"]),
            c("restore", ["db": 1, "src_path": "backup.db"]), c("query", ["db": 2, "table_name": "other"]), wait,
            c("rollback", ["db": 3]), wait, c("get", ["db": 2, "key": "o"]),
        ]),
        ("v2-manual", [
            open("v2t", ["v2_mode": true, "flush_mode": "manual", "v2_enable_metrics": true]), wait,
            c("set", ["db": 1, "key": "a", "value": 1]), c("set", ["db": 1, "key": "b", "value": 2]), c("delete", ["db": 1, "key": "a"]),
            c("get", ["db": 1, "key": "b"]), c("len", ["db": 1]), wait,
            c("flush", ["db": 1]), c("flush", ["db": 1, "wait": true]), wait,
            c("get_v2_metrics", ["db": 1]), c("get_dlq", ["db": 1]), c("retry_dlq", ["db": 1]), c("clear_dlq", ["db": 1]),
            c("execute", ["db": 1, "sql": "SELECT count(*) FROM v2t"]), c("stats", ["db": 1]),
        ]),
        ("v2-config", [
            open("v2c", ["v2_mode": true, "v2_config": ["flush_mode": "count", "flush_count": 2, "chunk_size": 10, "max_dlq_size": 5, "enable_metrics": true]]), wait,
            c("batch_update", ["db": 1, "mapping": ["a": 1, "b": 2, "c": 3]]), c("pop", ["db": 1, "key": "a"]),
            c("increment", ["db": 1, "key": "n", "default": 0]), c("flush", ["db": 1, "wait": true]), wait,
            c("to_dict", ["db": 1]), c("get_dlq", ["db": 1]),
            open("v2c", ["v2_mode": true, "flush_mode": "time", "flush_interval": 0.05, "v2_chunk_size": 1, "v2_max_dlq_size": nil]), wait,
            c("set", ["db": 2, "key": "z", "value": [1]]), c("get_v2_metrics", ["db": 2]),
        ]),
        ("memory-first", [
            open("mf", ["memory_first": true, "memory_flush_interval": 0.1]), wait,
            c("set", ["db": 1, "key": "m", "value": "x"]), c("get", ["db": 1, "key": "m"]), c("clear", ["db": 1]),
            c("setdefault", ["db": 1, "key": "m", "default": 2]), c("flush", ["db": 1, "wait": true]), wait, c("items", ["db": 1]),
        ]),
        ("near-cache", [
            open("data", ["near_cache": true]), open("ttl", ["near_cache": true, "cache_strategy": "ttl", "cache_ttl": 0.2, "cache_persistence_ttl": true]), wait,
            c("set", ["db": 1, "key": "a", "value": 1]), c("get", ["db": 1, "key": "a"]), c("contains", ["db": 1, "key": "b"]),
            c("batch_get", ["db": 1, "keys": ["a", "b", "a"]]), c("table", ["db": 1, "table_name": "other"]), wait,
            c("begin_transaction", ["db": 1]), c("set", ["db": 1, "key": "a", "value": 2]), c("get", ["db": 1, "key": "a"]), c("rollback", ["db": 1]),
            c("execute", ["db": 1, "sql": "UPDATE data SET value = '3' WHERE key = 'a'"]), c("get", ["db": 1, "key": "a"]),
            c("set", ["db": 2, "key": "t", "value": 1]), c("get", ["db": 2, "key": "t"]), c("clear", ["db": 1]), c("stats", ["db": 1]),
        ]),
        ("cache-strategies", [
            open("lru", ["cache_strategy": "lru", "cache_size": 2]), open("ttl", ["cache_strategy": "ttl", "cache_ttl": 1, "cache_persistence_ttl": true]),
            open("unb", ["cache_strategy": "unbounded", "cache_size": 10]), wait,
            c("set", ["db": 1, "key": "a", "value": 1]), c("set", ["db": 1, "key": "b", "value": 2]), c("set", ["db": 1, "key": "c", "value": 3]),
            c("set", ["db": 2, "key": "t", "value": 1]), c("batch_update", ["db": 3, "mapping": ["u": 1, "v": 2]]), wait,
            c("get", ["db": 1, "key": "a"]), c("get", ["db": 1, "key": "c"]), c("is_cached", ["db": 1, "key": "b"]),
            c("get", ["db": 2, "key": "t"]), c("load_all", ["db": 3]), c("stats", ["db": 1]),
            open("lru", ["cache_strategy": "ttl", "cache_ttl": 0.5]),
        ]),
        ("constraints", [
            open("users", ["constraints": [["type": "unique", "field": "email"], ["type": "check", "field": "age", "op": ">=", "value": 0],
                                           ["type": "required", "fields": ["email"], "key_prefix": "u", "message": "email needed"]]]), wait,
            c("set", ["db": 1, "key": "u1", "value": ["email": "a@x", "age": 1]]), wait,
            c("set", ["db": 1, "key": "u2", "value": ["email": "a@x", "age": 2]]),
            c("set", ["db": 1, "key": "u3", "value": ["age": -1]]),
            c("batch_update", ["db": 1, "mapping": ["u4": ["email": "b@x", "age": 3], "u5": ["email": "b@x", "age": 4]]]),
            c("list_constraints", ["db": 1]),
            c("add_constraint", ["db": 1, "constraint": ["type": "foreign_key", "field": "team", "table": "teams", "key_prefix": "u"]]),
            c("drop_constraint", ["db": 1, "constraint": ["type": "unique", "field": "email"]]), wait,
            c("patch", ["db": 1, "key": "u1", "changes": ["team": "red"]]),
            c("add_constraint", ["db": 1, "constraint": ["type": "check", "field": "age", "op": "~", "value": 1]]),
            c("list_constraints", ["db": 1]),
        ]),
        ("encryption", [
            open("secret", ["encryption_key": "0123456789abcdef0123456789abcdef"]),
            open("secret2", ["encryption_key": .binary(Array(repeating: 7, count: 32)), "encryption_mode": "chacha20"]), wait,
            c("set", ["db": 1, "key": "s", "value": ["a": 1]]), c("set", ["db": 2, "key": "s", "value": "plain"]), wait,
            c("get_fresh", ["db": 1, "key": "s"]), c("to_dict", ["db": 2]),
            c("fetch_all", ["db": 1, "sql": "SELECT key, value FROM secret"]),
            open("secret", ["encryption_key": "another key of thirty-two bytes!"]), wait, c("get_fresh", ["db": 3, "key": "s"]),
            open("bad", ["encryption_key": "short", "encryption_mode": "fernet"]),
        ]),
        ("handles", [
            open, wait, c("table", ["db": 1, "table_name": "child"]), wait,
            c("set", ["db": 2, "key": "c", "value": 1]), c("table", ["db": 2, "table_name": "\"Grand\""]), wait,
            c("close", ["db": 1]), c("get", ["db": 2, "key": "c"]), c("get", ["db": 3, "key": "c"]), c("get", ["db": 1, "key": "c"]),
            c("close", ["db": 9]), c("table", ["db": 1, "table_name": "again"]), c("table", ["db": 4, "table_name": "bad name"]),
        ]),
        ("policy", [
            c("open", ["db_path": "fuzz.db", "strict_sql_validation": false, "allowed_sql_functions": ["json_extract"], "forbidden_sql_functions": ["max"],
                       "max_clause_length": 50, "optimize": false, "cache_size_mb": 8, "lock_timeout": 1.5, "max_workers": 2,
                       "warn_duplicate_table_instance": true]), wait,
            c("query", ["db": 1, "table_name": "data", "where": "json_extract(value, '$.a') = 1"]),
            c("query", ["db": 1, "columns": ["MAX(key)"], "forbidden_sql_functions": ["*"], "override_allowed": true]),
            c("count", ["db": 1, "where": "length(key) > 0", "allowed_sql_functions": ["length"]]),
            c("open", ["db_path": "fuzz.db", "max_clause_length": nil, "allowed_sql_functions": nil]), wait,
            c("query_with_pagination", ["db": 2, "where": "key REGEXP 'a'", "order_by": "key DESC", "limit": true, "offset": 0]),
        ]),
        ("argument-errors", [
            c("open", [:]), c("open", ["db_path": "../x.db"]), c("open", ["db_path": "/abs.db"]), c("open", ["db_path": ":memory:"]),
            c("open", ["db_path": "fuzz.db", "table": "bad name"]), c("open", ["db_path": "nofolder/x.db"]), c("open", ["db_path": "fuzz.db", "cache_size_mb": 0]),
            c("open", ["db_path": "fuzz.db", "v2_mode": true, "flush_mode": "sometimes"]), c("open", ["db_path": "fuzz.db", "lock_timeout": -1]),
            c("open", ["db_path": "second.db"]), open, wait,
            c("get", ["db": 2, "key": "a", "colour": "red"]), c("get", ["db": "2", "key": "a"]), c("get", ["db": 2, "key": 1]),
            c("set", ["db": 2, "key": "a", "value": .binary([1])]), c("set", ["db": 2, "key": "a", "value": .double(.nan)]),
            c("set", ["db": 2, "key": "a", "value": .uint(UInt64.max)]), c("set", ["db": 2, "key": "deep", "value": deep(254)]),
            c("set", ["db": 2, "key": "deeper", "value": deep(255)]), c("get", ["db": 2, "key": "x", "default": deep(257)]),
            c("execute", ["db": 2, "sql": "SELECT ?", "parameters": [.uint(UInt64.max)]]), c("keys", ["db": .int(-1)]),
        ]),
        ("pipelined", [
            open, wait,
        ] + (0..<24).flatMap { i -> [Step] in
            [c("set", ["db": 1, "key": .string("p\(i % 5)"), "value": .int(Int64(i))]), c("get", ["db": 1, "key": .string("p\(i % 7)")])]
        } + [c("keys", ["db": 1]), c("ping"), c("ping"), wait, c("len", ["db": 1])]),
        ("protocol-malformed-body", [hello, .raw(frame([0x94, 0x00, 0x05, 0xc1])), c("ping")]),
        ("protocol-oversized", [hello, .raw([0x7f, 0xff, 0xff, 0xff, 0x00])]),
        ("protocol-response", [c("ping"), .raw(frame(MessagePackWriter.encode([1, 5, nil, "x"])))]),
        ("protocol-notification", [.raw(frame(MessagePackWriter.encode([2, "hello", ["a": 1]]))), c("ping"),
                                   .raw(frame(MessagePackWriter.encode([0, -0, "ping", [:]])))]),
        ("protocol-not-a-message", [c("ping"), .raw(frame(MessagePackWriter.encode(["not", "a", "message"])))]),
        ("protocol-empty-frame", [c("ping"), .raw([0, 0, 0, 0])]),
        ("protocol-partial", [open, .raw([0, 0, 0, 9, 0x94, 0x00])]),
    ]
}
