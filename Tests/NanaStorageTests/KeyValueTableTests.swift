import Foundation
import NanaStorage
import NanaWire
import Testing

@Suite struct KeyValueTableTests {
    @Test func dictionarySemanticsAgainstARealFile() async throws {
        let folder = TemporaryFolder()
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let table = try await registry.open("dict.db").table(named: "data")

        #expect(try await table.get("missing") == nil)
        try await table.set("a", storable(["x": 1, "y": [true, .nil, 2.5]]))
        #expect(try decoded(try await table.get("a")) == ["x": 1, "y": [true, .nil, 2.5]])
        try await table.set("a", storable("overwritten"))
        #expect(try decoded(try await table.get("a")) == "overwritten")
        #expect(try await table.contains("a"))
        #expect(try await !table.contains("nope"))

        await #expect(throws: StorageError(.keyNotFound, "nope")) { try await table.delete("nope") }
        try await table.delete("a")
        #expect(try await table.get("a") == nil)
        #expect(try await table.count() == 0)

        try await table.batchUpdate([("k1", storable(1)), ("k2", storable(2)), ("k3", storable(.nil))])
        #expect(try await table.count() == 3)
        #expect(Set(try await table.keys()) == ["k1", "k2", "k3"])
        let got = try await table.batchGet(["k3", "zz", "k1", "k3"])
        #expect(got.map(\.0) == ["k3", "k1"])  // asked order, missing left out, explicit null kept
        #expect(try decoded(got[0].1) == .nil)

        #expect(try decoded(try await table.pop("k2")) == 2)
        #expect(try await table.pop("k2") == nil)
        #expect(try decoded(try await table.setDefault("k1", storable(99))) == 1)
        #expect(try decoded(try await table.setDefault("new", storable(99))) == 99)
        #expect(try decoded(try await table.get("new")) == 99)

        try await table.batchDelete(["k1", "never"])
        #expect(try await table.get("k1") == nil)
        let items = try await table.items()
        #expect(items.map(\.0).sorted() == ["k3", "new"])

        try await table.clear()
        #expect(try await table.count() == 0)
        #expect(try await table.items().isEmpty)
    }

    @Test func valuesSurviveReopenAsNanaSQLiteJSON() async throws {
        let folder = TemporaryFolder()
        do {
            let registry = try makeRegistry(folder.path)
            let table = try await registry.open("reopen.db").table(named: "data")
            try await table.set("doc", storable(["a": 1, "b": [1.0, .nil, true], "s": "é"]))
            try await table.set("five", storable(5.0))
            try await table.set("flag", storable(true))
            registry.closeAll()
        }
        // The file is NanaSQLite's format, as another process sees it.
        let path = folder.path + "/reopen.db"
        #expect(try sqlite3CLI(path, "SELECT value FROM data WHERE key='doc'") == #"{"a":1,"b":[1.0,null,true],"s":"é"}"#)
        #expect(try sqlite3CLI(path, "SELECT sql FROM sqlite_master WHERE name='data'") == #"CREATE TABLE "data" (key TEXT PRIMARY KEY, value TEXT)"#)
        #expect(try sqlite3CLI(path, "PRAGMA journal_mode") == "wal")

        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let table = try await registry.open("reopen.db").table(named: "data")
        #expect(try decoded(try await table.get("doc")) == ["a": 1, "b": [1.0, .nil, true], "s": "é"])
        #expect(try decoded(try await table.get("five")) == .double(5.0))
        #expect(try decoded(try await table.get("flag")) == .bool(true))
    }

    @Test func readsAFileWrittenByNanaSQLite162() async throws {
        let folder = TemporaryFolder()
        try FileManager.default.copyItem(atPath: fixturesFolder + "/nanasqlite-1.6.2.db", toPath: folder.path + "/legacy.db")
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let database = try await registry.open("legacy.db")
        let data = try await database.table(named: "data")
        #expect(try decoded(try await data.get("str")) == "héllo")
        #expect(try decoded(try await data.get("int")) == 42)
        #expect(try decoded(try await data.get("float")) == .double(5.0))
        #expect(try decoded(try await data.get("bool")) == .bool(true))
        #expect(try decoded(try await data.get("none")) == .nil)
        #expect(try decoded(try await data.get("list")) == [1, 2.5, "x", false, .nil])
        let nested = try decoded(try await data.get("nested"))
        #expect(nested == ["b": 1, "a": ["deep": [1, ["x": "y"]]]])
        #expect(nested?.mapValue.map { Array($0.keys) } == ["b", "a"])
        #expect(try decoded(try await data.get("")) == "empty key")
        #expect(try decoded(try await data.get("big")) == .int(Int64.max))
        #expect(try await data.count() == 10)
        let users = try await database.table(named: "users")
        #expect(try decoded(try await users.get("bob")) == ["name": "Bob", "age": 25.5, "admin": false])
    }

    @Test func anOverwriteUpdatesTheRowInPlace() async throws {
        let folder = TemporaryFolder()
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let table = try await registry.open("inplace.db").table(named: "data")
        let path = folder.path + "/inplace.db"
        try await table.batchUpdate([("a", storable(1)), ("b", storable(2)), ("c", storable(3))])
        let rowids = try sqlite3CLI(path, "SELECT group_concat(rowid) FROM (SELECT rowid FROM data ORDER BY key)")

        try await table.set("a", storable("one"))
        try await table.batchUpdate([("b", storable("two")), ("d", storable(4))])
        // The rows kept their rowids (INSERT OR REPLACE would have given a and b new ones), so
        // an overwritten key keeps its place in items(), as in a dict.
        #expect(try sqlite3CLI(path, "SELECT group_concat(rowid) FROM (SELECT rowid FROM data WHERE key IN ('a','b','c') ORDER BY key)") == rowids)
        #expect(try await table.items().map(\.0) == ["a", "b", "c", "d"])
        #expect(try decoded(try await table.get("a")) == "one")
        #expect(try sqlite3CLI(path, "SELECT value FROM data WHERE key='b'") == #""two""#)
    }

    @Test func aCollisionOnAnotherUniqueIndexFailsTheWriteAndDeletesNothing() async throws {
        let folder = TemporaryFolder()
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let table = try await registry.open("unique.db").table(named: "data")
        try await table.set("a", storable("x"))
        try sqlite3CLI(folder.path + "/unique.db", "CREATE UNIQUE INDEX by_value ON data(value)")
        // INSERT OR REPLACE would delete row a to make room for b.
        await #expect(throws: StorageError.self) { try await table.set("b", storable("x")) }
        #expect(try decoded(try await table.getFresh("a")) == "x")
        #expect(try await table.getFresh("b") == nil)
    }

    @Test func aTableWhoseKeyIsNotUniqueIsStillWritten() async throws {
        let folder = TemporaryFolder()
        let path = folder.path + "/loose.db"
        // Made by another program: no PRIMARY KEY, so the upsert has no conflict to name.
        try sqlite3CLI(path, "PRAGMA journal_mode=WAL; CREATE TABLE loose (key TEXT, value TEXT)")
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let table = try await registry.open("loose.db").table(named: "loose")
        try await table.set("k", storable("first"))
        try await table.batchUpdate([("j", storable(2))])
        #expect(try decoded(try await table.getFresh("k")) == "first")
        #expect(try sqlite3CLI(path, "SELECT count(*) FROM loose") == "2")
    }

    @Test func aTableRemadeWithoutAUniqueKeyIsStillWritten() async throws {
        let folder = TemporaryFolder()
        let path = folder.path + "/remade.db"
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let table = try await registry.open("remade.db").table(named: "data")
        try await table.set("a", storable(1))  // the upsert is prepared and cached
        // Another program remakes the table without the PRIMARY KEY: SQLite prepares the cached
        // upsert again at its next step, and that fails.
        try sqlite3CLI(path, "DROP TABLE data; CREATE TABLE data (key TEXT, value TEXT)")
        try await table.set("b", storable(2))
        try await table.batchUpdate([("c", storable(3)), ("d", storable(4))])
        #expect(try sqlite3CLI(path, "SELECT group_concat(key) FROM (SELECT key FROM data ORDER BY key)") == "b,c,d")
    }

    @Test func rowsWrittenByAnotherProcessAreReadAndRefreshed() async throws {
        let folder = TemporaryFolder()
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let table = try await registry.open("ext.db").table(named: "data")
        try await table.set("k", storable("old"))
        // A write that bypasses nanad (the sqlite3 shell, another process).
        try sqlite3CLI(folder.path + "/ext.db", #"UPDATE data SET value='"new"' WHERE key='k'; INSERT INTO data VALUES('other','[1,2]')"#)
        #expect(try decoded(try await table.get("k")) == "old")  // served from the shared cache
        #expect(try decoded(try await table.getFresh("k")) == "new")
        #expect(try decoded(try await table.get("k")) == "new")  // get_fresh refreshed the cache
        #expect(try decoded(try await table.get("other")) == [1, 2])  // a miss reads SQLite
    }

    @Test func concurrentWritesAreGroupCommittedAndAllKept() async throws {
        let folder = TemporaryFolder()
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let database = try await registry.open("group.db")
        let table = try await database.table(named: "data")
        let before = database.writerStatistics
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<2000 {
                group.addTask { try await table.set("key-\(i)", try storable(.int(Int64(i)))) }
            }
            try await group.waitForAll()
        }
        let after = database.writerStatistics
        #expect(after.writes - before.writes == 2000)
        #expect(after.commits - before.commits <= 2000)
        #expect(try await table.count() == 2000)
        #expect(try decoded(try await table.get("key-1999")) == 1999)
    }

    @Test func theWriterCheckpointsTheWALUnlessLeftToAnExternalTool() async throws {
        let folder = TemporaryFolder()
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let big = try storable(.string(String(repeating: "x", count: 3000)))
        for (name, idlePages) in [("own.db", Int32(1000)), ("external.db", Int32(0))] {
            var options = DatabaseOptions()
            options.checkpointWhenIdlePages = idlePages
            let database = try await registry.open(name, options: options)
            let table = try await database.table(named: "data")
            for round in 0..<4 {
                try await table.batchUpdate((0..<500).map { ("r\(round)-\($0)", big) })
            }
            let checkpoints = database.writerStatistics.checkpoints
            #expect(idlePages == 0 ? checkpoints == 0 : checkpoints >= 1, "\(name): \(checkpoints) checkpoints")
            #expect(try await table.count() == 2000)
        }
    }

    @Test func keysHoldingNULAreStoredWhole() async throws {
        let folder = TemporaryFolder()
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let table = try await registry.open("nul.db").table(named: "data")
        try await table.set("a\u{0}b", storable(1))
        try await table.set("a", storable(2))
        table.clearCache()
        #expect(try decoded(try await table.get("a\u{0}b")) == 1)
        #expect(try decoded(try await table.get("a")) == 2)
        #expect(Set(try await table.keys()) == ["a\u{0}b", "a"])
    }

    @Test func sameTableNameInAnyCaseIsOneSharedTable() async throws {
        let folder = TemporaryFolder()
        let registry = try makeRegistry(folder.path)
        defer { registry.closeAll() }
        let database = try await registry.open("case.db")
        let a = try await database.table(named: "Users")
        let b = try await database.table(named: "users")
        let c = try await database.table(named: "\"USERS\"")
        #expect(a === b && b === c)
        #expect(a.name == "Users")
        let again = try await registry.open("./case.db")
        #expect(again === database)
    }
}

@Suite struct ValidationTests {
    @Test(arguments: ["data", "_t", "users2", "\"quoted\"", "A_b_C"])
    func validIdentifiers(_ name: String) throws {
        #expect(try Identifier.quoted(name).hasPrefix("\""))
    }

    @Test(arguments: ["", "1abc", "a b", "a;DROP TABLE x", "a\"b", "名前", "abc\n", "a-b", "\"\"", "t--", "a/*"])
    func invalidIdentifiers(_ name: String) {
        #expect(throws: StorageError.self) { try Identifier.quoted(name) }
    }

    @Test func databasePathsAreConfinedToTheDataFolder() throws {
        let folder = TemporaryFolder()
        let outside = TemporaryFolder()
        let registry = try makeRegistry(folder.path)
        try FileManager.default.createDirectory(atPath: folder.path + "/sub", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: folder.path + "/escape", withDestinationPath: outside.path)
        try FileManager.default.createSymbolicLink(atPath: folder.path + "/link.db", withDestinationPath: outside.path + "/x.db")

        #expect(try registry.resolve("a.db") == registry.dataDirectory + "/a.db")
        #expect(try registry.resolve("sub/b.db") == registry.dataDirectory + "/sub/b.db")
        for bad in ["", "/etc/passwd", "../x.db", "sub/../../x.db", "escape/x.db", "link.db", "nosuchdir/x.db", ".", "sub/", "a\u{0}b"] {
            #expect(throws: StorageError.self, "\(bad) should be refused") { try registry.resolve(bad) }
        }
        #expect(throws: StorageError(.notSupported, "in-memory databases (':memory:') are not served by nanad; name a file in the data folder")) {
            try registry.resolve(":memory:")
        }
    }
}
