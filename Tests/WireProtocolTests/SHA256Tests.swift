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

    /// Lengths around the padding boundary (55/56 bytes: one block or two), against the digests
    /// of coreutils' sha256sum.
    @Test func paddingBoundaries() {
        let expected: [Int: String] = [
            55: "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318",
            56: "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a",
            64: "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb",
        ]
        for (length, digest) in expected {
            #expect(hex(SHA256.hash([UInt8](repeating: 0x61, count: length))) == digest, "\(length) bytes")
        }
    }
}
