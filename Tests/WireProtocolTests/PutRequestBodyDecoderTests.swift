// The PUT body decoder against Go's json.Decoder with DisallowUnknownFields (plus the check that
// nothing follows the object). Verdicts and offsets in the tables were checked against Go's
// encoding/json: a `malformed` offset is Go's SyntaxError.Offset minus one (Go counts the bytes
// read, we name the offending byte).
import Testing
import WireProtocol

private func decode(_ body: String) throws(JSONBodyError) -> PutRequestBody {
    try PutRequestBodyDecoder.decode(Array(body.utf8))
}

private func decodeError(_ body: [UInt8]) -> JSONBodyError? {
    do {
        _ = try PutRequestBodyDecoder.decode(body)
        return nil
    } catch {
        return error
    }
}

/// A body that must be refused, with the error Go's rules give.
fileprivate struct InvalidBody: Sendable, CustomTestStringConvertible {
    let name: String
    let body: [UInt8]
    let expected: JSONBodyError

    init(_ name: String, _ body: String, _ expected: JSONBodyError) {
        self.init(name, Array(body.utf8), expected)
    }

    init(_ name: String, _ body: [UInt8], _ expected: JSONBodyError) {
        self.name = name
        self.body = body
        self.expected = expected
    }

    var testDescription: String { name }
}

private func byte(_ character: Unicode.Scalar) -> UInt8 { UInt8(character.value) }

private let invalidBodies: [InvalidBody] = [
    InvalidBody("empty", "", .empty),
    InvalidBody("only whitespace", " \n\t\r ", .empty),
    InvalidBody("an array", "[]", .notAnObject(found: .array)),
    InvalidBody("null (Go would take it as no fields)", "null", .notAnObject(found: .null)),
    InvalidBody("a number", "1", .notAnObject(found: .number)),
    InvalidBody("a string", #""value""#, .notAnObject(found: .string)),
    InvalidBody("a bool", "true", .notAnObject(found: .bool)),
    InvalidBody("leading zero at top level is the number 0 (then ignored)", "01", .notAnObject(found: .number)),
    InvalidBody("unknown field", #"{"valeu":"x"}"#, .unknownField(name: "valeu")),
    InvalidBody("trailing }", #"{"value":"x"}}"#, .trailingData(offset: 13)),
    InvalidBody("trailing second object", #"{"value":"x"}{"value":"y"}"#, .trailingData(offset: 13)),
    InvalidBody("trailing garbage", #"{"value":"x"} garbage"#, .trailingData(offset: 14)),
    InvalidBody("trailing NUL", #"{"value":"x"}"# + "\u{0}", .trailingData(offset: 13)),
    InvalidBody("value is a number", #"{"value":1}"#, .wrongType(field: "value", found: .number)),
    InvalidBody("value is a negative fraction", #"{"value":-0.5e-3}"#, .wrongType(field: "value", found: .number)),
    InvalidBody("encoding is a bool", #"{"encoding":true}"#, .wrongType(field: "encoding", found: .bool)),
    InvalidBody("value is false", #"{"value":false}"#, .wrongType(field: "value", found: .bool)),
    InvalidBody("value is an object", #"{"value":{}}"#, .wrongType(field: "value", found: .object)),
    InvalidBody("value is an array", #"{"value":[]}"#, .wrongType(field: "value", found: .array)),
    InvalidBody("unterminated string", #"{"value":"abc"#, .unexpectedEnd(offset: 13, expected: .stringCharacter)),
    InvalidBody("unterminated object", #"{"value":"x""#, .unexpectedEnd(offset: 12, expected: .commaOrObjectEnd)),
    InvalidBody("only {", "{", .unexpectedEnd(offset: 1, expected: .objectKey)),
    InvalidBody("bad escape \\x", #"{"value":"\x"}"#, .malformed(offset: 11, found: byte("x"), expected: .escapeCharacter)),
    InvalidBody("bad hex digit in \\u", #"{"value":"\u12G4"}"#, .malformed(offset: 14, found: byte("G"), expected: .hexDigit)),
    InvalidBody("raw tab in string", "{\"value\":\"a\tb\"}", .malformed(offset: 11, found: 0x09, expected: .stringCharacter)),
    InvalidBody("raw NUL in string", "{\"value\":\"a\u{0}\"}", .malformed(offset: 11, found: 0x00, expected: .stringCharacter)),
    InvalidBody("missing colon", #"{"value" "x"}"#, .malformed(offset: 9, found: byte("\""), expected: .colon)),
    InvalidBody("missing value", #"{"value":}"#, .malformed(offset: 9, found: byte("}"), expected: .value)),
    InvalidBody("missing comma", #"{"value":"x" "encoding":"y"}"#,
                .malformed(offset: 13, found: byte("\""), expected: .commaOrObjectEnd)),
    InvalidBody("trailing comma", #"{"value":"x",}"#, .malformed(offset: 13, found: byte("}"), expected: .objectKey)),
    InvalidBody("double comma", #"{"value":"x",,}"#, .malformed(offset: 13, found: byte(","), expected: .objectKey)),
    InvalidBody("single quotes", "{'value':'x'}", .malformed(offset: 1, found: byte("'"), expected: .objectKey)),
    InvalidBody("NaN", #"{"value":NaN}"#, .malformed(offset: 9, found: byte("N"), expected: .value)),
    InvalidBody("leading zero", #"{"value":01}"#, .malformed(offset: 10, found: byte("1"), expected: .commaOrObjectEnd)),
    InvalidBody("plus sign", #"{"value":+1}"#, .malformed(offset: 9, found: byte("+"), expected: .value)),
    InvalidBody("bare fraction", #"{"value":.5}"#, .malformed(offset: 9, found: byte("."), expected: .value)),
    InvalidBody("lone minus", #"{"value":-}"#, .malformed(offset: 10, found: byte("}"), expected: .digit)),
    InvalidBody("no digit after the point", #"{"value":1.}"#, .malformed(offset: 11, found: byte("}"), expected: .digit)),
    InvalidBody("no digit in the exponent", #"{"value":1e+}"#, .malformed(offset: 12, found: byte("}"), expected: .digit)),
    InvalidBody("misspelt literal", #"{"value":tru}"#, .malformed(offset: 12, found: byte("}"), expected: .literal("true"))),
    InvalidBody("cut literal", #"{"value":nul"#, .unexpectedEnd(offset: 12, expected: .literal("null"))),
    InvalidBody("trailing comma in a nested array", #"{"a":[1,]}"#, .malformed(offset: 8, found: byte("]"), expected: .value)),
    InvalidBody("missing comma in a nested array", #"{"a":[1 2]}"#,
                .malformed(offset: 8, found: byte("2"), expected: .commaOrArrayEnd)),
    InvalidBody("byte order mark", [0xEF, 0xBB, 0xBF] + Array("{}".utf8), .malformed(offset: 0, found: 0xEF, expected: .value)),
    InvalidBody("an unfinished top-level array", "[1,2", .unexpectedEnd(offset: 4, expected: .commaOrArrayEnd)),
    InvalidBody("nesting beyond the limit", #"{"value":"# + String(repeating: "[", count: 10_000),
                .nestingTooDeep(offset: 9 + 9_999, limit: 10_000)),
    InvalidBody("top-level nesting beyond the limit", String(repeating: "[", count: 10_001),
                .nestingTooDeep(offset: 10_000, limit: 10_000)),
]

/// A random body: members with known, case-varied or unknown names and values of every kind.
private func randomBody(_ random: inout SplitMix64) -> [UInt8] {
    let names = [#""value""#, #""encoding""#, #""VALUE""#, #""Encoding""#, #""v\u0061lue""#, #""x""#]
    let values = [#""aGk=""#, #""base64""#, #""\ud83d\ude00""#, #""\ud83d""#, "null", "1", "[true]", #"{"a":"b"}"#, #""a\"\\\/\b\f\n\r\t""#]
    var body = "{"
    for index in 0..<Int.random(in: 0...3, using: &random) {
        if index > 0 { body += "," }
        body += names[Int.random(in: 0..<names.count, using: &random)] + ":" + values[Int.random(in: 0..<values.count, using: &random)]
    }
    return Array((body + "}").utf8)
}

/// The body a client would send for `decoded`, written with JSONWriter.
private func reencoded(_ decoded: PutRequestBody) -> [UInt8] {
    var body = Array(#"{"value":"#.utf8)
    JSONWriter.appendString(decoded.value, to: &body)
    body.append(contentsOf: Array(#","encoding":"#.utf8))
    JSONWriter.appendString(decoded.encoding, to: &body)
    body.append(UInt8(ascii: "}"))
    return body
}

/// Decodes `body`; if it is accepted, checks that writing the result back with JSONWriter and
/// decoding again gives the same. Returns whether the body was accepted.
@discardableResult
private func checkConsistency(_ body: [UInt8]) -> Bool {
    guard let decoded = try? PutRequestBodyDecoder.decode(body) else { return false }
    let again = try? PutRequestBodyDecoder.decode(reencoded(decoded))
    // The text is the same; a defect of the original (U+FFFD put in) is gone once written back.
    #expect(again?.value == decoded.value && again?.encoding == decoded.encoding, "body \(body)")
    #expect(again != nil && again?.valueDefect == nil, "body \(body)")
    return true
}

@Suite("PutRequestBodyDecoder")
struct PutRequestBodyDecoderTests {
    // MARK: Valid bodies

    @Test("value and encoding are read")
    func bothFields() throws {
        #expect(try decode(#"{"value":"aGk=","encoding":"base64"}"#) == PutRequestBody(value: "aGk=", encoding: "base64"))
    }

    @Test("fields may come in any order")
    func anyOrder() throws {
        #expect(try decode(#"{"encoding":"utf-8","value":"hi"}"#) == PutRequestBody(value: "hi", encoding: "utf-8"))
    }

    @Test("absent fields are empty strings")
    func absentFields() throws {
        #expect(try decode("{}") == PutRequestBody(value: "", encoding: ""))
        #expect(try decode(#"{"value":"x"}"#) == PutRequestBody(value: "x", encoding: ""))
    }

    @Test("null fields are empty strings")
    func nullFields() throws {
        #expect(try decode(#"{"value":null,"encoding":null}"#) == PutRequestBody(value: "", encoding: ""))
    }

    @Test("JSON whitespace is allowed around every token")
    func whitespace() throws {
        #expect(try decode(" \t\r\n{ \"value\" \n:\t\"x\" , \"encoding\" : \"y\" \r\n} \n") == PutRequestBody(value: "x", encoding: "y"))
    }

    @Test("simple escapes are decoded")
    func simpleEscapes() throws {
        #expect(try decode(#"{"value":"\"\\\/\b\f\n\r\t"}"#).value == "\"\\/\u{8}\u{C}\n\r\t")
    }

    @Test("\\u0000 decodes to a NUL character")
    func nulEscape() throws {
        #expect(try decode(#"{"value":"a\u0000b"}"#).value == "a\u{0}b")
    }

    @Test("\\u escapes decode in upper and lower case hex")
    func unicodeEscapes() throws {
        #expect(try decode(#"{"value":"\u00e9\u20AC\uFFFF"}"#).value == "é€\u{FFFF}")
    }

    @Test("a surrogate pair of escapes decodes to one character")
    func surrogatePair() throws {
        #expect(try decode(#"{"value":"\ud83d\ude00\uDBFF\uDFFF"}"#).value == "😀\u{10FFFF}")
    }

    @Test("unpaired surrogate escapes become U+FFFD, and what follows is read on its own (Go)",
          arguments: [
            (#"{"value":"\ud83d"}"#, "\u{FFFD}"),  // a lone high surrogate
            (#"{"value":"\ude00x"}"#, "\u{FFFD}x"),  // a lone low surrogate
            (#"{"value":"\ud83d\u0041"}"#, "\u{FFFD}A"),  // high then not a low surrogate
            (#"{"value":"\ud800\ud800\udc00"}"#, "\u{FFFD}\u{10000}"),  // high, then a pair
            (#"{"value":"\udc00\ud800"}"#, "\u{FFFD}\u{FFFD}"),  // a pair in the wrong order
            (#"{"value":"\udc00\udc00"}"#, "\u{FFFD}\u{FFFD}"),  // two low surrogates
            (#"{"value":"\ud83d\n"}"#, "\u{FFFD}\n"),
          ])
    func unpairedSurrogates(body: String, expected: String) throws {
        #expect(try decode(body).value == expected)
    }

    @Test("the first replacement in the value is reported as its defect, with its offset in the body",
          arguments: [
            (#"{"value":"\ud83d"}"#, JSONStringDefect.unpairedSurrogate(offset: 10, codeUnit: 0xD83D)),
            (#"{"encoding":"x","value":"a\ude00\ud800"}"#, .unpairedSurrogate(offset: 26, codeUnit: 0xDE00)),
            (#"{"value":"\ud800\ud800\udc00"}"#, .unpairedSurrogate(offset: 10, codeUnit: 0xD800)),
            (#"{"value":"\udc00\ud800"}"#, .unpairedSurrogate(offset: 10, codeUnit: 0xDC00)),
          ])
    func valueDefects(body: String, defect: JSONStringDefect) throws {
        #expect(try decode(body).valueDefect == defect)
    }

    @Test("invalid UTF-8 in the value is its defect; a value without replacements has none")
    func invalidUTF8IsADefect() throws {
        let body = Array(#"{"value":"a\n"#.utf8) + [0xE2, 0x82, 0x62] + Array(#""}"#.utf8)
        #expect(try PutRequestBodyDecoder.decode(body).valueDefect == .invalidUTF8(offset: 13, byte: 0xE2))
        let raw = Array(#"{"value":"a"#.utf8) + [0xFF] + Array(#""}"#.utf8)
        #expect(try PutRequestBodyDecoder.decode(raw).valueDefect == .invalidUTF8(offset: 11, byte: 0xFF))
        for clean in [#"{"value":"plain"}"#, #"{"value":"\ud83d\ude00 \ufffd \n"}"#, "{\"value\":\"é€😀\"}", #"{}"#] {
            #expect(try decode(clean).valueDefect == nil, "\(clean)")
        }
        // Only the value's: a defect in the encoding is not reported here.
        #expect(try decode(#"{"encoding":"\ud800","value":"v"}"#).valueDefect == nil)
        // A later duplicate replaces the value and its defect.
        #expect(try decode(#"{"value":"\ud800","value":"v"}"#).valueDefect == nil)
        #expect(try decode(#"{"value":"v","Value":"\ud800"}"#).valueDefect == .unpairedSurrogate(offset: 22, codeUnit: 0xD800))
        #expect(JSONStringDefect.unpairedSurrogate(offset: 3, codeUnit: 0xD800).description == #"unpaired surrogate \ud800 at byte 3"#)
        #expect(JSONStringDefect.invalidUTF8(offset: 7, byte: 0x0F).description == "invalid UTF-8 byte 0x0f at byte 7")
    }

    @Test("multibyte UTF-8 passes through")
    func multibyteUTF8() throws {
        #expect(try decode("{\"value\":\"héllo €😀 \u{2028}\"}").value == "héllo €😀 \u{2028}")
    }

    @Test("each invalid UTF-8 byte in a string becomes U+FFFD (Go's rule, not Swift's)")
    func invalidUTF8() throws {
        // E2 82 is a cut sequence: Go replaces each byte, Swift's decoder would give one U+FFFD.
        let body = Array(#"{"value":"a"#.utf8) + [0xFF, 0x62, 0xE2, 0x82, 0xED, 0xA0, 0x80] + Array(#""}"#.utf8)
        #expect(try PutRequestBodyDecoder.decode(body).value == "a\u{FFFD}b" + String(repeating: "\u{FFFD}", count: 5))
    }

    @Test("field names match case-insensitively, also when escaped")
    func caseInsensitiveNames() throws {
        #expect(try decode(#"{"VALUE":"x","EnCoDiNg":"y"}"#) == PutRequestBody(value: "x", encoding: "y"))
        #expect(try decode(#"{"v\u0061lue":"x","\u0045ncoding":"y"}"#) == PutRequestBody(value: "x", encoding: "y"))
    }

    @Test("a duplicate field replaces the earlier one")
    func duplicatesLastWins() throws {
        #expect(try decode(#"{"value":"a","VALUE":"b","value":"c"}"#).value == "c")
    }

    @Test("a later null leaves an earlier value in place (Go ignores null for a string)")
    func duplicateNullKeepsValue() throws {
        #expect(try decode(#"{"value":"a","value":null}"#).value == "a")
    }

    @Test("a large value decodes (the eight-bytes-at-a-time path)")
    func largeValue() throws {
        var random = SplitMix64(seed: 0x150_0001)
        let value = Base64.encode(random.bytes(300_000))
        #expect(try decode(#"{"value":""# + value + #"","encoding":"base64"}"#).value == value)
    }

    @Test("a special byte is found at every offset within an eight-byte word")
    func specialBytesAtEveryAlignment() throws {
        for prefix in 0..<20 {
            let padding = String(repeating: "a", count: prefix)
            #expect(try decode(#"{"value":""# + padding + #"\n"# + padding + #""}"#).value == padding + "\n" + padding)
            #expect(try decode(#"{"value":""# + padding + "é" + padding + #""}"#).value == padding + "é" + padding)
            #expect(try decode(#"{"value":""# + padding + #""}"#).value == padding)
            let control = Array(#"{"value":""#.utf8) + Array(padding.utf8) + [0x1F] + Array(#""}"#.utf8)
            #expect(decodeError(control) == .malformed(offset: 10 + prefix, found: 0x1F, expected: .stringCharacter))
            let invalid = Array(#"{"value":""#.utf8) + Array(padding.utf8) + [0xFF] + Array(#""}"#.utf8)
            #expect(try PutRequestBodyDecoder.decode(invalid).value == padding + "\u{FFFD}")
        }
    }

    @Test("nesting up to the limit is parsed, so the error is about the type")
    func nestingAtTheLimit() {
        // The object itself is one level, so its value may open 9,999 more.
        let depth = PutRequestBodyDecoder.maxNestingDepth - 1
        let body = #"{"value":"# + String(repeating: "[", count: depth) + String(repeating: "]", count: depth) + "}"
        #expect(decodeError(Array(body.utf8)) == .wrongType(field: "value", found: .array))
    }

    // MARK: Invalid bodies

    @Test("invalid bodies are refused with the error Go's rules give", arguments: invalidBodies)
    fileprivate func invalidBody(_ invalid: InvalidBody) {
        #expect(decodeError(invalid.body) == invalid.expected)
    }

    @Test("a syntax error anywhere wins over an earlier unknown field (Go checks syntax first)")
    func syntaxErrorWinsOverUnknownField() {
        #expect(decodeError(Array(#"{"bogus":1,"value":}"#.utf8)) == .malformed(offset: 19, found: byte("}"), expected: .value))
    }

    @Test("the first of several field errors is reported")
    func firstFieldErrorWins() {
        #expect(decodeError(Array(#"{"value":1,"bogus":2}"#.utf8)) == .wrongType(field: "value", found: .number))
        #expect(decodeError(Array(#"{"bogus":2,"value":1}"#.utf8)) == .unknownField(name: "bogus"))
    }

    @Test("a field error wins over trailing data")
    func fieldErrorWinsOverTrailingData() {
        #expect(decodeError(Array(#"{"value":1} x"#.utf8)) == .wrongType(field: "value", found: .number))
    }

    @Test("an unknown field's nested value is parsed, and the field is reported")
    func unknownFieldWithNestedValue() {
        #expect(decodeError(Array(#"{"extra":{"a":[1,{"b":null}]}}"#.utf8)) == .unknownField(name: "extra"))
    }

    @Test("an unknown field's name is reported unescaped, invalid UTF-8 as U+FFFD")
    func unknownFieldNameIsUnescaped() {
        #expect(decodeError(Array(#"{"va\u006Cu":1}"#.utf8)) == .unknownField(name: "valu"))
        #expect(decodeError(Array(#"{"x"#.utf8) + [0xFF] + Array(#"":1}"#.utf8)) == .unknownField(name: "x\u{FFFD}"))
    }

    @Test("a name that differs from a field by more than ASCII case is unknown (Kelvin sign, trailing space)")
    func nearMissNames() {
        #expect(decodeError(Array(#"{"value ":"x"}"#.utf8)) == .unknownField(name: "value "))
        #expect(decodeError(Array(#"{"encodıng":"x"}"#.utf8)) == .unknownField(name: "encodıng"))
    }

    @Test("errors are described in words a user can act on")
    func descriptions() {
        #expect(JSONBodyError.unknownField(name: "valeu").description == #"json: unknown field "valeu""#)
        #expect(JSONBodyError.malformed(offset: 9, found: byte("N"), expected: .value).description
            == "json: invalid character 'N' at byte 9, expected the start of a value")
        #expect(JSONBodyError.malformed(offset: 3, found: 0x01, expected: .stringCharacter).description.contains(#"'\x01'"#))
        #expect(JSONBodyError.wrongType(field: "value", found: .number).description
            == #"json: cannot unmarshal number into field "value" of type string"#)
        #expect(JSONBodyError.trailingData(offset: 13).description.contains("13"))
        #expect(JSONBodyError.empty.description.contains("empty"))
    }

    // MARK: Robustness

    @Test("random byte strings never trap; accepted ones re-encode consistently")
    func randomBytesFuzz() {
        var random = SplitMix64(seed: 0x150_0002)
        let alphabet = Array(#"{}[]":,\ nulltrue01-.eE"#.utf8) + Array("valueencoding".utf8) + [0x00, 0x1F, 0x80, 0xFF, 0xE2]
        for _ in 0..<5000 {
            let count = Int.random(in: 0...24, using: &random)
            let body: [UInt8] = Bool.random(using: &random)
                ? random.bytes(count)
                : (0..<count).map { _ in alphabet[Int.random(in: 0..<alphabet.count, using: &random)] }
            checkConsistency(body)
        }
    }

    @Test("mutations of valid bodies never trap; accepted ones re-encode consistently")
    func mutationFuzz() {
        var random = SplitMix64(seed: 0x150_0003)
        let inserts = Array(#"{}[]",:\ u0-e."#.utf8) + [0x00, 0x80, 0xFF]
        var accepted = 0
        for _ in 0..<5000 {
            var body = randomBody(&random)
            for _ in 0..<Int.random(in: 0...3, using: &random) {
                switch Int.random(in: 0..<4, using: &random) {
                case 0 where !body.isEmpty: body.remove(at: Int.random(in: 0..<body.count, using: &random))
                case 1 where !body.isEmpty: body[Int.random(in: 0..<body.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                case 2 where !body.isEmpty: body.removeLast(Int.random(in: 1...body.count, using: &random))
                default: body.insert(inserts[Int.random(in: 0..<inserts.count, using: &random)], at: Int.random(in: 0...body.count, using: &random))
                }
            }
            if checkConsistency(body) { accepted += 1 }
        }
        // The mutations must leave enough valid bodies for the consistency check to mean something.
        #expect(accepted > 400)
    }

    @Test("any value and encoding written with JSONWriter decode back to themselves")
    func writerRoundTrip() throws {
        var random = SplitMix64(seed: 0x150_0004)
        for _ in 0..<2000 {
            let value = String(decoding: random.interestingBytes(maxCount: 40), as: UTF8.self)
            let encoding = String(decoding: random.interestingBytes(maxCount: 8), as: UTF8.self)
            let body = PutRequestBody(value: value, encoding: encoding)
            #expect(try PutRequestBodyDecoder.decode(reencoded(body)) == body)
        }
    }
}
