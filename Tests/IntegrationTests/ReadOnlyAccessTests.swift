import Foundation
import NanaClient
import NanaServer
import NanaWire
import Testing

/// Every declared method, and `open`/`table` with each setting, through a read-only rule
/// against a file with rows in it: a method a read-only rule may not run is refused, and
/// nothing any call does changes the file's bytes, its tables and indexes, or the data folder.
@Suite struct ReadOnlyAccessTests {
    /// Calls for each method (the handle is added for methods that take one). Each is one
    /// that would change the file if it were let through. A declared method missing here
    /// fails ``everyDeclaredMethodHasASampleCall()``: a new method is judged here before it lands.
    static let sampleCalls: [String: [NanaParams]] = [
        "hello": [["protocol": 1]],
        "ping": [[:]],
        "open": [["db_path": "ro.db"]],
        "table": [["table_name": "other"], ["table_name": "created_by_table"],
                  ["table_name": "other", "cache_strategy": "ttl", "cache_ttl": 0.01, "cache_persistence_ttl": true],
                  ["table_name": "other", "cache_strategy": "lru", "cache_size": 10]],
        "close": [[:]],
        "get": [["key": "k1"]],
        "set": [["key": "k1", "value": "changed"]],
        "delete": [["key": "k1"]],
        "contains": [["key": "k1"]],
        "len": [[:]], "keys": [[:]], "values": [[:]], "items": [[:]], "to_dict": [[:]], "copy": [[:]], "load_all": [[:]],
        "pop": [["key": "k1"]],
        "setdefault": [["key": "new", "default": 1]],
        "update": [["mapping": ["k1": 2]]],
        "clear": [[:]],
        "batch_update": [["mapping": ["k1": 2, "fresh": 3]]],
        "batch_update_partial": [["mapping": ["k1": 2]]],
        "batch_get": [["keys": ["k1", "k2", "absent"]]],
        "batch_delete": [["keys": ["k1"]]],
        "refresh": [["key": "k1"], [:]],
        "is_cached": [["key": "k1"]],
        "get_fresh": [["key": "k1"]],
        "clear_cache": [[:]],
        "increment": [["key": "n", "amount": 1]],
        "patch": [["key": "k2", "changes": ["x": 9]]],
        "execute": [["sql": "DELETE FROM data"], ["sql": "CREATE TABLE t (x)"], ["sql": "SELECT count(*) FROM data"]],
        "execute_many": [["sql": "INSERT INTO data VALUES (?, ?)", "parameters_list": [["z", "1"]]]],
        "fetch_one": [["sql": "DELETE FROM data RETURNING key"]],
        "fetch_all": [["sql": "UPDATE data SET value = '1' RETURNING key"], ["sql": "SELECT key FROM data"]],
        "sql_insert": [["table_name": "data", "data": ["key": "zz", "value": "1"]]],
        "sql_update": [["table_name": "data", "data": ["value": "1"], "where": "1 = 1"]],
        "sql_delete": [["table_name": "data", "where": "1 = 1"]],
        "upsert": [["table_name": "data", "data": ["key": "k1", "value": "\"u\""]], ["key": "k1", "value": "u"]],
        "query": [["table_name": "data"]],
        "query_with_pagination": [["table_name": "data", "limit": 10, "offset": 0]],
        "count": [["table_name": "data"]],
        "exists": [["table_name": "data", "where": "key = ?", "parameters": ["k1"]]],
        "create_table": [["table_name": "t2", "columns": ["id": "INTEGER"]]],
        "create_index": [["index_name": "ix_new", "table_name": "data", "columns": ["value"]]],
        "drop_table": [["table_name": "other"]],
        "drop_index": [["index_name": "ix_other"]],
        "alter_table_add_column": [["table_name": "data", "column_name": "c", "column_type": "TEXT"]],
        "table_exists": [["table_name": "data"]],
        "list_tables": [[:]], "get_db_size": [[:]], "get_table_schema": [[:]], "list_indexes": [[:]],
        "vacuum": [[:]],
        "pragma": [["pragma_name": "user_version", "value": 5], ["pragma_name": "user_version"]],
        "stats": [[:]],
        "close_file": [["db_path": "ro.db"], ["db_path": "other.db"]],
        "begin_transaction": [[:]], "commit": [[:]], "rollback": [[:]], "in_transaction": [[:]],
        // backup reads its own file; its destination is judged as a write there (refused: no
        // rule lets this peer write ro-copy.db); restore replaces the file (admin).
        "backup": [["dest_path": "ro-copy.db"], ["target_path": "other.db"]],
        "restore": [["src_path": "other.db"], ["source_path": "other.db"]],
        "flush": [["wait": true]],
        "get_dlq": [[:]], "get_v2_metrics": [[:]], "retry_dlq": [[:]], "clear_dlq": [[:]],
        "add_constraint": [["constraint": ["type": "unique", "field": "x"]]],
        "drop_constraint": [["constraint": ["type": "unique", "field": "x"]]],
        "list_constraints": [[:]],
    ]

    /// `open`s through the read-only rule that must be refused, each with one setting.
    static let refusedOpens: [NanaParams] = [
        ["db_path": "ro.db", "cache_strategy": "ttl", "cache_ttl": 0.01, "cache_persistence_ttl": true],
        ["db_path": "ro.db", "cache_strategy": "lru", "cache_size": 10],
        ["db_path": "ro.db", "v2_mode": true],
        ["db_path": "ro.db", "v2_mode": true, "flush_mode": "manual"],
        ["db_path": "ro.db", "memory_first": true],
        ["db_path": "ro.db", "constraints": [["type": "unique", "field": "x"]]],
        ["db_path": "ro.db", "encryption_key": "0123456789abcdef"],
        ["db_path": "ro.db", "encryption_key": "0123456789abcdef", "allow_legacy_plaintext": true],
        ["db_path": "ro.db", "table": "v2t", "v2_mode": true],
        ["db_path": "ro.db", "table": "encryption_key"],
        ["db_path": "ro-new.db"],
    ]

    /// `open`s through the read-only rule that are let through: no setting, or the ones the table has.
    static let admittedOpens: [NanaParams] = [
        ["db_path": "ro.db"],
        ["db_path": "ro.db", "table": "other", "bulk_load": true],
        ["db_path": "ro.db", "v2_mode": false, "cache_strategy": "unbounded"],
        ["db_path": "ro.db", "cache_consistency": "auto"],  // clears caches only: nothing of the file changes
        ["db_path": "ro.db", "allow_legacy_plaintext": true],  // without a key it does nothing, as in NanaSQLite
    ]

    @Test func everyDeclaredMethodHasASampleCall() {
        let declared = Set(WireMethod.all.map(\.name))
        #expect(declared.subtracting(Self.sampleCalls.keys).sorted() == [])
        #expect(Set(Self.sampleCalls.keys).subtracting(declared).sorted() == [])
    }

    @Test func aReadOnlyRuleChangesNothingWhateverIsCalled() async throws {
        let daemon = try await Self.seededDaemon(rules: """
            [{"uids": [\(getuid())], "databases": ["ro.db", "ro-*.db", "other.db"], "read_only": true}]
            """)
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        func open(_ params: NanaParams = ["db_path": "ro.db"]) async throws -> NanaValue {
            try await client.call("open", params)["db"] ?? .nil
        }
        _ = try await open()  // the file is open in nanad from here on: its -wal and -shm exist
        let before = try Snapshot(daemon)

        for method in WireMethod.all {
            for sample in Self.sampleCalls[method.name] ?? [] {
                var params = sample
                if method.takesHandle { params["db"] = try await open() }
                let outcome: Result<NanaValue, any Error>
                do { outcome = .success(try await client.call(method.name, params)) } catch { outcome = .failure(error) }
                let what = "\(method.name)(\(sample)) [\(method.access.rawValue)]"
                if !method.access.admittedReadOnly {
                    guard case .failure(let error as NanaRemoteError) = outcome else {
                        Issue.record("\(what) was let through a read-only rule: \(outcome)")
                        continue
                    }
                    #expect(error.type == .validation, "\(what): \(error)")
                    #expect(error.message.contains("read-only"), "\(what): \(error)")
                }
                let after = try Snapshot(daemon)
                #expect(after == before, "\(what) changed \(after.difference(from: before)); it answered \(outcome)")
            }
        }
        for params in Self.refusedOpens {
            await expectRemote(.validation) { _ = try await client.call("open", params) }
            #expect(try Snapshot(daemon) == before, "open(\(params)) changed the file or the folder")
        }
        for params in Self.admittedOpens {
            _ = try await client.call("open", params)
            #expect(try Snapshot(daemon) == before, "open(\(params)) changed the file or the folder")
        }
        // A persistent TTL would delete rows a moment later: wait, then look again, tables and
        // indexes included (asked of SQLite itself, beside nanad).
        try await Task.sleep(for: .milliseconds(300))
        #expect(try Snapshot(daemon) == before)
        #expect(try Self.schema(daemon, "ro.db") == Self.seededSchema)
        #expect(try Self.rowCount(daemon, "ro.db", "data") == 103)
        await client.close()
        #expect(try await daemon.stop() == 0)
    }

    /// The cases of the report, as another uid (rules by uid): a backup onto a file that peer
    /// may not write, a restore from a file it may not open, a persistent TTL through a
    /// read-only rule; and what the rules do let it do.
    @Test func anotherUserReachesNoFileItsRulesDoNotCover() async throws {
        let other: UInt32 = 4321
        let daemon = try await Self.seededDaemon(rules: """
            [{"uids": [\(other)], "databases": ["mine.db", "backups/*"]},
             {"uids": [\(other)], "databases": ["ro.db"], "read_only": true},
             {"uids": [\(getuid())]}]
            """)
        defer { daemon.removeFolder() }
        try FileManager.default.createDirectory(atPath: daemon.dataDirectory + "/backups", withIntermediateDirectories: true)
        let secretBytes = try Data(contentsOf: URL(fileURLWithPath: daemon.dataDirectory + "/secret.db"))
        let nanactl = binFolder.appendingPathComponent("nanactl").path
        func asOther(_ arguments: [String]) async throws -> ToolRun {
            // The common options before the subcommand, as operators type them.
            try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["setpriv", "--reuid=\(other)", "--regid=\(other)", "--clear-groups", "--", nanactl, "--socket", daemon.socketPath] + arguments)
        }

        for source in ["mine.db", "ro.db"] {
            for name in ["dest_path", "target_path"] {
                let run = try await asOther(["call", "--db", source, "backup", "{\"\(name)\": \"secret.db\"}"])
                #expect(run.status == 3, "backup \(source) → secret.db: \(run.stdout) \(run.stderr)")
                #expect(run.stderr.contains("not allowed to write"), "\(run.stderr)")
            }
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: daemon.dataDirectory + "/secret.db")) == secretBytes)
        #expect(try Self.rowCount(daemon, "secret.db", "data") == 50)

        for name in ["src_path", "source_path"] {
            let run = try await asOther(["call", "--db", "mine.db", "restore", "{\"\(name)\": \"secret.db\"}"])
            #expect(run.status == 3, "\(run.stdout) \(run.stderr)")
            #expect(run.stderr.contains("not allowed to open"), "\(run.stderr)")
        }
        let mine = try await asOther(["get", "--db", "mine.db", "mine"])
        #expect(mine.stdout == "true\n", "\(mine.stderr)")

        let ttl = try await asOther(["call", "--db", "ro.db", "--open-options", #"{"cache_strategy": "ttl", "cache_ttl": 0.01, "cache_persistence_ttl": true}"#, "len"])
        #expect(ttl.status == 3, "\(ttl.stdout) \(ttl.stderr)")
        #expect(ttl.stderr.contains("read-only"), "\(ttl.stderr)")
        try await Task.sleep(for: .milliseconds(300))
        #expect(try Self.rowCount(daemon, "ro.db", "data") == 103)
        #expect(try Self.schema(daemon, "ro.db") == Self.seededSchema)

        // What the rules allow: reading ro.db (options after the subcommand too), writing
        // mine.db, and a backup of the read-only file into a folder it may write.
        let read = try await runProgram(URL(fileURLWithPath: "/usr/bin/env"), ["setpriv", "--reuid=\(other)", "--regid=\(other)", "--clear-groups", "--", nanactl, "get", "k1", "--db", "ro.db", "--socket", daemon.socketPath])
        #expect(read.stdout == "\"v1\"\n", "\(read.stderr)")
        let write = try await asOther(["set", "--db", "mine.db", "note", "1"])
        #expect(write.status == 0, "\(write.stderr)")
        let backup = try await asOther(["call", "--db", "ro.db", "backup", #"{"target_path": "backups/ro.db"}"#])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(try Self.rowCount(daemon, "backups/ro.db", "data") == 103)
        #expect(try await daemon.stop() == 0)
    }

    // MARK: Fixtures

    /// ro.db: `data` (100 rows k0…, plus k1 "v1", k2 a dict and n a number), `other` with an
    /// index; other.db and mine.db; secret.db with 50 rows. Written by a nanad without rules,
    /// which then stops; the returned one serves the same folder with `rules`.
    static func seededDaemon(rules: String) async throws -> Daemon {
        let seeder = try await Daemon.start()
        let client = try await seeder.connect()
        let data = try await client.open("ro.db")
        var rows = NanaParams()
        for i in 0..<100 { rows["row\(i)"] = .int(Int64(i)) }
        rows["k1"] = "v1"
        rows["k2"] = ["x": 1]
        rows["n"] = 5
        try await data.batchUpdate(rows)
        let other = try await data.table("other")
        try await other.batchUpdate(["a": 1, "b": 2, "c": 3])
        try await data.createIndex("ix_other", on: "other", columns: ["value"])
        try await (try await client.open("other.db")).set("from other", 1)
        try await (try await client.open("mine.db")).set("mine", true)
        let secret = try await client.open("secret.db")
        var secrets = NanaParams()
        for i in 0..<50 { secrets["secret\(i)"] = .string("s\(i)") }
        try await secret.batchUpdate(secrets)
        await client.close()
        try await seeder.stop()
        let config = seeder.folder + "/rules.json"
        try "{\"socket_mode\": \"666\", \"rules\": \(rules)}".write(toFile: config, atomically: true, encoding: .utf8)
        return try await Daemon.start(arguments: ["--config", config], folder: seeder.folder)
    }

    static let seededSchema = ["index|ix_other|other", "table|data|data", "table|other|other"]

    /// Tables and indexes of `file`, as SQLite lists them (`type|name|tbl_name`).
    static func schema(_ daemon: Daemon, _ file: String) throws -> [String] {
        try sqlite(daemon, file, "SELECT type, name, tbl_name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name")
    }

    static func rowCount(_ daemon: Daemon, _ file: String, _ table: String) throws -> Int {
        Int(try sqlite(daemon, file, "SELECT count(*) FROM \"\(table)\"").first ?? "") ?? -1
    }

    static func sqlite(_ daemon: Daemon, _ file: String, _ sql: String) throws -> [String] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sqlite3", "-readonly", daemon.dataDirectory + "/" + file, sql]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
    }
}

/// What a read-only peer must not change: ro.db's bytes and its WAL's, and the names in the
/// data folder. (`-shm` holds readers' marks, which reading changes: only its name counts.)
struct Snapshot: Equatable {
    let database: Data
    let wal: Data?
    let files: [String]

    init(_ daemon: Daemon) throws {
        let folder = daemon.dataDirectory
        database = try Data(contentsOf: URL(fileURLWithPath: folder + "/ro.db"))
        wal = try? Data(contentsOf: URL(fileURLWithPath: folder + "/ro.db-wal"))
        files = (FileManager.default.subpaths(atPath: folder) ?? []).sorted()
    }

    func difference(from other: Snapshot) -> String {
        var parts: [String] = []
        if database != other.database { parts.append("ro.db's bytes") }
        if wal != other.wal { parts.append("ro.db-wal (\(other.wal?.count ?? -1) → \(wal?.count ?? -1) bytes)") }
        if files != other.files { parts.append("the folder (\(other.files) → \(files))") }
        return parts.joined(separator: ", ")
    }
}
