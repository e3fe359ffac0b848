import Foundation
import Hummingbird
import NanaClient
import NanaWire

/// The service's routes, over two tables of one nanad file: `notes` (text by key) and `hits`
/// (counters every copy increments atomically, in the daemon).
struct NotesStore: Sendable {
    let client: NanaClient
    let copy: String
    private let notes: LazyTable
    private let hits: LazyTable

    init(client: NanaClient, file: String, copy: String) {
        self.client = client
        self.copy = copy
        notes = LazyTable { try await client.open(file, table: "notes") }
        hits = LazyTable { try await client.open(file, table: "hits") }
    }

    struct Note: ResponseEncodable {
        let key: String
        let text: String
        let by: String
    }

    struct Count: ResponseEncodable {
        let name: String
        let count: Int64
        let by: String
    }

    struct Status: ResponseEncodable {
        let copy: String
        let connection: String
        let reconnects: Int
        let failedCalls: Int
        let daemonInstance: String
        let daemonPid: Int64
    }

    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: NanaErrorMiddleware())
        router.get("notes") { _, _ -> [String] in
            try await notes.table().keys().sorted()
        }
        router.get("notes/:key") { _, context -> Note in
            let key = try context.parameters.require("key")
            let stored = try await notes.table().get(key)
            guard let text = stored["text"]?.stringValue else { throw HTTPError(.notFound, message: "no note \(key)\n") }
            return Note(key: key, text: text, by: stored["by"]?.stringValue ?? "?")
        }
        router.put("notes/:key") { request, context -> Note in
            let key = try context.parameters.require("key")
            let body = try await request.body.collect(upTo: 64 * 1024)
            let text = String(buffer: body)
            try await notes.table().set(key, ["text": .string(text), "by": .string(copy)])
            return Note(key: key, text: text, by: copy)
        }
        router.delete("notes/:key") { _, context -> HTTPResponse.Status in
            let key = try context.parameters.require("key")
            let removed = try await notes.table().pop(key, default: .nil)
            return removed == .nil ? .notFound : .noContent
        }
        router.post("hits/:name") { _, context -> Count in
            let name = try context.parameters.require("name")
            let count = try await hits.table().increment(name, default: 0)
            return Count(name: name, count: count.int64Value ?? 0, by: copy)
        }
        router.get("status") { _, _ -> Status in
            let statistics = client.statistics
            let daemon = client.serverInfo
            return Status(copy: copy, connection: "\(client.connectionState)", reconnects: statistics.reconnects, failedCalls: statistics.failedCalls,
                          daemonInstance: daemon["instance"]?.stringValue ?? "", daemonPid: daemon["pid"]?.int64Value ?? 0)
        }
        return router
    }
}

/// nanad's errors as HTTP statuses: no connection within the deadline is 503 (try again), a
/// write whose outcome is unknown is 503 too but says so, a refused value is 400.
struct NanaErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as NanaClientError {
            throw HTTPError(.serviceUnavailable, message: "nanad: \(error)\n")
        } catch let error as NanaRemoteError {
            throw HTTPError(.badRequest, message: "nanad: \(error)\n")
        }
    }
}
