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
}
