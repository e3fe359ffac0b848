import ArgumentParser

/// The benchmark suite (filled in by Bench.swift).
struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the benchmark suite against a running nanad.")
    func run() async throws {
        print("not written yet")
    }
}
