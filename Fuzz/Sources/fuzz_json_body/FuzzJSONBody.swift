// Fuzz target: the JSON body decoder of PUT requests. A typed `JSONBodyError` is a normal outcome;
// a trap, a crash or an ASan report is the finding.
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    _ = try? PutRequestBodyDecoder.decode(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
