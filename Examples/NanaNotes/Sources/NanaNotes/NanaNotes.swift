import ArgumentParser
import Hummingbird
import Logging
import NanaClient
import ServiceLifecycle

/// One copy of the notes service. Run several, on several ports, against one nanad: they share
/// every note and counter, and each carries on through nanad's restarts.
@main
struct NanaNotes: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "A small HTTP service that keeps its notes and counters in nanad.")

    @Option(help: "nanad's socket ($NANAD_SOCKET, else nanad's default).") var socket: String = NanaClient.defaultSocketPath
    @Option(help: "HTTP port on 127.0.0.1.") var port = 8080
    @Option(help: "This copy's name, in its replies and logs.") var name = "notes"
    @Option(help: "Database file inside nanad's data folder.") var db = "notes.db"

    func run() async throws {
        var logger = Logger(label: "nana-notes.\(name)")
        logger.logLevel = .info
        // The client first: a ServiceGroup shuts its services down in reverse order, so the
        // client closes after the HTTP server has finished its last requests.
        let client = NanaClient(configuration: NanaClientConfiguration(socketPath: socket, clientName: "nana-notes-\(name)", logger: logger))
        let store = NotesStore(client: client, file: db, copy: name)
        let app = Application(
            router: store.router(),
            configuration: .init(address: .hostname("127.0.0.1", port: port), serverName: "nana-notes"),
            logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: client), .init(service: app)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}
