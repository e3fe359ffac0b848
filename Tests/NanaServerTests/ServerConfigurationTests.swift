import Foundation
import Testing

@testable import NanaServer

@Suite struct ServerConfigurationTests {
    /// The `open` reply names the board socket to clients whose working folder may differ.
    @Test func theBoardSocketIsNamedByAnAbsolutePath() {
        let relative = ServerConfiguration(socketPath: "nanad-data/nanad.sock")
        #expect(relative.boardSocketPath == FileManager.default.currentDirectoryPath + "/nanad-data/nanad.sock.board")
        let absolute = ServerConfiguration(socketPath: "/run/nanad/nanad.sock")
        #expect(absolute.boardSocketPath == "/run/nanad/nanad.sock.board")
        #expect(absolute.boardDirectoryPath == "/run/nanad/nanad.sock.boards")
    }
}
