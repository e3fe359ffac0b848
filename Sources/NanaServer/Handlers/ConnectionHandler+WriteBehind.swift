import Foundation
import NanaStorage
import NanaWire

// NanaSQLite's v2 management calls (`flush`, `get_dlq`, `retry_dlq`, `clear_dlq`,
// `get_v2_metrics`) and the v2 arguments of `open`. The engine is the table's, shared by every
// session, so any session can flush it or look at its dead letters.
extension ConnectionHandler {
    func deadLetters(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        reply(msgid, .value(.array(try table(args).deadLetters.map(Self.deadLetterValue))))
    }

    func retryDeadLetters(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        do { reply(msgid, .value(.int(Int64(try table.retryDeadLetters())))) } catch { throw NanaRemoteError(error) }
    }

    func clearDeadLetters(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        reply(msgid, .value(.int(Int64(try table(args).clearDeadLetters()))))
    }

    func writeBehindMetrics(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        reply(msgid, .value(try table(args).writeBehindMetrics.map(Self.metricsValue) ?? .map([:])))
    }

    /// `flush(wait=False)`: with `wait`, the reply comes once the flush it asked for committed.
    func flush(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        let table = try table(args)
        guard try args.bool("wait", default: false) else {
            table.flush(completion: nil)
            return reply(msgid, .value(.nil))
        }
        // The flusher writes outside client transactions: inside the session's own, waiting
        // for it would wait for the session's COMMIT (found by nanafuzz-dispatch).
        if try transactionOwner(table.database) != nil, table.settings.writeBehind != nil || table.stagedWrites > 0 {
            throw NanaRemoteError(.transaction, "flush(wait=True) cannot finish while a transaction is in progress on this file: staged rows are written outside it. Please commit or rollback first.")
        }
        respondLater(msgid, { (done: @escaping @Sendable (Result<Void, StorageError>) -> Void) in
            table.flush { done(.success(())) }
        }) { _ in .value(.nil) }
    }

    /// NanaSQLite's entry shape, `{"error", "item", "timestamp"}`, with the item spelled out.
    static func deadLetterValue(_ letter: DeadLetter) -> NanaValue {
        var item: NanaParams = ["key": .string(letter.key)]
        switch letter.operation {
        case .set(let value):
            item["action"] = "set"
            item["value"] = (try? MessagePackReader.decode(value.encoded.bytes)) ?? .nil
        case .delete:
            item["action"] = "delete"
        }
        return ["error": .string(letter.error), "item": .map(item), "timestamp": .double(letter.timestamp)]
    }

    /// The spec's metric names (§5.5, the code's, not the docs').
    static func metricsValue(_ m: WriteBehindMetrics) -> NanaValue {
        [
            "flush_count": .int(Int64(m.flushCount)),
            "kvs_items_flushed": .int(Int64(m.kvsItemsFlushed)),
            "strict_tasks_executed": .int(Int64(m.strictTasksExecuted)),
            "dlq_errors": .int(Int64(m.dlqErrors)),
            "last_flush_time": m.lastFlushTime.map(NanaValue.double) ?? .nil,
            "total_flush_time_ms": .double(m.totalFlushTimeMilliseconds),
            "current_staging_count": .int(Int64(m.currentStagingCount)),
            "current_strict_queue_size": .int(Int64(m.currentStrictQueueSize)),
        ]
    }

    /// The write-behind part of an `open`: `nil` when the call states nothing about it.
    /// `v2_config` (a dict with V2Config's fields) overrides the flat arguments, as in NanaSQLite;
    /// `memory_first` is v2 with time-based flushing (the daemon's shared cache is what makes
    /// its reads memory-speed, for every process).
    static func writeBehindRequest(_ args: Arguments) throws(NanaRemoteError) -> WriteBehindConfiguration?? {
        let memoryFirst = try args.bool("memory_first", default: false)
        let stated = WireParameter.writeBehindParameters.contains { args.has($0.name) }
        guard stated else { return nil }
        // Without v2_mode the flush settings mean nothing (NanaSQLite ignores them too).
        guard try args.bool("v2_mode", default: false) || memoryFirst else { return .some(nil) }
        var c = WriteBehindConfiguration()
        if memoryFirst {
            c.flushMode = .time
            c.flushInterval = try seconds(args.params["memory_flush_interval"], name: "memory_flush_interval") ?? 5.0
        }
        if let mode = try args.optionalString("flush_mode") { c.flushMode = try flushMode(mode) }
        if let interval = try seconds(args.params["flush_interval"], name: "flush_interval") { c.flushInterval = interval }
        c.flushCount = Int(try args.int("flush_count", default: Int64(c.flushCount)))
        c.chunkSize = Int(try args.int("v2_chunk_size", default: Int64(c.chunkSize)))
        if args.has("v2_max_dlq_size") { c.maxDLQSize = try optionalCount(args.params["v2_max_dlq_size"], name: "v2_max_dlq_size") }
        c.enableMetrics = try args.bool("v2_enable_metrics", default: false)
        if let config = args.params["v2_config"], !config.isNil {
            guard case .map(let fields) = config else { throw NanaRemoteError(.typeError, "open(): 'v2_config' must be a dict of V2Config fields") }
            for (name, value) in fields {
                switch name {
                case "flush_mode":
                    guard case .string(let mode) = value else { throw NanaRemoteError(.valueError, "Invalid flush_mode: \(value)") }
                    c.flushMode = try flushMode(mode)
                case "flush_interval": c.flushInterval = try seconds(value, name: "flush_interval") ?? c.flushInterval
                case "flush_count": c.flushCount = try optionalCount(value, name: "flush_count") ?? c.flushCount
                case "chunk_size": c.chunkSize = try optionalCount(value, name: "chunk_size") ?? c.chunkSize
                case "max_dlq_size": c.maxDLQSize = try optionalCount(value, name: "max_dlq_size")
                case "enable_metrics":
                    guard case .bool(let b) = value else { throw NanaRemoteError(.typeError, "v2_config: 'enable_metrics' must be bool") }
                    c.enableMetrics = b
                default: throw NanaRemoteError(.typeError, "v2_config: unknown field '\(name)'")
                }
            }
        }
        do { return .some(try c.validated()) } catch { throw NanaRemoteError(error) }
    }

    private static func flushMode(_ name: String) throws(NanaRemoteError) -> WriteBehindConfiguration.FlushMode {
        guard let mode = WriteBehindConfiguration.FlushMode(rawValue: name) else {
            throw NanaRemoteError(.valueError, "Invalid flush_mode: \(name) (expected immediate, count, time or manual)")
        }
        return mode
    }

    private static func seconds(_ value: NanaValue?, name: String) throws(NanaRemoteError) -> Double? {
        switch value {
        case nil, .nil?: return nil
        case .int(let i)?: return Double(i)
        case .double(let d)?: return d
        case let other?: throw NanaRemoteError(.typeError, "\(name) must be a number of seconds, not \(other.typeName)")
        }
    }

    private static func optionalCount(_ value: NanaValue?, name: String) throws(NanaRemoteError) -> Int? {
        switch value {
        case nil, .nil?: return nil
        case .int(let i)?: return Int(clamping: i)
        case let other?: throw NanaRemoteError(.valueError, "\(name) must be None or a positive integer, not \(other.typeName)")
        }
    }
}
