// Differential fuzz target: the WAL writer (`WALEncoder`: `append`, and the three-step builder the
// engine's group committer encodes with) against both readers (`WALSegmentReader.scan` over the
// whole segment and `WALChunkedScan` in chunks), in both directions. Any difference traps.
//
// The first input byte chooses the direction (bit 0), the rest is its input:
//
// - Forward (bit 0 clear): the input is parsed into records of mutations (a tiny grammar below,
//   so every input means something), each record is encoded twice, with `WALEncoder.append` and
//   with `beginRecord`/`appendEntry`/`finishRecord`, which must give the same bytes, of exactly
//   `recordSize`; then both readers must read back exactly those records, at their offsets, every
//   one of them, and end clean: decode(encode(x)) == x.
//   Grammar: a chunk size byte s (1 + s % 64), then records until the input ends: a count byte c
//   (entries: c % 4; 0 is an empty batch, 1 a plain set/delete record, more a batch); each entry
//   is an op byte (even: set, odd: delete), a key length byte k (k % 32), a value length byte v
//   (v % 64, sets only), then that many key and value bytes, taken from the input (zero-filled
//   when it runs out).
// - Reverse (bit 0 set): the rest of the input is a segment; with bit 1 set, every record's CRC
//   is first replaced by the right one, following the length fields from byte 0 while they fit
//   (so the fuzzer reaches checksum-valid payloads of every shape). Both readers must agree (the
//   same records, the same result), the accepted records must lie end to end from byte 0 to the
//   end of the valid prefix, and re-encoding each accepted record's mutations must give its bytes
//   back. One accepted record is not what the encoder writes (docs/FORMAT.md, "What a reader
//   accepts"): a batch of one entry, which the encoder always writes as a plain record; its bytes
//   must be that plain record's payload behind a batch header (op 3, count 1). What follows the
//   valid prefix (a torn tail, or the damage and what follows it) is not a record and is not
//   re-encoded.
import FuzzSupport
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    guard size > 0 else { return 0 }
    let mode = data[0]
    let rest = UnsafeBufferPointer(start: data + 1, count: size - 1)
    if mode & 1 == 0 {
        forward(ByteReader(bytes: rest))
    } else {
        var segment = Array(rest)
        if mode & 2 != 0 { fixChecksums(&segment) }
        reverse(segment, chunkSize: 1 + Int(mode >> 2))
    }
    return 0
}

/// What a reader returned for one record.
struct ReadRecord: Equatable {
    var offset: Int
    var isBatch: Bool
    var mutations: [WALMutation]
}

/// Encodes the records the input describes, both ways, and reads them back with both readers.
func forward(_ input: ByteReader) {
    var input = input
    let chunkSize = 1 + Int(input.byte() % 64)
    var records: [[WALMutation]] = []
    while !input.isAtEnd {
        let count = Int(input.byte() % 4)
        var mutations: [WALMutation] = []
        for _ in 0..<count {
            let isSet = input.byte() % 2 == 0
            let keyLength = Int(input.byte() % 32)
            if isSet {
                let valueLength = Int(input.byte() % 64)
                mutations.append(.set(key: input.bytes(keyLength), value: input.bytes(valueLength)))
            } else {
                mutations.append(.delete(key: input.bytes(keyLength)))
            }
        }
        records.append(mutations)
    }
    var segment: [UInt8] = []
    var expected: [ReadRecord] = []
    for mutations in records {
        let before = segment.count
        WALEncoder.append(mutations, to: &segment)
        precondition(segment.count - before == WALEncoder.recordSize(of: mutations), "recordSize disagrees with append")
        precondition(Array(segment[before...]) == buildRecord(mutations), "the builder and append disagree")
        expected.append(ReadRecord(offset: before, isBatch: mutations.count != 1, mutations: mutations))
    }
    let (result, decoded) = readWhole(segment)
    precondition(result == .clean(endOffset: segment.count), "encoded segment reads as \(result)")
    precondition(decoded == expected, "decode(encode(x)) != x")
    for size in [chunkSize, 4096] {
        let (chunkedResult, chunked) = readChunked(segment, chunkSize: size)
        precondition(chunkedResult == result, "chunk \(size): encoded segment reads as \(chunkedResult)")
        precondition(chunked == expected, "chunk \(size): decode(encode(x)) != x")
    }
}

/// Both readers agree on a segment, and every record they accept re-encodes to its own bytes.
func reverse(_ segment: [UInt8], chunkSize: Int) {
    let (result, records) = readWhole(segment)
    let (chunkedResult, chunked) = readChunked(segment, chunkSize: chunkSize)
    precondition(chunkedResult == result, "chunk \(chunkSize): \(chunkedResult) != \(result)")
    precondition(chunked == records, "chunk \(chunkSize): the readers' records differ")
    var offset = 0
    for record in records {
        precondition(record.offset == offset, "record at \(record.offset), the previous one ended at \(offset)")
        let original = segment[record.offset...]
        if record.isBatch && record.mutations.count == 1 {
            // Accepted, not canonical: the encoder writes one mutation as a plain record.
            let plain = buildRecord(record.mutations)
            let plainPayload = plain[WALFormat.headerSize..<(plain.count - WALFormat.trailerSize)]
            let payloadStart = record.offset + WALFormat.headerSize
            let batchHeader: [UInt8] = [WALOpcode.batch.rawValue, 1, 0, 0, 0]
            precondition(segment[payloadStart..<(payloadStart + 5)].elementsEqual(batchHeader), "batch of one: its header")
            precondition(segment[(payloadStart + 5)...].starts(with: plainPayload), "batch of one: not the plain record's payload")
            offset += WALFormat.headerSize + WALFormat.batchHeaderSize + plainPayload.count + WALFormat.trailerSize
        } else {
            let encoded = buildRecord(record.mutations)
            precondition(original.starts(with: encoded), "an accepted record is not what the encoder writes for its mutations")
            var appended: [UInt8] = []
            WALEncoder.append(record.mutations, to: &appended)
            precondition(appended == encoded, "the builder and append disagree")
            offset += encoded.count
        }
    }
    precondition(offset == result.validPrefixLength, "the records end at \(offset), the valid prefix at \(result.validPrefixLength)")
}

/// One record through the three-step builder, as the engine's group committer encodes a write.
func buildRecord(_ mutations: [WALMutation]) -> [UInt8] {
    var buffer: [UInt8] = []
    let start = WALEncoder.beginRecord(in: &buffer, entryCount: mutations.count)
    for mutation in mutations {
        switch mutation {
        case .set(let key, let value):
            key.withUnsafeBytes { key in
                value.withUnsafeBytes { value in WALEncoder.appendEntry(.set, key: key, value: value, to: &buffer) }
            }
        case .delete(let key):
            key.withUnsafeBytes { key in
                WALEncoder.appendEntry(.delete, key: key, value: UnsafeRawBufferPointer(start: nil, count: 0), to: &buffer)
            }
        }
    }
    WALEncoder.finishRecord(startingAt: start, in: &buffer)
    return buffer
}

func readWhole(_ segment: [UInt8]) -> (WALScanResult, [ReadRecord]) {
    var records: [ReadRecord] = []
    let result = segment.withUnsafeBytes { raw in
        WALSegmentReader.scan(raw) { (record: WALRecordView) in
            records.append(ReadRecord(offset: record.offset, isBatch: record.isBatch, mutations: record.mutations))
        }
    }
    return (result, records)
}

func readChunked(_ segment: [UInt8], chunkSize: Int) -> (WALScanResult, [ReadRecord]) {
    var records: [ReadRecord] = []
    let scan = WALChunkedScan.scan(chunkSize: chunkSize, read: { (offset: Int, maxBytes: Int) -> [UInt8] in
        precondition(offset >= 0 && maxBytes >= 0 && offset <= segment.count, "read outside the segment")
        return Array(segment[offset..<min(segment.count, offset + maxBytes)])
    }) { (record: WALRecordView) in
        records.append(ReadRecord(offset: record.offset, isBatch: record.isBatch, mutations: record.mutations))
    }
    precondition(scan.fileSize == segment.count, "chunk \(chunkSize): file size \(scan.fileSize) != \(segment.count)")
    return (scan.result, records)
}

/// Replaces each record's stored CRC by the right one, following the length fields from byte 0
/// while a whole record fits.
func fixChecksums(_ segment: inout [UInt8]) {
    var offset = 0
    while segment.count - offset >= WALFormat.headerSize + WALFormat.trailerSize {
        let length = segment.withUnsafeBytes { Int($0.loadLittleEndianUInt32(at: offset)) }
        guard length > 0, length <= segment.count - offset - WALFormat.headerSize - WALFormat.trailerSize else { return }
        let payloadStart = offset + WALFormat.headerSize
        let crc = CRC32.checksum(Array(segment[payloadStart..<(payloadStart + length)]))
        segment.storeLittleEndian(crc, at: payloadStart + length)
        offset = payloadStart + length + WALFormat.trailerSize
    }
}
