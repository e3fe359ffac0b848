import Foundation
import Logging
import NIOCore
import NanaServer
import NanaWire

// libFuzzer target over the request dispatcher with real databases (tools/fuzz/README.md).
//
// An input is the byte stream one client sends on one connection: frames (4-byte big-endian
// length, MessagePack body), as PROTOCOL.md §2.2 says. It goes through the pipeline nanad
// builds for a connection (ConnectionHandler, which splits frames itself) over a ServerState and a
// DatabaseRegistry on a scratch data folder, with SQLite underneath, on an EmbeddedChannel
// (FuzzConnection in NanaServer). The frames up to a notification `[2, "wait", {}]` (which the
// daemon ignores, §5.1) are handed over as one read, as a pipelining client's would be; at
// the notification the harness waits for every call in flight, so that inputs can use the
// handles their `open`s return.
//
// Checked for every input, beyond "no crash":
// - every frame the daemon wrote decodes (§3.4 limits included) and is a response
//   `[1, msgid, error, result]` with `error` nil or an error map `{type: str, message: str,
//   details?}` and `result` nil beside an error (§6.1), or the final error notification;
// - every request is answered exactly once, and only requests are answered; a protocol error
//   (§6.3) gets its error response or notification last and closes the connection, and
//   nothing else closes it;
// - no call is left waiting on storage longer than the hang limit, even after the client
//   hung up; the server's in-flight and connection counts come back to zero;
// - the daemon stays usable: a fresh connection answers `ping`, opens a database the inputs
//   never name and reads back the row stored there, and opens `fuzz.db` (the file the seeds
//   use) and `set`s a row in it (so no transaction may still hold its writer), with
//   well-formed replies.
//
// Between inputs the connection is closed (its transactions roll back). The data folder is
// reused and replaced with a fresh one every NANAFUZZ_RESET_EVERY inputs (default 500), or
// when more than 6 files are open; replaying files (plain build) starts every input afresh.

/// What a frame does to the connection, decided the way ConnectionHandler decides it.
enum FrameKind {
    /// A request: exactly one response is due.
    case request(UInt32, String)
    /// A notification: ignored by the daemon.
    case notification(String)
    /// A protocol error: an error response (when the msgid can be read) or notification, then
    /// the connection closes.
    case fatal(msgid: UInt32?)
}

/// How the daemon must end the connection, if it must.
enum Ending: Equatable {
    case open
    case errorResponse(UInt32)
    case errorNotification
}

struct HarnessSettings {
    /// Inputs between fresh data folders.
    var resetEvery = 500
    /// Most database files open before a fresh data folder.
    var maximumDatabases = 6
    /// What one input may take before the harness hangs up (then calls still running are
    /// waited for, up to `hangSeconds`).
    var softSeconds = 1.0
    /// A call still not answered this long after the input ended is a hang.
    var hangSeconds = 10.0
    /// Whether a call not answered within `softSeconds` fails the input (replaying: yes, so
    /// that a self-deadlock fixed once stays fixed) or is only reported (fuzzing).
    var slowFails = false
    var logging = false

    static func fromEnvironment(replaying: Bool) -> HarnessSettings {
        var s = HarnessSettings()
        let env = ProcessInfo.processInfo.environment
        if replaying {
            s.resetEvery = 1
            s.softSeconds = 5
            s.slowFails = true
        }
        if let n = env["NANAFUZZ_RESET_EVERY"].flatMap(Int.init), n > 0 { s.resetEvery = n }
        if let n = env["NANAFUZZ_SOFT_SECONDS"].flatMap(Double.init), n > 0 { s.softSeconds = n }
        if let n = env["NANAFUZZ_HANG_SECONDS"].flatMap(Double.init), n > 0 { s.hangSeconds = n }
        if let flag = env["NANAFUZZ_SLOW_FAILS"] { s.slowFails = flag == "1" }
        s.logging = env["NANAFUZZ_LOG"] != nil
        return s
    }
}

final class Harness {
    static let probePath = "probe-4b1d/p.db"
    static let fuzzPath = "fuzz.db"
    /// Largest frame body the fuzzed daemon accepts (small, so that the oversized path is
    /// reachable from small inputs).
    static let maximumFrameLength = 64 * 1024

    let settings: HarnessSettings
    let logger: Logger
    let root: String
    private var server: FuzzServer?
    private var generation = 0
    private var inputsSinceReset = 0
    private let reader = MessagePackReader()
    private let replyReader = MessagePackReader()
    private(set) var inputs = 0
    /// NANAFUZZ_CURRENT_INPUT: a file each input is written to before it runs.
    private let currentInputPath = ProcessInfo.processInfo.environment["NANAFUZZ_CURRENT_INPUT"]
    private(set) var slowInputs = 0

    init(settings: HarnessSettings) {
        self.settings = settings
        var logger = Logger(label: "nanafuzz-dispatch", factory: { label in
            settings.logging ? StreamLogHandler.standardError(label: label) as any LogHandler : SwiftLogNoOpLogHandler()
        })
        logger.logLevel = settings.logging ? Logger.Level.debug : Logger.Level.critical
        self.logger = logger
        let env = ProcessInfo.processInfo.environment
        let base = env["NANAFUZZ_DATA_DIR"] ?? (FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory())
        root = base + "/nanafuzz-dispatch-\(getpid())"
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Closes the databases and removes the scratch folder.
    func shutDown() {
        server?.close()
        server = nil
        try? FileManager.default.removeItem(atPath: root)
    }

    // MARK: One input

    func run(_ input: UnsafeRawBufferPointer) {
        inputs += 1
        if let path = currentInputPath {
            // For a crash libFuzzer cannot report (a fault on a storage thread's exhausted stack
            // kills the process before its handler runs): the input is on disk first.
            _ = FileManager.default.createFile(atPath: path, contents: Data(input))
        }
        let server = prepare()
        let connection: FuzzConnection
        do { connection = try server.connect() } catch { fail("cannot connect: \(error)", input) }
        var softDeadline = NIODeadline.now() + .nanoseconds(Int64(settings.softSeconds * 1e9))
        // A recursive query may run until the statement limit interrupts it, and such calls on
        // one file run one after another on its writer: each extends what the input may take.
        var runawayAllowance = TimeAmount.zero
        var expected: [UInt32: Int] = [:]
        var ending = Ending.open
        var offset = 0
        var waitedOut = false
        var methods: [UInt32: String] = [:]
        // Frames up to a "wait" go to the daemon as one read, as a pipelining client's do: it
        // dispatches all of them before any completion from storage is delivered.
        var segmentStart = 0
        var stop = false
        func feed(upTo end: Int, mustClose: Bool) {
            guard end > segmentStart else { return }
            let active = connection.receive(UnsafeRawBufferPointer(rebasing: input[segmentStart..<end]))
            segmentStart = end
            if mustClose && active { fail("the connection stayed open after a protocol error", input) }
            if !mustClose && !active { fail("the daemon closed the connection with no protocol error", input) }
        }
        while offset < input.count, !stop {
            let rest = input.count - offset
            let length = rest >= 4 ? Int(input[offset]) << 24 | Int(input[offset + 1]) << 16 | Int(input[offset + 2]) << 8 | Int(input[offset + 3]) : 0
            if rest >= 4 && length > Self.maximumFrameLength {
                ending = .errorNotification
                feed(upTo: input.count, mustClose: true)
                break
            }
            guard rest >= 4 + length else {
                // A partial frame: the daemon waits for the rest, which never comes.
                feed(upTo: input.count, mustClose: false)
                break
            }
            let body = UnsafeRawBufferPointer(rebasing: input[(offset + 4)..<(offset + 4 + length)])
            offset += 4 + length
            switch classify(body) {
            case .request(let msgid, let method):
                expected[msgid, default: 0] += 1
                methods[msgid] = method
                if Self.mayRunUntilInterrupted(body) {
                    softDeadline = softDeadline + Self.statementTimeLimit
                    runawayAllowance = runawayAllowance + Self.statementTimeLimit
                }
            case .notification(let method):
                if method == "wait" {
                    feed(upTo: offset, mustClose: false)
                    if !connection.settle(until: softDeadline) { waitedOut = true }
                }
            case .fatal(let msgid):
                ending = msgid.map(Ending.errorResponse) ?? .errorNotification
                // What follows in the same read is discarded by the daemon; nothing more is sent.
                feed(upTo: offset, mustClose: true)
                stop = true
            }
        }
        if !stop { feed(upTo: offset, mustClose: false) }
        let settled = connection.settle(until: softDeadline)
        let output = connection.takeOutput()
        if settings.logging {
            FileHandle.standardError.write(Data(("input:\n" + describeFrames(Array(input), limit: 5000) + "output:\n" + describeFrames(output, limit: 5000)).utf8))
        }
        if let problem = checkReplies(output, expected: &expected, ending: ending, closed: !connection.isActive, allAnswered: settled) {
            fail(problem, input, output: output)
        }
        connection.close()
        if !connection.settle(until: NIODeadline.now() + .nanoseconds(Int64(settings.hangSeconds * 1e9)) + runawayAllowance) {
            let unanswered = expected.filter { $0.value > 0 }.keys.sorted().map { "\($0) (\(methods[$0] ?? "?"))" }
            fail("hang: \(connection.pendingCalls) calls still not answered \(settings.hangSeconds) s after the input ended; unanswered msgids: \(unanswered.joined(separator: ", "))\n\(server.diagnostics)", input)
        }
        if !settled || waitedOut {
            slowInputs += 1
            let unanswered = expected.filter { $0.value > 0 }.keys.sorted().map { "\($0) (\(methods[$0] ?? "?"))" }
            let problem = "calls still waiting on storage \(settings.softSeconds) s into the input; unanswered then: \(unanswered.joined(separator: ", "))"
            if settings.slowFails { fail(problem, input) }
            if slowInputs <= 20 {
                // Kept like libFuzzer's artifacts, to replay (a slow input is not a crash, so
                // libFuzzer keeps nothing of it).
                let name = "slow-\(String(Array(input).reduce(UInt64(14_695_981_039_346_656_037)) { ($0 ^ UInt64($1)) &* 1_099_511_628_211 }, radix: 16))"
                _ = FileManager.default.createFile(atPath: name, contents: Data(input))
                FileHandle.standardError.write(Data("nanafuzz-dispatch: slow input (\(slowInputs), saved as \(name)): \(problem)\n\(describeFrames(Array(input), limit: 60))".utf8))
            }
        }
        if !connection.takeOutput().isEmpty { fail("the daemon wrote to a closed connection", input) }
        if server.callsInFlight != 0 { fail("the server counts \(server.callsInFlight) calls in flight after every call completed", input) }
        if server.connections != 0 { fail("the server counts \(server.connections) open connections after the input's closed", input) }
        probe(server, input)
    }

    /// Classifies one frame body exactly as `ConnectionHandler.handle` does.
    /// The daemon's limit on one call of clients' SQL here: below the hang limit, so that a
    /// runaway query is interrupted, not a hang; short, so that its mutations do not slow the
    /// fuzzer down.
    static let statementTimeLimit = TimeAmount.milliseconds(500)

    /// Whether a request may run until the statement limit interrupts it: the fuzzed files hold
    /// a few rows, so only a recursive query (`WITH RECURSIVE`, in any case) can run that long.
    static func mayRunUntilInterrupted(_ body: UnsafeRawBufferPointer) -> Bool {
        let word = Array("recursive".utf8)
        guard body.count >= word.count else { return false }
        outer: for start in 0...(body.count - word.count) {
            for (i, letter) in word.enumerated() where body[start + i] | 0x20 != letter { continue outer }
            return true
        }
        return false
    }

    func classify(_ body: UnsafeRawBufferPointer) -> FrameKind {
        let decoded: DecodedFrame
        do { decoded = try reader.decodeFrame(body) } catch {
            return .fatal(msgid: MessagePackReader.peekRequestID(body))
        }
        switch decoded {
        case .request(let msgid, let method, _): return .request(msgid, method)
        case .other(let value):
            let message: NanaMessage
            do { message = try NanaMessage(value) } catch {
                return .fatal(msgid: MessagePackReader.peekRequestID(body))
            }
            switch message {
            case .request(let msgid, let method, _): return .request(msgid, method)
            case .notification(let method, _): return .notification(method)
            case .response: return .fatal(msgid: nil)
            }
        }
    }

    // MARK: Replies

    /// The frames in `output`, or a problem.
    func frames(_ output: [UInt8]) -> Result<[[UInt8]], Problem> {
        var frames: [[UInt8]] = []
        var i = 0
        while i < output.count {
            guard output.count - i >= 4 else { return .failure(Problem("the output ends inside a frame's length")) }
            let length = Int(output[i]) << 24 | Int(output[i + 1]) << 16 | Int(output[i + 2]) << 8 | Int(output[i + 3])
            guard output.count - i - 4 >= length else { return .failure(Problem("the output ends inside a frame")) }
            frames.append(Array(output[(i + 4)..<(i + 4 + length)]))
            i += 4 + length
        }
        return .success(frames)
    }

    struct Problem: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// A reply frame: a response's msgid, error and result, or the error notification's error.
    enum Reply {
        case response(msgid: UInt32, error: NanaValue, result: NanaValue)
        case notification(error: NanaValue)
    }

    func reply(_ body: [UInt8]) -> Result<Reply, Problem> {
        let value: NanaValue
        do { value = try replyReader.decode(body) } catch {
            return .failure(Problem("a reply does not decode: \(error)"))
        }
        guard case .array(let items) = value, let kind = items.first else {
            return .failure(Problem("a reply is not an array: \(value.shortDescription)"))
        }
        switch kind {
        case .int(1):
            guard items.count == 4 else { return .failure(Problem("a response has \(items.count) elements")) }
            guard case .int(let id) = items[1], id >= 0, id <= Int64(UInt32.max) else {
                return .failure(Problem("a response's msgid is \(items[1].shortDescription)"))
            }
            if !items[2].isNil {
                if let problem = Self.checkErrorMap(items[2]) { return .failure(problem) }
                guard items[3].isNil else { return .failure(Problem("an error response has a result: \(items[3].shortDescription)")) }
            }
            return .success(.response(msgid: UInt32(id), error: items[2], result: items[3]))
        case .int(2):
            guard items.count == 3, items[1] == "error" else { return .failure(Problem("a notification other than the error one: \(value.shortDescription)")) }
            if let problem = Self.checkErrorMap(items[2]) { return .failure(problem) }
            return .success(.notification(error: items[2]))
        default:
            return .failure(Problem("a reply that is neither a response nor a notification: \(value.shortDescription)"))
        }
    }

    /// §6.1: `{"type": str, "message": str, "details": any}`, details optional, nothing else.
    static func checkErrorMap(_ value: NanaValue) -> Problem? {
        guard case .map(let m) = value else { return Problem("an error is not a map: \(value.shortDescription)") }
        guard case .string(let type)? = m["type"], !type.isEmpty else { return Problem("an error's type is not a non-empty str: \(value.shortDescription)") }
        guard case .string? = m["message"] else { return Problem("an error's message is not a str: \(value.shortDescription)") }
        if let other = m.keys.first(where: { $0 != "type" && $0 != "message" && $0 != "details" }) {
            return Problem("an error map has the key '\(other)'")
        }
        return nil
    }

    static func errorType(_ value: NanaValue) -> String? {
        value.mapValue?["type"]?.stringValue
    }

    func checkReplies(_ output: [UInt8], expected: inout [UInt32: Int], ending: Ending, closed: Bool, allAnswered: Bool) -> String? {
        let bodies: [[UInt8]]
        switch frames(output) {
        case .success(let f): bodies = f
        case .failure(let problem): return problem.description
        }
        var endingSeen = false
        for (index, body) in bodies.enumerated() {
            let last = index == bodies.count - 1
            switch reply(body) {
            case .failure(let problem): return problem.description
            case .success(.notification(let error)):
                guard last, ending == .errorNotification else { return "an error notification that is not the answer to a protocol error: \(error.shortDescription)" }
                guard Self.errorType(error) == "ProtocolError" else { return "the error notification is not a ProtocolError: \(error.shortDescription)" }
                endingSeen = true
            case .success(.response(let msgid, let error, _)):
                if last, ending == .errorResponse(msgid), Self.errorType(error) == "ProtocolError" {
                    endingSeen = true
                    continue
                }
                guard let due = expected[msgid], due > 0 else {
                    return "a response to msgid \(msgid), which no request still waiting has (error: \(error.shortDescription))"
                }
                expected[msgid] = due - 1
            }
        }
        switch ending {
        case .open:
            if closed { return "the daemon closed the connection with no protocol error" }
            if allAnswered, let (msgid, _) = expected.first(where: { $0.value > 0 }) {
                return "no response to msgid \(msgid), though no call is left waiting on storage"
            }
        case .errorResponse, .errorNotification:
            if !closed { return "the connection stayed open after a protocol error" }
            if !endingSeen { return "a protocol error was not answered last with its error (\(ending))" }
        }
        return nil
    }

    // MARK: The daemon stays usable

    static func request(_ msgid: UInt32, _ method: String, _ params: NanaParams) -> [UInt8] {
        let writer = MessagePackWriter()
        writer.writeRequest(msgid: msgid, method: method, params: params)
        let body = writer.bytes
        let n = UInt32(body.count)
        return [UInt8(n >> 24), UInt8(n >> 16 & 0xff), UInt8(n >> 8 & 0xff), UInt8(n & 0xff)] + body
    }

    /// Sends `requests` on `connection`, waits for their replies and returns them by msgid.
    private func call(_ connection: FuzzConnection, _ requests: [UInt8], _ input: UnsafeRawBufferPointer, _ what: String) -> [UInt32: (error: NanaValue, result: NanaValue)] {
        _ = requests.withUnsafeBytes { connection.receive($0) }
        guard connection.settle(until: NIODeadline.now() + .nanoseconds(Int64(settings.hangSeconds * 1e9))) else {
            fail("hang: the probe's \(what) was not answered within \(settings.hangSeconds) s\n\(server?.diagnostics ?? "")", input)
        }
        let output = connection.takeOutput()
        var replies: [UInt32: (error: NanaValue, result: NanaValue)] = [:]
        switch frames(output) {
        case .failure(let problem): fail("probe \(what): \(problem)", input, output: output)
        case .success(let bodies):
            for body in bodies {
                guard case .success(.response(let msgid, let error, let result)) = reply(body) else {
                    fail("probe \(what): a reply that is not a well-formed response", input, output: output)
                }
                replies[msgid] = (error, result)
            }
        }
        return replies
    }

    private func probe(_ server: FuzzServer, _ input: UnsafeRawBufferPointer) {
        let connection: FuzzConnection
        do { connection = try server.connect() } catch { fail("probe: cannot connect: \(error)", input) }
        let first = call(connection, Self.request(1, "ping", [:]) + Self.request(2, "open", ["db_path": .string(Self.probePath)])
                         + Self.request(3, "open", ["db_path": .string(Self.fuzzPath)]), input, "ping and opens")
        guard first[1]?.result == "pong" else { fail("probe: ping answered \(String(describing: first[1]))", input) }
        guard let opened = first[2], opened.error.isNil, case .int(let handle)? = opened.result.mapValue?["db"] else {
            fail("probe: open of \(Self.probePath) answered \(String(describing: first[2]))", input)
        }
        guard let fuzzOpened = first[3] else { fail("probe: no reply to the open of \(Self.fuzzPath)", input) }
        var gets = Self.request(4, "get", ["db": .int(handle), "key": "k"])
        if case .int(let fuzzHandle)? = fuzzOpened.result.mapValue?["db"] {
            // A write: it needs the file's writer, which no transaction may still hold.
            gets += Self.request(5, "set", ["db": .int(fuzzHandle), "key": "probe", "value": 1])
        }
        let second = call(connection, gets, input, "gets")
        guard second[4]?.result == "v" else { fail("probe: get from \(Self.probePath) answered \(String(describing: second[4]))", input) }
        if fuzzOpened.result.mapValue?["db"] != nil, second[5] == nil { fail("probe: no reply to the set in \(Self.fuzzPath)", input) }
        connection.close()
        if !connection.settle(until: NIODeadline.now() + .nanoseconds(Int64(settings.hangSeconds * 1e9))) {
            fail("hang: the probe's calls did not complete", input)
        }
    }

    // MARK: Data folders

    private func prepare() -> FuzzServer {
        if let server, inputsSinceReset < settings.resetEvery, server.openDatabases <= settings.maximumDatabases {
            inputsSinceReset += 1
            return server
        }
        server?.close()
        server = nil
        try? FileManager.default.removeItem(atPath: root)
        generation += 1
        inputsSinceReset = 1
        let folder = root + "/\(generation)"
        do {
            try FileManager.default.createDirectory(atPath: folder + "/" + (Self.probePath.split(separator: "/").first.map(String.init) ?? ""), withIntermediateDirectories: true)
            let fresh = try FuzzServer(dataDirectory: folder, logger: logger) { configuration in
                configuration.maximumFrameLength = Self.maximumFrameLength
                configuration.shutdownDrainSeconds = 5
                configuration.databaseOptions.readerCount = 1
                configuration.databaseOptions.statementTimeLimitMilliseconds = Self.statementTimeLimit.nanoseconds / 1_000_000
            }
            server = fresh
            // The probe's row.
            let connection = try fresh.connect()
            let opened = call(connection, Self.request(1, "open", ["db_path": .string(Self.probePath)]), UnsafeRawBufferPointer(start: nil, count: 0), "set-up open")
            guard case .int(let handle)? = opened[1]?.result.mapValue?["db"] else { fatalError("set-up: cannot open the probe database: \(String(describing: opened[1]))") }
            let stored = call(connection, Self.request(2, "set", ["db": .int(handle), "key": "k", "value": "v"]), UnsafeRawBufferPointer(start: nil, count: 0), "set-up set")
            guard stored[2]?.error.isNil == true else { fatalError("set-up: cannot store the probe row: \(String(describing: stored[2]))") }
            connection.close()
            _ = connection.settle(until: NIODeadline.now() + .seconds(10))
            return fresh
        } catch {
            fatalError("cannot set up a data folder in \(folder): \(error)")
        }
    }

    // MARK: Failing

    /// Reports an invariant that does not hold, with the input and output decoded, and stops
    /// the process (libFuzzer then saves the input).
    func fail(_ problem: String, _ input: UnsafeRawBufferPointer, output: [UInt8]? = nil) -> Never {
        var text = "nanafuzz-dispatch: invariant failed: \(problem)\ninput (\(input.count) bytes):\n"
        text += describeFrames(Array(input), limit: 40)
        if let output {
            text += "output (\(output.count) bytes):\n" + describeFrames(output, limit: 40)
        }
        FileHandle.standardError.write(Data(text.utf8))
        fatalError("nanafuzz-dispatch: \(problem)")
    }

    func describeFrames(_ bytes: [UInt8], limit: Int) -> String {
        var text = ""
        var i = 0, n = 0
        while i < bytes.count, n < limit {
            guard bytes.count - i >= 4 else { text += "  [\(bytes.count - i) trailing bytes]\n"; break }
            let length = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            guard bytes.count - i - 4 >= length else { text += "  [partial frame: length \(length), \(bytes.count - i - 4) bytes]\n"; break }
            let body = Array(bytes[(i + 4)..<(i + 4 + length)])
            let shown = (try? MessagePackReader.decode(body)).map(\.shortDescription) ?? "undecodable: \(body.prefix(64).map { String(format: "%02x", $0) }.joined())"
            text += "  \(shown)\n"
            i += 4 + length
            n += 1
        }
        return text
    }
}

extension NanaValue {
    /// The value's description, cut to a length that fits a report.
    var shortDescription: String {
        let text = description
        return text.count > 400 ? String(text.prefix(400)) + "…" : text
    }
}

// MARK: libFuzzer

nonisolated(unsafe) var harness: Harness?

/// One input. Exported as `LLVMFuzzerTestOneInput` only in the fuzzing build: the test
/// bundle links every executable's objects, and nanafuzz exports that symbol too.
func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if harness == nil {
        let made = Harness(settings: .fromEnvironment(replaying: false))
        harness = made
        atexit { harness?.shutDown() }
    }
    harness!.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

#if FUZZING
@_cdecl("LLVMFuzzerTestOneInput")
public func llvmFuzzerTestOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    fuzzOneInput(data, size)
}

// SwiftPM links an executable's entry point as `<target>_main`; hand control to libFuzzer's
// driver from there (libFuzzer's own `main` is then not linked in).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("nanafuzz_dispatch_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}
#endif
