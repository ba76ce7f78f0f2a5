import Testing
import WireProtocol

/// A small but varied set of entries: empty key, empty value, NUL and 0xFF bytes.
private let smallEntries: [CheckpointEntry] = [
    CheckpointEntry(Array("alpha".utf8), Array("one".utf8)),
    CheckpointEntry([], Array("empty key".utf8)),
    CheckpointEntry(Array("empty value".utf8), []),
    CheckpointEntry([0x00, 0xFF, 0x00], [0xFF, 0x00, 0xFF, 0x00]),
]

@Suite("Checkpoint version 2: writing and reading")
struct CheckpointRoundTripTests {
    @Test("a version 2 checkpoint is magic | u32 2 | u64 generation | u64 count | entries | u32 crc, byte for byte")
    func byteExactLayout() {
        let file = writeCheckpoint(generation: 7, entries: [CheckpointEntry([0x6B], [0x76, 0x76])])
        let expected: [UInt8] = [
            0x53, 0x4D, 0x41, 0x4C, 0x4C, 0x44, 0x42, 0x00,  // "SMALLDB\0"
            0x02, 0x00, 0x00, 0x00,  // version 2
            0x07, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // generation 7
            0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // count 1
            0x01, 0x00, 0x00, 0x00,  // key length 1
            0x02, 0x00, 0x00, 0x00,  // value length 2
            0x6B, 0x76, 0x76,  // "k", "vv"
            0x23, 0xDA, 0xB6, 0x08,  // zlib.crc32 of the 39 bytes before = 0x08B6DA23
        ]
        #expect(file == expected)
    }

    @Test("entries written are read back in the same order, with the header the writer declared")
    func roundTrip() throws {
        let file = writeCheckpoint(generation: 42, entries: smallEntries)
        let (header, entries) = try readCheckpoint(file, expectedGeneration: 42)
        #expect(entries == smallEntries)
        #expect(header.version == 2)
        #expect(header.generation == 42)
        #expect(header.entryCount == UInt64(smallEntries.count))
        #expect(header.entriesStart == 28)
        #expect(header.entriesLimit == file.count - 4)
    }

    @Test("a checkpoint of zero entries is 32 bytes and reads back empty")
    func emptyCheckpoint() throws {
        let file = writeCheckpoint(generation: 0, entries: [])
        #expect(file.count == 32)
        let (header, entries) = try readCheckpoint(file, expectedGeneration: 0)
        #expect(entries.isEmpty)
        #expect(header.entryCount == 0)
    }

    @Test("the generation round-trips at its extremes", arguments: [UInt64(0), 1, 0xFFFF_FFFF, UInt64.max])
    func generationExtremes(generation: UInt64) throws {
        let (header, _) = try readCheckpoint(writeCheckpoint(generation: generation, entries: smallEntries))
        #expect(header.generation == generation)
    }

    @Test("taking the buffer in the middle yields the same file as writing it in one piece")
    func takeBufferedProducesTheSameFile() throws {
        let oneShot = writeCheckpoint(generation: 5, entries: smallEntries)
        let splits: [Set<Int>] = [[-1], [0], [1], [0, 1, 2, 3], [-1, 0, 1, 2, 3], [3], [1, 2]]
        for split in splits {
            let streamed = writeCheckpoint(generation: 5, entries: smallEntries, takeAfter: split)
            #expect(streamed == oneShot, "taking the buffer after entries \(split.sorted())")
            #expect(try readCheckpoint(streamed).entries == smallEntries)
        }
    }

    @Test("takeBuffered empties the buffer and returns what was buffered")
    func takeBufferedEmptiesTheBuffer() {
        var writer = CheckpointWriter(generation: 1, entryCount: 1, layout: .unrevised)
        #expect(writer.bufferedCount == 28)
        let header = writer.takeBuffered()
        #expect(header.count == 28)
        #expect(writer.bufferedCount == 0)
        #expect(writer.takeBuffered().isEmpty)
        [UInt8](repeating: 1, count: 3).withUnsafeBytes { key in
            [UInt8](repeating: 2, count: 5).withUnsafeBytes { value in writer.append(key: key, value: value) }
        }
        #expect(writer.bufferedCount == 8 + 3 + 5)
        let last = writer.finish()
        #expect(last.count == 8 + 3 + 5 + 4)
    }

    @Test("random entries streamed through a small buffer round-trip")
    func randomRoundTrips() throws {
        let seed: UInt64 = 0xC4EC_0001
        var random = SplitMix64(seed: seed)
        for trial in 0..<50 {
            let entries = (0..<Int.random(in: 0...40, using: &random)).map { _ in
                CheckpointEntry(random.interestingBytes(maxCount: 16), random.interestingBytes(maxCount: 100))
            }
            let takes = Set((0..<5).map { _ in Int.random(in: -1..<max(entries.count, 1), using: &random) })
            let generation = random.next()
            let file = writeCheckpoint(generation: generation, entries: entries, takeAfter: takes)
            let (header, read) = try readCheckpoint(file, expectedGeneration: generation)
            #expect(read == entries, "seed \(seed), trial \(trial)")
            #expect(header.entryCount == UInt64(entries.count), "seed \(seed), trial \(trial)")
        }
    }

    @Test("a large value (1 MB) round-trips")
    func largeValue() throws {
        let seed: UInt64 = 0xC4EC_0002
        var random = SplitMix64(seed: seed)
        let entries = [CheckpointEntry(Array("big".utf8), random.bytes(1 << 20)), CheckpointEntry([1], [2])]
        let file = writeCheckpoint(generation: 3, entries: entries, takeAfter: [0])
        #expect(try readCheckpoint(file).entries == entries, "seed \(seed)")
    }

    @Test("the three-step reader (header, verifyChecksum, forEachEntry) sees what readAll sees")
    func splitReader() throws {
        let file = writeCheckpoint(generation: 9, entries: smallEntries)
        var entries: [CheckpointEntry] = []
        try file.withUnsafeBytes { raw in
            let header = try CheckpointReader.header(of: raw, expectedGeneration: 9)
            try CheckpointReader.verifyChecksum(of: raw, header: header)
            try CheckpointReader.forEachEntry(of: raw, header: header) { key, value in
                entries.append(CheckpointEntry(Array(key), Array(value)))
            }
        }
        #expect(entries == smallEntries)
    }

    @Test("an error thrown by forEachEntry's body reaches the caller unchanged")
    func forEachEntryBodyErrorPropagates() throws {
        struct Stop: Error, Equatable {}
        let file = writeCheckpoint(generation: 9, entries: smallEntries)
        var calls = 0
        #expect(throws: Stop()) {
            try file.withUnsafeBytes { raw in
                let header = try CheckpointReader.header(of: raw, expectedGeneration: nil)
                try CheckpointReader.forEachEntry(of: raw, header: header) { _, _ in
                    calls += 1
                    if calls == 2 { throw Stop() }
                }
            }
        }
        #expect(calls == 2)
    }
}

@Suite("Checkpoint: refusing damaged files")
struct CheckpointDamageTests {
    @Test("a generation that differs from the file name's is refused")
    func generationMismatch() {
        let file = writeCheckpoint(generation: 4, entries: smallEntries)
        #expect(throws: CheckpointError.generationMismatch(expected: 5, found: 4)) {
            try CheckpointReader.readAll(file, expectedGeneration: 5)
        }
    }

    @Test("flipping any single bit of a version 2 checkpoint makes readAll throw a CheckpointError")
    func everySingleBitFlipIsDetected() {
        let file = writeCheckpoint(generation: 4, entries: smallEntries)
        var undetected: [Int] = []
        var unexpectedErrors: [String] = []
        for bit in 0..<(file.count * 8) {
            var damaged = file
            damaged[bit / 8] ^= 1 << UInt8(bit % 8)
            do {
                _ = try CheckpointReader.readAll(damaged)
                undetected.append(bit)
            } catch is CheckpointError {
            } catch {
                unexpectedErrors.append("bit \(bit): \(error)")
            }
        }
        #expect(undetected.isEmpty, "bit flips that loaded silently: \(undetected)")
        #expect(unexpectedErrors.isEmpty)
    }

    @Test("flipping a bit of the magic, version or CRC gives the matching error")
    func bitFlipErrorKinds() {
        let file = writeCheckpoint(generation: 4, entries: smallEntries)
        var magic = file
        magic[0] ^= 0x20
        #expect(throws: CheckpointError.badMagic) { try CheckpointReader.readAll(magic) }
        var version = file
        version[8] ^= 0x04
        #expect(throws: CheckpointError.unsupportedVersion(6)) { try CheckpointReader.readAll(version) }
        var crc = file
        crc[file.count - 1] ^= 0x80
        let stored = readLE32(crc, at: file.count - 4)
        let computed = readLE32(file, at: file.count - 4)
        #expect(throws: CheckpointError.checksumMismatch(expected: stored, computed: computed)) {
            try CheckpointReader.readAll(crc)
        }
    }

    @Test("truncating a version 2 checkpoint to any shorter length makes readAll throw")
    func everyTruncationIsDetected() {
        let file = writeCheckpoint(generation: 4, entries: smallEntries)
        for length in 0..<file.count {
            let truncated = Array(file[..<length])
            if length < 32 {
                #expect(throws: CheckpointError.tooShort(length), "length \(length)") {
                    try CheckpointReader.readAll(truncated)
                }
            } else {
                let error = #expect(throws: CheckpointError.self, "length \(length)") {
                    try CheckpointReader.readAll(truncated)
                }
                guard case .checksumMismatch = error else {
                    Issue.record("length \(length): expected a checksum mismatch, got \(String(describing: error))")
                    continue
                }
            }
        }
    }

    @Test("one byte appended to a version 2 checkpoint makes readAll throw", arguments: [UInt8(0x00), 0x01, 0xFF])
    func appendedByteIsDetected(extra: UInt8) {
        let file = writeCheckpoint(generation: 4, entries: smallEntries)
        #expect(throws: CheckpointError.self) { try CheckpointReader.readAll(file + [extra]) }
    }

    @Test("a version 2 checkpoint with trailing bytes behind a valid CRC is refused as trailing bytes")
    func trailingBytesBehindValidCRC() {
        let body = checkpointEntryBytes(smallEntries) + [0xAB, 0xCD]
        let file = handBuiltV2Checkpoint(generation: 1, count: UInt64(smallEntries.count), body: body)
        #expect(throws: CheckpointError.trailingBytes(offset: 28 + body.count - 2)) {
            try CheckpointReader.readAll(file)
        }
    }

    @Test("a version 2 count smaller than the entries present, behind a valid CRC, is refused")
    func countTooSmall() {
        let body = checkpointEntryBytes(smallEntries)
        let file = handBuiltV2Checkpoint(generation: 1, count: 1, body: body)
        let secondEntry = 28 + checkpointEntryBytes([smallEntries[0]]).count
        #expect(throws: CheckpointError.trailingBytes(offset: secondEntry)) { try CheckpointReader.readAll(file) }
    }

    @Test("a version 2 count larger than the entries present, behind a valid CRC, is refused", arguments: [
        UInt64(5), 0xFFFF_FFFF, UInt64.max,
    ])
    func countTooLarge(count: UInt64) {
        let body = checkpointEntryBytes(smallEntries)
        let file = handBuiltV2Checkpoint(generation: 1, count: count, body: body)
        #expect(throws: CheckpointError.truncatedEntry(index: 4, offset: 28 + body.count)) {
            try CheckpointReader.readAll(file)
        }
    }

    @Test("an entry length of 0xFFFFFFFF behind a valid CRC is a truncated entry, not a trap", arguments: [0, 4])
    func hugeEntryLength(field: Int) {
        var body = checkpointEntryBytes(smallEntries)
        body.replaceSubrange(field..<(field + 4), with: le32(0xFFFF_FFFF))
        let file = handBuiltV2Checkpoint(generation: 1, count: UInt64(smallEntries.count), body: body)
        #expect(throws: CheckpointError.truncatedEntry(index: 0, offset: 28)) { try CheckpointReader.readAll(file) }
    }

    @Test("a file that does not start with SMALLDB\\0 is refused as bad magic")
    func badMagic() {
        var file = writeCheckpoint(generation: 1, entries: smallEntries)
        file.replaceSubrange(0..<8, with: Array("SMALLDB1".utf8))
        #expect(throws: CheckpointError.badMagic) { try CheckpointReader.readAll(file) }
        #expect(throws: CheckpointError.badMagic) {
            try CheckpointReader.readAll([UInt8](repeating: 0, count: 64))
        }
    }

    @Test("a version other than 1, 2 and 3 is refused as unsupported", arguments: [UInt32(0), 4, 0x0100_0000, 0xFFFF_FFFF])
    func unsupportedVersion(version: UInt32) {
        var file = writeCheckpoint(generation: 1, entries: smallEntries)
        file.replaceSubrange(8..<12, with: le32(version))
        #expect(throws: CheckpointError.unsupportedVersion(version)) { try CheckpointReader.readAll(file) }
    }

    @Test("fewer bytes than a header are refused as too short", arguments: [0, 1, 8, 23])
    func tooShortForAnyHeader(length: Int) {
        let file = Array(handBuiltV1Checkpoint(generation: 1, entries: []).prefix(length))
        #expect(throws: CheckpointError.tooShort(length)) { try CheckpointReader.readAll(file) }
    }

    @Test("a version 1 header alone (24 bytes, 0 entries) is a valid empty checkpoint")
    func minimalV1() throws {
        let file = handBuiltV1Checkpoint(generation: 6, entries: [])
        #expect(file.count == 24)
        let (header, entries) = try readCheckpoint(file, expectedGeneration: 6)
        #expect(entries.isEmpty)
        #expect(header.version == 1)
        #expect(header.generation == 6)
        #expect(header.entryCount == 0)
        #expect(header.entriesStart == 24)
        #expect(header.entriesLimit == 24)
    }
}

@Suite("Checkpoint version 1 (the Go format)")
struct CheckpointVersion1Tests {
    @Test("a hand-built version 1 checkpoint reads its entries in order")
    func readsEntries() throws {
        let file = handBuiltV1Checkpoint(generation: 2, entries: smallEntries)
        let (header, entries) = try readCheckpoint(file, expectedGeneration: 2)
        #expect(header.version == 1)
        #expect(header.entryCount == UInt64(smallEntries.count))
        #expect(entries == smallEntries)
    }

    @Test("bytes after the last entry of a version 1 checkpoint are ignored, as the Go reader does")
    func trailingBytesAreIgnored() throws {
        let file = handBuiltV1Checkpoint(generation: 2, entries: smallEntries, trailing: [0xFF, 0xFF, 0xFF, 0xFF, 0, 1, 2])
        #expect(try readCheckpoint(file).entries == smallEntries)
    }

    @Test("a version 1 count larger than the entries present is a truncated entry")
    func countTooLarge() {
        let file = handBuiltV1Checkpoint(generation: 2, entries: smallEntries, count: 0xFFFF_FFFF)
        #expect(throws: CheckpointError.truncatedEntry(index: 4, offset: file.count)) {
            try CheckpointReader.readAll(file)
        }
    }

    @Test("a version 1 checkpoint cut inside an entry is a truncated entry at that entry")
    func cutInsideEntry() {
        let file = handBuiltV1Checkpoint(generation: 2, entries: smallEntries)
        let lastEntry = file.count - checkpointEntryBytes([smallEntries[3]]).count
        for cut in lastEntry..<file.count {
            #expect(throws: CheckpointError.truncatedEntry(index: 3, offset: lastEntry), "cut at \(cut)") {
                try CheckpointReader.readAll(Array(file[..<cut]))
            }
        }
    }

    @Test("version 1 has no checksum: a flipped bit inside a value loads silently (why version 2 exists)")
    func v1CannotDetectValueDamage() throws {
        var file = handBuiltV1Checkpoint(generation: 2, entries: smallEntries)
        file[file.count - 1] ^= 0x01
        let entries = try readCheckpoint(file).entries
        #expect(entries.last?.value == [0xFF, 0x00, 0xFF, 0x01])
    }
}
