import Testing
import WireProtocol

/// The chunked readers (`WALChunkedScan`, `CheckpointChunkedReader`) decide exactly as the buffer
/// readers do, on any bytes and at any chunk size: the same records, results and errors.
@Suite("Chunked WAL and checkpoint readers")
struct ChunkedReaderTests {
    private static let chunkSizes = [1, 3, 7, 16, 64, 1000, 1 << 20]

    /// `bytes` as a file read through `read(offset, maxBytes)`.
    private static func reader(_ bytes: [UInt8]) -> (Int, Int) throws(Never) -> [UInt8] {
        { (offset, maxBytes) throws(Never) in
            let start = min(offset, bytes.count)
            return Array(bytes[start..<min(bytes.count, start + maxBytes)])
        }
    }

    private struct Scanned: Equatable {
        var records: [[UInt8]]
        var result: WALScanResult
    }

    private static func scanWhole(_ bytes: [UInt8]) -> Scanned {
        var records: [[UInt8]] = []
        let result = bytes.withUnsafeBytes { raw in WALSegmentReader.scan(raw) { records.append(Array($0.payload)) } }
        return Scanned(records: records, result: result)
    }

    private static func scanChunked(_ bytes: [UInt8], chunkSize: Int) -> (Scanned, WALChunkedScan) {
        var records: [[UInt8]] = []
        let scan = WALChunkedScan.scan(chunkSize: chunkSize, read: reader(bytes)) { records.append(Array($0.payload)) }
        return (Scanned(records: records, result: scan.result), scan)
    }

    /// A segment of random records, then one kind of damage.
    private static func segment(seed: UInt64) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        var bytes: [UInt8] = []
        for _ in 0..<Int.random(in: 0...12, using: &random) {
            var mutations: [WALMutation] = []
            for _ in 0..<Int.random(in: 1...3, using: &random) {
                let key = random.interestingBytes(maxCount: 12)
                mutations.append(Bool.random(using: &random)
                    ? .set(key: key, value: random.interestingBytes(maxCount: Int.random(in: 0...1, using: &random) == 0 ? 20 : 3000))
                    : .delete(key: key))
            }
            WALEncoder.append(mutations, to: &bytes)
        }
        switch Int.random(in: 0..<6, using: &random) {
        case 0: break  // clean
        case 1: bytes += [UInt8](repeating: 0, count: Int.random(in: 1...5000, using: &random))  // zeros written ahead
        case 2: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))  // torn
        case 3 where !bytes.isEmpty: bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= 0x5A  // corrupt
        case 4: bytes += random.bytes(Int.random(in: 1...300, using: &random))  // garbage tail
        default:
            // Damage, then intact records after it.
            bytes += random.bytes(Int.random(in: 1...40, using: &random))
            WALEncoder.append([.set(key: [1], value: random.bytes(50))], to: &bytes)
        }
        return bytes
    }

    @Test func walScanMatchesTheBufferReaderOnRandomDamagedSegments() {
        for seed in UInt64(0)..<400 {
            let bytes = Self.segment(seed: seed)
            let whole = Self.scanWhole(bytes)
            for chunkSize in Self.chunkSizes {
                let (chunked, scan) = Self.scanChunked(bytes, chunkSize: chunkSize)
                #expect(chunked == whole, "seed \(seed), chunk size \(chunkSize)")
                #expect(scan.fileSize == bytes.count, "seed \(seed), chunk size \(chunkSize)")
                if case .tornTail(let offset, _, _) = whole.result {
                    #expect(scan.tailIsZeros == bytes[offset...].allSatisfy { $0 == 0 }, "seed \(seed), chunk size \(chunkSize)")
                }
            }
        }
    }

    /// Every cut of a segment (a torn tail at every offset, so at and beside every chunk boundary),
    /// with and without zeros written ahead after the cut, at chunk sizes around a record's size
    /// and its header's: the same outcome as the buffer reader, and the same tail.
    @Test func walScanMatchesTheBufferReaderAtEveryCutAndChunkBoundary() {
        var segment: [UInt8] = []
        for index in 0..<6 {
            WALEncoder.append([.set(key: [UInt8(index)], value: [UInt8](repeating: UInt8(index), count: 3 + 7 * index))], to: &segment)
        }
        let firstRecord = 4 + 1 + 4 + 4 + 4 + 1 + 3 + 4  // header, opcode, count, lengths, key, value, CRC
        let chunkSizes = [1, 2, 4, 5, 8, 11, 12, 13, firstRecord - 1, firstRecord, firstRecord + 1, 64]
        for cut in 0...segment.count {
            for zeros in [0, 1, 8, 40] {
                let bytes = Array(segment[..<cut]) + [UInt8](repeating: 0, count: zeros)
                let whole = Self.scanWhole(bytes)
                for chunkSize in chunkSizes {
                    let (chunked, scan) = Self.scanChunked(bytes, chunkSize: chunkSize)
                    #expect(chunked == whole, "cut \(cut), zeros \(zeros), chunk \(chunkSize)")
                    #expect(scan.fileSize == bytes.count, "cut \(cut), zeros \(zeros), chunk \(chunkSize)")
                    if case .tornTail(let offset, _, _) = whole.result {
                        #expect(scan.tailIsZeros == bytes[offset...].allSatisfy { $0 == 0 }, "cut \(cut), zeros \(zeros), chunk \(chunkSize)")
                    }
                }
            }
        }
    }

    /// Every cut of a checkpoint, at chunk sizes around an entry's size: the same entries or the
    /// same error as the buffer reader.
    @Test func checkpointReadMatchesTheBufferReaderAtEveryCutAndChunkBoundary() {
        var writer = CheckpointWriter(generation: 2, entryCount: 5, layout: .unrevised)
        for index in 0..<5 {
            let key = [UInt8(index), 1]
            let value = [UInt8](repeating: UInt8(index), count: 2 + 5 * index)
            key.withUnsafeBytes { k in value.withUnsafeBytes { v in writer.append(key: k, value: v) } }
        }
        let file = writer.finish()
        for cut in 0...file.count {
            let bytes = Array(file[..<cut])
            let whole = Self.readWhole(bytes, generation: 2)
            for chunkSize in [1, 3, 7, 8, 9, 11, 12, 13, 28, 32] {
                #expect(Self.readChunked(bytes, generation: 2, chunkSize: chunkSize) == whole, "cut \(cut), chunk \(chunkSize)")
            }
        }
    }

    @Test func walScanOfZerosAfterRecordsIsATornTailOfZeros() {
        var bytes: [UInt8] = []
        WALEncoder.append([.set(key: [7], value: [8])], to: &bytes)
        let end = bytes.count
        bytes += [UInt8](repeating: 0, count: 100_000)
        let (chunked, scan) = Self.scanChunked(bytes, chunkSize: 4096)
        #expect(chunked.result == .tornTail(offset: end, droppedBytes: 100_000, damage: .zeroLength))
        #expect(scan.tailIsZeros)
    }

    @Test func walScanHoldsARecordLargerThanTheChunk() {
        var bytes: [UInt8] = []
        WALEncoder.append([.set(key: [1], value: [UInt8](repeating: 9, count: 300_000))], to: &bytes)
        WALEncoder.append([.delete(key: [1])], to: &bytes)
        let (chunked, _) = Self.scanChunked(bytes, chunkSize: 1024)
        #expect(chunked == Self.scanWhole(bytes))
        #expect(chunked.records.count == 2)
    }

    /// A length field that claims 64 MiB in a small file allocates no more than the file has.
    @Test func walScanNeverReadsPastTheEndForAHugeLengthField() {
        var bytes: [UInt8] = [0xFF, 0xFF, 0xFF, 0x03]  // 64 MiB - 1
        bytes += [UInt8](repeating: 1, count: 50)
        var largestRead = 0
        let scan = WALChunkedScan.scan(chunkSize: 16, read: { (offset, maxBytes) throws(Never) in
            let start = min(offset, bytes.count)
            let piece = Array(bytes[start..<min(bytes.count, start + maxBytes)])
            largestRead = max(largestRead, piece.count)
            return piece
        }) { _ in }
        #expect(scan.result == Self.scanWhole(bytes).result)
        #expect(largestRead <= bytes.count)
    }

    // MARK: Checkpoints

    private enum Outcome: Equatable {
        case entries(CheckpointHeader, [[UInt8]])
        case failed(String)
    }

    private static func readWhole(_ bytes: [UInt8], generation: UInt64) -> Outcome {
        do {
            let (header, entries) = try CheckpointReader.readAll(bytes, expectedGeneration: generation)
            return .entries(header, entries.map { $0.key + [0xEE] + $0.value })
        } catch {
            return .failed("\(error)")
        }
    }

    private static func readChunked(_ bytes: [UInt8], generation: UInt64, chunkSize: Int) -> Outcome {
        let read: (Int, Int) throws -> [UInt8] = { offset, maxBytes in
            let start = min(offset, bytes.count)
            return Array(bytes[start..<min(bytes.count, start + maxBytes)])
        }
        do {
            let header = try CheckpointChunkedReader.header(fileSize: bytes.count, expectedGeneration: generation, read: read)
            try CheckpointChunkedReader.verifyChecksum(header: header, chunkSize: chunkSize, read: read)
            var entries: [[UInt8]] = []
            try CheckpointChunkedReader.forEachEntry(header: header, chunkSize: chunkSize, read: read) { key, value in
                entries.append(Array(key) + [0xEE] + Array(value))
            }
            return .entries(header, entries)
        } catch {
            return .failed("\(error)")
        }
    }

    @Test func checkpointReadMatchesTheBufferReaderOnRandomDamagedFiles() {
        for seed in UInt64(0)..<300 {
            var random = SplitMix64(seed: seed)
            let count = Int.random(in: 0...20, using: &random)
            var writer = CheckpointWriter(generation: 4, entryCount: UInt64(count), layout: .unrevised)
            for _ in 0..<count {
                let key = random.interestingBytes(maxCount: 10)
                let value = random.interestingBytes(maxCount: Bool.random(using: &random) ? 10 : 5000)
                key.withUnsafeBytes { k in value.withUnsafeBytes { v in writer.append(key: k, value: v) } }
            }
            var bytes = writer.finish()
            switch Int.random(in: 0..<5, using: &random) {
            case 0: break
            case 1: bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &random)))
            case 2: bytes[Int.random(in: 0..<bytes.count, using: &random)] ^= 0x10
            case 3: bytes += random.bytes(Int.random(in: 1...9, using: &random))
            default: bytes[8] = 1  // read as the Go format (no checksum; trailing bytes ignored)
            }
            let whole = Self.readWhole(bytes, generation: 4)
            for chunkSize in Self.chunkSizes {
                #expect(Self.readChunked(bytes, generation: 4, chunkSize: chunkSize) == whole, "seed \(seed), chunk \(chunkSize)")
            }
        }
    }

    @Test func checkpointWhoseGenerationFieldDisagreesIsRefused() {
        var writer = CheckpointWriter(generation: 5, entryCount: 0, layout: .unrevised)
        let bytes = writer.finish()
        #expect(Self.readChunked(bytes, generation: 1, chunkSize: 8)
            == .failed(CheckpointError.generationMismatch(expected: 1, found: 5).description))
    }
}
