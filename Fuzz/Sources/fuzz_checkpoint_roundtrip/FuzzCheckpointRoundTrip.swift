// Differential fuzz target: the checkpoint writer (`CheckpointWriter`, what the engine's
// checkpointer streams to disk) against both readers (`CheckpointReader` over the whole file and
// `CheckpointChunkedReader` in chunks), in both directions. Any difference traps.
//
// The first input byte chooses the direction (bit 0), the rest is its input:
//
// - Forward (bit 0 clear): the input is parsed into a checkpoint (a tiny grammar below, so every
//   input means something), encoded with `CheckpointWriter`, flushed with `takeBuffered` at points
//   the input chooses, as the checkpointer does, and decoded by both readers with several chunk
//   sizes: decode(encode(x)) == x (generation, count, every entry in order), the file's size is
//   the format's, and a wrong expected generation is refused.
//   Grammar: a chunk size byte c (1 + c % 64), a generation selector g (0: 0, 1: UInt64.max,
//   2: the next 8 bytes, else g), a flush byte f (flush whenever 8 × f bytes are buffered; 0: after
//   every entry), then entries until the input ends: a key length byte, a value length byte (see
//   `length(_:)`: small lengths, and the edges 0, 1, 8, 255, 256, 1023…1025, 4095…4097, 16 KiB),
//   then that many key and value bytes, taken from the input (zero-filled when it runs out).
//   Keys may repeat and may be empty: the writer writes what it is given, and so must the readers.
//   The same entries, sorted with each key once and given revisions, are then written as version 3
//   and read back, revisions included (`forwardRevised`).
// - Reverse (bit 0 set): the rest of the input is a checkpoint file; with bit 1 set, its last 4
//   bytes are first replaced by the CRC of the bytes before them (so the fuzzer reaches files
//   whose checksum holds). If the whole-file reader accepts it (header, CRC, every entry), the
//   chunked reader must accept it with the same entries, and re-encoding the entries must give the
//   file back: for versions 2 and 3 (with its revisions, through both readers), `CheckpointWriter`
//   reproduces the accepted bytes exactly (the format
//   has one encoding per checkpoint). Accepted but not canonical, and so checked differently (see
//   docs/FORMAT.md, "What a reader accepts"): a version 1 (Go) file, which this project never
//   writes. Its entries must be exactly the bytes the writer lays out for them, contiguous from
//   byte 24; what follows its last entry is ignored, as the Go reader ignores it.
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
        var file = Array(rest)
        if mode & 2 != 0 && file.count >= 4 {
            let crc = CRC32.checksum(Array(file[..<(file.count - 4)]))
            file.storeLittleEndian(crc, at: file.count - 4)
        }
        reverse(file, chunkSize: 1 + Int(mode >> 2))
    }
    return 0
}

typealias Entry = (key: [UInt8], value: [UInt8])

/// Encodes the checkpoint the input describes and reads it back with both readers.
func forward(_ input: ByteReader) {
    var input = input
    let chunkSize = 1 + Int(input.byte() % 64)
    let generation: UInt64 =
        switch input.byte() {
        case 0: 0
        case 1: .max
        case 2: input.uint64()
        case let g: UInt64(g)
        }
    let flushEvery = 8 * Int(input.byte())
    var entries: [Entry] = []
    var entryBytes = 0
    // Bounded, so a few large entries keep an execution in milliseconds.
    while !input.isAtEnd && entryBytes < 64 << 10 {
        let keyLength = length(input.byte())
        let valueLength = length(input.byte())
        let entry = (key: input.bytes(keyLength), value: input.bytes(valueLength))
        entries.append(entry)
        entryBytes += keyLength + valueLength
    }

    var writer = CheckpointWriter(generation: generation, entryCount: UInt64(entries.count), layout: .unrevised, bufferCapacity: 64)
    var file: [UInt8] = []
    for entry in entries {
        entry.key.withUnsafeBytes { key in
            entry.value.withUnsafeBytes { value in writer.append(key: key, value: value) }
        }
        if writer.bufferedCount >= flushEvery { file += writer.takeBuffered() }
    }
    file += writer.finish()
    precondition(writer.bufferedCount == 0, "finish left bytes buffered")
    let expectedSize = 8 + 4 + 8 + 8 + entries.reduce(0) { $0 + 8 + $1.key.count + $1.value.count } + 4
    precondition(file.count == expectedSize, "encoded \(file.count) bytes, the format says \(expectedSize)")

    let decoded: (header: CheckpointHeader, entries: [Entry])
    do {
        decoded = try CheckpointReader.readAll(file, expectedGeneration: generation)
    } catch {
        preconditionFailure("the reader refuses what the writer wrote: \(error)")
    }
    precondition(decoded.header.version == CheckpointFormat.unrevisedVersion, "version \(decoded.header.version)")
    precondition(decoded.header.generation == generation, "generation \(decoded.header.generation) != \(generation)")
    precondition(decoded.header.entryCount == UInt64(entries.count), "count \(decoded.header.entryCount) != \(entries.count)")
    precondition(same(decoded.entries, entries), "decode(encode(x)) != x")
    let wrongGeneration = generation &+ 1
    let wrong = file.withUnsafeBytes { raw in
        Result { () throws(CheckpointError) in try CheckpointReader.header(of: raw, expectedGeneration: wrongGeneration) }
    }
    guard case .failure(.generationMismatch(expected: wrongGeneration, found: generation)) = wrong else {
        preconditionFailure("a wrong expected generation: \(wrong)")
    }
    // A small chunk, one larger than most entries, one larger than the file. For a large file the
    // small one is scaled up (64 bytes to 4 KiB; each chunk is a read and a copy).
    let small = file.count <= 16 << 10 ? chunkSize : chunkSize << 6
    for size in [small, 4096, file.count + 1] {
        let chunked = readChunked(file, chunkSize: size)
        guard case .success(let chunked) = chunked else {
            preconditionFailure("chunk \(size): the chunked reader refuses what the writer wrote: \(chunked)")
        }
        precondition(chunked.header == decoded.header, "chunk \(size): header \(chunked.header) != \(decoded.header)")
        precondition(same(chunked.entries, entries), "chunk \(size): decode(encode(x)) != x")
    }
    forwardRevised(entries, generation: generation, chunkSize: small, flushEvery: flushEvery)
}

/// Version 3, what the engine writes: the same entries sorted by key with each key once (the last
/// of a repeated key, as recovery keeps it), with revisions derived from their positions, written
/// and read back by both readers with their revisions.
func forwardRevised(_ entries: [Entry], generation: UInt64, chunkSize: Int, flushEvery: Int) {
    var unique: [Entry] = []
    for entry in entries.enumerated().sorted(by: { left, right in
        left.element.key == right.element.key ? left.offset < right.offset : left.element.key.lexicographicallyPrecedes(right.element.key)
    }).map(\.element) {
        if unique.last?.key == entry.key { unique[unique.count - 1] = entry } else { unique.append(entry) }
    }
    let revisions = unique.indices.map { index in
        CheckpointRevisions(create: 1 + UInt64(index % 5), mod: 1 + UInt64(index % 5) + UInt64(index % 3))
    }
    let storeRevision: UInt64 = 8
    var writer = CheckpointWriter(generation: generation, entryCount: UInt64(unique.count), revision: storeRevision, bufferCapacity: 64)
    var file: [UInt8] = []
    for (entry, revision) in zip(unique, revisions) {
        entry.key.withUnsafeBytes { key in
            entry.value.withUnsafeBytes { value in writer.append(key: key, value: value, revisions: revision) }
        }
        if writer.bufferedCount >= flushEvery { file += writer.takeBuffered() }
    }
    file += writer.finish()
    let expectedSize = 8 + 4 + 8 + 8 + 8 + unique.reduce(0) { $0 + 24 + $1.key.count + $1.value.count } + 4
    precondition(file.count == expectedSize, "version 3: encoded \(file.count) bytes, the format says \(expectedSize)")
    guard case .success(let whole) = readWithRevisions(file), whole.header.version == CheckpointFormat.currentVersion,
          whole.header.revision == storeRevision, same(whole.entries.map(\.entry), unique), whole.entries.map(\.revisions) == revisions
    else { preconditionFailure("version 3: the reader does not read back what the writer wrote: \(readWithRevisions(file))") }
    for size in [chunkSize, 4096, file.count + 1] {
        guard case .success(let chunked) = readChunkedWithRevisions(file, chunkSize: size), chunked.header == whole.header,
              same(chunked.entries.map(\.entry), unique), chunked.entries.map(\.revisions) == revisions
        else { preconditionFailure("version 3, chunk \(size): the chunked reader does not read back what the writer wrote") }
    }
}

typealias RevisedEntry = (entry: Entry, revisions: CheckpointRevisions)

/// Header, checksum and every entry with its revisions, through `CheckpointReader`.
func readWithRevisions(_ file: [UInt8]) -> Result<(header: CheckpointHeader, entries: [RevisedEntry]), any Error> {
    Result {
        try file.withUnsafeBytes { raw in
            let header = try CheckpointReader.header(of: raw, expectedGeneration: nil)
            try CheckpointReader.verifyChecksum(of: raw, header: header)
            var entries: [RevisedEntry] = []
            try CheckpointReader.forEachEntryWithRevisions(of: raw, header: header) { key, value, revisions in
                entries.append(((Array(key), Array(value)), revisions))
            }
            return (header, entries)
        }
    }
}

/// The same through `CheckpointChunkedReader`.
func readChunkedWithRevisions(_ file: [UInt8], chunkSize: Int) -> Result<(header: CheckpointHeader, entries: [RevisedEntry]), any Error> {
    let read: ByteWindow<any Error>.Read = { offset, maxBytes in
        precondition(offset >= 0 && maxBytes >= 0 && offset <= file.count, "read outside the file")
        return Array(file[offset..<min(file.count, offset + maxBytes)])
    }
    return Result {
        let header = try CheckpointChunkedReader.header(fileSize: file.count, expectedGeneration: nil, read: read)
        try CheckpointChunkedReader.verifyChecksum(header: header, chunkSize: chunkSize, read: read)
        var entries: [RevisedEntry] = []
        try CheckpointChunkedReader.forEachEntryWithRevisions(header: header, chunkSize: chunkSize, read: read) { key, value, revisions in
            entries.append(((Array(key), Array(value)), revisions))
        }
        return (header, entries)
    }
}

/// A file the whole-file reader accepts is accepted by the chunked reader with the same entries,
/// and is what the writer writes for those entries (see the file's comment for version 1).
func reverse(_ file: [UInt8], chunkSize: Int) {
    guard let accepted = try? CheckpointReader.readAll(file) else { return }
    let chunked = readChunked(file, chunkSize: chunkSize)
    guard case .success(let chunked) = chunked else {
        preconditionFailure("the whole-file reader accepts what the chunked reader refuses: \(chunked)")
    }
    precondition(chunked.header == accepted.header && same(chunked.entries, accepted.entries), "the readers disagree")
    precondition(accepted.header.entryCount == UInt64(accepted.entries.count), "count != entries read")

    var writer = CheckpointWriter(
        generation: accepted.header.generation, entryCount: UInt64(accepted.entries.count), layout: .unrevised, bufferCapacity: 64)
    var encoded: [UInt8] = []
    for entry in accepted.entries {
        entry.key.withUnsafeBytes { key in
            entry.value.withUnsafeBytes { value in writer.append(key: key, value: value) }
        }
    }
    encoded += writer.finish()
    switch accepted.header.version {
    case CheckpointFormat.unrevisedVersion:
        precondition(encoded == file, "an accepted version 2 file is not what the writer writes for its entries")
    case CheckpointFormat.goVersion:
        // Version 1: magic, version, generation, a u32 count, then the entries as version 2 lays
        // them out (version 2's entries sit between a 28-byte header and the 4-byte CRC).
        let entriesLength = encoded.count - 28 - 4
        precondition(file.count >= 24 + entriesLength, "version 1 entries run past the file")
        precondition(file[24..<(24 + entriesLength)].elementsEqual(encoded[28..<(28 + entriesLength)]),
                     "version 1 entries are not the writer's layout of them")
        precondition(file.withUnsafeBytes { $0.loadLittleEndianUInt32(at: 20) } == UInt32(accepted.entries.count),
                     "version 1 count")
        // The re-encoded (version 2) file holds the same checkpoint.
        guard let reread = try? CheckpointReader.readAll(encoded),
              reread.header.generation == accepted.header.generation, same(reread.entries, accepted.entries)
        else { preconditionFailure("a version 1 file re-encoded as version 2 does not read back the same") }
    case CheckpointFormat.currentVersion:
        // Version 3: the revisions too, through both readers, and the writer reproduces the file.
        guard case .success(let whole) = readWithRevisions(file),
              case .success(let chunkedWhole) = readChunkedWithRevisions(file, chunkSize: chunkSize),
              chunkedWhole.header == whole.header, same(chunkedWhole.entries.map(\.entry), whole.entries.map(\.entry)),
              chunkedWhole.entries.map(\.revisions) == whole.entries.map(\.revisions)
        else { preconditionFailure("an accepted version 3 file reads differently with its revisions") }
        var revised = CheckpointWriter(
            generation: whole.header.generation, entryCount: whole.header.entryCount, revision: whole.header.revision, bufferCapacity: 64)
        var reencoded: [UInt8] = []
        for (entry, revisions) in whole.entries {
            entry.key.withUnsafeBytes { key in
                entry.value.withUnsafeBytes { value in revised.append(key: key, value: value, revisions: revisions) }
            }
        }
        reencoded += revised.finish()
        precondition(reencoded == file, "an accepted version 3 file is not what the writer writes for its entries")
    default:
        preconditionFailure("accepted version \(accepted.header.version)")
    }
}

/// Header, checksum and every entry through `CheckpointChunkedReader`, as recovery reads them.
func readChunked(_ file: [UInt8], chunkSize: Int) -> Result<(header: CheckpointHeader, entries: [Entry]), any Error> {
    readChunkedWithRevisions(file, chunkSize: chunkSize).map { ($0.header, $0.entries.map(\.entry)) }
}

/// A length from one grammar byte: mostly small, sometimes an edge (empty, a byte's range, around
/// 1 KiB and the engine's 4 KiB key limit, both chunk sizes the readers are given here, and 16 KiB).
func length(_ byte: UInt8) -> Int {
    let edges = [0, 1, 8, 255, 256, 1023, 1024, 1025, 4095, 4096, 4097, 16 << 10]
    let edge = Int(byte) - (256 - edges.count)
    return edge >= 0 ? edges[edge] : Int(byte) % 40
}

func same(_ a: [Entry], _ b: [Entry]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
}
