// Fuzz target: percent-decoding of request paths and queries. Nil (a bad escape) is a normal
// outcome; a decoded result is never longer than its input.
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard let decoded = PercentDecoding.decode(UnsafeBufferPointer(start: data, count: size)) else { return 0 }
    precondition(decoded.count <= size, "decoded longer than the input")
    return 0
}
