// Fuzz target: the WAL segment reader over the input as one whole segment. Every record it
// accepts has its entries walked (the view's `forEachEntry` trusts the validation done at decode).
// Damage is a normal outcome; a trap, a crash or an ASan report is the finding.
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var entryBytes = 0
    let result = WALSegmentReader.scan(bytes) { (record: WALRecordView) in
        record.forEachEntry { (_, key, value) in entryBytes &+= key.count &+ value.count }
    }
    precondition(result.validPrefixLength <= size, "the valid prefix ends past the segment")
    return 0
}
