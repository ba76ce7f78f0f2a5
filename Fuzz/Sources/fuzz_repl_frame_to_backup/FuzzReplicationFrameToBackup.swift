// Fuzz target: the replication frame decoder as a backup's connection runs it: limited to
// `ReplicationProtocol.maxPayloadSizeBeforeWelcome` until a welcome arrives, then to
// `ReplicationProtocol.maxPayloadSize`. Drained until nil or the first error; a typed
// `ReplicationFrameError` is a normal outcome. Also differential: every frame it returns, encoded
// again by `ReplicationFrameEncoder`, decodes to the same frame.
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var decoder = ReplicationFrameDecoder(maxPayloadSize: ReplicationProtocol.maxPayloadSizeBeforeWelcome)
    decoder.append(UnsafeRawBufferPointer(start: data, count: size))
    while let frame = try? decoder.nextFrame() {
        if case .welcome = frame { decoder.maxPayloadSize = ReplicationProtocol.maxPayloadSize }
        var again = ReplicationFrameDecoder()
        again.append(ReplicationFrameEncoder.encode(frame))
        let decoded = try? again.nextFrame()
        precondition(decoded == frame, "decode(encode(frame)) != frame: \(frame)")
    }
    return 0
}
