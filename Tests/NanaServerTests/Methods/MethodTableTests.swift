import Foundation
import NanaWire
import Testing

@testable import NanaServer

/// The method table is the one source of the protocol's methods: these check that it is
/// consistent, and that the documents derived from it are up to date.
@Suite struct MethodTableTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func generatedBlock(in file: String) throws -> String? {
        let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
        guard let begin = text.range(of: "<!-- methods:begin -->\n"), let end = text.range(of: "\n<!-- methods:end -->") else { return nil }
        return String(text[begin.upperBound..<end.lowerBound])
    }

    @Test(arguments: ["proto/PROTOCOL.md", "docs/API.md"])
    func documentsHoldTheDeclaredTable(file: String) throws {
        // Run tools/method-docs.sh after changing MethodTable.swift.
        #expect(try Self.generatedBlock(in: file) == WireMethod.markdownTable)
    }

    @Test func everyDeclaredMethodHasItsSectionInTheProtocol() throws {
        let protocolText = try String(contentsOf: Self.root.appendingPathComponent("proto/PROTOCOL.md"), encoding: .utf8)
        for method in WireMethod.all {
            #expect(protocolText.contains("### \(method.section) ") || protocolText.contains("## \(method.section.prefix(1)). "), "\(method.name): no section \(method.section)")
            #expect(protocolText.contains("`\(method.name)`"), "\(method.name) is not named in PROTOCOL.md")
        }
    }

    @Test func namesAndParametersAreDeclaredOnce() {
        let names = WireMethod.all.map(\.name)
        #expect(Set(names).count == names.count, "a method is declared twice")
        for method in WireMethod.all {
            let accepted = method.parameters.flatMap { [$0.name] + $0.aliases }
            #expect(Set(accepted).count == accepted.count, "\(method.name) declares a parameter name twice")
            #expect(WireMethod.named(method.name) === method)
        }
        #expect(WireMethod.named("no_such_method") == nil)
    }

    @Test func everyMethodOnATableTakesItsHandleFirst() {
        // `open` and `close_file` name a file by its db_path instead.
        for method in WireMethod.all where method.access != .connection && method.parameters.first?.name != "db_path" {
            #expect(method.parameters.first?.name == "db", "\(method.name)")
        }
        #expect(WireMethod.all.filter { $0.parameters.first?.name == "db_path" }.map(\.name) == ["open", "close_file"])
    }

    @Test func readOnlyRulesAdmitOnlyTheClassesThatCannotWrite() {
        #expect(AccessClass.allCases.filter(\.admittedReadOnly) == [.connection, .handle, .read, .statement])
        let admitted = Set(WireMethod.all.filter { $0.access.admittedReadOnly }.map(\.name))
        // The methods the read-only hole of issue #14 went through are not among them.
        for writing in ["flush", "clear_dlq", "retry_dlq", "add_constraint", "drop_constraint", "restore", "vacuum", "set", "execute_many"] {
            #expect(!admitted.contains(writing), "\(writing)")
        }
    }

    // MARK: Arguments

    static func arguments(_ method: String, _ entries: [(String, NanaValue)]) -> Arguments {
        Arguments(method: method, params: NanaParamList(entries.map { (key: $0.0, value: $0.1) }))
    }

    @Test func anUndeclaredArgumentIsATypeError() throws {
        let get = try #require(WireMethod.named("get"))
        #expect(throws: NanaRemoteError.self) { try Self.arguments("get", [("db", 1), ("key", "k"), ("nope", 1)]).checked(against: get) }
        do {
            _ = try Self.arguments("get", [("db", 1), ("colour", "k")]).checked(against: get)
        } catch {
            #expect(error.type == .typeError)
            #expect(error.message == "get() got an unexpected keyword argument 'colour'")
        }
    }

    @Test func aliasesAreRenamedToTheDeclaredName() throws {
        let backup = try #require(WireMethod.named("backup"))
        let checked = try Self.arguments("backup", [("db", 1), ("target_path", "copy.db")]).checked(against: backup)
        #expect(checked.params["dest_path"] == "copy.db")
        #expect(checked.params["target_path"] == nil)
        let restore = try #require(WireMethod.named("restore"))
        #expect(try Self.arguments("restore", [("db", 1), ("source_path", "old.db")]).checked(against: restore).params["src_path"] == "old.db")
        // Both names at once is Python's "multiple values for argument".
        do {
            _ = try Self.arguments("backup", [("db", 1), ("dest_path", "a.db"), ("target_path", "b.db")]).checked(against: backup)
            Issue.record("both names were accepted")
        } catch {
            #expect(error.type == .typeError)
            #expect(error.message.contains("multiple values for argument 'dest_path'"))
        }
    }

    // MARK: Configuration

    @Test func aDenyListNamingNoMethodIsRefused() throws {
        let good = try JSONDecoder().decode(AccessRule.self, from: Data(#"{"deny_methods": ["restore", "execute"]}"#.utf8))
        #expect(good.deniedMethods == ["restore", "execute"])
        #expect(throws: DecodingError.self) {
            _ = try JSONDecoder().decode(AccessRule.self, from: Data(#"{"deny_methods": ["restor"]}"#.utf8))
        }
    }
}
