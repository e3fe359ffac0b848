import NanaWire

// libFuzzer target over the frame decoder's MessagePack path: the bounds pre-check, msgpack-c's
// decoder and the conversion to values, then message classification and re-encoding. Built with
// `-sanitize=fuzzer` (see tools/fuzz/README.md); without it, `nanafuzz FILE…` replays inputs
// (the corpus or crash reproducers) through the same function.
// libFuzzer calls the target from one thread, so one reader (and its zone) is reused.
nonisolated(unsafe) let reader = MessagePackReader()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    if let frame = try? reader.decodeFrame(bytes) {
        switch frame {
        case .request(_, _, let params):
            for entry in params.entries { _ = MessagePackWriter.encode(entry.value) }
        case .other(let value):
            _ = try? NanaMessage(value)
            let encoded = MessagePackWriter.encode(value)
            // What the encoder writes, the decoder must read back to the same value.
            if let again = try? MessagePackReader.decode(encoded), again != value, !containsNaN(value) {
                fatalError("round trip changed a value")
            }
        }
    }
    _ = MessagePackReader.peekRequestID(bytes)
    return 0
}

private func containsNaN(_ value: NanaValue) -> Bool {
    switch value {
    case .double(let d): d.isNaN
    case .array(let items): items.contains(where: containsNaN)
    case .map(let entries): entries.values.contains(where: containsNaN)
    default: false
    }
}

#if FUZZING
// SwiftPM links an executable's entry point as `<target>_main`; hand control to libFuzzer's
// driver from there (libFuzzer's own `main` is then not linked in).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("nanafuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments) { data, size in fuzzOneInput(data, size) }
}
#endif
