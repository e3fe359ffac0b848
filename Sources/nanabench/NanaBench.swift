import ArgumentParser

@main
struct NanaBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nanabench",
        abstract: "Measures nanad, and drives load from separate processes.",
        subcommands: [Run.self, Worker.self, ManyFiles.self, HoldTransaction.self, Crash.self, CrashWorker.self, Soak.self, NearReader.self, Coherence.self, NearHostile.self, NearMix.self, Outages.self, ReplicationLag.self],
        defaultSubcommand: Run.self
    )
}
