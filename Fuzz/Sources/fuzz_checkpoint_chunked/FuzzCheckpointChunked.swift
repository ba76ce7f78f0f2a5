// Differential fuzz target: `CheckpointChunkedReader` with small chunks against `CheckpointReader`
// over the whole input. The chunked reader promises exactly the buffer reader's checks and errors
// (the same header, the same checksum verdict, the same entries, the same `CheckpointError`); any
// difference traps.
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let read: ByteWindow<any Error>.Read = { offset, maxBytes in
        precondition(offset >= 0 && maxBytes >= 0 && offset <= size, "read outside the file")
        return Array(bytes[offset..<min(size, offset + maxBytes)])
    }
    let expectedHeader = Result { () throws(CheckpointError) in
        try CheckpointReader.header(of: bytes, expectedGeneration: nil)
    }
    let chunkedHeader = Result { try CheckpointChunkedReader.header(fileSize: size, expectedGeneration: nil, read: read) }
    guard case .success(let header) = expectedHeader else {
        guard case .failure(let expected) = expectedHeader, case .failure(let found) = chunkedHeader,
              let found = found as? CheckpointError, found == expected
        else { preconditionFailure("header: \(chunkedHeader) != \(expectedHeader)") }
        return 0
    }
    guard case .success(let found) = chunkedHeader, found == header else {
        preconditionFailure("header: \(chunkedHeader) != \(expectedHeader)")
    }
    let expectedChecksum = Result { () throws(CheckpointError) in try CheckpointReader.verifyChecksum(of: bytes, header: header) }
    var expectedEntries: [[UInt8]] = []
    let expectedWalk = Result {
        try CheckpointReader.forEachEntry(of: bytes, header: header) { key, value in
            expectedEntries.append(Array(key))
            expectedEntries.append(Array(value))
        }
    }
    for chunkSize in [1, 7, 64] {
        let checksum = Result { try CheckpointChunkedReader.verifyChecksum(header: header, chunkSize: chunkSize, read: read) }
        precondition(sameOutcome(checksum, expectedChecksum.mapError { $0 as any Error }), "chunk \(chunkSize): checksum \(checksum) != \(expectedChecksum)")
        var entries: [[UInt8]] = []
        let walk = Result {
            try CheckpointChunkedReader.forEachEntry(header: header, chunkSize: chunkSize, read: read) { key, value in
                entries.append(Array(key))
                entries.append(Array(value))
            }
        }
        precondition(sameOutcome(walk, expectedWalk), "chunk \(chunkSize): entries \(walk) != \(expectedWalk)")
        precondition(entries == expectedEntries, "chunk \(chunkSize): entries differ")
    }
    return 0
}

/// Both succeeded, or both failed with the same `CheckpointError`.
func sameOutcome(_ a: Result<Void, any Error>, _ b: Result<Void, any Error>) -> Bool {
    switch (a, b) {
    case (.success, .success): true
    case (.failure(let x), .failure(let y)): (x as? CheckpointError).map { $0 == (y as? CheckpointError) } ?? false
    default: false
    }
}
