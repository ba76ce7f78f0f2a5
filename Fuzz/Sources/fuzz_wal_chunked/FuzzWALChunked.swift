// Differential fuzz target: `WALChunkedScan` with small chunks against `WALSegmentReader.scan`
// over the whole input. The chunked scan promises exactly the buffer reader's outcome (the same
// records at the same offsets, the same `WALScanResult`); any difference traps.
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var expected: [(offset: Int, payload: [UInt8])] = []
    let expectedResult = WALSegmentReader.scan(bytes) { (record: WALRecordView) in
        expected.append((record.offset, Array(record.payload)))
    }
    // Chunks smaller than a record header, odd sizes, and one larger than most inputs' records.
    for chunkSize in [1, 7, 64] {
        var records: [(offset: Int, payload: [UInt8])] = []
        let scan = WALChunkedScan.scan(chunkSize: chunkSize, read: { (offset: Int, maxBytes: Int) -> [UInt8] in
            precondition(offset >= 0 && maxBytes >= 0 && offset <= size, "read outside the segment")
            return Array(bytes[offset..<min(size, offset + maxBytes)])
        }) { (record: WALRecordView) in
            records.append((record.offset, Array(record.payload)))
        }
        precondition(scan.result == expectedResult, "chunk \(chunkSize): \(scan.result) != \(expectedResult)")
        precondition(records.count == expected.count, "chunk \(chunkSize): record counts differ")
        for (got, want) in zip(records, expected) {
            precondition(got.offset == want.offset && got.payload == want.payload, "chunk \(chunkSize): records differ")
        }
    }
    return 0
}
