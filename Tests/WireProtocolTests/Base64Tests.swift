// Base64 as Go's base64.StdEncoding: RFC 4648 vectors, round trips, and Go's decoding verdicts
// (the expected results and offsets below were checked against Go's StdEncoding.DecodeString).
import Testing
import WireProtocol

/// RFC 4648 section 10.
private let rfc4648Vectors: [(plain: String, encoded: String)] = [
    ("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"),
    ("foob", "Zm9vYg=="), ("fooba", "Zm9vYmE="), ("foobar", "Zm9vYmFy"),
]

/// Base64 one bit at a time, independent of the code under test.
private func referenceBase64(_ bytes: [UInt8]) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    var bits: [Bool] = []
    for byte in bytes { for shift in (0..<8).reversed() { bits.append((byte >> UInt8(shift)) & 1 == 1) } }
    while bits.count % 6 != 0 { bits.append(false) }
    var text = ""
    for start in stride(from: 0, to: bits.count, by: 6) {
        var value = 0
        for bit in bits[start..<(start + 6)] { value = value << 1 | (bit ? 1 : 0) }
        text.append(alphabet[value])
    }
    while text.count % 4 != 0 { text.append("=") }
    return text
}

private func decode(_ text: String) throws(Base64Error) -> [UInt8] {
    try Base64.decode(Array(text.utf8))
}

private func decodeError(_ text: String) -> Base64Error? {
    do {
        _ = try decode(text)
        return nil
    } catch {
        return error
    }
}

/// Inputs Go refuses, with the offset Go's CorruptInputError reports.
private let illegalCharacterCases: [(input: String, offset: Int)] = [
    ("Zm9v!mFy", 4),  // outside the alphabet
    ("Zm9vYmF-", 7),  // URL-safe alphabet is not the standard one
    ("Zm9v_w==", 4),
    ("\r\nZ!==", 3),  // line breaks count for offsets
    ("Zg==Zg==", 4),  // padding in the middle: data after it
    ("Z=g=", 1),  // '=' after one character
    ("A===", 1),
    ("====", 0),
    ("=", 0),
    ("Zm=v", 2),  // "==" required after two characters; Go names the first '='
    ("Zg=a", 2),
    ("Zg=\n\na", 4),
    ("Zm9=v", 4),  // data after the padding
    ("Zm9vYmFy=", 8),
    ("Zm9vYmFy====", 8),
    ("Zg==\u{0}", 4),
    (" Zg==", 0),  // whitespace other than \r and \n
    ("\tZg==", 0),
    ("Zm 9v", 2),
    ("Zg== ", 4),
]

@Suite("Base64")
struct Base64Tests {
    // MARK: Encoding

    @Test("RFC 4648 vectors encode", arguments: rfc4648Vectors)
    func rfcVectorsEncode(plain: String, encoded: String) {
        #expect(Base64.encode(Array(plain.utf8)) == encoded)
    }

    @Test("RFC 4648 vectors decode", arguments: rfc4648Vectors)
    func rfcVectorsDecode(plain: String, encoded: String) throws {
        #expect(try decode(encoded) == Array(plain.utf8))
    }

    @Test("encodedCount is four characters per started group of three bytes")
    func encodedCount() {
        let expected = [0, 4, 4, 4, 8, 8, 8, 12, 12, 12, 16]
        #expect((0...10).map { Base64.encodedCount(of: $0) } == expected)
        #expect(Base64.encodedCount(of: 3 << 20) == 4 << 20)
    }

    @Test("encode(_:to:) appends after what the buffer holds, exactly encodedCount bytes")
    func encodeAppends() {
        var buffer = Array("prefix:".utf8)
        let bytes: [UInt8] = [0xFB, 0xFF, 0x00, 0x10]
        bytes.withUnsafeBytes { Base64.encode($0, to: &buffer) }
        #expect(String(decoding: buffer, as: UTF8.self) == "prefix:+/8AEA==")
        var empty: [UInt8] = [1]
        [UInt8]().withUnsafeBytes { Base64.encode($0, to: &empty) }
        #expect(empty == [1])
    }

    @Test("encoding matches a bitwise reference for every length 0...100")
    func encodingMatchesReference() {
        var random = SplitMix64(seed: 0xB64_0001)
        for length in 0...100 {
            let bytes = random.bytes(length)
            #expect(Base64.encode(bytes) == referenceBase64(bytes), "length \(length)")
        }
    }

    @Test("all 64 characters of the alphabet encode in order")
    func alphabetOrder() throws {
        // 0x00 0x10 0x83 0x10 0x51 0x87 ... : the 48 bytes whose 6-bit groups are 0, 1, ..., 63.
        var bits: [UInt8] = []
        for value in 0..<64 { for shift in (0..<6).reversed() { bits.append(UInt8((value >> shift) & 1)) } }
        let bytes = stride(from: 0, to: bits.count, by: 8).map { start in
            bits[start..<(start + 8)].reduce(UInt8(0)) { $0 << 1 | $1 }
        }
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        #expect(Base64.encode(bytes) == alphabet)
        #expect(try decode(alphabet) == bytes)
    }

    // MARK: Round trips

    @Test("random bytes of every length 0...100 round-trip")
    func roundTripSmall() throws {
        var random = SplitMix64(seed: 0xB64_0002)
        for length in 0...100 {
            let bytes = random.bytes(length)
            #expect(try decode(Base64.encode(bytes)) == bytes, "length \(length)")
        }
    }

    @Test("large inputs round-trip (1 MiB + 1, 3 × 64 KiB)", arguments: [(1 << 20) + 1, 3 << 16])
    func roundTripLarge(length: Int) throws {
        var random = SplitMix64(seed: 0xB64_0003 &+ UInt64(length))
        let bytes = random.bytes(length)
        let encoded = Base64.encode(bytes)
        #expect(encoded.utf8.count == Base64.encodedCount(of: length))
        #expect(try Base64.decode(encoded.utf8) == bytes)
    }

    @Test("every kind of collection decodes: String.UTF8View, Substring, ArraySlice, non-contiguous")
    func collectionsDecode() throws {
        let text = "xxZm9vYmE=xx"
        let inner = text.dropFirst(2).dropLast(2)
        let expected = Array("fooba".utf8)
        #expect(try Base64.decode("Zm9vYmE=".utf8) == expected)
        #expect(try Base64.decode(inner.utf8) == expected)
        #expect(try Base64.decode(Array(text.utf8)[2..<10]) == expected)
        #expect(try Base64.decode(Array("Zm9vYmE=".utf8).lazy.map { $0 }) == expected)
        #expect(throws: Base64Error.illegalCharacter(offset: 4)) { try Base64.decode("Zm9v!mE=".utf8.lazy.map { $0 }) }
    }

    // MARK: Go's decoding rules

    @Test("missing padding is refused as badLength", arguments: ["Zg", "Zm8", "Z", "Zm9vY", "Zm9vYmE", "Zg=", "AA="])
    func missingPadding(input: String) {
        #expect(decodeError(input) == .badLength)
    }

    @Test("line breaks do not complete a group: \"Zg=\\n\" is badLength")
    func lineBreaksDoNotCountAsPadding() {
        #expect(decodeError("Zg=\n") == .badLength)
        #expect(decodeError("Zm9\r\n") == .badLength)
    }

    @Test("illegal characters and misplaced padding report Go's offset", arguments: illegalCharacterCases)
    func illegalCharacterOffsets(input: String, offset: Int) {
        #expect(decodeError(input) == .illegalCharacter(offset: offset))
    }

    @Test("every byte outside the alphabet is refused at its offset")
    func everyIllegalByte() {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=\r\n".utf8)
        for byte in UInt8.min...UInt8.max where !allowed.contains(byte) {
            let input: [UInt8] = Array("Zm9v".utf8) + [UInt8(ascii: "Y"), byte] + Array("E=".utf8)
            #expect(throws: Base64Error.illegalCharacter(offset: 5), "byte \(byte)") { try Base64.decode(input) }
        }
    }

    @Test("\"\\r\\n\" inserted at any position is ignored")
    func lineBreaksAnywhere() throws {
        let encoded = Array("Zm9vYmE=".utf8)
        for position in 0...encoded.count {
            var input = encoded
            input.insert(contentsOf: Array("\r\n".utf8), at: position)
            #expect(try Base64.decode(input) == Array("fooba".utf8), "at \(position)")
        }
        #expect(try decode("Zg=\r\n=") == [0x66])
        #expect(try decode("Z\rg\n=\r=\n") == [0x66])
        #expect(try decode("\r\n\n\r") == [])
    }

    @Test("non-zero trailing bits are accepted and dropped, as Go's (non-strict) StdEncoding does")
    func nonZeroTrailingBits() throws {
        #expect(try decode("YR==") == Array("a".utf8))
        #expect(try decode("YWJ=") == Array("ab".utf8))
        #expect(try decode("YQ==") == Array("a".utf8))
    }

    @Test("the empty input decodes to no bytes")
    func emptyInput() throws {
        #expect(try decode("") == [])
    }

    @Test("errors are described in Go's words")
    func descriptions() {
        #expect(Base64Error.illegalCharacter(offset: 4).description == "illegal base64 data at input byte 4")
        #expect(Base64Error.badLength.description.hasPrefix("illegal base64 data"))
    }

    // MARK: Robustness

    @Test("mutated encodings never trap; whatever decodes re-encodes to the same length and bytes")
    func mutationFuzz() {
        var random = SplitMix64(seed: 0xB64_0004)
        let alphabet = Array("ABCZaz09+/=\r\n -_!\u{0}".utf8) + [0x80, 0xFF]
        for _ in 0..<5000 {
            var input = Array(Base64.encode(random.bytes(Int.random(in: 0...12, using: &random))).utf8)
            for _ in 0..<Int.random(in: 0...3, using: &random) {
                let byte = alphabet[Int.random(in: 0..<alphabet.count, using: &random)]
                switch Int.random(in: 0..<3, using: &random) {
                case 0 where !input.isEmpty: input.remove(at: Int.random(in: 0..<input.count, using: &random))
                case 1 where !input.isEmpty: input[Int.random(in: 0..<input.count, using: &random)] = byte
                default: input.insert(byte, at: Int.random(in: 0...input.count, using: &random))
                }
            }
            do {
                let decoded = try Base64.decode(input)
                let stripped = input.filter { $0 != 0x0D && $0 != 0x0A }
                let reencoded = Base64.encode(decoded)
                #expect(reencoded.utf8.count == stripped.count, "\(input)")
                #expect(try Base64.decode(reencoded.utf8) == decoded, "\(input)")
            } catch {
                if case .illegalCharacter(let offset) = error {
                    #expect(offset >= 0 && offset < input.count, "\(input)")
                }
            }
        }
    }
}
