import Testing
import WireProtocol

/// Files written by the reference Go small-db (Tests/StorageEngineTests/Fixtures/go-small-db),
/// read with this project's readers. Read only: these tests never write them.
@Suite("Go small-db fixtures")
struct GoFixtureTests {
    @Test("basic/logfile.2 scans clean with 180 Go-format (non-batch) records")
    func basicLogScansClean() throws {
        let bytes = try GoFixtures.bytes("basic/logfile.2")
        let (records, result) = scanSegment(bytes)
        #expect(result == .clean(endOffset: bytes.count))
        #expect(records.count == 180)
        #expect(records.allSatisfy { !$0.isBatch && $0.mutations.count == 1 })
    }

    @Test("every record of basic/logfile.2 re-encodes to exactly the bytes Go wrote")
    func basicLogReencodesByteForByte() throws {
        let bytes = try GoFixtures.bytes("basic/logfile.2")
        let (records, _) = scanSegment(bytes)
        try #require(records.count == 180)
        var reencoded: [UInt8] = []
        for record in records { WALEncoder.append(record.mutations, to: &reencoded) }
        #expect(reencoded == bytes)
    }

    @Test("basic/logfile.2 holds sets and deletes, empty values, and non-UTF-8 keys")
    func basicLogHasTheAdvertisedVariety() throws {
        let mutations = scanSegment(try GoFixtures.bytes("basic/logfile.2")).records.flatMap(\.mutations)
        var sets = 0, deletes = 0, emptyValues = 0, nonUTF8Keys = 0
        for mutation in mutations {
            switch mutation {
            case .set(_, let value):
                sets += 1
                if value.isEmpty { emptyValues += 1 }
            case .delete: deletes += 1
            }
            if String(validating: mutation.key, as: UTF8.self) == nil { nonUTF8Keys += 1 }
        }
        #expect(sets > 0)
        #expect(deletes > 0)
        #expect(emptyValues > 0)
        #expect(nonUTF8Keys > 0)
    }

    @Test("torn-tail/logfile.2 is a torn tail dropping the 37 bytes of the half-written record")
    func tornTailFixture() throws {
        let bytes = try GoFixtures.bytes("torn-tail/logfile.2")
        let basic = try GoFixtures.bytes("basic/logfile.2")
        let (records, result) = scanSegment(bytes)
        #expect(result == .tornTail(offset: basic.count, droppedBytes: 37, damage: .incomplete))
        #expect(records.count == 180)
    }

    @Test("corrupt-wal-middle/logfile.2 is corruption at offset 3636 (record 90), with the 90 records before it (0 to 89) delivered")
    func corruptMiddleFixture() throws {
        let bytes = try GoFixtures.bytes("corrupt-wal-middle/logfile.2")
        let (records, result) = scanSegment(bytes)
        guard case .corrupted(let offset, let damage, let nextValidOffset) = result else {
            Issue.record("expected corruption, got \(result)")
            return
        }
        #expect(offset == 3636)
        #expect(damage == .checksumMismatch)
        #expect(records.count == 90)
        // The next valid record is record 91 of the intact log.
        let intact = scanSegment(try GoFixtures.bytes("basic/logfile.2")).records
        #expect(nextValidOffset == intact[91].offset)
        #expect(intact[90].offset == 3636)
        #expect(records == Array(intact[..<90]))
    }

    @Test("basic/logfile.2 cut at every length inside its last record is a torn tail at that record")
    func basicLogTornAtEveryCutOfLastRecord() throws {
        let bytes = try GoFixtures.bytes("basic/logfile.2")
        let records = scanSegment(bytes).records
        let last = try #require(records.last)
        for cut in 1..<last.encodedSize {
            let (delivered, result) = scanSegment(Array(bytes[..<(last.offset + cut)]))
            #expect(
                result == .tornTail(offset: last.offset, droppedBytes: cut, damage: .incomplete), "cut \(cut)")
            #expect(delivered.count == 179, "cut \(cut)")
        }
    }

    @Test("basic/checkpoint.2 reads as version 1, generation 2, 266 entries that fill the file exactly")
    func basicCheckpointReads() throws {
        let bytes = try GoFixtures.bytes("basic/checkpoint.2")
        let (header, entries) = try readCheckpoint(bytes, expectedGeneration: 2)
        #expect(header.version == CheckpointFormat.goVersion)
        #expect(header.generation == 2)
        #expect(header.entryCount == 266)
        #expect(entries.count == 266)
        #expect(Set(entries.map(\.key)).count == 266, "keys are distinct")
        let entryBytes = entries.reduce(0) { $0 + 8 + $1.key.count + $1.value.count }
        #expect(24 + entryBytes == bytes.count)
        #expect(entries.first == CheckpointEntry(Array("key000265".utf8), []))
    }

    @Test("basic/checkpoint.2 is refused when the file name says another generation")
    func basicCheckpointGenerationMismatch() throws {
        let bytes = try GoFixtures.bytes("basic/checkpoint.2")
        #expect(throws: CheckpointError.generationMismatch(expected: 3, found: 2)) {
            try CheckpointReader.readAll(bytes, expectedGeneration: 3)
        }
    }

    @Test("basic/checkpoint.2 with bytes appended still reads the same entries (Go ignores trailing bytes)")
    func basicCheckpointWithTrailingBytes() throws {
        let bytes = try GoFixtures.bytes("basic/checkpoint.2")
        let original = try readCheckpoint(bytes).entries
        let extended = try readCheckpoint(bytes + Array("trailing junk".utf8) + [0, 0xFF]).entries
        #expect(extended == original)
    }

    @Test("basic/checkpoint.2 rewritten as version 2 round-trips the same entries")
    func basicCheckpointConvertsToVersion2() throws {
        let (_, entries) = try readCheckpoint(try GoFixtures.bytes("basic/checkpoint.2"))
        let v2 = writeCheckpoint(generation: 2, entries: entries, takeAfter: [10, 100, 200])
        let (header, reread) = try readCheckpoint(v2, expectedGeneration: 2)
        #expect(header.version == 2)
        #expect(reread == entries)
    }
}
