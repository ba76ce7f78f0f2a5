// Fuzz target: the checkpoint reader (either version) over the input as a whole file: header,
// checksum, then every entry, as a loader does. A typed `CheckpointError` is a normal outcome;
// a trap, a crash or an ASan report is the finding. The entries are walked even when the
// checksum fails, so the entry parser sees the fuzzer's lengths, not only CRC-valid ones.
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let header = try? CheckpointReader.header(of: bytes, expectedGeneration: nil) else { return 0 }
    precondition(header.entriesStart <= header.entriesLimit && header.entriesLimit <= size, "header bounds outside the file")
    _ = try? CheckpointReader.verifyChecksum(of: bytes, header: header)
    var entryBytes = 0
    _ = try? CheckpointReader.forEachEntry(of: bytes, header: header) { key, value in
        entryBytes &+= key.count &+ value.count
    }
    return 0
}
