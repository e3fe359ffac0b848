#if !FUZZING
import Foundation

/// Without libFuzzer: replay the files named on the command line (or every file in the folders
/// named) through the fuzz target, each in a fresh data folder, so that the corpus and crash
/// reproducers stay regression tests. `--write-seeds FOLDER` writes the seed corpus instead.
@main
struct Replay {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "--write-seeds" {
            guard arguments.count == 2 else {
                FileHandle.standardError.write(Data("usage: nanafuzz-dispatch --write-seeds FOLDER\n".utf8))
                exit(2)
            }
            do {
                let count = try Seeds.write(to: arguments[1])
                print("wrote \(count) seeds to \(arguments[1])")
            } catch {
                FileHandle.standardError.write(Data("cannot write seeds: \(error)\n".utf8))
                exit(1)
            }
            return
        }
        let replaying = Harness(settings: .fromEnvironment(replaying: true))
        harness = replaying
        var count = 0
        for path in arguments {
            var isFolder: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isFolder)
            let files = isFolder.boolValue
                ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map { path + "/" + $0 }
                : [path]
            for file in files {
                guard let data = FileManager.default.contents(atPath: file) else { continue }
                let bytes = [UInt8](data)
                if ProcessInfo.processInfo.environment["NANAFUZZ_LOG"] != nil {
                    FileHandle.standardError.write(Data("replaying \(file)\n".utf8))
                }
                _ = bytes.withUnsafeBufferPointer { fuzzOneInput($0.baseAddress ?? UnsafePointer(bitPattern: 1)!, $0.count) }
                count += 1
            }
        }
        replaying.shutDown()
        print("replayed \(count) inputs (\(replaying.slowInputs) slower than \(replaying.settings.softSeconds) s)")
    }
}
#endif
