// Percent-decoding of keys in paths: every byte can be expressed, '+' is literal, and a '%'
// without two hex digits after it makes the whole input invalid (Go answers 400).
import Testing
import WireProtocol

private func decoded(_ text: String) -> [UInt8]? { PercentDecoding.decode(Array(text.utf8)) }

@Suite("Percent decoding")
struct PercentDecodingTests {
    @Test("text without escapes is returned unchanged")
    func noEscapes() {
        #expect(decoded("plain-key_1.txt~") == Array("plain-key_1.txt~".utf8))
        #expect(decoded("") == [])
    }

    @Test("%2F decodes to a '/' that is part of the key")
    func encodedSlash() {
        #expect(decoded("a%2Fb") == Array("a/b".utf8))
    }

    @Test("%00 decodes to a NUL byte")
    func nul() {
        #expect(decoded("%00") == [0])
    }

    @Test("%FF decodes to a byte that is not UTF-8")
    func highByte() {
        #expect(decoded("k%FFv") == [UInt8(ascii: "k"), 0xFF, UInt8(ascii: "v")])
    }

    @Test("hex digits may be lowercase or mixed case")
    func hexCase() {
        #expect(decoded("%2f%fF%aB") == [0x2F, 0xFF, 0xAB])
    }

    @Test("'+' is kept as '+', not turned into a space")
    func plusKept() {
        #expect(decoded("a+b%2B") == Array("a+b+".utf8))
    }

    @Test("every byte value round-trips through its escape")
    func everyByte() {
        let escaped = (0...255).map { "%" + String(format2: $0) }.joined()
        #expect(decoded(escaped) == (0...255).map { UInt8($0) })
    }

    @Test("an escape's result is not decoded again")
    func noDoubleDecoding() {
        #expect(decoded("%2541") == Array("%41".utf8))
    }

    @Test("a '%' without two hex digits after it is invalid", arguments: ["%", "%G1", "%1G", "%1", "abc%", "a%2", "%%41", "% 41"])
    func invalid(text: String) {
        #expect(decoded(text) == nil)
    }

    @Test("non-contiguous collections decode the same way")
    func anyCollection() {
        let bytes = Array("x%41y".utf8)
        #expect(PercentDecoding.decode(bytes[1...]) == Array("Ay".utf8))
        #expect(PercentDecoding.decode(bytes.reversed().reversed()) == Array("xAy".utf8))
    }
}

private extension String {
    /// Two uppercase hex digits.
    init(format2 value: Int) {
        let digits = Array("0123456789ABCDEF")
        self = String([digits[value >> 4], digits[value & 15]])
    }
}
