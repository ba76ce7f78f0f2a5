// Fuzz target: the replication state file decoder. A typed `ReplicationStateError` is a normal
// outcome. Also differential: a state it accepts encodes back to exactly the input bytes (the
// format has one encoding per state) and decodes to itself.
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let state = try? ReplicationStateCodec.decode(bytes) else { return 0 }
    let encoded = ReplicationStateCodec.encode(state)
    precondition(encoded.elementsEqual(bytes), "encode(decode(bytes)) != bytes")
    precondition((try? ReplicationStateCodec.decode(encoded)) == state, "decode(encode(state)) != state")
    return 0
}
