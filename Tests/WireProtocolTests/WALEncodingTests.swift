import Testing
import WireProtocol

@Suite("WAL record encoding")
struct WALEncodingTests {
    // MARK: Byte-exact framing (the Go format)

    @Test("a set record is u32 payload_len | u8 1 | u32 key_len | u32 value_len | key | value | u32 crc")
    func setRecordIsByteExact() {
        var bytes: [UInt8] = []
        WALEncoder.append([.set(key: Array("ab".utf8), value: Array("xyz".utf8))], to: &bytes)
        let expected: [UInt8] = [
            0x0E, 0x00, 0x00, 0x00,  // payload length 14
            0x01,  // op: set
            0x02, 0x00, 0x00, 0x00,  // key length 2
            0x03, 0x00, 0x00, 0x00,  // value length 3
            0x61, 0x62,  // "ab"
            0x78, 0x79, 0x7A,  // "xyz"
            0x3F, 0x13, 0xD7, 0x34,  // zlib.crc32(payload) = 0x34D7133F
        ]
        #expect(bytes == expected)
    }

    @Test("a delete record has op 2 and value_len 0")
    func deleteRecordIsByteExact() {
        var bytes: [UInt8] = []
        WALEncoder.append([.delete(key: [0x6B, 0x00, 0xFF])], to: &bytes)
        let expected: [UInt8] = [
            0x0C, 0x00, 0x00, 0x00,  // payload length 12
            0x02,  // op: delete
            0x03, 0x00, 0x00, 0x00,  // key length 3
            0x00, 0x00, 0x00, 0x00,  // value length 0
            0x6B, 0x00, 0xFF,  // key
            0xBD, 0xF5, 0x8C, 0x67,  // zlib.crc32(payload) = 0x678CF5BD
        ]
        #expect(bytes == expected)
    }

    @Test("an empty batch is op 3 with count 0 and nothing else")
    func emptyBatchIsByteExact() {
        var bytes: [UInt8] = []
        WALEncoder.append([], to: &bytes)
        let expected: [UInt8] = [
            0x05, 0x00, 0x00, 0x00,  // payload length 5
            0x03,  // op: batch
            0x00, 0x00, 0x00, 0x00,  // count 0
            0xCD, 0x8D, 0x82, 0x81,  // zlib.crc32(payload) = 0x81828DCD
        ]
        #expect(bytes == expected)
    }

    @Test("a batch is op 3, a u32 count, then each entry in Go entry layout, under one CRC")
    func batchLayoutMatchesHandBuiltFrame() {
        let mutations: [WALMutation] = [
            .set(key: [1], value: [2, 3]),
            .delete(key: [4, 5]),
            .set(key: [], value: []),
        ]
        var bytes: [UInt8] = []
        WALEncoder.append(mutations, to: &bytes)
        let expected = walFrame(
            walBatchPayload([
                walEntry(op: 1, key: [1], value: [2, 3]),
                walEntry(op: 2, key: [4, 5]),
                walEntry(op: 1, key: [], value: []),
            ]))
        #expect(bytes == expected)
    }

    @Test("a record appended to a non-empty buffer is framed from its own start")
    func appendingAfterExistingBytes() {
        var bytes: [UInt8] = [0xDE, 0xAD]
        WALEncoder.append([.set(key: [7], value: [8])], to: &bytes)
        #expect(bytes == [0xDE, 0xAD] + walFrame(walEntry(op: 1, key: [7], value: [8])))
    }

    @Test("the three-step builder writes the same bytes as append(_:to:)")
    func builderMatchesAppend() {
        let seed: UInt64 = 0xB111_D001
        var random = SplitMix64(seed: seed)
        for trial in 0..<200 {
            let mutations = random.record()
            var viaAppend: [UInt8] = [0x55]
            WALEncoder.append(mutations, to: &viaAppend)
            var viaBuilder: [UInt8] = [0x55]
            let start = WALEncoder.beginRecord(in: &viaBuilder, entryCount: mutations.count)
            for mutation in mutations {
                switch mutation {
                case .set(let key, let value):
                    key.withUnsafeBytes { key in
                        value.withUnsafeBytes { WALEncoder.appendEntry(.set, key: key, value: $0, to: &viaBuilder) }
                    }
                case .delete(let key):
                    key.withUnsafeBytes {
                        WALEncoder.appendEntry(.delete, key: $0, value: UnsafeRawBufferPointer(start: nil, count: 0), to: &viaBuilder)
                    }
                }
            }
            WALEncoder.finishRecord(startingAt: start, in: &viaBuilder)
            #expect(start == 1)
            #expect(viaBuilder == viaAppend, "seed \(seed), trial \(trial), mutations \(mutations)")
        }
    }

    @Test("recordSize and payloadSize predict the encoded size exactly")
    func sizesArePredicted() {
        let seed: UInt64 = 0xB111_D002
        var random = SplitMix64(seed: seed)
        for trial in 0..<300 {
            let mutations = random.record()
            var bytes: [UInt8] = []
            WALEncoder.append(mutations, to: &bytes)
            #expect(bytes.count == WALEncoder.recordSize(of: mutations), "seed \(seed), trial \(trial)")
            #expect(Int(readLE32(bytes, at: 0)) == WALEncoder.payloadSize(of: mutations), "seed \(seed), trial \(trial)")
        }
    }

    @Test("a mutation's encodedEntrySize is 9 + key + value, and a delete has no value bytes")
    func encodedEntrySize() {
        #expect(WALMutation.set(key: [1, 2], value: [3, 4, 5]).encodedEntrySize == 14)
        #expect(WALMutation.delete(key: [1, 2]).encodedEntrySize == 11)
        #expect(WALMutation.set(key: [], value: []).encodedEntrySize == 9)
        #expect(WALMutation.delete(key: [9]).key == [9])
    }

    // MARK: Round trips through the reader

    @Test(
        "a single mutation round-trips as a plain (non-batch) record",
        arguments: [
            WALMutation.set(key: Array("key".utf8), value: Array("value".utf8)),
            .delete(key: Array("key".utf8)),
            .set(key: Array("k".utf8), value: []),
            .set(key: [], value: [1]),
            .set(key: [], value: []),
            .delete(key: []),
            .set(key: [0x00, 0xFF, 0x00, 0xFF], value: [0xFF, 0x00]),
            .delete(key: [0x00, 0x00, 0xFF]),
            .set(key: Array("ключ/🔑".utf8), value: [0x03, 0x00, 0x00, 0x00, 0x00]),
        ])
    func singleMutationRoundTrip(mutation: WALMutation) throws {
        var bytes: [UInt8] = []
        WALEncoder.append([mutation], to: &bytes)
        let (records, result) = scanSegment(bytes)
        #expect(result == .clean(endOffset: bytes.count))
        let record = try #require(records.first)
        #expect(records.count == 1)
        #expect(record.offset == 0)
        #expect(record.encodedSize == bytes.count)
        #expect(record.isBatch == false)
        #expect(record.mutations == [mutation])
    }

    @Test("a delete is encoded with value_len 0")
    func deleteHasZeroValueLength() {
        var bytes: [UInt8] = []
        WALEncoder.append([.delete(key: [1, 2, 3])], to: &bytes)
        #expect(bytes[4] == WALOpcode.delete.rawValue)
        #expect(readLE32(bytes, at: 9) == 0)
    }

    @Test("a 1 MB value round-trips intact")
    func oneMegabyteValue() throws {
        let seed: UInt64 = 0xB111_D003
        var random = SplitMix64(seed: seed)
        let value = random.bytes(1 << 20)
        let key = Array("big".utf8)
        var bytes: [UInt8] = []
        WALEncoder.append([.set(key: key, value: value)], to: &bytes)
        #expect(bytes.count == 4 + 9 + 3 + (1 << 20) + 4)
        let (records, result) = scanSegment(bytes)
        #expect(result == .clean(endOffset: bytes.count))
        let record = try #require(records.first)
        #expect(record.mutations == [.set(key: key, value: value)], "seed \(seed)")
    }

    @Test("a 100 KB key round-trips intact, in a plain record and in a batch")
    func largeKey() throws {
        let seed: UInt64 = 0xB111_D006
        var random = SplitMix64(seed: seed)
        let key = random.bytes(100_000)
        let records: [[WALMutation]] = [
            [.set(key: key, value: [1])],
            [.delete(key: key)],
            [.set(key: key, value: [2]), .delete(key: key)],
        ]
        let (bytes, _) = encodeRecords(records)
        let (decoded, result) = scanSegment(bytes)
        #expect(result == .clean(endOffset: bytes.count))
        #expect(decoded.map(\.mutations) == records, "seed \(seed)")
    }

    @Test("a batch of many mutations round-trips as one record, in order")
    func largeBatch() throws {
        let seed: UInt64 = 0xB111_D004
        var random = SplitMix64(seed: seed)
        let mutations = (0..<1000).map { _ in random.mutation() }
        var bytes: [UInt8] = []
        WALEncoder.append(mutations, to: &bytes)
        let (records, result) = scanSegment(bytes)
        #expect(result == .clean(endOffset: bytes.count))
        let record = try #require(records.first)
        #expect(records.count == 1)
        #expect(record.isBatch)
        #expect(record.mutations == mutations, "seed \(seed)")
    }

    @Test("a batch of 0 entries round-trips as an empty batch record")
    func emptyBatchRoundTrip() throws {
        var bytes: [UInt8] = []
        WALEncoder.append([], to: &bytes)
        let (records, result) = scanSegment(bytes)
        #expect(result == .clean(endOffset: 13))
        let record = try #require(records.first)
        #expect(record.isBatch)
        #expect(record.mutations.isEmpty)
    }

    @Test("a batch of two round-trips as a batch record (more than one mutation is always a batch)")
    func twoMutationsAreABatch() throws {
        let mutations: [WALMutation] = [.set(key: [1], value: [1]), .delete(key: [1])]
        var bytes: [UInt8] = []
        WALEncoder.append(mutations, to: &bytes)
        #expect(bytes[4] == WALOpcode.batch.rawValue)
        let record = try #require(scanSegment(bytes).records.first)
        #expect(record.isBatch)
        #expect(record.mutations == mutations)
    }

    @Test("a batch record of one entry, which the encoder never writes, is read as that entry (docs/FORMAT.md)")
    func batchOfOneIsAcceptedButNotCanonical() throws {
        let entry = walEntry(op: WALOpcode.set.rawValue, key: [7], value: [8, 9])
        let bytes = walFrame(walBatchPayload([entry]))
        let (records, result) = scanSegment(bytes)
        #expect(result == .clean(endOffset: bytes.count))
        let record = try #require(records.first)
        #expect(record.isBatch)
        #expect(record.mutations == [.set(key: [7], value: [8, 9])])
        // The encoder writes the same change as the plain record whose payload is the batch's entry.
        var canonical: [UInt8] = []
        WALEncoder.append(record.mutations, to: &canonical)
        #expect(canonical == walFrame(entry))
        #expect(canonical != bytes)
    }

    @Test("forEachEntry hands over opcode, key and value of every entry in order")
    func forEachEntryOrder() {
        let mutations: [WALMutation] = [
            .set(key: [1], value: [10, 11]), .delete(key: [2]), .set(key: [3], value: []),
        ]
        var bytes: [UInt8] = []
        WALEncoder.append(mutations, to: &bytes)
        var seen: [String] = []
        _ = bytes.withUnsafeBytes { raw in
            WALSegmentReader.scan(raw) { record in
                record.forEachEntry { opcode, key, value in
                    seen.append("\(opcode) \(Array(key)) \(Array(value))")
                }
            }
        }
        #expect(seen == ["set [1] [10, 11]", "delete [2] []", "set [3] []"])
    }

    @Test("random segments of many records round-trip record by record")
    func randomSegmentsRoundTrip() {
        let seed: UInt64 = 0xB111_D005
        var random = SplitMix64(seed: seed)
        for trial in 0..<100 {
            let recordsIn = (0..<Int.random(in: 0...20, using: &random)).map { _ in random.record() }
            let (bytes, offsets) = encodeRecords(recordsIn)
            let (recordsOut, result) = scanSegment(bytes)
            #expect(result == .clean(endOffset: bytes.count), "seed \(seed), trial \(trial)")
            #expect(recordsOut.map(\.offset) == offsets, "seed \(seed), trial \(trial)")
            #expect(recordsOut.map(\.mutations) == recordsIn, "seed \(seed), trial \(trial)")
        }
    }
}
