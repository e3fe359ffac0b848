import Foundation
import Testing

/// The crash harness in its short form: SIGKILL under load from 4 writer processes, restart,
/// every acknowledged write present, integrity_check ok, an open transaction left no trace.
@Suite struct CrashSafetyTests {
    @Test func noAcknowledgedWriteIsLostWhenNanadIsKilled() async throws {
        let run = try await runTool("nanabench", ["crash", "--rounds", "3"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("rounds: 3"))
        #expect(run.stdout.contains("missing: 0"))
        #expect(!run.stdout.contains("acknowledged: 0,"))
    }

    /// v2 (manual flushing): what a completed flush covered survives the kill, and what was
    /// acknowledged after the last flush (none in flight) is gone, exactly as documented.
    @Test func writeBehindLosesExactlyWhatItsPolicyAllows() async throws {
        let run = try await runTool("nanabench", ["crash", "--v2", "--rounds", "3", "--min-ms", "1200", "--max-ms", "2400"])
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(run.stdout.contains("rounds: 3"))
        #expect(run.stdout.contains("missing: 0"))
        #expect(run.stdout.contains("(present: 0)"))
        #expect(!run.stdout.contains("acknowledged: 0,"))
    }
}

/// The fuzz corpora and every reproducer kept in tools/fuzz/regressions and
/// tools/fuzz/regressions-dispatch go through the fuzz targets' functions on every test run
/// (tools/fuzz/README.md).
@Suite struct FuzzRegressionTests {
    @Test func corpusAndRegressionsReplayWithoutCrashing() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let run = try await runTool("nanafuzz", [root.appendingPathComponent("tools/fuzz/corpus").path, root.appendingPathComponent("tools/fuzz/regressions").path])
        #expect(run.status == 0, "\(run.stderr)")
        let files = try ["tools/fuzz/corpus", "tools/fuzz/regressions"].reduce(0) { count, folder in
            count + (try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(folder).path).count)
        }
        #expect(files > 100)
        #expect(run.stdout.contains("replayed \(files) inputs"))
    }

    /// The second target (request sequences through the dispatcher, with databases): its seed
    /// corpus and every reproducer in tools/fuzz/regressions-dispatch replay with every
    /// invariant holding, each input in a fresh data folder.
    @Test func dispatcherCorpusAndRegressionsReplayWithInvariantsHolding() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folders = ["tools/fuzz/corpus-dispatch", "tools/fuzz/regressions-dispatch"]
        let run = try await runTool("nanafuzz-dispatch", folders.map { root.appendingPathComponent($0).path })
        #expect(run.status == 0, "\(run.stderr.suffix(8000))")
        let files = try folders.reduce(0) { count, folder in
            count + (try FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(folder).path).count)
        }
        #expect(files > 27)
        #expect(run.stdout.contains("replayed \(files) inputs"), "\(run.stdout)")
    }

    /// The committed seed corpus is what the generator writes (`nanafuzz-dispatch --write-seeds`).
    @Test func dispatcherSeedCorpusMatchesItsGenerator() async throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("nanafuzz-seeds-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = try await runTool("nanafuzz-dispatch", ["--write-seeds", scratch.path])
        #expect(run.status == 0, "\(run.stderr)")
        let written = try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted()
        #expect(written.count >= 27)
        for name in written {
            let committed = FileManager.default.contents(atPath: root.appendingPathComponent("tools/fuzz/corpus-dispatch/\(name)").path)
            #expect(committed == FileManager.default.contents(atPath: scratch.appendingPathComponent(name).path), "corpus-dispatch/\(name) differs from the generator's")
        }
    }
}

/// The soak in its short form: 1,000 connections of mixed calls for a few seconds, no error,
/// no lost connection, and the daemon's memory flat from the second interval on.
@Suite struct SoakTests {
    @Test func aThousandConnectionsOfMixedCallsWithoutErrors() async throws {
        let daemon = try await Daemon.start()
        defer { daemon.removeFolder() }
        let run = try await runTool("nanabench", ["soak", "--socket", daemon.socketPath, "--connections", "1000", "--seconds", "5", "--interval", "1"])
        #expect(run.status == 0, "\(run.stderr.prefix(2000))")
        #expect(run.stdout.contains("soak: 1000 connections"))
        #expect(run.stdout.contains(", 0 errors"))
        let rss = run.stdout.split(separator: "\n").compactMap { line -> Int? in
            guard let range = line.range(of: "daemon rss ") else { return nil }
            return Int(line[range.upperBound...].split(separator: " ").first ?? "")
        }
        #expect(rss.count >= 3, "\(run.stdout)")
        if let second = rss.dropFirst().first, let last = rss.last {
            #expect(last <= second * 3 / 2 + 8, "RSS grew from \(second) to \(last) MiB")
        }
        #expect(try await daemon.stop() == 0)
    }
}
