// Differential fuzz target: the WAL writer against the WAL reader. The input is parsed into
// records of mutations (a tiny grammar below, so every input means something), the records are
// encoded with `WALEncoder.append`, and `WALSegmentReader.scan` must read back exactly those
// records, every one of them, and end clean: decode(encode(x)) == x. Any difference traps.
//
// Grammar, byte by byte: a record starts with a count byte c (entries: c % 4; 0 is an empty
// batch, 1 a plain set/delete record, more a batch); each entry is an op byte (even: set, odd:
// delete), a key length byte k (k % 32), a value length byte v (v % 64, sets only), then that
// many key and value bytes, taken from the input (zero-filled when it runs out).
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    var input = ByteReader(bytes: UnsafeBufferPointer(start: data, count: size))
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
    for mutations in records {
        let before = segment.count
        WALEncoder.append(mutations, to: &segment)
        precondition(segment.count - before == WALEncoder.recordSize(of: mutations), "recordSize disagrees with append")
    }
    var decoded: [[WALMutation]] = []
    let result = segment.withUnsafeBytes { raw in
        WALSegmentReader.scan(raw) { (record: WALRecordView) in decoded.append(record.mutations) }
    }
    precondition(result == .clean(endOffset: segment.count), "encoded segment reads as \(result)")
    precondition(decoded == records, "decode(encode(x)) != x")
    return 0
}

/// Reads the input front to back; past its end every byte is zero.
struct ByteReader {
    let bytes: UnsafeBufferPointer<UInt8>
    var offset = 0

    var isAtEnd: Bool { offset >= bytes.count }

    mutating func byte() -> UInt8 {
        guard offset < bytes.count else { return 0 }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func bytes(_ count: Int) -> [UInt8] {
        (0..<count).map { _ in byte() }
    }
}
