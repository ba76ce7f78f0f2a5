import Testing
import WireProtocol

/// Inputs and their CRC-32 as computed by zlib.crc32.
private let publishedCRCVectors: [([UInt8], UInt32)] = [
    (Array("a".utf8), 0xE8B7_BE43),
    (Array("The quick brown fox jumps over the lazy dog".utf8), 0x414F_A339),
    ([UInt8](repeating: 0x00, count: 32), 0x190A_55AD),
    ([UInt8](repeating: 0xFF, count: 32), 0xFF6C_AB0B),
]

@Suite("CRC32")
struct CRC32Tests {
    @Test("the check value of \"123456789\" is 0xCBF43926")
    func checkValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test("the checksum of no bytes is 0")
    func emptyInput() {
        #expect(CRC32.checksum([]) == 0)
        #expect(CRC32().value == 0)
        #expect(CRC32.checksum(UnsafeRawBufferPointer(start: nil, count: 0)) == 0)
    }

    @Test("published vectors match (zlib.crc32)", arguments: publishedCRCVectors)
    func publishedVectors(input: [UInt8], expected: UInt32) {
        #expect(CRC32.checksum(input) == expected)
    }

    @Test("the bitwise reference in these tests agrees with the check value")
    func referenceIsSound() {
        // Guards the reference itself, so the comparisons below test the code, not the reference.
        #expect(referenceCRC32(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(referenceCRC32([UInt8]()) == 0)
    }

    @Test("lengths 0...40 (tail loop only, slicing loop plus tail) match the bitwise reference")
    func slicingAndTailPathsMatchReference() {
        let seed: UInt64 = 0xC0FF_EE01
        var random = SplitMix64(seed: seed)
        for length in 0...40 {
            for _ in 0..<8 {
                let bytes = random.bytes(length)
                #expect(
                    CRC32.checksum(bytes) == referenceCRC32(bytes),
                    "seed \(seed), length \(length), bytes \(bytes)")
            }
        }
    }

    @Test("a buffer that starts at an odd address gives the same checksum")
    func unalignedStartMatchesReference() {
        let seed: UInt64 = 0xC0FF_EE02
        var random = SplitMix64(seed: seed)
        let backing = random.bytes(64)
        backing.withUnsafeBytes { raw in
            for start in 0..<8 {
                for length in [0, 1, 7, 8, 9, 15, 16, 17, 40] {
                    let slice = UnsafeRawBufferPointer(rebasing: raw[start..<(start + length)])
                    #expect(
                        CRC32.checksum(slice) == referenceCRC32(backing[start..<(start + length)]),
                        "seed \(seed), start \(start), length \(length)")
                }
            }
        }
    }

    @Test("updating at every single split point equals the one-shot checksum")
    func everyTwoPieceSplitEqualsOneShot() {
        let seed: UInt64 = 0xC0FF_EE03
        var random = SplitMix64(seed: seed)
        let message = random.bytes(100)
        let oneShot = CRC32.checksum(message)
        for split in 0...message.count {
            var crc = CRC32()
            crc.update(Array(message[..<split]))
            crc.update(Array(message[split...]))
            #expect(crc.value == oneShot, "seed \(seed), split at \(split)")
        }
    }

    @Test("updating over random pieces (including empty ones) equals the one-shot checksum")
    func randomPiecesEqualOneShot() {
        let seed: UInt64 = 0xC0FF_EE04
        var random = SplitMix64(seed: seed)
        for trial in 0..<300 {
            let message = random.bytes(Int.random(in: 0...300, using: &random))
            var crc = CRC32()
            var cuts: [Int] = []
            var position = 0
            while position < message.count {
                let piece = Int.random(in: 0...min(20, message.count - position), using: &random)
                cuts.append(piece)
                message.withUnsafeBytes { raw in
                    crc.update(UnsafeRawBufferPointer(rebasing: raw[position..<(position + piece)]))
                }
                position += piece
            }
            #expect(
                crc.value == referenceCRC32(message),
                "seed \(seed), trial \(trial), length \(message.count), pieces \(cuts)")
        }
    }

    @Test("reading the value does not end the computation")
    func valueIsANonDestructiveRead() {
        var crc = CRC32()
        crc.update(Array("12345".utf8))
        #expect(crc.value == referenceCRC32(Array("12345".utf8)))
        crc.update(Array("6789".utf8))
        #expect(crc.value == 0xCBF4_3926)
    }

    @Test("a single flipped bit always changes the checksum")
    func singleBitFlipChangesChecksum() {
        let seed: UInt64 = 0xC0FF_EE05
        var random = SplitMix64(seed: seed)
        let message = random.bytes(33)
        let original = CRC32.checksum(message)
        for bit in 0..<(message.count * 8) {
            var damaged = message
            damaged[bit / 8] ^= 1 << UInt8(bit % 8)
            #expect(CRC32.checksum(damaged) != original, "seed \(seed), bit \(bit)")
        }
    }
}

@Suite("Little-endian helpers")
struct LittleEndianTests {
    @Test("appendLittleEndian(UInt32) writes the least significant byte first")
    func append32() {
        var bytes: [UInt8] = [0xAA]
        bytes.appendLittleEndian(UInt32(0x0102_0304))
        #expect(bytes == [0xAA, 0x04, 0x03, 0x02, 0x01])
    }

    @Test("appendLittleEndian(UInt64) writes eight bytes, least significant first")
    func append64() {
        var bytes: [UInt8] = []
        bytes.appendLittleEndian(UInt64(0x0102_0304_0506_0708))
        #expect(bytes == [0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01])
    }

    @Test("storeLittleEndian overwrites exactly four bytes at the offset")
    func store32() {
        var bytes = [UInt8](repeating: 0xEE, count: 7)
        bytes.storeLittleEndian(0xDEAD_BEEF, at: 2)
        #expect(bytes == [0xEE, 0xEE, 0xEF, 0xBE, 0xAD, 0xDE, 0xEE])
    }

    @Test("loads read little-endian integers at unaligned offsets")
    func unalignedLoads() {
        let bytes: [UInt8] = [0xFF, 0x04, 0x03, 0x02, 0x01, 0x08, 0x07, 0x06, 0x05]
        bytes.withUnsafeBytes { raw in
            #expect(raw.loadLittleEndianUInt32(at: 1) == 0x0102_0304)
            #expect(raw.loadLittleEndianUInt64(at: 1) == 0x0506_0708_0102_0304)
        }
    }
}
