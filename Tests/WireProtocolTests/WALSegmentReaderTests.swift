import Testing
import WireProtocol

/// Three ordinary records, shared by the scan tests: a set, a delete, and a batch.
private let sampleRecords: [[WALMutation]] = [
    [.set(key: Array("alpha".utf8), value: Array("one".utf8))],
    [.delete(key: Array("beta".utf8))],
    [.set(key: [0x00, 0xFF], value: Array(repeating: 0x5A, count: 20)), .delete(key: Array("gamma".utf8))],
    [.set(key: Array("delta".utf8), value: Array("the last record".utf8))],
]

@Suite("WALSegmentReader.scan: how a segment ends")
struct WALScanEndingTests {
    @Test("an empty segment is clean at offset 0")
    func emptySegment() {
        let (records, result) = scanSegment([])
        #expect(records.isEmpty)
        #expect(result == .clean(endOffset: 0))
        #expect(result.validPrefixLength == 0)
    }

    @Test("a segment that ends exactly after its last record is clean, and every record is delivered in order")
    func cleanEnd() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        let (records, result) = scanSegment(bytes)
        #expect(result == .clean(endOffset: bytes.count))
        #expect(result.validPrefixLength == bytes.count)
        #expect(records.map(\.offset) == offsets)
        #expect(records.map(\.mutations) == sampleRecords)
    }

    @Test("the last record cut at every possible length is a torn tail at its start, and the earlier records are delivered")
    func tornTailAtEveryCutPoint() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        let lastStart = offsets.last!
        for cut in 1..<(bytes.count - lastStart) {
            let torn = Array(bytes[..<(lastStart + cut)])
            let (records, result) = scanSegment(torn)
            #expect(
                result == .tornTail(offset: lastStart, droppedBytes: cut, damage: .incomplete),
                "cut after \(cut) bytes of the last record")
            #expect(records.map(\.mutations) == Array(sampleRecords.dropLast()), "cut after \(cut) bytes")
            #expect(result.validPrefixLength == lastStart)
        }
    }

    @Test("cutting exactly at a record boundary is clean, not torn")
    func cutAtBoundaryIsClean() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        for (index, start) in offsets.enumerated() {
            let (records, result) = scanSegment(Array(bytes[..<start]))
            #expect(result == .clean(endOffset: start))
            #expect(records.count == index)
        }
    }

    @Test(
        "zero bytes after the last record are a torn tail (a file system exposing unwritten space)",
        arguments: [1, 3, 4, 5, 16, 17, 100, 4096])
    func zeroPaddingIsTornTail(zeros: Int) {
        let (bytes, _) = encodeRecords(sampleRecords)
        let padded = bytes + [UInt8](repeating: 0, count: zeros)
        let (records, result) = scanSegment(padded)
        let damage: WALDamage = zeros < 4 ? .incomplete : .zeroLength
        #expect(result == .tornTail(offset: bytes.count, droppedBytes: zeros, damage: damage))
        #expect(records.count == sampleRecords.count)
    }

    @Test("a flipped bit in the last record's CRC is a torn tail with a checksum mismatch")
    func flippedCRCBitInLastRecordIsTornTail() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        for bit in 0..<32 {
            var damaged = bytes
            damaged[bytes.count - 4 + bit / 8] ^= 1 << UInt8(bit % 8)
            let (records, result) = scanSegment(damaged)
            #expect(
                result == .tornTail(offset: offsets.last!, droppedBytes: bytes.count - offsets.last!, damage: .checksumMismatch),
                "bit \(bit)")
            #expect(records.count == sampleRecords.count - 1)
        }
    }

    @Test("a flipped bit in a middle record's CRC is corruption at that record, pointing at the next one")
    func flippedCRCBitInMiddleRecordIsCorruption() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        let crcStart = offsets[2] - 4  // the CRC of record 1
        for bit in 0..<32 {
            var damaged = bytes
            damaged[crcStart + bit / 8] ^= 1 << UInt8(bit % 8)
            let (records, result) = scanSegment(damaged)
            #expect(
                result == .corrupted(offset: offsets[1], damage: .checksumMismatch, nextValidOffset: offsets[2]),
                "bit \(bit)")
            #expect(records.map(\.offset) == [offsets[0]], "bit \(bit)")
        }
    }

    @Test("damage anywhere in a middle record's payload, with valid records after it, is corruption at that record")
    func damagedMiddlePayloadIsCorruption() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        let damagedRecord = 2
        let payloadRange = (offsets[damagedRecord] + 4)..<(offsets[damagedRecord + 1] - 4)
        for position in payloadRange {
            var damaged = bytes
            damaged[position] ^= 0xFF
            let (records, result) = scanSegment(damaged)
            #expect(
                result == .corrupted(offset: offsets[damagedRecord], damage: .checksumMismatch, nextValidOffset: offsets[damagedRecord + 1]),
                "byte \(position) inverted")
            #expect(records.map(\.offset) == Array(offsets[..<damagedRecord]), "byte \(position) inverted")
        }
    }

    @Test("a zeroed-out middle record is corruption, not a torn tail, because valid records follow")
    func zeroedMiddleRecordIsCorruption() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        var damaged = bytes
        for index in offsets[1]..<offsets[2] { damaged[index] = 0 }
        let (_, result) = scanSegment(damaged)
        #expect(result == .corrupted(offset: offsets[1], damage: .zeroLength, nextValidOffset: offsets[2]))
    }

    @Test("a length field over 64 MiB with no valid record after it is a torn tail", arguments: [
        UInt32(WALFormat.maxPayloadSize + 1), 0x7FFF_FFFF, 0xFFFF_FFFF,
    ])
    func hugeLengthAtEndIsTornTail(length: UInt32) {
        let (bytes, _) = encodeRecords(sampleRecords)
        let garbage = le32(length) + [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
        let (records, result) = scanSegment(bytes + garbage)
        #expect(
            result == .tornTail(offset: bytes.count, droppedBytes: garbage.count, damage: .lengthTooLarge(Int(length))))
        #expect(records.count == sampleRecords.count)
    }

    @Test("a middle record whose length field is set to 0xFFFFFFFF is corruption, and the next record is found")
    func hugeLengthInMiddleIsCorruption() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        var damaged = bytes
        damaged.replaceSubrange(offsets[1]..<(offsets[1] + 4), with: le32(0xFFFF_FFFF))
        let (_, result) = scanSegment(damaged)
        #expect(
            result == .corrupted(offset: offsets[1], damage: .lengthTooLarge(0xFFFF_FFFF), nextValidOffset: offsets[2]))
    }

    @Test("a middle record whose length field claims more bytes than remain is corruption")
    func overlongLengthInMiddleIsCorruption() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        var damaged = bytes
        damaged.replaceSubrange(offsets[0]..<(offsets[0] + 4), with: le32(UInt32(bytes.count)))
        let (records, result) = scanSegment(damaged)
        #expect(result == .corrupted(offset: 0, damage: .incomplete, nextValidOffset: offsets[1]))
        #expect(records.isEmpty)
    }

    @Test("a segment that is only garbage is a torn tail at offset 0 dropping everything")
    func garbageOnlySegment() {
        let garbage: [UInt8] = Array("this is not a WAL segment at all".utf8)
        let (records, result) = scanSegment(garbage)
        #expect(records.isEmpty)
        #expect(result.validPrefixLength == 0)
        guard case .tornTail(offset: 0, droppedBytes: garbage.count, _) = result else {
            Issue.record("expected a torn tail at 0, got \(result)")
            return
        }
    }

    @Test("corruption is reported at the first damaged record even when later records are damaged too")
    func firstDamageWins() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        var damaged = bytes
        damaged[offsets[1] + 6] ^= 0x01
        damaged[offsets[2] + 6] ^= 0x01
        let (records, result) = scanSegment(damaged)
        #expect(result == .corrupted(offset: offsets[1], damage: .checksumMismatch, nextValidOffset: offsets[3]))
        #expect(records.count == 1)
    }

    @Test("a valid record found after damage may start at any byte, not only where the damaged record claimed to end")
    func nextValidOffsetIsFoundByByteScan() {
        let (bytes, offsets) = encodeRecords(sampleRecords)
        // Record 1 loses two bytes from its middle: everything after is shifted by two.
        var damaged = bytes
        damaged.removeSubrange((offsets[1] + 6)..<(offsets[1] + 8))
        let (_, result) = scanSegment(damaged)
        #expect(result == .corrupted(offset: offsets[1], damage: .checksumMismatch, nextValidOffset: offsets[2] - 2))
    }

    @Test("an error thrown by the body stops the scan and reaches the caller")
    func bodyErrorPropagates() {
        struct Stop: Error, Equatable {}
        let (bytes, _) = encodeRecords(sampleRecords)
        var delivered = 0
        #expect(throws: Stop()) {
            try bytes.withUnsafeBytes { raw in
                try WALSegmentReader.scan(raw) { (_: WALRecordView) throws(Stop) in
                    delivered += 1
                    if delivered == 2 { throw Stop() }
                }
            }
        }
        #expect(delivered == 2)
    }

    @Test("an empty batch record after damage counts as acknowledged data: corruption, not a torn tail")
    func emptyBatchAfterDamageIsFound() {
        var bytes: [UInt8] = []
        WALEncoder.append([.set(key: [1], value: [2])], to: &bytes)
        let emptyBatchStart = bytes.count
        WALEncoder.append([], to: &bytes)
        bytes[6] ^= 0x01  // damage the first record's key length
        let (_, result) = scanSegment(bytes)
        #expect(result == .corrupted(offset: 0, damage: .checksumMismatch, nextValidOffset: emptyBatchStart))
    }

    @Test("a batch record after damage is found as the next valid record")
    func batchRecordAfterDamageIsFound() {
        let records: [[WALMutation]] = [
            [.set(key: [1], value: [2])],
            [.set(key: [3], value: [4]), .delete(key: [5])],
        ]
        var (bytes, offsets) = encodeRecords(records)
        bytes[offsets[0] + 6] ^= 0x01
        let (_, result) = scanSegment(bytes)
        #expect(result == .corrupted(offset: 0, damage: .checksumMismatch, nextValidOffset: offsets[1]))
    }

    @Test("a delete record after damage is found as the next valid record")
    func deleteRecordAfterDamageIsFound() {
        let records: [[WALMutation]] = [[.set(key: [1], value: [2])], [.delete(key: [3, 4, 5])]]
        var (bytes, offsets) = encodeRecords(records)
        bytes[offsets[0] + 6] ^= 0x01
        let (_, result) = scanSegment(bytes)
        #expect(result == .corrupted(offset: 0, damage: .checksumMismatch, nextValidOffset: offsets[1]))
    }

    @Test("an empty batch record after damage is found when more bytes follow it")
    func emptyBatchFollowedByRecordsAfterDamageIsFound() {
        let records: [[WALMutation]] = [[.set(key: [1], value: [2])], [], [.set(key: [3], value: [4])]]
        var (bytes, offsets) = encodeRecords(records)
        bytes[offsets[0] + 6] ^= 0x01
        let (_, result) = scanSegment(bytes)
        #expect(result == .corrupted(offset: 0, damage: .checksumMismatch, nextValidOffset: offsets[1]))
    }

    @Test("known limitation: a torn record whose value embeds a complete WAL record is reported as corruption")
    func tornRecordEmbeddingARecordIsATornTail() {
        // Nothing inside a record's declared extent is a record: a crash while appending a value
        // that contains an encoded record is an ordinary torn tail.
        var embedded: [UInt8] = []
        WALEncoder.append([.set(key: Array("inner".utf8), value: Array("record".utf8))], to: &embedded)
        let records: [[WALMutation]] = [
            [.set(key: Array("a".utf8), value: [1])],
            [.set(key: Array("blob".utf8), value: [0xAA] + embedded + [UInt8](repeating: 0xBB, count: 50))],
        ]
        let (bytes, offsets) = encodeRecords(records)
        let cut = offsets[1] + 4 + 9 + 4 + 1 + embedded.count + 10  // inside the trailing 0xBB run
        let (_, result) = scanSegment(Array(bytes[..<cut]))
        #expect(result == .tornTail(offset: offsets[1], droppedBytes: cut - offsets[1], damage: .incomplete))
    }

    @Test("a record embedded in a damaged record's declared extent is not evidence of corruption")
    func recordInsideDamagedExtentIsSkipped() {
        var embedded: [UInt8] = []
        WALEncoder.append([.set(key: Array("inner".utf8), value: Array("record".utf8))], to: &embedded)
        var (bytes, offsets) = encodeRecords([
            [.set(key: Array("a".utf8), value: [1])],
            [.set(key: Array("blob".utf8), value: embedded)],
        ])
        bytes[bytes.count - 1] ^= 0x01  // the last record's CRC: complete, damaged, nothing after it
        let (_, result) = scanSegment(bytes)
        #expect(result == .tornTail(offset: offsets[1], droppedBytes: bytes.count - offsets[1], damage: .checksumMismatch))
    }

    @Test("a length field inconsistent with its entry's lengths makes the search start one byte later")
    func inconsistentHeaderSearchesFromTheNextByte() {
        let (bytes, offsets) = encodeRecords([[.set(key: [1], value: [2])], [.set(key: [3], value: [4])]])
        bytes.withUnsafeBytes { raw in
            #expect(WALSegmentReader.searchStart(in: raw, damagedAt: offsets[0]) == offsets[1])
        }
        var damaged = bytes
        damaged[0] = 200  // payload length 200, but 9 + 1 + 1 = 11
        damaged.withUnsafeBytes { raw in
            #expect(WALSegmentReader.searchStart(in: raw, damagedAt: 0) == 1)
        }
    }

    @Test("a damaged length field that is implausible makes the search start one byte later")
    func implausibleLengthSearchesFromTheNextByte() {
        var (bytes, offsets) = encodeRecords([
            [.set(key: [1], value: [2])],
            [.set(key: [3], value: [4])],
        ])
        bytes.replaceSubrange(0..<4, with: [0xFF, 0xFF, 0xFF, 0xFF])
        let (_, result) = scanSegment(bytes)
        #expect(result == .corrupted(offset: 0, damage: .lengthTooLarge(0xFFFF_FFFF), nextValidOffset: offsets[1]))
    }

    @Test("a 17-byte record (empty key, empty value) right at the end after damage is found")
    func smallestPlainRecordAfterDamageIsFound() {
        var bytes: [UInt8] = []
        WALEncoder.append([.set(key: [1], value: [2])], to: &bytes)
        let lastStart = bytes.count
        WALEncoder.append([.set(key: [], value: [])], to: &bytes)
        #expect(bytes.count - lastStart == 17)
        bytes[6] ^= 0x01
        let (_, result) = scanSegment(bytes)
        #expect(result == .corrupted(offset: 0, damage: .checksumMismatch, nextValidOffset: lastStart))
    }
}

@Suite("WALSegmentReader.decodeRecord: what counts as a valid record")
struct WALDecodeTests {
    @Test("fewer than 4 bytes is incomplete", arguments: [1, 2, 3])
    func shortHeaderIsIncomplete(count: Int) {
        #expect(decodeRecord([UInt8](repeating: 0x05, count: count), at: 0) == .damaged(.incomplete))
    }

    @Test("decoding at the very end of the buffer is incomplete, not a trap")
    func decodeAtEnd() {
        let bytes = walFrame(walEntry(op: 1, key: [1], value: [2]))
        #expect(decodeRecord(bytes, at: bytes.count) == .damaged(.incomplete))
    }

    @Test("a payload length of 0 is damage of its own kind")
    func zeroLength() {
        #expect(decodeRecord(le32(0) + le32(0) + [0, 0, 0, 0, 0, 0, 0, 0, 0], at: 0) == .damaged(.zeroLength))
    }

    @Test("a payload length of exactly 64 MiB is allowed (incomplete here), one more is too large")
    func maximumPayloadBoundary() {
        let tail = [UInt8](repeating: 0, count: 20)
        #expect(decodeRecord(le32(UInt32(WALFormat.maxPayloadSize)) + tail, at: 0) == .damaged(.incomplete))
        #expect(
            decodeRecord(le32(UInt32(WALFormat.maxPayloadSize + 1)) + tail, at: 0)
                == .damaged(.lengthTooLarge(WALFormat.maxPayloadSize + 1)))
        #expect(WALFormat.maxPayloadSize == 64 * 1024 * 1024)
    }

    @Test("a record missing its last CRC byte is incomplete")
    func missingCRCByte() {
        let bytes = walFrame(walEntry(op: 1, key: [1], value: [2]))
        #expect(decodeRecord(Array(bytes.dropLast()), at: 0) == .damaged(.incomplete))
    }

    @Test("a wrong CRC is a checksum mismatch")
    func wrongCRC() {
        let payload = walEntry(op: 1, key: [1], value: [2])
        #expect(decodeRecord(walFrame(payload, crc: referenceCRC32(payload) ^ 1), at: 0) == .damaged(.checksumMismatch))
    }

    @Test("a record decodes at a non-zero offset and reports that offset")
    func decodeAtOffset() throws {
        let bytes: [UInt8] = [9, 9, 9] + walFrame(walEntry(op: 2, key: [7]))
        guard case .record(let record) = decodeRecord(bytes, at: 3) else {
            Issue.record("expected a record")
            return
        }
        #expect(record.offset == 3)
        #expect(record.encodedSize == bytes.count - 3)
        #expect(record.mutations == [.delete(key: [7])])
    }

    // MARK: Payloads that pass the CRC but are malformed

    @Test("a delete that carries a value is malformed")
    func deleteWithValue() {
        let bytes = walFrame(walEntry(op: 2, key: [1], value: [2]))
        let damage = decodeRecord(bytes, at: 0).damage
        #expect(damage?.isMalformedPayload == true, "got \(String(describing: damage))")
    }

    @Test("a delete whose value_len is non-zero is malformed even when the bytes are missing")
    func deleteWithValueLengthOnly() {
        let bytes = walFrame(walEntry(op: 2, key: [1], valueLength: 5))
        #expect(decodeRecord(bytes, at: 0).damage?.isMalformedPayload == true)
    }

    @Test("an unknown first opcode is reported as such", arguments: [UInt8(0), 4, 0x7F, 0xFF])
    func unknownOpcode(opcode: UInt8) {
        let bytes = walFrame(walEntry(op: opcode, key: [1], value: [2]))
        #expect(decodeRecord(bytes, at: 0) == .damaged(.unknownOpcode(opcode)))
    }

    @Test("an unknown opcode inside a batch is reported as such")
    func unknownOpcodeInBatch() {
        let payload = walBatchPayload([walEntry(op: 1, key: [1], value: [2]), walEntry(op: 9, key: [3])])
        #expect(decodeRecord(walFrame(payload), at: 0) == .damaged(.unknownOpcode(9)))
    }

    @Test("a batch nested in a batch is refused")
    func nestedBatch() {
        let inner = walBatchPayload([walEntry(op: 1, key: [1], value: [2])])
        let outer = walBatchPayload([inner], count: 1)
        #expect(decodeRecord(walFrame(outer), at: 0) == .damaged(.unknownOpcode(3)))
    }

    @Test("a set whose lengths add up to less than the payload is malformed")
    func setWithExtraBytes() {
        let bytes = walFrame(walEntry(op: 1, key: [1], value: [2]) + [0xEE])
        #expect(decodeRecord(bytes, at: 0).damage?.isMalformedPayload == true)
    }

    @Test(
        "a set whose lengths run past the payload is malformed",
        arguments: [
            (UInt32(2), UInt32(1)), (1, 2), (0xFFFF_FFFF, 1), (1, 0xFFFF_FFFF), (0xFFFF_FFFF, 0xFFFF_FFFF),
            (0x8000_0000, 0x8000_0000),
        ])
    func setWithOverlongLengths(keyLength: UInt32, valueLength: UInt32) {
        let bytes = walFrame(walEntry(op: 1, key: [1], value: [2], keyLength: keyLength, valueLength: valueLength))
        #expect(decodeRecord(bytes, at: 0).damage?.isMalformedPayload == true)
    }

    @Test("a set payload shorter than an entry header is malformed", arguments: [1, 2, 5, 8])
    func shortSetPayload(length: Int) {
        let payload = Array(walEntry(op: 1, key: [], value: []).prefix(length))
        #expect(decodeRecord(walFrame(payload), at: 0).damage?.isMalformedPayload == true)
    }

    @Test("a batch payload shorter than its header is malformed", arguments: [1, 2, 4])
    func shortBatchHeader(length: Int) {
        let payload = Array(walBatchPayload([]).prefix(length))
        #expect(decodeRecord(walFrame(payload), at: 0).damage?.isMalformedPayload == true)
    }

    @Test("a batch whose entries do not fill its payload is malformed")
    func batchWithLeftoverBytes() {
        let payload = walBatchPayload([walEntry(op: 1, key: [1], value: [2])]) + [0, 0, 0]
        #expect(decodeRecord(walFrame(payload), at: 0).damage?.isMalformedPayload == true)
    }

    @Test("a batch whose count exceeds its entries is malformed", arguments: [UInt32(3), 0xFFFF_FFFF])
    func batchCountTooLarge(count: UInt32) {
        let payload = walBatchPayload([walEntry(op: 1, key: [1], value: [2]), walEntry(op: 2, key: [3])], count: count)
        #expect(decodeRecord(walFrame(payload), at: 0).damage?.isMalformedPayload == true)
    }

    @Test("a batch whose count is smaller than its entries is malformed")
    func batchCountTooSmall() {
        let payload = walBatchPayload([walEntry(op: 1, key: [1], value: [2]), walEntry(op: 2, key: [3])], count: 1)
        #expect(decodeRecord(walFrame(payload), at: 0).damage?.isMalformedPayload == true)
    }

    @Test("a batch entry with a value_len of 0xFFFFFFFF is malformed")
    func batchEntryWithHugeLength() {
        let payload = walBatchPayload([walEntry(op: 1, key: [1], value: [2], valueLength: 0xFFFF_FFFF)])
        #expect(decodeRecord(walFrame(payload), at: 0).damage?.isMalformedPayload == true)
    }

    @Test("a hand-framed batch of one entry is accepted (the encoder never writes one, the reader allows it)")
    func batchOfOneIsValid() {
        let payload = walBatchPayload([walEntry(op: 1, key: [1], value: [2])])
        guard case .record(let record) = decodeRecord(walFrame(payload), at: 0) else {
            Issue.record("expected a record")
            return
        }
        #expect(record.isBatch)
        #expect(record.mutations == [.set(key: [1], value: [2])])
    }

    @Test("a malformed record in the middle, with a valid record after it, is corruption carrying its damage")
    func malformedMiddleRecordIsCorruption() {
        let first = walFrame(walEntry(op: 1, key: [1], value: [2]))
        let bad = walFrame(walEntry(op: 2, key: [1], value: [2]))
        let last = walFrame(walEntry(op: 1, key: [3], value: [4]))
        let (records, result) = scanSegment(first + bad + last)
        guard case .corrupted(let offset, let damage, let next) = result else {
            Issue.record("expected corruption, got \(result)")
            return
        }
        #expect(offset == first.count)
        #expect(damage.isMalformedPayload)
        #expect(next == first.count + bad.count)
        #expect(records.count == 1)
    }

    @Test("a malformed last record is a torn tail carrying its damage")
    func malformedLastRecordIsTornTail() {
        let first = walFrame(walEntry(op: 1, key: [1], value: [2]))
        let bad = walFrame(walEntry(op: 0x42, key: [1], value: [2]))
        let (records, result) = scanSegment(first + bad)
        #expect(result == .tornTail(offset: first.count, droppedBytes: bad.count, damage: .unknownOpcode(0x42)))
        #expect(records.count == 1)
    }
}
