import Foundation
import NanaStorage
import NanaWire

// `stats`: the server's counters and each open file's writer and tables.
extension ConnectionHandler {
    func stats(_ msgid: UInt32, _ args: Arguments) throws(NanaRemoteError) {
        mergeCounts()
        var databases = state.registry.databases
        if let db = args.params["db"], !db.isNil {
            let path = try table(args).path
            databases = databases.filter { $0.path == path }
        }
        let server: NanaValue = [
            "name": .string(NanadInfo.name),
            "version": .string(NanadInfo.version),
            "connections": .int(Int64(state.connections.load(ordering: .relaxed))),
            "total_connections": .int(Int64(state.totalConnections.load(ordering: .relaxed))),
            "requests": .int(Int64(state.requests.load(ordering: .relaxed))),
            "errors": .int(Int64(state.errors.load(ordering: .relaxed))),
            "in_flight": .int(Int64(state.inFlight.load(ordering: .relaxed))),
            "calls_by_method": .map(NanaParams(uniqueKeysWithValues: state.callsByMethod.map { (NanaKey($0.0), NanaValue.int(Int64($0.1))) })),
            "errors_by_type": .map(NanaParams(uniqueKeysWithValues: state.errorCounts.withLock { $0 }.sorted { $0.key < $1.key }.map { (NanaKey($0.key), NanaValue.int(Int64($0.value))) })),
            "resident_bytes": .int(Int64(Self.residentBytes())),
            "open_files": .int(Int64(state.registry.databases.count)),
            "threads": .int(Int64(Self.entries(in: "/proc/self/task"))),
            "descriptors": .int(Int64(Self.entries(in: "/proc/self/fd"))),
            "idle_files_closed": .int(Int64(state.registry.idleClosedCount)),
            "replacements_detected": .int(Int64(state.registry.replacementsDetected)),
            "near_cache": .bool(state.boards != nil),
        ]
        let dbs: [NanaValue] = databases.sorted { $0.path < $1.path }.map { db in
            let w = db.writerStatistics
            let wakeups = db.writerWakeups  // one read of the queue's counters: the two agree
            let tables: [NanaValue] = db.openTables.sorted { $0.name < $1.name }.map { t in
                let c = t.cacheStatistics
                let v2 = t.writeBehindStatus
                return ["name": .string(t.name),
                        "v2_pending": .int(Int64(v2.pending)), "v2_flushing": .int(Int64(v2.flushing)),
                        "v2_oldest_pending_age_s": v2.oldestPendingAgeSeconds.map { .double($0) } ?? .nil,
                        "v2_flush_active": .bool(v2.flushActive),
                        "v2_last_successful_flush": v2.lastSuccessfulFlushTime.map { .double($0) } ?? .nil, "cached": .int(Int64(c.entries)), "absent_keys": .int(Int64(c.absentKeys)),
                        "hits": .int(Int64(c.hits)), "misses": .int(Int64(c.misses)),
                        "evictions": .int(Int64(c.evictions)), "expirations": .int(Int64(c.expirations)),
                        "capacity": c.capacity.map { .int(Int64($0)) } ?? .nil,
                        "handles": .int(Int64(t.users)), "v2_mode": .bool(t.settings.writeBehind != nil),
                        "v2_staged": .int(Int64(t.stagedWrites)), "dlq": .int(Int64(t.deadLetters.count))]
            }
            return [
                "path": .string(db.path), "sessions": .int(Int64(db.holderCount)), "commits": .int(Int64(w.commits)), "writes": .int(Int64(w.writes)),
                "failed_writes": .int(Int64(w.failedWrites)), "largest_batch": .int(Int64(w.largestBatch)),
                "checkpoints": .int(Int64(w.checkpoints)), "writer_spin_catches": .int(Int64(wakeups.foundSpinning)), "writer_sleeps": .int(Int64(wakeups.slept)),
                "disk_full": .bool(w.diskFull.isFull), "disk_full_episodes": .int(Int64(w.diskFull.episodes)),
                "disk_full_refused_writes": .int(Int64(w.diskFull.refusedWrites)),
                "batch_sizes": .map(NanaParams(uniqueKeysWithValues: zip(WriterStatistics.batchSizeBounds, w.batchSizes).map { bound, count in
                    (NanaKey(bound == .max ? "more" : "<=\(bound)"), NanaValue.int(Int64(count)))
                })),
                "client_transactions": .int(Int64(w.clientTransactions)),
                "client_transaction_ms": .double(w.clientTransactionMilliseconds),
                "writes_delayed_by_transactions": .int(Int64(w.writesDelayedByTransactions)),
                "v2_staged": .int(Int64(db.openTables.reduce(0) { $0 + $1.stagedWrites })),
                "dlq": .int(Int64(db.openTables.reduce(0) { $0 + $1.deadLetters.count })),
                "write_queue": .int(Int64(db.writeQueueDepth)), "tables": .array(tables),
                "board": db.board.map { board in
                    ["generation": .uint(board.generation), "key_slots": .int(Int64(board.keySlots)),
                     "table_slots": .int(Int64(Board.tableSlots)), "bytes": .int(Int64(board.words * 8))]
                } ?? .nil,
            ]
        }
        reply(msgid, .value(["server": server, "databases": .array(dbs)]))
    }

    /// Entries of a /proc folder (threads, descriptors), 0 where there is none.
    static func entries(in folder: String) -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: folder).count) ?? 0
    }

    /// This process's resident memory, from /proc (0 where there is none).
    static func residentBytes() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return 0 }
        return kb * 1024
    }
}
