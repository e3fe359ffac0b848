import Foundation
import NanaClient
import NanaWire
import Testing

/// NanaSQLite's SQL helpers and their guards through the daemon (behaviour spec §7).
@Suite(.serialized) struct SQLHelperTests {
    @Test func buildersAndSchema() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("helpers.db")
        func call(_ method: String, _ params: NanaParams) async throws -> NanaValue {
            var p = params
            p["db"] = .int(db.handle)
            return try await client.call(method, p)
        }

        _ = try await call("create_table", ["table_name": "users", "columns": ["id": "INTEGER PRIMARY KEY", "name": "TEXT NOT NULL", "age": "INTEGER", "email": "TEXT"]])
        #expect(try await call("table_exists", ["table_name": "users"]) == true)
        #expect(try await call("table_exists", ["table_name": "nope"]) == false)
        #expect(try await call("list_tables", [:]) == ["data", "users"])
        #expect(try await call("sql_insert", ["table_name": "users", "data": ["name": "Ada", "age": 36]]) == 1)
        #expect(try await call("sql_insert", ["table_name": "users", "data": ["name": "Bob", "age": 17]]) == 2)
        #expect(try await call("sql_insert", ["table_name": "users", "data": ["name": "Cy", "age": 52]]) == 3)
        #expect(try await call("sql_update", ["table_name": "users", "data": ["email": "a@x"], "where": "name = ?", "parameters": ["Ada"]]) == 1)
        #expect(try await call("count", ["table_name": "users", "where": "age >= ?", "parameters": [18]]) == 2)
        #expect(try await call("exists", ["table_name": "users", "where": "name = ?", "parameters": ["Bob"]]) == true)

        let rows = try await call("query", ["table_name": "users", "columns": ["name", "age"], "where": "age > ? AND (name = ? OR name = ?)",
                                            "parameters": [18, "Ada", "Cy"], "order_by": "age DESC"])
        #expect(rows == [["name": "Cy", "age": 52], ["name": "Ada", "age": 36]])
        #expect(try await call("query", ["table_name": "users", "where": "id IN (?, ?)", "parameters": [1, 3], "limit": 0]) == [])
        let page = try await call("query_with_pagination", ["table_name": "users", "columns": ["name"], "order_by": "id", "offset": 1])
        #expect(page == [["name": "Bob"], ["name": "Cy"]])
        _ = try await call("sql_insert", ["table_name": "users", "data": ["name": "Dee", "age": 36]])
        let grouped = try await call("query_with_pagination", ["table_name": "users", "columns": ["age", "COUNT(*) AS n"],
                                                               "group_by": "age", "order_by": "age", "limit": 2])
        #expect(grouped == [["age": 17, "n": 1], ["age": 36, "n": 2]])
        _ = try await call("sql_delete", ["table_name": "users", "where": "name = ?", "parameters": ["Dee"]])

        #expect(try await call("upsert", ["table_name": "users", "data": ["id": 2, "name": "Bobby", "age": 18]]) == 2)
        _ = try await call("create_index", ["index_name": "idx_email", "table_name": "users", "columns": ["email"], "unique": true])
        #expect(try await call("upsert", ["table_name": "users", "data": ["email": "a@x", "name": "Ada L", "age": 37], "conflict_columns": ["email"]]) == 1)
        #expect(try await call("query", ["table_name": "users", "columns": ["name", "age"], "where": "id = ?", "parameters": [1]]) == [["name": "Ada L", "age": 37]])
        #expect(try await call("list_indexes", ["table_name": "users"]).arrayValue?.first?["name"] == "idx_email")

        _ = try await call("alter_table_add_column", ["table_name": "users", "column_name": "note", "column_type": "TEXT", "default": "it's"])
        let schema = try await call("get_table_schema", ["table_name": "users"])
        #expect(schema.arrayValue?.count == 5)
        #expect(schema.arrayValue?.last?["name"] == "note")
        #expect(schema.arrayValue?.last?["default_value"] == "'it''s'")
        #expect(schema.arrayValue?.first?["pk"] == true)
        #expect(try await call("sql_delete", ["table_name": "users", "where": "age < ?", "parameters": [30]]) == 1)

        // upsert's key-value forms write the handle's table.
        _ = try await call("upsert", ["key": "k", "value": ["any": "dict"]])
        _ = try await call("upsert", ["table_name": "plain", "data": 5])
        #expect(try await db.get("k") == ["any": "dict"])
        #expect(try await db.get("plain") == 5)
        // sql_update on the key-value table leaves no stale cache.
        _ = try await call("sql_update", ["table_name": "data", "data": ["value": "6"], "where": "key = ?", "parameters": ["plain"]])
        #expect(try await db.get("plain") == 6)

        #expect(try await call("pragma", ["pragma_name": "journal_mode"]) == "wal")
        _ = try await call("pragma", ["pragma_name": "user_version", "value": 7])
        #expect(try await call("pragma", ["pragma_name": "user_version"]) == 7)
        _ = try await call("vacuum", [:])
        _ = try await call("drop_index", ["index_name": "idx_email"])
        _ = try await call("drop_table", ["table_name": "users"])
        #expect(try await call("table_exists", ["table_name": "users"]) == false)
        await client.close()
        try await daemon.stop()
    }

    /// NanaSQLite 1.6's `upsert(table_name, data)`: a row when the table exists, else the map
    /// under that key (behaviour spec §7.2), decided on the writer.
    @Test func upsertOfATableThatDoesNotExistStoresUnderTheKey() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("kvupsert.db")

        #expect(try await db.upsert(table: "settings", ["theme": "dark"]) == nil)
        #expect(try await db.get("settings") == ["theme": "dark"])
        #expect(try await db.listTables() == ["data"])  // no table was made
        // A name that is no identifier can name no table: a key too.
        #expect(try await db.upsert(table: "not a table;", ["x": 1]) == nil)
        #expect(try await db.get("not a table;") == ["x": 1])
        // Once the table exists, the same call writes a row and leaves the key alone.
        try await db.createTable("settings", columns: ["id": "INTEGER PRIMARY KEY", "theme": "TEXT"])
        #expect(try await db.upsert(table: "settings", ["id": 4, "theme": "light"]) == 4)
        #expect(try await db.get("settings") == ["theme": "dark"])
        #expect(try await db.query(table: "settings", columns: ["theme"]) == [["theme": "light"]])

        // Inside a transaction the key-value write is part of it.
        try await db.beginTransaction()
        #expect(try await db.upsert(table: "draft", ["a": 1]) == nil)
        #expect(try await db.get("draft") == ["a": 1])
        try await db.rollback()
        #expect(try await db.get("draft") == nil)

        // A v2 table stages it, and the flush writes it.
        let staged = try await client.open("kvupsert.db", table: "staged", options: NanaOpenOptions(writeBehind: NanaWriteBehind(flushMode: .manual)))
        #expect(try await staged.upsert(table: "later", ["b": 2]) == nil)
        #expect(try await staged.get("later") == ["b": 2])
        let stats = try await client.call("stats", ["db": .int(staged.handle)])
        let tables = stats["databases"]?.arrayValue?.first?["tables"]?.arrayValue ?? []
        #expect(tables.first { $0["name"] == "staged" }?["v2_staged"] == 1)  // staged, not yet written
        try await staged.flush(wait: true)
        #expect(try await db.query(table: "staged", columns: ["key"]) == [["key": "later"]])
        await client.close()
        try await daemon.stop()
    }

    /// Another client creates the table while this one upserts into it: each call writes the
    /// row or the key, never both and never "no such table" (the writer answers the question
    /// and writes in one step).
    @Test func upsertRacingCreateTableWritesOneOrTheOther() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let writer = try await daemon.connect(), creator = try await daemon.connect()
        let db = try await writer.open("race.db")
        let other = try await creator.open("race.db")
        for i in 0..<60 {
            let name = "t\(i)"
            async let created: Void = other.createTable(name, columns: ["id": "INTEGER PRIMARY KEY", "v": "INTEGER"])
            async let upserted = db.upsert(table: name, ["id": 1, "v": .int(Int64(i))])
            let (rowid, _) = try await (upserted, created)
            let asRow = try await db.count(table: name)
            let asKey = try await db.get(name)
            if rowid == 1 {
                #expect(asRow == 1 && asKey == nil, "\(name): a row, and no key")
            } else {
                #expect(rowid == nil && asRow == 0 && asKey == ["id": 1, "v": .int(Int64(i))], "\(name): a key, and no row")
            }
        }
        await writer.close()
        await creator.close()
        try await daemon.stop()
    }

    @Test func injectionAttemptsAreRefusedAndChangeNothing() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("inject.db")
        func call(_ method: String, _ params: NanaParams) async throws -> NanaValue {
            var p = params
            p["db"] = .int(db.handle)
            return try await client.call(method, p)
        }
        _ = try await call("create_table", ["table_name": "users", "columns": ["id": "INTEGER PRIMARY KEY", "name": "TEXT", "secret": "TEXT"]])
        _ = try await call("sql_insert", ["table_name": "users", "data": ["name": "Ada", "secret": "s3cret"]])
        try await db.set("k", "v")
        let before = try await db.fetchAll("SELECT type, name, sql FROM sqlite_master ORDER BY name")

        let attempts: [(String, NanaParams)] = [
            ("create_table", ["table_name": "t; DROP TABLE users", "columns": ["a": "TEXT"]]),
            ("create_table", ["table_name": "t2", "columns": ["a": "TEXT); DROP TABLE users; --"]]),
            ("create_table", ["table_name": "t3", "columns": ["a": "TEXT DEFAULT 'x') --"]]),
            ("create_table", ["table_name": "t4", "columns": ["a": "TEXT, evil INTEGER"]]),
            ("create_table", ["table_name": "t5", "columns": ["a\"; DROP": "TEXT"]]),
            ("create_index", ["index_name": "i; DROP TABLE users", "table_name": "users", "columns": ["name"]]),
            ("create_index", ["index_name": "i2", "table_name": "users", "columns": ["name) ; DROP TABLE users --"]]),
            ("query", ["table_name": "users", "where": "1=1; DROP TABLE users"]),
            ("query", ["table_name": "users", "where": "1=1 -- comment"]),
            ("query", ["table_name": "users", "where": "1=1 /* c */"]),
            ("query", ["table_name": "users", "where": "load_extension('x')"]),
            ("query", ["table_name": "users", "where": #""LOAD_EXTENSION"('x') = 1"#]),
            ("query", ["table_name": "users", "where": "name = 'x' OR randomblob(100) = 1"]),
            ("query", ["table_name": "users", "order_by": "(SELECT secret FROM users)"]),
            ("query", ["table_name": "users", "order_by": "name; DROP TABLE users"]),
            ("query", ["table_name": "users", "columns": ["(SELECT secret FROM users LIMIT 1)"]]),
            ("query", ["table_name": "users", "columns": ["name FROM users UNION SELECT secret"]]),
            ("query_with_pagination", ["table_name": "users", "group_by": "name UNION SELECT secret FROM users"]),
            ("query", ["table_name": "users; DROP TABLE users"]),
            ("query", ["table_name": "users", "where": "name = ?", "parameters": ["x"], "limit": -1]),
            ("sql_update", ["table_name": "users", "data": ["name": "x"], "where": "1=1; DELETE FROM users"]),
            ("sql_update", ["table_name": "users", "data": ["name\" = 'x'; --": "y"], "where": "id = 1"]),
            ("sql_delete", ["table_name": "users", "where": "1=1 OR DELETE"]),
            ("count", ["table_name": "users", "where": "sqlite_version() > 0"]),
            ("alter_table_add_column", ["table_name": "users", "column_name": "c", "column_type": "TEXT; DROP TABLE users"]),
            ("alter_table_add_column", ["table_name": "users", "column_name": "c", "column_type": "INT)--"]),
            ("pragma", ["pragma_name": "schema_version", "value": 1]),
            ("pragma", ["pragma_name": "writable_schema"]),
            ("pragma", ["pragma_name": "user_version", "value": "1; DROP TABLE users"]),
            ("pragma", ["pragma_name": "journal_mode", "value": "delete"]),
            ("drop_table", ["table_name": "users; DROP TABLE data"]),
        ]
        for (method, params) in attempts {
            do {
                let result = try await call(method, params)
                Issue.record("\(method) \(params) was accepted: \(result)")
            } catch let error as NanaRemoteError {
                #expect([NanaErrorType.validation, .valueError].contains(error.type), "\(method) \(params): \(error)")
            }
        }
        // Nothing changed.
        #expect(try await db.fetchAll("SELECT type, name, sql FROM sqlite_master ORDER BY name") == before)
        #expect(try await db.fetchAll("SELECT name, secret FROM users") == [["Ada", "s3cret"]])
        #expect(try await db.get("k") == "v")
        await client.close()
        try await daemon.stop()
    }

    @Test func functionListsAreCaseInsensitiveAndInheritedByTables() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let opened = try await client.call("open", ["db_path": "fn.db", "allowed_sql_functions": ["json_extract"], "forbidden_sql_functions": ["lower"]])
        let handle = try #require(opened["db"])
        try await client.call("set", ["db": handle, "key": "a", "value": ["n": 1]]).isNil ? () : ()
        let rows = try await client.call("query", ["db": handle, "columns": ["key"], "where": "json_extract(value, '$.n') = ?", "parameters": [1]])
        #expect(rows == [["key": "a"]])
        await expectRemote(.validation) { _ = try await client.call("query", ["db": handle, "where": "lower(key) = 'a'"]) }
        let sub = try await client.call("table", ["db": handle, "table_name": "other"])
        await expectRemote(.validation) { _ = try await client.call("count", ["db": sub["db"]!, "where": "LOWER(key) = 'a'"]) }
        // Per call: override_allowed with an explicit list.
        #expect(try await client.call("count", ["db": handle, "where": "abs(1) = 1", "allowed_sql_functions": ["ABS"], "override_allowed": true]) == 1)
        await client.close()
        try await daemon.stop()
    }

    @Test func typedSwiftMethods() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("typed.db")
        try await db.createTable("items", columns: ["id": "INTEGER PRIMARY KEY", "name": "TEXT", "qty": "INTEGER"])
        #expect(try await db.tableExists("items"))
        #expect(try await db.sqlInsert("items", ["name": "pen", "qty": 3]) == 1)
        #expect(try await db.upsert(table: "items", ["id": 1, "name": "pen", "qty": 5]) == 1)
        #expect(try await db.sqlUpdate("items", ["qty": 6], where: "name = ?", ["pen"]) == 1)
        #expect(try await db.query(table: "items", columns: ["name", "qty"]) == [["name": "pen", "qty": 6]])
        #expect(try await db.queryWithPagination(table: "items", orderBy: "id", limit: 1, offset: 0).count == 1)
        #expect(try await db.count(table: "items", where: "qty > ?", [1]) == 1)
        #expect(try await db.exists("items", where: "qty = ?", [6]))
        try await db.createIndex("idx_name", on: "items", columns: ["name"])
        #expect(try await db.listIndexes("items").map { $0["name"] } == ["idx_name"])
        try await db.alterTableAddColumn("items", column: "note", type: "TEXT", default: "none")
        #expect(try await db.tableSchema("items").count == 4)
        #expect(try await db.sqlDelete("items", where: "id = ?", [1]) == 1)
        try await db.upsert(key: "k", "v")
        #expect(try await db.get("k") == "v")
        #expect(try await db.pragma("user_version") == 0)
        try await db.vacuum()
        try await db.dropIndex("idx_name")
        try await db.dropTable("items")
        #expect(try await db.listTables() == ["data"])
        await client.close()
        try await daemon.stop()
    }
}
