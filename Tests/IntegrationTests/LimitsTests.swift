import Foundation
import NanaClient
import NanaWire
import Testing

/// Limits and backpressure (issue #5): each abusive client is handled while a second client
/// keeps working, and the daemon's memory stays bounded.
@Suite(.serialized) struct LimitsTests {
    @Test func connectionsBeyondTheMaximumAreRefusedNotHung() async throws {
        let daemon = try await Daemon.start(arguments: ["--max-connections", "2"])
        defer { daemon.removeFolder() }
        let first = try await daemon.connect()
        let second = try await daemon.connect()
        do {
            let third = try await daemon.connect()
            await third.close()
            Issue.record("a third connection was served")
        } catch let error as NanaClientError {
            #expect(error.message.contains("too many connections"), "\(error)")
        }
        try await first.ping()
        await first.close()
        var admitted: NanaClient?
        for _ in 0..<100 where admitted == nil {
            admitted = try? await daemon.connect()
            if admitted == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        try await #require(admitted).ping()
        await admitted?.close()
        await second.close()
        try await daemon.stop()
    }

    @Test func aClientThatNeverReadsIsDisconnectedAndMemoryStaysBounded() async throws {
        let daemon = try await Daemon.start(arguments: ["--max-reply-buffer", "1048576"])
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        let db = try await client.open("slow.db")
        try await db.set("big", .string(String(repeating: "x", count: 200_000)))
        _ = try await db.get("big")

        let raw = try RawSocket(path: daemon.socketPath)
        let writer = MessagePackWriter()
        writer.writeRequest(msgid: 1, method: "hello", params: ["protocol": 1])
        raw.sendFrame(writer.bytes)
        writer.reset()
        writer.writeRequest(msgid: 2, method: "open", params: ["db_path": "slow.db"])
        raw.sendFrame(writer.bytes)
        // 400 replies of 200 kB (80 MB) requested, none read.
        for i in 0..<400 {
            writer.reset()
            writer.writeRequest(msgid: UInt32(10 + i), method: "get", params: ["db": 1, "key": "big"])
            raw.sendFrame(writer.bytes)
        }
        var disconnected = false
        for _ in 0..<100 where !disconnected {
            try await Task.sleep(for: .milliseconds(50))
            disconnected = daemon.logText.contains("does not read its replies")
        }
        #expect(disconnected)
        #expect(try await db.get("big") == .string(String(repeating: "x", count: 200_000)))  // others unaffected
        #expect(try residentMegabytes(daemon.process.processIdentifier) < 200)
        await client.close()
        try await daemon.stop()
    }

    @Test func a100000CallBurstIsServedWithBackpressureWhileAnotherClientKeepsWorking() async throws {
        let daemon = try await Daemon.start(arguments: ["--max-in-flight", "64"])
        defer { daemon.removeFolder() }
        let raw = try RawSocket(path: daemon.socketPath)
        let writer = MessagePackWriter()
        writer.writeRequest(msgid: 1, method: "hello", params: ["protocol": 1])
        raw.sendFrame(writer.bytes)
        writer.reset()
        writer.writeRequest(msgid: 2, method: "open", params: ["db_path": "burst.db"])
        raw.sendFrame(writer.bytes)
        _ = raw.readFrame()
        _ = raw.readFrame()

        // One thread writes 100,000 set calls without waiting; this task reads the replies.
        var frames: [UInt8] = []
        for i in 0..<100_000 {
            writer.reset()
            writer.writeRequest(msgid: UInt32(100 + i), method: "set", params: ["db": 1, "key": .string("k\(i % 1000)"), "value": .int(Int64(i))])
            let body = writer.bytes
            let n = UInt32(body.count)
            frames += [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)] + body
        }
        let payload = frames
        let sender = Thread { raw.send(payload) }
        sender.start()

        let other = try await daemon.connect()
        let db = try await other.open("other.db")
        let probe = Task {
            var slowest = Duration.zero
            for i in 0..<200 {
                let start = ContinuousClock.now
                try await db.set("p\(i)", .int(Int64(i)))
                slowest = max(slowest, ContinuousClock.now - start)
            }
            return slowest
        }
        let replies = await blocking {
            var ok = 0
            for _ in 0..<100_000 {
                guard let frame = raw.readFrame(), let value = try? MessagePackReader.decode(frame),
                      case .response(_, .success)? = try? NanaMessage(value) else { break }
                ok += 1
            }
            return ok
        }
        #expect(replies == 100_000)
        let slowest = try await probe.value
        #expect(slowest < .seconds(5), "the other client waited \(slowest)")
        #expect(try residentMegabytes(daemon.process.processIdentifier) < 200)
        await other.close()
        try await daemon.stop()
    }

    @Test func aCallPastTheRequestTimeoutIsAnsweredAndTheConnectionCarriesOn() async throws {
        let daemon = try await Daemon.start(arguments: ["--request-timeout", "0.1"])
        defer { daemon.removeFolder() }
        let client = try await daemon.connect()
        // On a loaded machine even an open can take longer than 0.1 s: try again until one fits.
        var opened: NanaDatabase?
        for _ in 0..<50 where opened == nil { opened = try? await client.open("timeout.db") }
        let db = try #require(opened)
        var big = NanaParams()
        for i in 0..<200_000 { big["key-\(i)"] = .int(Int64(i)) }
        await expectRemote(.lock) { try await db.batchUpdate(big) }
        try await client.ping()  // the connection carries on
        var count = 0
        for _ in 0..<200 where count != 200_000 {  // the write itself was not abandoned
            count = (try? await db.count()) ?? count
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(count == 200_000)
        await client.close()
        try await daemon.stop()
    }

    @Test func idleConnectionsAreClosed() async throws {
        let daemon = try await Daemon.start(arguments: ["--idle-timeout", "0.3"])
        defer { daemon.removeFolder() }
        let raw = try RawSocket(path: daemon.socketPath)
        let client = try await daemon.connect()
        for _ in 0..<8 {
            try await client.ping()  // active: stays open
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(await blocking { raw.isClosedByPeer() })  // idle for longer than 0.3 s
        try await client.ping()
        await client.close()
        try await daemon.stop()
    }
}

/// The resident set of a process, from /proc.
func residentMegabytes(_ pid: Int32) throws -> Int {
    let status = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
    guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
    else { throw HarnessError(description: "no VmRSS") }
    return kb / 1024
}
