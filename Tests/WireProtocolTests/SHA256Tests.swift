import Testing
import WireProtocol

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { byte in String(byte >> 4, radix: 16) + String(byte & 0x0F, radix: 16) }.joined()
}

/// The examples of FIPS 180-4 (NIST's "SHA256.pdf", "SHA2_Additional.pdf") and the empty message.
private let fips180Vectors: [(String, [UInt8], String)] = [
    ("empty", [], "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("abc", Array("abc".utf8), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
    ("448 bits", Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8),
     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ("896 bits", Array("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8),
     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"),
    ("one million a", [UInt8](repeating: 0x61, count: 1_000_000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"),
]

@Suite("SHA-256")
struct SHA256Tests {
    @Test(arguments: fips180Vectors.indices)
    func fipsVectors(_ index: Int) {
        let (name, message, digest) = fips180Vectors[index]
        #expect(hex(SHA256.hash(message)) == digest, "\(name)")
    }

    @Test func piecesOfAnySizeGiveTheSameDigest() {
        let message = Array("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu".utf8)
        for pieceSize in [1, 3, 55, 56, 63, 64, 65, 111] {
            var hasher = SHA256()
            var offset = 0
            while offset < message.count {
                let end = min(message.count, offset + pieceSize)
                hasher.update(message[offset..<end])
                offset = end
            }
            #expect(hex(hasher.finalize()) == "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1", "pieces of \(pieceSize)")
        }
    }

    /// Lengths around the padding boundary (55/56 bytes: one block or two; 63, 64, 65: a block
    /// boundary; 119/120 and 127–129: the same in the second block; 1,000: many blocks), against
    /// the digests of coreutils' sha256sum and Python's hashlib.
    @Test func paddingBoundaries() {
        let expected: [Int: String] = [
            55: "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
            56: "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
            57: "f13b2d724659eb3bf47f2dd6af1accc87b81f09f59f2b75e5c0bed6589dfe8c6",
            63: "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34",
            64: "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
            65: "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0",
            111: "6374f73208854473827f6f6a3f43b1f53eaa3b82c21c1a6d69a2110b2a79baad",
            112: "f54353008a2553262ecdc4a34749563ba0950e8b0fc8652780b0a614b99683c1",
            119: "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb",
            120: "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c",
            127: "c57e9278af78fa3cab38667bef4ce29d783787a2f731d4e12200270f0c32320a",
            128: "6836cf13bac400e9105071cd6af47084dfacad4e5e302c94bfed24e013afb73e",
            129: "c12cb024a2e5551cca0e08fce8f1c5e314555cc3fef6329ee994a3db752166ae",
            1000: "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3",
        ]
        for (length, digest) in expected {
            #expect(hex(SHA256.hash([UInt8](repeating: 0x61, count: length))) == digest, "\(length) bytes")
        }
    }

    /// Every byte value in a multi-block message (1,024 bytes: 0, 1, …, 255 four times), whole
    /// and in pieces that straddle the block boundaries (Python's hashlib).
    @Test func everyByteValueOverManyBlocks() {
        let message = (0..<1024).map { UInt8(truncatingIfNeeded: $0) }
        let digest = "785b0751fc2c53dc14a4ce3d800e69ef9ce1009eb327ccf458afe09c242c26c9"
        #expect(hex(SHA256.hash(message)) == digest)
        var hasher = SHA256()
        var offset = 0
        for piece in [63, 1, 64, 65, 55, 9, 200] {
            hasher.update(message[offset..<(offset + piece)])
            offset += piece
        }
        hasher.update(message[offset...])
        #expect(hex(hasher.finalize()) == digest)
    }
}
