// The rule under test: any input yields a value or a typed error, never a trap, and what the
// readers do return is consistent with the bytes. A trap here crashes the test process, which
// fails the run; the invariants below fail individual tests.
import Testing
import WireProtocol

// MARK: - WAL invariants

/// The first offset after the record damaged at `damaged` where a valid record starts, by trying
/// every offset from where the reader's rule says the search starts (`searchStart`, pinned by its
/// own tests in WALSegmentReaderTests).
private func bruteForceNextRecord(_ bytes: [UInt8], after damaged: Int) -> Int? {
    bytes.withUnsafeBytes { raw in
        var candidate = WALSegmentReader.searchStart(in: raw, damagedAt: damaged)
        while candidate < raw.count {
            if case .record = WALSegmentReader.decodeRecord(in: raw, at: candidate) { return candidate }
            candidate += 1
        }
        return nil
    }
}

/// Checks everything `scan` promises about `bytes`; returns the problems found (empty: none).
private func scanInvariantViolations(_ bytes: [UInt8]) -> [String] {
    var problems: [String] = []
    let (records, result) = scanSegment(bytes)
    var end = 0
    for record in records {
        if record.offset != end { problems.append("\(record) does not start where the previous one ended (\(end))") }
        if decodeRecord(bytes, at: record.offset) != .record(record) {
            problems.append("\(record) does not re-decode to the same record")
        }
        // Re-encoding a delivered record gives back its bytes (a hand-made batch of one is the only
        // valid record the encoder cannot produce: it writes a single mutation as a plain record).
        if !(record.isBatch && record.mutations.count == 1) {
            var reencoded: [UInt8] = []
            WALEncoder.append(record.mutations, to: &reencoded)
            if reencoded != Array(bytes[record.offset..<min(bytes.count, record.offset + record.encodedSize)]) {
                problems.append("\(record) does not re-encode to its bytes")
            }
        }
        end = record.offset + record.encodedSize
    }
    if result.validPrefixLength != end { problems.append("valid prefix \(result.validPrefixLength) != end of last record \(end)") }
    if result.validPrefixLength > bytes.count { problems.append("valid prefix \(result.validPrefixLength) > input \(bytes.count)") }
    switch result {
    case .clean(let endOffset):
        if endOffset != bytes.count { problems.append("clean at \(endOffset) but input is \(bytes.count) bytes") }
    case .tornTail(let offset, let droppedBytes, let damage):
        if offset + droppedBytes != bytes.count || droppedBytes <= 0 {
            problems.append("torn tail at \(offset) dropping \(droppedBytes) of \(bytes.count)")
        }
        if decodeRecord(bytes, at: offset) != .damaged(damage) { problems.append("torn tail damage \(damage) is not what decodes at \(offset)") }
        if let next = bruteForceNextRecord(bytes, after: offset) {
            problems.append("torn tail at \(offset) but a valid record starts at \(next)")
        }
    case .corrupted(let offset, let damage, let nextValidOffset):
        if decodeRecord(bytes, at: offset) != .damaged(damage) { problems.append("corruption damage \(damage) is not what decodes at \(offset)") }
        let next = bruteForceNextRecord(bytes, after: offset)
        if next != nextValidOffset { problems.append("next valid offset \(nextValidOffset), brute force says \(String(describing: next))") }
    }
    return problems
}

/// Structural offsets in an encoded segment where a length field lives: every record's payload
/// length, a batch's count, and every entry's key and value length.
private func lengthFieldOffsets(_ records: [[WALMutation]], at recordOffsets: [Int]) -> [Int] {
    var fields: [Int] = []
    for (record, start) in zip(records, recordOffsets) {
        fields.append(start)
        var entry = start + 4
        if record.count != 1 {
            fields.append(start + 5)
            entry += 5
        }
        for mutation in record {
            fields.append(entry + 1)
            fields.append(entry + 5)
            entry += mutation.encodedEntrySize
        }
    }
    return fields
}

/// Applies one random damage to `bytes`. `lengthFields` are offsets of known length fields.
private func mutate(_ bytes: inout [UInt8], lengthFields: [Int], using random: inout SplitMix64) -> String {
    let kind = Int.random(in: 0..<7, using: &random)
    switch kind {
    case 0 where !bytes.isEmpty:
        let bit = Int.random(in: 0..<(bytes.count * 8), using: &random)
        bytes[bit / 8] ^= 1 << UInt8(bit % 8)
        return "flip bit \(bit)"
    case 1 where !bytes.isEmpty:
        let position = Int.random(in: 0..<bytes.count, using: &random)
        let value = UInt8.random(in: .min ... .max, using: &random)
        bytes[position] = value
        return "byte \(position) = \(value)"
    case 2:
        let length = Int.random(in: 0...bytes.count, using: &random)
        bytes.removeSubrange(length...)
        return "truncate to \(length)"
    case 3:
        let position = Int.random(in: 0...bytes.count, using: &random)
        let inserted = random.interestingBytes(maxCount: 12)
        bytes.insert(contentsOf: inserted, at: position)
        return "insert \(inserted) at \(position)"
    case 4 where !bytes.isEmpty:
        let start = Int.random(in: 0..<bytes.count, using: &random)
        let end = Int.random(in: start...min(bytes.count, start + 16), using: &random)
        bytes.removeSubrange(start..<end)
        return "remove \(start)..<\(end)"
    case 5:
        let candidates = lengthFields.filter { $0 + 4 <= bytes.count }
        guard let field = candidates.randomElement(using: &random) else { return "no length field" }
        bytes.replaceSubrange(field..<(field + 4), with: le32(0xFFFF_FFFF))
        return "length field at \(field) = 0xFFFFFFFF"
    default:
        let position = Int.random(in: 0...bytes.count, using: &random)
        let zeros = Int.random(in: 1...40, using: &random)
        bytes.insert(contentsOf: [UInt8](repeating: 0, count: zeros), at: position)
        return "insert \(zeros) zeros at \(position)"
    }
}

/// A random segment of valid records.
private func randomSegment(using random: inout SplitMix64) -> (records: [[WALMutation]], bytes: [UInt8], offsets: [Int]) {
    let records = (0..<Int.random(in: 1...10, using: &random)).map { _ in random.record() }
    let (bytes, offsets) = encodeRecords(records)
    return (records, bytes, offsets)
}

@Suite("Robustness: WAL segments")
struct WALRobustnessTests {
    @Test("random byte strings scan without trapping and satisfy every scan invariant", arguments: [UInt64(0x5EED_0001), 0x5EED_0002])
    func randomBytes(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for trial in 0..<1500 {
            let bytes: [UInt8]
            if Bool.random(using: &random) {
                bytes = random.bytes(Int.random(in: 0...200, using: &random))
            } else {
                // Pieces that look like WAL structure: small lengths, opcodes, zeros, 0xFF runs.
                var built: [UInt8] = []
                for _ in 0..<Int.random(in: 0...20, using: &random) {
                    switch Int.random(in: 0..<5, using: &random) {
                    case 0: built += le32(UInt32.random(in: 0...40, using: &random))
                    case 1: built.append(UInt8.random(in: 0...4, using: &random))
                    case 2: built += [UInt8](repeating: 0, count: Int.random(in: 1...8, using: &random))
                    case 3: built += le32(0xFFFF_FFFF)
                    default: built += random.interestingBytes(maxCount: 8)
                    }
                }
                bytes = built
            }
            let problems = scanInvariantViolations(bytes)
            #expect(problems.isEmpty, "seed \(seed), trial \(trial), input \(bytes): \(problems)")
        }
    }

    @Test("randomly damaged valid segments scan without trapping and satisfy every scan invariant", arguments: [UInt64(0x5EED_0011), 0x5EED_0012])
    func damagedSegments(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for trial in 0..<1500 {
            let (records, original, offsets) = randomSegment(using: &random)
            let fields = lengthFieldOffsets(records, at: offsets)
            var bytes = original
            var steps: [String] = []
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                steps.append(mutate(&bytes, lengthFields: fields, using: &random))
            }
            let problems = scanInvariantViolations(bytes)
            #expect(problems.isEmpty, "seed \(seed), trial \(trial), damage \(steps): \(problems)")
        }
    }

    @Test("damage behind a recomputed CRC is caught by payload validation, never trusted blindly", arguments: [UInt64(0x5EED_0021), 0x5EED_0022])
    func damageBehindValidCRC(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var reachedValidation = 0
        for trial in 0..<1500 {
            let (records, original, offsets) = randomSegment(using: &random)
            let index = Int.random(in: 0..<records.count, using: &random)
            let start = offsets[index]
            let recordEnd = start + WALEncoder.recordSize(of: records[index])
            // Damage the payload only, then re-frame it with its true length and a correct CRC.
            var payload = Array(original[(start + 4)..<(recordEnd - 4)])
            let payloadFields = lengthFieldOffsets([records[index]], at: [0]).dropFirst().map { $0 - 4 }
            let step = mutate(&payload, lengthFields: payloadFields, using: &random)
            guard !payload.isEmpty else { continue }
            let bytes = Array(original[..<start]) + walFrame(payload) + Array(original[recordEnd...])
            let problems = scanInvariantViolations(bytes)
            #expect(problems.isEmpty, "seed \(seed), trial \(trial), record \(index), \(step): \(problems)")
            if case .damaged(let damage) = decodeRecord(bytes, at: start) {
                reachedValidation += 1
                let structural: Bool
                switch damage {
                case .malformedPayload, .unknownOpcode: structural = true
                default: structural = false
                }
                #expect(structural, "seed \(seed), trial \(trial), \(step): a CRC-valid payload failed with \(damage)")
            }
        }
        // Guards the test itself: most of these damages must reach payload validation.
        #expect(reachedValidation > 500, "seed \(seed): only \(reachedValidation) trials reached payload validation")
    }
}

// MARK: - Checkpoint invariants

/// Reads `bytes`; returns problems: an error that is not a CheckpointError, or a result that is not
/// consistent with the bytes.
private func checkpointInvariantViolations(_ bytes: [UInt8]) -> [String] {
    let header: CheckpointHeader
    let entries: [CheckpointEntry]
    do {
        (header, entries) = try readCheckpoint(bytes)
    } catch is CheckpointError {
        return []
    } catch {
        return ["threw \(error), not a CheckpointError"]
    }
    if UInt64(entries.count) != header.entryCount { return ["\(entries.count) entries, header says \(header.entryCount)"] }
    switch header.version {
    case 2:
        // A version 2 file that reads is exactly what the writer makes of its contents.
        if writeCheckpoint(generation: header.generation, entries: entries) != bytes {
            return ["an accepted version 2 file is not the canonical encoding of its entries"]
        }
    case 3:
        // A version 3 file that reads is exactly what the writer makes of its entries and revisions.
        var writer = CheckpointWriter(generation: header.generation, entryCount: header.entryCount, revision: header.revision)
        var encoded: [UInt8] = []
        do {
            try bytes.withUnsafeBytes { raw in
                try CheckpointReader.forEachEntryWithRevisions(of: raw, header: header) { key, value, revisions in
                    writer.append(key: key, value: value, revisions: revisions)
                }
            }
        } catch {
            return ["a version 3 file read by readAll is refused by forEachEntryWithRevisions: \(error)"]
        }
        encoded += writer.takeBuffered()
        encoded += writer.finish()
        if encoded != bytes { return ["an accepted version 3 file is not the canonical encoding of its entries"] }
    case 1:
        let canonical = handBuiltV1Checkpoint(generation: header.generation, entries: entries)
        if !bytes.starts(with: canonical) { return ["an accepted version 1 file does not start with its canonical encoding"] }
    default:
        return ["accepted version \(header.version)"]
    }
    return []
}

/// Offsets of the length fields of a checkpoint: the count, and each entry's key and value length.
private func checkpointLengthFields(_ entries: [CheckpointEntry], version: UInt32) -> [Int] {
    var fields = [20, 24]
    var offset = version == 3 ? 36 : (version == 2 ? 28 : 24)
    for entry in entries {
        fields += [offset, offset + 4]
        if version == 3 { fields += [offset + 8, offset + 16] }  // the revisions
        offset += (version == 3 ? 24 : 8) + entry.key.count + entry.value.count
    }
    return fields
}

/// A version 3 checkpoint of `entries` (sorted and made unique, as the format requires), with
/// revisions between 1 and the store's revision 9.
private func revisedCheckpoint(generation: UInt64, entries: [CheckpointEntry]) -> (bytes: [UInt8], entries: [CheckpointEntry]) {
    var unique: [CheckpointEntry] = []
    for entry in entries.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) where unique.last?.key != entry.key {
        unique.append(entry)
    }
    var writer = CheckpointWriter(generation: generation, entryCount: UInt64(unique.count), revision: 9)
    for (index, entry) in unique.enumerated() {
        entry.key.withUnsafeBytes { key in
            entry.value.withUnsafeBytes { value in
                writer.append(key: key, value: value, revisions: CheckpointRevisions(create: UInt64(1 + index % 4), mod: UInt64(5 + index % 5)))
            }
        }
    }
    return (writer.takeBuffered() + writer.finish(), unique)
}

@Suite("Robustness: checkpoints")
struct CheckpointRobustnessTests {
    @Test("random byte strings behind a checkpoint header never trap and never throw anything but CheckpointError", arguments: [UInt64(0x5EED_0101)])
    func randomBytes(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for trial in 0..<3000 {
            var bytes: [UInt8] = []
            switch Int.random(in: 0..<4, using: &random) {
            case 0: break
            case 1: bytes = CheckpointFormat.magic + le32(1)
            case 2: bytes = CheckpointFormat.magic + le32(2)
            default: bytes = CheckpointFormat.magic + le32(UInt32.random(in: 0...3, using: &random))
            }
            bytes += random.bytes(Int.random(in: 0...120, using: &random))
            if Bool.random(using: &random) && bytes.count >= 28 {
                // Plausible small count, so the entry parser runs.
                bytes.replaceSubrange(20..<24, with: le32(UInt32.random(in: 0...6, using: &random)))
            }
            let problems = checkpointInvariantViolations(bytes)
            #expect(problems.isEmpty, "seed \(seed), trial \(trial), input \(bytes): \(problems)")
        }
    }

    @Test("randomly damaged checkpoints of every version never trap; damaged version 2 and 3 files are always refused", arguments: [UInt64(0x5EED_0111), 0x5EED_0112])
    func damagedCheckpoints(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for trial in 0..<1500 {
            let entries = (0..<Int.random(in: 0...6, using: &random)).map { _ in
                CheckpointEntry(random.interestingBytes(maxCount: 8), random.interestingBytes(maxCount: 24))
            }
            let version = UInt32.random(in: 1...3, using: &random)
            var written = entries
            let original: [UInt8]
            switch version {
            case 3: (original, written) = revisedCheckpoint(generation: random.next(), entries: entries)
            case 2: original = writeCheckpoint(generation: random.next(), entries: entries)
            default: original = handBuiltV1Checkpoint(generation: random.next(), entries: entries)
            }
            let fields = checkpointLengthFields(written, version: version)
            var bytes = original
            var steps: [String] = []
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                steps.append(mutate(&bytes, lengthFields: fields, using: &random))
            }
            let problems = checkpointInvariantViolations(bytes)
            #expect(problems.isEmpty, "seed \(seed), trial \(trial), v\(version), \(steps): \(problems)")
            if version >= 2 && bytes != original {
                #expect(throws: CheckpointError.self, "seed \(seed), trial \(trial), \(steps) loaded silently") {
                    try CheckpointReader.readAll(bytes)
                }
            }
        }
    }

    @Test("damaged version 2 checkpoints with a recomputed CRC never trap and are accepted only when canonical", arguments: [UInt64(0x5EED_0121), 0x5EED_0122])
    func damageBehindValidCRC(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var refusedStructurally = 0
        for trial in 0..<1500 {
            let entries = (0..<Int.random(in: 0...6, using: &random)).map { _ in
                CheckpointEntry(random.interestingBytes(maxCount: 8), random.interestingBytes(maxCount: 24))
            }
            let original = writeCheckpoint(generation: 1, entries: entries)
            var body = Array(original.dropLast(4))
            let fields = checkpointLengthFields(entries, version: 2).filter { $0 >= 20 }
            var step = mutate(&body, lengthFields: fields, using: &random)
            // Keep the magic, version and generation intact so the structure parser is reached.
            if body.count < 28 || !body.starts(with: original.prefix(20)) {
                body = Array(original.prefix(20)) + le64(UInt64.random(in: 0...8, using: &random)) + Array(body.dropFirst(min(body.count, 28)))
                step += ", then header restored"
            }
            let bytes = resealV2(body + [0, 0, 0, 0])
            let problems = checkpointInvariantViolations(bytes)
            #expect(problems.isEmpty, "seed \(seed), trial \(trial), \(step): \(problems)")
            do {
                _ = try CheckpointReader.readAll(bytes)
            } catch let error as CheckpointError {
                switch error {
                case .truncatedEntry, .trailingBytes: refusedStructurally += 1
                default: Issue.record("seed \(seed), trial \(trial), \(step): behind a valid CRC, refused with \(error)")
                }
            } catch {
                Issue.record("seed \(seed), trial \(trial): \(error)")
            }
        }
        #expect(refusedStructurally > 500, "seed \(seed): only \(refusedStructurally) trials reached the structure checks")
    }
}
