/// A strict JSON (RFC 8259) reader over bytes, with Go's `encoding/json` rules wherever Go is more
/// particular than the RFC: the syntax errors it names, its string unquoting (an unpaired surrogate
/// escape becomes U+FFFD, each invalid UTF-8 byte becomes U+FFFD), and its nesting limit.
///
/// It reads values without building them: `skipValue` validates a whole value and says what kind
/// it was; `scanString` validates a string and `decodeString` unquotes it. Nested values are
/// walked with an explicit stack, never by recursion, and the stack is bounded by
/// `maxNestingDepth`, so no input can exhaust the call stack or make the reader allocate more than
/// a few bytes per input byte.
struct JSONParser {
    /// Go's limit (`maxNestingDepth` in encoding/json/scanner.go): 10,000 open arrays and objects.
    static let maxNestingDepth = 10_000

    let input: UnsafeRawBufferPointer
    /// The next byte to read.
    var index = 0

    init(_ input: UnsafeRawBufferPointer) {
        self.input = input
    }

    var isAtEnd: Bool { index >= input.count }

    /// The byte at `index`, or nil at the end of the input.
    var current: UInt8? { index < input.count ? input[index] : nil }

    /// Skips JSON whitespace: space, tab, line feed, carriage return.
    mutating func skipWhitespace() {
        while index < input.count {
            switch input[index] {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): index &+= 1
            default: return
            }
        }
    }

    /// The error for the byte at `index` (or the end of the input) where `expected` should be.
    func unexpected(_ expected: JSONExpectation) -> JSONBodyError {
        index < input.count
            ? .malformed(offset: index, found: input[index], expected: expected)
            : .unexpectedEnd(offset: input.count, expected: expected)
    }

    // MARK: - Values

    /// Reads one whole value starting at `index` (whitespace before it already skipped), checking
    /// all of it, and returns its kind. `depth` is the number of arrays and objects open around it.
    mutating func skipValue(depth: Int) throws(JSONBodyError) -> JSONValueKind {
        guard let first = current else { throw unexpected(.value) }
        let kind: JSONValueKind
        switch first {
        case UInt8(ascii: "{"): kind = .object
        case UInt8(ascii: "["): kind = .array
        default: return try skipScalar()
        }
        // One entry per open container: true for an object, false for an array.
        var open: [Bool] = []
        var step = try openContainer(&open, depth: depth)
        while true {
            skipWhitespace()
            switch step {
            case .memberOrEnd, .member:
                if step == .memberOrEnd, current == UInt8(ascii: "}") {
                    index &+= 1
                    open.removeLast()
                    if open.isEmpty { return kind }
                    step = .afterValue
                    continue
                }
                guard current == UInt8(ascii: "\"") else { throw unexpected(.objectKey) }
                _ = try scanString()
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw unexpected(.colon) }
                index &+= 1
                skipWhitespace()
                step = try startValue(&open, depth: depth)
            case .elementOrEnd, .element:
                if step == .elementOrEnd, current == UInt8(ascii: "]") {
                    index &+= 1
                    open.removeLast()
                    if open.isEmpty { return kind }
                    step = .afterValue
                    continue
                }
                step = try startValue(&open, depth: depth)
            case .afterValue:
                let inObject = open[open.count - 1]
                switch current {
                case UInt8(ascii: ","):
                    index &+= 1
                    step = inObject ? .member : .element
                case UInt8(ascii: "}") where inObject, UInt8(ascii: "]") where !inObject:
                    index &+= 1
                    open.removeLast()
                    if open.isEmpty { return kind }
                default:
                    throw unexpected(inObject ? .commaOrObjectEnd : .commaOrArrayEnd)
                }
            }
        }
    }

    /// Where `skipValue` is inside a container.
    private enum ContainerStep {
        /// Just after '{': a key or '}'.
        case memberOrEnd
        /// After ',' in an object: a key.
        case member
        /// Just after '[': a value or ']'.
        case elementOrEnd
        /// After ',' in an array: a value.
        case element
        /// After a value: ',' or the container's end.
        case afterValue
    }

    /// Reads the start of a value inside a container: opens a nested container, or reads a whole
    /// scalar. Returns what comes next.
    private mutating func startValue(_ open: inout [Bool], depth: Int) throws(JSONBodyError) -> ContainerStep {
        switch current {
        case UInt8(ascii: "{"), UInt8(ascii: "["): return try openContainer(&open, depth: depth)
        default:
            _ = try skipScalar()
            return .afterValue
        }
    }

    /// Consumes the '{' or '[' at `index` and pushes it, within the nesting limit.
    private mutating func openContainer(_ open: inout [Bool], depth: Int) throws(JSONBodyError) -> ContainerStep {
        guard depth + open.count < Self.maxNestingDepth else {
            throw .nestingTooDeep(offset: index, limit: Self.maxNestingDepth)
        }
        let isObject = input[index] == UInt8(ascii: "{")
        open.append(isObject)
        index &+= 1
        return isObject ? .memberOrEnd : .elementOrEnd
    }

    /// Reads a string, number, true, false or null starting at `index`.
    mutating func skipScalar() throws(JSONBodyError) -> JSONValueKind {
        guard let first = current else { throw unexpected(.value) }
        switch first {
        case UInt8(ascii: "\""):
            _ = try scanString()
            return .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            try skipNumber()
            return .number
        case UInt8(ascii: "t"):
            try skipLiteral("true")
            return .bool
        case UInt8(ascii: "f"):
            try skipLiteral("false")
            return .bool
        case UInt8(ascii: "n"):
            try skipLiteral("null")
            return .null
        default:
            throw unexpected(.value)
        }
    }

    /// Reads a number: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`. It ends at the first
    /// byte that cannot continue it (what follows is the caller's business, as in Go's scanner).
    private mutating func skipNumber() throws(JSONBodyError) {
        if current == UInt8(ascii: "-") { index &+= 1 }
        guard let first = current, isDigit(first) else { throw unexpected(.digit) }
        index &+= 1
        if first != UInt8(ascii: "0") { skipDigits() }
        if current == UInt8(ascii: ".") {
            index &+= 1
            guard let digit = current, isDigit(digit) else { throw unexpected(.digit) }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            index &+= 1
            if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index &+= 1 }
            guard let digit = current, isDigit(digit) else { throw unexpected(.digit) }
            skipDigits()
        }
    }

    private func isDigit(_ byte: UInt8) -> Bool { byte &- UInt8(ascii: "0") < 10 }

    private mutating func skipDigits() {
        while let byte = current, isDigit(byte) { index &+= 1 }
    }

    /// Reads `word` (true, false or null) whose first letter is at `index`.
    private mutating func skipLiteral(_ word: StaticString) throws(JSONBodyError) {
        let letters = UnsafeRawBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        for letter in letters {
            guard current == letter else { throw unexpected(.literal(word.description)) }
            index &+= 1
        }
    }

    // MARK: - Strings

    /// Reads the string whose opening quote is at `index`, checking its syntax, and returns the
    /// range of its contents (between the quotes) and whether the contents are its value as they
    /// stand: no escapes and valid UTF-8 (so `decodeString` is needed only when `isVerbatim` is
    /// false).
    mutating func scanString() throws(JSONBodyError) -> (contents: Range<Int>, isVerbatim: Bool) {
        index &+= 1
        let start = index
        var isVerbatim = true
        let count = input.count
        while true {
            skipOrdinaryStringBytes()
            guard index < count else { throw unexpected(.stringCharacter) }
            let byte = input[index]
            switch byte {
            case UInt8(ascii: "\""):
                index &+= 1
                return (start..<(index - 1), isVerbatim)
            case UInt8(ascii: "\\"):
                isVerbatim = false
                index &+= 1
                try skipEscape()
            case 0..<0x20:
                throw unexpected(.stringCharacter)
            case 0x20..<0x80:
                index &+= 1
            default:
                let length = GoUTF8.sequenceLength(input, at: index)
                if length == 0 {
                    isVerbatim = false
                    index &+= 1
                } else {
                    index &+= length
                }
            }
        }
    }

    /// Skips eight bytes at a time while none of them is a quote, a backslash, a control character
    /// or a non-ASCII byte: the bulk of a base64 value goes by here.
    private mutating func skipOrdinaryStringBytes() {
        guard let base = input.baseAddress else { return }
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        while input.count - index >= 8 {
            let word = base.loadUnaligned(fromByteOffset: index, as: UInt64.self)
            let quote = word ^ (ones &* UInt64(UInt8(ascii: "\"")))
            let backslash = word ^ (ones &* UInt64(UInt8(ascii: "\\")))
            // (x - 0x01…) & ~x has a high bit set iff some byte of x is zero (a quote or backslash
            // after the XOR); with 0x20… instead of 0x01…, iff some byte is below 0x20. High bits of
            // the word itself are non-ASCII bytes.
            let hasZero = (quote &- ones) & ~quote | (backslash &- ones) & ~backslash
            let hasControl = (word &- ones &* 0x20) & ~word
            if (hasZero | hasControl | word) & highs != 0 { return }
            index &+= 8
        }
    }

    /// Checks the escape after a backslash (`index` is just past the backslash) and skips it.
    private mutating func skipEscape() throws(JSONBodyError) {
        switch current {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
            UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            index &+= 1
        case UInt8(ascii: "u"):
            index &+= 1
            for _ in 0..<4 {
                guard let digit = current, Self.hexValue(digit) != nil else { throw unexpected(.hexDigit) }
                index &+= 1
            }
        default:
            throw unexpected(.escapeCharacter)
        }
    }

    /// Unquotes string contents that `scanString` has checked, as Go's `unquote` does: escapes
    /// resolved; a surrogate pair of \u escapes joined; any other surrogate escape, and each byte
    /// of invalid UTF-8, replaced by U+FFFD. The result is valid UTF-8 and at most three times as
    /// long as the contents.
    func decodeString(_ contents: Range<Int>) -> [UInt8] {
        var ignored: JSONStringDefect?
        return decodeString(contents, firstDefect: &ignored)
    }

    /// The same, and sets `firstDefect` (if nil) to the first replacement made: where the result
    /// is not what was sent.
    func decodeString(_ contents: Range<Int>, firstDefect: inout JSONStringDefect?) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(contents.count)
        var index = contents.lowerBound
        var runStart = index
        let end = contents.upperBound
        func flush(upTo position: Int) {
            if runStart < position {
                output.append(contentsOf: UnsafeRawBufferPointer(rebasing: input[runStart..<position]))
            }
        }
        while index < end {
            let byte = input[index]
            if byte == UInt8(ascii: "\\") {
                flush(upTo: index)
                index = decodeEscape(at: index, end: end, into: &output, firstDefect: &firstDefect)
                runStart = index
            } else if byte < 0x80 {
                index &+= 1
            } else {
                let length = GoUTF8.sequenceLength(input, at: index)
                if length == 0 {
                    flush(upTo: index)
                    if firstDefect == nil { firstDefect = .invalidUTF8(offset: index, byte: byte) }
                    output.append(contentsOf: GoUTF8.replacementCharacter)
                    index &+= 1
                    runStart = index
                } else {
                    index &+= length
                }
            }
        }
        flush(upTo: end)
        return output
    }

    /// Appends the value of the checked escape whose backslash is at `start`; returns the index
    /// after it.
    private func decodeEscape(at start: Int, end: Int, into output: inout [UInt8], firstDefect: inout JSONStringDefect?) -> Int {
        let letter = input[start + 1]
        let simple: UInt8
        switch letter {
        case UInt8(ascii: "b"): simple = 0x08
        case UInt8(ascii: "f"): simple = 0x0C
        case UInt8(ascii: "n"): simple = 0x0A
        case UInt8(ascii: "r"): simple = 0x0D
        case UInt8(ascii: "t"): simple = 0x09
        case UInt8(ascii: "u"):
            var scalar = unicodeEscape(at: start, end: end) ?? 0xFFFD
            var next = start + 6
            if (0xD800...0xDFFF).contains(scalar) {
                // Go: a high surrogate followed by a low-surrogate escape is one pair; any other
                // surrogate becomes U+FFFD and whatever follows is read on its own.
                if scalar <= 0xDBFF, let low = unicodeEscape(at: next, end: end), (0xDC00...0xDFFF).contains(low) {
                    scalar = 0x10000 + ((scalar - 0xD800) << 10 | (low - 0xDC00))
                    next += 6
                } else {
                    if firstDefect == nil { firstDefect = .unpairedSurrogate(offset: start, codeUnit: UInt16(scalar)) }
                    scalar = 0xFFFD
                }
            }
            GoUTF8.append(scalar, to: &output)
            return next
        default: simple = letter  // '"', '\\', '/'
        }
        output.append(simple)
        return start + 2
    }

    /// The code unit of the `\uXXXX` escape at `start`, or nil if there is none there.
    private func unicodeEscape(at start: Int, end: Int) -> UInt32? {
        guard end - start >= 6, input[start] == UInt8(ascii: "\\"), input[start + 1] == UInt8(ascii: "u") else {
            return nil
        }
        var value: UInt32 = 0
        for offset in 2..<6 {
            guard let digit = Self.hexValue(input[start + offset]) else { return nil }
            value = value << 4 | UInt32(digit)
        }
        return value
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// UTF-8 as Go's `unicode/utf8` decodes it: a sequence is valid only if it is the shortest
/// encoding of a scalar value (no overlongs, no surrogates, nothing above U+10FFFF); anything else
/// is invalid one byte at a time, so each such byte becomes its own U+FFFD (where the Unicode
/// "maximal subpart" practice, Swift's `String(decoding:)`, would make one U+FFFD of several).
/// Shared by the JSON reader and writer.
enum GoUTF8 {
    /// U+FFFD in UTF-8.
    static let replacementCharacter: [UInt8] = [0xEF, 0xBF, 0xBD]

    /// The length of the valid sequence starting at `index`, whose byte is at least 0x80; 0 when
    /// Go's `utf8.DecodeRune` would return `RuneError` with size 1.
    @inline(__always)
    static func sequenceLength(_ bytes: UnsafeRawBufferPointer, at index: Int) -> Int {
        let available = bytes.count - index
        let first = bytes[index]
        let length: Int
        // The range of the second byte, which is what rules out overlongs, surrogates and values
        // above U+10FFFF; later bytes are plain continuation bytes.
        let secondLow: UInt8, secondHigh: UInt8
        switch first {
        case 0xC2...0xDF: (length, secondLow, secondHigh) = (2, 0x80, 0xBF)
        case 0xE0: (length, secondLow, secondHigh) = (3, 0xA0, 0xBF)
        case 0xE1...0xEC, 0xEE...0xEF: (length, secondLow, secondHigh) = (3, 0x80, 0xBF)
        case 0xED: (length, secondLow, secondHigh) = (3, 0x80, 0x9F)
        case 0xF0: (length, secondLow, secondHigh) = (4, 0x90, 0xBF)
        case 0xF1...0xF3: (length, secondLow, secondHigh) = (4, 0x80, 0xBF)
        case 0xF4: (length, secondLow, secondHigh) = (4, 0x80, 0x8F)
        default: return 0
        }
        guard available >= length else { return 0 }
        let second = bytes[index + 1]
        guard second >= secondLow, second <= secondHigh else { return 0 }
        if length >= 3, bytes[index + 2] & 0xC0 != 0x80 { return 0 }
        if length == 4, bytes[index + 3] & 0xC0 != 0x80 { return 0 }
        return length
    }

    /// Appends the UTF-8 encoding of `scalar`, a Unicode scalar value (not a surrogate, at most
    /// U+10FFFF).
    static func append(_ scalar: UInt32, to output: inout [UInt8]) {
        switch scalar {
        case 0..<0x80:
            output.append(UInt8(scalar))
        case 0x80..<0x800:
            output.append(0xC0 | UInt8(scalar >> 6))
            output.append(0x80 | UInt8(scalar & 0x3F))
        case 0x800..<0x10000:
            output.append(0xE0 | UInt8(scalar >> 12))
            output.append(0x80 | UInt8((scalar >> 6) & 0x3F))
            output.append(0x80 | UInt8(scalar & 0x3F))
        default:
            output.append(0xF0 | UInt8(scalar >> 18))
            output.append(0x80 | UInt8((scalar >> 12) & 0x3F))
            output.append(0x80 | UInt8((scalar >> 6) & 0x3F))
            output.append(0x80 | UInt8(scalar & 0x3F))
        }
    }
}
