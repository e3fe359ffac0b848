#if FUZZING
import NanaWire

// A structure-aware mutator for libFuzzer: an input is a stream of frames, and byte-level
// mutations mostly break a frame's length prefix or a MessagePack length inside it, after which
// the daemon only sees a partial frame or a malformed one. This one works on frames (keeping
// every length prefix right) and on the MessagePack values inside them (method and parameter
// names, numbers at their edges, containers), and falls back to libFuzzer's own mutations for
// some of the time, so that malformed bytes are still tried.

@_silgen_name("LLVMFuzzerMutate")
func LLVMFuzzerMutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int) -> Int

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { n <= 1 ? 0 : Int(next() % UInt64(n)) }
    mutating func chance(_ percent: Int) -> Bool { below(100) < percent }
}

enum FrameMutator {
    /// Method names, parameter names and option values of the protocol.
    static let words: [String] = [
        "hello", "ping", "open", "table", "close", "get", "set", "delete", "contains", "len", "keys", "values", "items", "to_dict",
        "copy", "load_all", "pop", "update", "batch_update", "batch_update_partial", "clear", "setdefault", "batch_get",
        "batch_delete", "refresh", "is_cached", "get_fresh", "clear_cache", "stats", "increment", "patch", "begin_transaction",
        "commit", "rollback", "in_transaction", "execute", "execute_many", "fetch_one", "fetch_all", "flush", "get_dlq",
        "retry_dlq", "clear_dlq", "get_v2_metrics", "add_constraint", "drop_constraint", "list_constraints", "sql_insert",
        "sql_update", "sql_delete", "upsert", "query", "query_with_pagination", "count", "exists", "create_table", "create_index",
        "drop_table", "drop_index", "table_exists", "list_tables", "get_table_schema", "list_indexes", "alter_table_add_column",
        "vacuum", "pragma", "backup", "restore", "wait",
        "db", "key", "value", "default", "keys", "mapping", "table_name", "amount", "field", "changes", "create", "protocol", "client",
        "db_path", "bulk_load", "optimize", "cache_size_mb", "strict_sql_validation", "max_workers", "lock_timeout",
        "warn_duplicate_table_instance", "allowed_sql_functions", "forbidden_sql_functions", "max_clause_length", "override_allowed",
        "v2_mode", "v2_config", "flush_mode", "flush_interval", "flush_count", "v2_chunk_size", "v2_max_dlq_size", "v2_enable_metrics",
        "memory_first", "memory_flush_interval", "chunk_size", "max_dlq_size", "enable_metrics", "cache_strategy", "cache_size",
        "cache_ttl", "cache_persistence_ttl", "near_cache", "encryption_key", "encryption_mode", "constraints", "constraint", "type", "fields",
        "op", "key_prefix", "message", "unique", "foreign_key", "check", "required", "sql", "parameters", "parameters_list",
        "data", "where", "columns", "order_by", "limit", "offset", "group_by", "conflict_columns", "if_not_exists", "primary_key",
        "index_name", "if_exists", "column_name", "column_type", "pragma_name", "dest_path", "src_path", "verify", "allow_incomplete",
        "wait", "unbounded", "lru", "ttl", "aes-gcm", "chacha20", "fernet", "immediate", "count", "time", "manual",
        "fuzz.db", "other.db", "backup.db", "fuzz.db-wal", "fuzz.db-shm", "fuzz.db-journal", ":memory:", "../x", "probe",
        "data", "other", "\"Quoted\"", "users", "people", "==", ">=", "<", "!=", "~",
        "user_version", "foreign_keys", "journal_mode", "page_size", "auto_vacuum", "secure_delete", "synchronous", "encoding",
        "SELECT * FROM data", "SELECT key, value FROM data WHERE key = ?", "INSERT INTO data (key, value) VALUES (?, ?)",
        "UPDATE data SET value = ?", "DELETE FROM data", "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)", "DROP TABLE data",
        "CREATE TRIGGER tr AFTER INSERT ON data BEGIN DELETE FROM data; END", "SELECT randomblob(100)", "SELECT zeroblob(1000)",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000) SELECT x FROM c",
        "ALTER TABLE data ADD COLUMN extra TEXT", "CREATE INDEX i ON data (value)", "PRAGMA user_version = 1", "VACUUM",
        "key = ?", "value IS NOT NULL", "length(key) > 1", "json_extract(value, '$.a')", "key ASC", "COUNT(*) AS n",
        "INTEGER", "TEXT NOT NULL", "INTEGER CHECK (a > 0)", "VARCHAR(255)", "REAL DEFAULT 0",
    ]

    static func word(_ rng: inout SplitMix) -> String { words[rng.below(words.count)] }

    static func scalar(_ rng: inout SplitMix) -> NanaValue {
        switch rng.below(16) {
        case 0: return .nil
        case 1: return .bool(rng.chance(50))
        case 2: return .int(Int64(rng.below(5)))
        case 3: return .int([Int64.max, Int64.min, -1, 1 << 31, 1 << 32, 65536, 1_000_000_000][rng.below(7)])
        case 4: return .uint(UInt64.max)
        case 5: return .double([0, -0.0, 1.5, .nan, .infinity, -.infinity, 1e300, 1e-300, 0.05, -1][rng.below(10)])
        case 6: return .binary(Array(repeating: UInt8(rng.below(256)), count: rng.below(40)))
        case 7: return .array([])
        case 8: return .map([:])
        case 9: return .string("")
        default: return .string(word(&rng))
        }
    }

    static func mutateBytes(_ bytes: [UInt8], _ maxSize: Int) -> [UInt8] {
        var buffer = bytes + [UInt8](repeating: 0, count: max(0, maxSize - bytes.count))
        let n = buffer.withUnsafeMutableBufferPointer { LLVMFuzzerMutate($0.baseAddress!, bytes.count, max(bytes.count, maxSize)) }
        return Array(buffer.prefix(n))
    }

    static func mutateLeaf(_ value: NanaValue, _ rng: inout SplitMix) -> NanaValue {
        switch value {
        case .int(let i):
            switch rng.below(6) {
            case 0: return .int(i &+ 1)
            case 1: return .int(i &- 1)
            case 2: return .int(0 &- i)
            case 3: return .int(Int64(rng.below(10)))
            default: return scalar(&rng)
            }
        case .string(let s):
            switch rng.below(6) {
            case 0, 1, 2: return .string(word(&rng))
            case 3: return .string(String(decoding: mutateBytes(Array(s.utf8), s.utf8.count + 16), as: UTF8.self))
            case 4: return .string(s + s)
            default: return scalar(&rng)
            }
        case .binary(let b): return rng.chance(50) ? .binary(mutateBytes(b, b.count + 16)) : scalar(&rng)
        case .bool(let b): return rng.chance(50) ? .bool(!b) : scalar(&rng)
        default: return scalar(&rng)
        }
    }

    static func mutate(_ value: NanaValue, _ rng: inout SplitMix, depth: Int = 0) -> NanaValue {
        switch value {
        case .array(var items):
            if !items.isEmpty, rng.chance(70), depth < 40 {
                let i = rng.below(items.count)
                items[i] = mutate(items[i], &rng, depth: depth + 1)
                return .array(items)
            }
            switch rng.below(6) {
            case 0 where !items.isEmpty: items.remove(at: rng.below(items.count))
            case 1 where !items.isEmpty: items.insert(items[rng.below(items.count)], at: rng.below(items.count + 1))
            case 2: return .array([value])
            case 3: return scalar(&rng)
            default: items.insert(scalar(&rng), at: rng.below(items.count + 1))
            }
            return .array(items)
        case .map(var entries):
            if !entries.isEmpty, rng.chance(65), depth < 40 {
                let i = rng.below(entries.count)
                entries.values[i] = mutate(entries.values[i], &rng, depth: depth + 1)
                return .map(entries)
            }
            switch rng.below(7) {
            case 0 where !entries.isEmpty: entries.remove(at: rng.below(entries.count))
            case 1 where !entries.isEmpty:
                let i = rng.below(entries.count)
                let moved = entries.values[i]
                entries.remove(at: i)
                entries[word(&rng)] = moved
            case 2: return .map(["x": value])
            case 3: return scalar(&rng)
            case 4: entries[word(&rng)] = .array([scalar(&rng), scalar(&rng)])
            default: entries[word(&rng)] = scalar(&rng)
            }
            return .map(entries)
        default:
            return mutateLeaf(value, &rng)
        }
    }

    /// The frame bodies of `bytes`, and what follows the last whole frame.
    static func split(_ bytes: UnsafeRawBufferPointer) -> (frames: [[UInt8]], rest: [UInt8]) {
        var frames: [[UInt8]] = []
        var i = 0
        while bytes.count - i >= 4 {
            let length = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            guard bytes.count - i - 4 >= length, length <= Harness.maximumFrameLength else { break }
            frames.append(Array(bytes[(i + 4)..<(i + 4 + length)]))
            i += 4 + length
        }
        return (frames, Array(bytes[i...]))
    }

    static func join(_ frames: [[UInt8]], _ rest: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        for body in frames { out += Seeds.frame(body) }
        return out + rest
    }

    static func randomRequest(_ rng: inout SplitMix) -> [UInt8] {
        var params: NanaParams = ["db": .int(Int64(1 + rng.below(3)))]
        for _ in 0..<rng.below(4) { params[word(&rng)] = scalar(&rng) }
        let writer = MessagePackWriter()
        writer.writeRequest(msgid: UInt32(rng.below(64)), method: word(&rng), params: params)
        return writer.bytes
    }

    static let waitBody: [UInt8] = {
        let writer = MessagePackWriter()
        writer.writeNotification(method: "wait", params: [:])
        return writer.bytes
    }()

    static func mutate(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
        var rng = SplitMix(state: UInt64(seed) &* 0x2545_F491_4F6C_DD1D)
        var (frames, rest) = split(UnsafeRawBufferPointer(start: data, count: size))
        let choice = rng.below(100)
        if frames.isEmpty || choice < 8 {
            return LLVMFuzzerMutate(data, size, maxSize)
        }
        let i = rng.below(frames.count)
        switch choice {
        case 8..<60:
            if let value = try? MessagePackReader.decode(frames[i]) {
                frames[i] = MessagePackWriter.encode(mutate(value, &rng))
            } else {
                frames[i] = mutateBytes(frames[i], frames[i].count + 64)
            }
        case 60..<72:
            frames[i] = mutateBytes(frames[i], frames[i].count + 64)
        case 72..<80:
            frames.insert(frames[i], at: rng.below(frames.count + 1))
        case 80..<86:
            frames.remove(at: i)
        case 86..<90:
            frames.swapAt(i, rng.below(frames.count))
        case 90..<94:
            frames.insert(waitBody, at: rng.below(frames.count + 1))
        case 94..<98:
            frames.insert(randomRequest(&rng), at: rng.below(frames.count + 1))
        default:
            rest = mutateBytes(rest, rest.count + 16)
        }
        let out = join(frames, rest)
        guard out.count <= maxSize else { return LLVMFuzzerMutate(data, size, maxSize) }
        out.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: out.count) }
        return out.count
    }

    /// Frames from the start of one input, then frames from the end of the other.
    static func crossOver(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer, _ out: UnsafeMutablePointer<UInt8>, _ maxSize: Int, _ seed: UInt32) -> Int {
        var rng = SplitMix(state: UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 | 1)
        let first = split(a).frames, second = split(b).frames
        let head = Array(first.prefix(rng.below(first.count + 1)))
        let tail = Array(second.suffix(rng.below(second.count + 1)))
        var bytes = join(head + tail, [])
        if bytes.count > maxSize { bytes = Array(bytes.prefix(maxSize)) }
        bytes.withUnsafeBufferPointer { if let base = $0.baseAddress { out.update(from: base, count: bytes.count) } }
        return bytes.count
    }
}

@_cdecl("LLVMFuzzerCustomMutator")
public func customMutator(_ data: UnsafeMutablePointer<UInt8>, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
    FrameMutator.mutate(data, size, maxSize, seed)
}

@_cdecl("LLVMFuzzerCustomCrossOver")
public func customCrossOver(
    _ data1: UnsafePointer<UInt8>, _ size1: Int, _ data2: UnsafePointer<UInt8>, _ size2: Int,
    _ out: UnsafeMutablePointer<UInt8>, _ maxOutSize: Int, _ seed: UInt32
) -> Int {
    FrameMutator.crossOver(UnsafeRawBufferPointer(start: data1, count: size1), UnsafeRawBufferPointer(start: data2, count: size2), out, maxOutSize, seed)
}
#endif
