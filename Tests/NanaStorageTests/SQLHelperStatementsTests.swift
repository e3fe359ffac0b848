import Testing

@testable import NanaStorage

/// The SQL text of the helpers: names quoted and validated, values left to bind.
@Suite struct SQLHelperStatementsTests {
    @Test func rowStatementsQuoteEveryName() throws {
        #expect(try SQLHelperStatements.insert(into: "users", columns: ["name", "age"]) == #"INSERT INTO "users" ("name", "age") VALUES (?, ?)"#)
        #expect(try SQLHelperStatements.update("users", setting: ["age"], where: "id = ?") == #"UPDATE "users" SET "age" = ? WHERE id = ?"#)
        #expect(try SQLHelperStatements.delete(from: "users", where: "id = ?") == #"DELETE FROM "users" WHERE id = ?"#)
    }

    @Test func upsertForms() throws {
        #expect(try SQLHelperStatements.upsert(into: "t", columns: ["id", "v"], conflictColumns: nil)
            == #"INSERT OR REPLACE INTO "t" ("id", "v") VALUES (?, ?) RETURNING rowid"#)
        #expect(try SQLHelperStatements.upsert(into: "t", columns: ["id", "V"], conflictColumns: ["ID"])
            == #"INSERT INTO "t" ("id", "V") VALUES (?, ?) ON CONFLICT("ID") DO UPDATE SET "V" = excluded."V" RETURNING rowid"#)
        #expect(try SQLHelperStatements.upsert(into: "t", columns: ["id"], conflictColumns: ["id"])
            == #"INSERT INTO "t" ("id") VALUES (?) ON CONFLICT("id") DO NOTHING RETURNING rowid"#)
        #expect(throws: StorageError.self) { try SQLHelperStatements.upsert(into: "t", columns: ["id"], conflictColumns: []) }
    }

    @Test func selectLeavesOutWhatIsNotGiven() throws {
        #expect(try SQLHelperStatements.select(nil, from: "t") == #"SELECT * FROM "t""#)
        #expect(try SQLHelperStatements.select([.name("a"), .expression("COUNT(*) AS n")], from: "t", where: "a > ?", groupBy: "a", orderBy: "", offset: 5)
            == #"SELECT "a", COUNT(*) AS n FROM "t" WHERE a > ? GROUP BY a LIMIT -1 OFFSET 5"#)
        #expect(try SQLHelperStatements.count(in: "t", where: "") == #"SELECT COUNT(*) FROM "t""#)
    }

    @Test func badNamesAndEmptyListsAreRefused() {
        #expect(throws: StorageError.self) { try SQLHelperStatements.insert(into: "users; DROP TABLE x", columns: ["a"]) }
        #expect(throws: StorageError.self) { try SQLHelperStatements.insert(into: "users", columns: []) }
        #expect(throws: StorageError.self) { try SQLHelperStatements.update("users", setting: [#"a" = 1 --"#], where: "1") }
        #expect(throws: StorageError.self) { try SQLHelperStatements.createTable("t", columns: [("a", "TEXT); DROP TABLE x; --")], primaryKey: nil, ifNotExists: true) }
        #expect(throws: StorageError.self) { try SQLHelperStatements.createIndex("i", on: "t", columns: [], unique: false, ifNotExists: true) }
    }

    @Test func schemaStatements() throws {
        #expect(try SQLHelperStatements.createTable("t", columns: [("id", "INTEGER"), ("v", "TEXT")], primaryKey: "id", ifNotExists: true)
            == #"CREATE TABLE IF NOT EXISTS "t" ("id" INTEGER, "v" TEXT, PRIMARY KEY ("id"))"#)
        #expect(try SQLHelperStatements.createTable("t", columns: [("id", "INTEGER PRIMARY KEY")], primaryKey: "id", ifNotExists: false)
            == #"CREATE TABLE "t" ("id" INTEGER PRIMARY KEY)"#)
        #expect(try SQLHelperStatements.createIndex("i", on: "t", columns: ["a", "b"], unique: true, ifNotExists: false) == #"CREATE UNIQUE INDEX "i" ON "t" ("a", "b")"#)
        #expect(try SQLHelperStatements.drop(.index, "i", ifExists: true) == #"DROP INDEX IF EXISTS "i""#)
        #expect(try SQLHelperStatements.addColumn(to: "t", column: "note", type: "TEXT", default: .text("it's")) == #"ALTER TABLE "t" ADD COLUMN "note" TEXT DEFAULT 'it''s'"#)
        #expect(SQLHelperStatements.listIndexes(ofOneTable: true).hasSuffix("AND tbl_name = ? ORDER BY name"))
    }
}
