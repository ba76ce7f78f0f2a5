// JSONWriter writes strings byte-for-byte as Go 1.22+'s json.Marshal does (the expected outputs
// below were checked against Go's encoder, with \b and \f as Go 1.22 writes them).
import Testing
import WireProtocol

private func written(_ bytes: [UInt8]) -> String {
    var buffer: [UInt8] = []
    bytes.withUnsafeBytes { JSONWriter.appendString($0, to: &buffer) }
    return String(decoding: buffer, as: UTF8.self)
}

private func written(_ string: String) -> String {
    var buffer: [UInt8] = []
    JSONWriter.appendString(string, to: &buffer)
    return String(decoding: buffer, as: UTF8.self)
}

/// What Go writes for one ASCII byte, from the rules rather than from the code under test.
private func goEscape(ofASCII byte: UInt8) -> String {
    switch byte {
    case 0x22: return #"\""#
    case 0x5C: return #"\\"#
    case 0x0A: return #"\n"#
    case 0x0D: return #"\r"#
    case 0x09: return #"\t"#
    case 0x08: return #"\b"#
    case 0x0C: return #"\f"#
    case 0x3C: return #"\u003c"#
    case 0x3E: return #"\u003e"#
    case 0x26: return #"\u0026"#
    case 0..<0x20:
        let hex = Array("0123456789abcdef")
        return "\\u00" + String(hex[Int(byte >> 4)]) + String(hex[Int(byte & 0xF)])
    default: return String(UnicodeScalar(byte))
    }
}

@Suite("JSONWriter")
struct JSONWriterTests {
    @Test("the empty string is two quotes")
    func emptyString() {
        #expect(written([UInt8]()) == #""""#)
    }

    @Test("'\"' and '\\' are escaped with a backslash")
    func quoteAndBackslash() {
        #expect(written(#"a"b\c"#) == #""a\"b\\c""#)
    }

    @Test("\\n \\r \\t \\b \\f are written as such (Go 1.22 and later)")
    func namedControlCharacters() {
        #expect(written("\n\r\t\u{8}\u{C}") == #""\n\r\t\b\f""#)
    }

    @Test("other control characters are written as \\u00XX in lowercase hex")
    func otherControlCharacters() {
        #expect(written([0x00, 0x01, 0x0B, 0x1F]) == #""\u0000\u0001\u000b\u001f""#)
    }

    @Test("'<' '>' '&' are written as \\u003c \\u003e \\u0026 (Go's HTML escaping)")
    func htmlCharacters() {
        #expect(written("<a>&") == #""\u003ca\u003e\u0026""#)
    }

    @Test("U+2028 and U+2029 are written as \\u2028 and \\u2029")
    func lineAndParagraphSeparators() {
        #expect(written("a\u{2028}b\u{2029}c") == #""a\u2028b\u2029c""#)
    }

    @Test("every ASCII byte is written as Go's rules say; DEL and printable ASCII as they are")
    func everyASCIIByte() {
        for byte in UInt8(0)...0x7F {
            #expect(written([byte]) == "\"" + goEscape(ofASCII: byte) + "\"", "byte \(byte)")
        }
        #expect(written([0x7F]) == "\"\u{7F}\"")
    }

    @Test("valid non-ASCII UTF-8 passes through as it is, U+FFFD included")
    func nonASCIIPassesThrough() {
        let text = "é€😀\u{80}\u{7FF}\u{800}\u{FFFF}\u{10000}\u{10FFFF}\u{FFFD}"
        #expect(written(text) == "\"" + text + "\"")
    }

    @Test("each byte of invalid UTF-8 becomes \\ufffd, one per byte as Go's decoding loop advances",
          arguments: [
            ([0xFF], #""\ufffd""#),
            ([0x80], #""\ufffd""#),  // a lone continuation byte
            ([0x61, 0xE2, 0x82], #""a\ufffd\ufffd""#),  // a truncated sequence
            ([0xE2, 0x82, 0x41], #""\ufffd\ufffdA""#),
            ([0xC0, 0x80], #""\ufffd\ufffd""#),  // an overlong NUL
            ([0xE0, 0x80, 0xAF], #""\ufffd\ufffd\ufffd""#),  // an overlong '/'
            ([0xED, 0xA0, 0x80], #""\ufffd\ufffd\ufffd""#),  // a UTF-8-encoded surrogate
            ([0xF4, 0x90, 0x80, 0x80], #""\ufffd\ufffd\ufffd\ufffd""#),  // above U+10FFFF
            ([0xF5, 0x80], #""\ufffd\ufffd""#),
            ([0xC3, 0xA9, 0xFE, 0xC3, 0xA9], "\"é\\ufffdé\""),
            ([0xE2, 0x80, 0xA8, 0xE2, 0x80], #""\u2028\ufffd\ufffd""#),
          ] as [([UInt8], String)])
    func invalidUTF8(bytes: [UInt8], expected: String) {
        #expect(written(bytes) == expected)
    }

    @Test("appendString appends after what the buffer holds")
    func appends() {
        var buffer = Array(#"{"error":"#.utf8)
        JSONWriter.appendString("a<b", to: &buffer)
        buffer.append(UInt8(ascii: "}"))
        #expect(String(decoding: buffer, as: UTF8.self) == #"{"error":"a\u003cb"}"#)
    }

    @Test("the String and byte overloads write the same")
    func overloadsAgree() {
        var random = SplitMix64(seed: 0x5717_0001)
        for _ in 0..<200 {
            let string = String(decoding: random.interestingBytes(maxCount: 24), as: UTF8.self)
            #expect(written(string) == written(Array(string.utf8)))
        }
    }

    @Test("the output is always ASCII-safe JSON: no raw control bytes, quotes or backslashes unescaped")
    func outputIsWellFormed() {
        var random = SplitMix64(seed: 0x5717_0002)
        for _ in 0..<1000 {
            let output = Array(written(random.interestingBytes(maxCount: 32)).utf8)
            #expect(output.first == 0x22 && output.last == 0x22)
            var index = 1
            while index < output.count - 1 {
                let byte = output[index]
                #expect(byte >= 0x20 && byte != 0x22 && byte != 0x3C && byte != 0x3E && byte != 0x26, "\(output)")
                index += byte == 0x5C ? 2 : 1
            }
            #expect(index == output.count - 1, "\(output)")
        }
    }
}
