// The decoder on hostile input: a table of malformed requests, each refused with its own error and
// status, and random mutations of valid requests, which must only ever produce events or a typed
// error (a trap fails the whole run), within bounded memory, whatever the read sizes.
import Testing
import WireProtocol

// MARK: - Helpers

private func http(_ text: String) -> [UInt8] { Array(text.utf8) }

private func limits(_ change: (inout HTTPLimits) -> Void) -> HTTPLimits {
    var limits = HTTPLimits()
    change(&limits)
    return limits
}

/// A request the decoder must refuse, and how.
private struct MalformedHTTPRequest: Sendable, CustomTestStringConvertible {
    let name: String
    let input: [UInt8]
    let status: Int
    let error: HTTPRequestError
    var limits = HTTPLimits()

    var testDescription: String { name }
}

private let defaults = HTTPLimits()
private let longPath = "/" + String(repeating: "p", count: defaults.maxRequestLineBytes)
private let tooManyFields = (0...defaults.maxHeaderCount).map { "X-\($0): v\r\n" }.joined()
private let bulkyFields = (0..<4).map { "X-\($0): \(String(repeating: "v", count: defaults.maxHeaderBytes / 4))\r\n" }.joined()

private let malformedRequests: [MalformedHTTPRequest] = [
    // Request smuggling: framing that two parsers could read two ways.
    .init(name: "Content-Length and Transfer-Encoding together",
          input: http("POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
          status: 400, error: .conflictingFraming),
    .init(name: "Transfer-Encoding before Content-Length",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n0\r\n\r\n"),
          status: 400, error: .conflictingFraming),
    .init(name: "two different Content-Lengths",
          input: http("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
          status: 400, error: .conflictingContentLengths("5", "6")),
    .init(name: "Transfer-Encoding: chunked, identity (chunked not last)",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
          status: 400, error: .invalidTransferEncoding("chunked, identity")),
    .init(name: "Transfer-Encoding: xchunked",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
          status: 400, error: .invalidTransferEncoding("xchunked")),
    .init(name: "Transfer-Encoding: identity",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n"),
          status: 400, error: .invalidTransferEncoding("identity")),
    .init(name: "chunked twice over two Transfer-Encoding lines",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
          status: 400, error: .invalidTransferEncoding("chunked, chunked")),
    .init(name: "empty Transfer-Encoding element",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\n"),
          status: 400, error: .invalidTransferEncoding(", chunked")),
    .init(name: "a coding we do not implement before chunked",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
          status: 501, error: .unsupportedTransferEncoding("gzip, chunked")),
    .init(name: "Transfer-Encoding in HTTP/1.0",
          input: http("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
          status: 400, error: .transferEncodingInHTTP10),
    .init(name: "two Host fields",
          input: http("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
          status: 400, error: .multipleHostHeaders),

    // Content-Length values.
    .init(name: "negative Content-Length", input: http("PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
          status: 400, error: .invalidContentLength("-1")),
    .init(name: "Content-Length with a plus sign", input: http("PUT / HTTP/1.1\r\nContent-Length: +1\r\n\r\nx"),
          status: 400, error: .invalidContentLength("+1")),
    .init(name: "non-numeric Content-Length", input: http("PUT / HTTP/1.1\r\nContent-Length: abc\r\n\r\n"),
          status: 400, error: .invalidContentLength("abc")),
    .init(name: "Content-Length with a space inside", input: http("PUT / HTTP/1.1\r\nContent-Length: 1 2\r\n\r\n"),
          status: 400, error: .invalidContentLength("1 2")),
    .init(name: "Content-Length as a list", input: http("PUT / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\nx"),
          status: 400, error: .invalidContentLength("1, 1")),
    .init(name: "empty Content-Length", input: http("PUT / HTTP/1.1\r\nContent-Length:\r\n\r\n"),
          status: 400, error: .invalidContentLength("")),
    .init(name: "Content-Length overflowing Int",
          input: http("PUT / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
          status: 400, error: .invalidContentLength("99999999999999999999999")),

    // Chunked framing.
    .init(name: "chunk size that is not hex",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
          status: 400, error: .invalidChunkSize("zz")),
    .init(name: "negative chunk size",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n"),
          status: 400, error: .invalidChunkSize("-1")),
    .init(name: "empty chunk size line",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\r\n"),
          status: 400, error: .invalidChunkSize("")),
    .init(name: "chunk size with trailing garbage",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n"),
          status: 400, error: .invalidChunkSize("5x")),
    .init(name: "chunk size overflowing 64 bits",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\n"),
          status: 400, error: .invalidChunkSize("1ffffffffffffffff")),
    .init(name: "chunk data not followed by CRLF",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"),
          status: 400, error: .malformedChunk),
    .init(name: "chunk data followed by CR and not LF",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\rX0\r\n\r\n"),
          status: 400, error: .malformedChunk),
    .init(name: "control byte in a chunk extension",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;a=\u{1}\r\nabc\r\n0\r\n\r\n"),
          status: 400, error: .malformedChunk),
    .init(name: "bare CR in a chunk size line",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\rabc\r\n0\r\n\r\n"),
          status: 400, error: .malformedChunk),
    .init(name: "chunk size line too long",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;" + String(repeating: "e", count: defaults.maxChunkLineBytes) + "\r\n"),
          status: 400, error: .chunkLineTooLong(limit: defaults.maxChunkLineBytes)),
    .init(name: "trailer field without a colon",
          input: http("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nNot a field\r\n\r\n"),
          status: 400, error: .malformedTrailer(line: 1)),
    .init(name: "trailer fields over the header count",
          input: http("POST / HTTP/1.1\r\nA: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: 1\r\n\r\n"),
          status: 431, error: .tooManyHeaders(limit: 2), limits: limits { $0.maxHeaderCount = 2 }),

    // Field lines.
    .init(name: "header line without a colon", input: http("GET / HTTP/1.1\r\nHost example.com\r\n\r\n"),
          status: 400, error: .malformedHeader(line: 2)),
    .init(name: "empty header name", input: http("GET / HTTP/1.1\r\nHost: a\r\n: value\r\n\r\n"),
          status: 400, error: .malformedHeader(line: 3)),
    .init(name: "header name with a separator", input: http("GET / HTTP/1.1\r\nX(y): 1\r\n\r\n"),
          status: 400, error: .malformedHeader(line: 2)),
    .init(name: "space before the colon", input: http("GET / HTTP/1.1\r\nContent-Length : 0\r\n\r\n"),
          status: 400, error: .whitespaceBeforeColon(line: 2)),
    .init(name: "obsolete line folding", input: http("GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n"),
          status: 400, error: .obsoleteLineFolding(line: 3)),
    .init(name: "whitespace before the first header", input: http("GET / HTTP/1.1\r\n\tHost: a\r\n\r\n"),
          status: 400, error: .obsoleteLineFolding(line: 2)),
    .init(name: "NUL in a header value", input: http("GET / HTTP/1.1\r\nX-A: a\u{0}b\r\n\r\n"),
          status: 400, error: .invalidHeaderValue(line: 2)),
    .init(name: "DEL in a header value", input: http("GET / HTTP/1.1\r\nX-A: a\u{7F}b\r\n\r\n"),
          status: 400, error: .invalidHeaderValue(line: 2)),
    .init(name: "bare CR in a header value", input: http("GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n"),
          status: 400, error: .bareCarriageReturn(line: 2)),
    .init(name: "bare CR ending the head", input: http("GET / HTTP/1.1\r\nX-A: a\r\n\r\r\n"),
          status: 400, error: .bareCarriageReturn(line: 3)),
    .init(name: "unsupported expectation", input: http("PUT / HTTP/1.1\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx"),
          status: 417, error: .unsupportedExpectation("200-ok")),

    // Request line.
    .init(name: "request line with two parts", input: http("GET /\r\n\r\n"),
          status: 400, error: .malformedRequestLine),
    .init(name: "request line with four parts", input: http("GET /a b HTTP/1.1\r\n\r\n"),
          status: 400, error: .malformedRequestLine),
    .init(name: "two spaces after the method", input: http("GET  / HTTP/1.1\r\n\r\n"),
          status: 400, error: .malformedRequestLine),
    .init(name: "empty method", input: http(" / HTTP/1.1\r\n\r\n"),
          status: 400, error: .malformedRequestLine),
    .init(name: "bare CR in the request line", input: http("GET /\r HTTP/1.1\r\n\r\n"),
          status: 400, error: .bareCarriageReturn(line: 1)),
    .init(name: "lowercase http/1.1", input: http("GET / http/1.1\r\n\r\n"),
          status: 400, error: .malformedVersion),
    .init(name: "two-digit minor version HTTP/1.10", input: http("GET / HTTP/1.10\r\n\r\n"),
          status: 400, error: .malformedVersion),
    .init(name: "HTTP/2.0", input: http("GET / HTTP/2.0\r\n\r\n"),
          status: 505, error: .unsupportedVersion("HTTP/2.0")),
    .init(name: "HTTP/2 connection preface", input: http("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
          status: 505, error: .unsupportedVersion("HTTP/2.0")),
    .init(name: "HTTP/1.2 (only 1.0 and 1.1 are served)", input: http("GET / HTTP/1.2\r\n\r\n"),
          status: 505, error: .unsupportedVersion("HTTP/1.2")),
    .init(name: "HTTP/0.9 version", input: http("GET / HTTP/0.9\r\n\r\n"),
          status: 505, error: .unsupportedVersion("HTTP/0.9")),
    .init(name: "method with a separator", input: http("GE(T / HTTP/1.1\r\n\r\n"),
          status: 400, error: .invalidMethod),
    .init(name: "method with a slash", input: http("GET/1 / HTTP/1.1\r\n\r\n"),
          status: 400, error: .invalidMethod),
    .init(name: "target not starting with '/'", input: http("GET v1/health HTTP/1.1\r\n\r\n"),
          status: 400, error: .invalidTarget),
    .init(name: "control byte in the target", input: http("GET /a\u{1}b HTTP/1.1\r\n\r\n"),
          status: 400, error: .invalidTarget),
    .init(name: "DEL in the target", input: http("GET /a\u{7F}b HTTP/1.1\r\n\r\n"),
          status: 400, error: .invalidTarget),
    .init(name: "asterisk target for GET", input: http("GET * HTTP/1.1\r\n\r\n"),
          status: 400, error: .invalidTarget),
    .init(name: "authority-form target", input: http("CONNECT example.com:443 HTTP/1.1\r\n\r\n"),
          status: 400, error: .invalidTarget),
    .init(name: "absolute-form with another scheme", input: http("GET ftp://example.com/x HTTP/1.1\r\n\r\n"),
          status: 400, error: .invalidTarget),
    .init(name: "absolute-form without an authority", input: http("GET http:///x HTTP/1.1\r\n\r\n"),
          status: 400, error: .invalidTarget),
    .init(name: "too many empty lines before the request line",
          input: http(String(repeating: "\r\n", count: defaults.maxLeadingEmptyLines + 1) + "GET / HTTP/1.1\r\n\r\n"),
          status: 400, error: .tooManyEmptyLines(limit: defaults.maxLeadingEmptyLines)),

    // Limits.
    .init(name: "request line too long", input: http("GET \(longPath) HTTP/1.1\r\n\r\n"),
          status: 414, error: .requestLineTooLong(limit: defaults.maxRequestLineBytes)),
    .init(name: "too many headers", input: http("GET / HTTP/1.1\r\n\(tooManyFields)\r\n"),
          status: 431, error: .tooManyHeaders(limit: defaults.maxHeaderCount)),
    .init(name: "headers too large", input: http("GET / HTTP/1.1\r\n\(bulkyFields)\r\n"),
          status: 431, error: .headersTooLarge(limit: defaults.maxHeaderBytes)),
    .init(name: "body over the limit by Content-Length",
          input: http("PUT / HTTP/1.1\r\nContent-Length: \(defaults.maxBodyBytes + 1)\r\n\r\n"),
          status: 413, error: .bodyTooLarge(limit: defaults.maxBodyBytes)),
    .init(name: "one chunk over the limit",
          input: http("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n\(String(defaults.maxBodyBytes + 1, radix: 16))\r\n"),
          status: 413, error: .bodyTooLarge(limit: defaults.maxBodyBytes)),
    .init(name: "chunks adding up to more than the limit",
          input: http("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n012345\r\n0\r\n\r\n"),
          status: 413, error: .bodyTooLarge(limit: 10), limits: limits { $0.maxBodyBytes = 10 }),
]

/// Feeds `input` in pieces of `pieceSize` bytes, draining after each; the error that ended it.
private func firstError(_ input: [UInt8], limits: HTTPLimits, pieceSize: Int) -> HTTPRequestError? {
    var decoder = HTTPRequestDecoder(limits: limits)
    var offset = 0
    while offset < input.count {
        decoder.feed(Array(input[offset..<min(input.count, offset + pieceSize)]))
        offset += pieceSize
        do {
            while try decoder.next() != nil {}
        } catch {
            return error
        }
    }
    return nil
}

@Suite("HTTP request decoder: malformed requests")
private struct HTTPMalformedRequestTests {
    @Test("each malformed request is refused with its error and status", arguments: malformedRequests)
    func refused(_ request: MalformedHTTPRequest) {
        let error = firstError(request.input, limits: request.limits, pieceSize: request.input.count)
        #expect(error == request.error)
        #expect(error?.status == request.status)
    }

    @Test("each malformed request is refused the same way when it arrives one byte at a time", arguments: malformedRequests)
    func refusedOneByteAtATime(_ request: MalformedHTTPRequest) {
        #expect(firstError(request.input, limits: request.limits, pieceSize: 1) == request.error)
    }

    @Test("the table covers every refusal status")
    func tableCoversEveryStatus() {
        #expect(malformedRequests.count >= 30)
        #expect(Set(malformedRequests.map(\.status)) == [400, 413, 414, 417, 431, 501, 505])
    }

    @Test("different errors have different descriptions, each a sentence")
    func descriptions() {
        let errors = malformedRequests.map(\.error)
        var byDescription: [String: HTTPRequestError] = [:]
        for error in errors {
            #expect(error.description.count > 20, "\(error)")
            if let other = byDescription[error.description] {
                #expect(other == error, "\(other) and \(error) read the same")
            }
            byDescription[error.description] = error
        }
    }
}

// MARK: - Random mutations

/// Valid requests, the material the mutations start from.
private let validRequests: [[UInt8]] = [
    http("GET /v1/health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"),
    http("PUT /v1/kv/a%2Fb HTTP/1.1\r\nHost: h\r\nContent-Length: 14\r\nContent-Type: application/json\r\n\r\n{\"value\":\"x\"}\n"),
    http("POST /v1/checkpoint HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\n"),
    http("\r\nGET /a?b=c HTTP/1.0\nConnection: keep-alive\n\n"),
    http("DELETE /v1/kv/k HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
    http("PUT /k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"),
    http("OPTIONS * HTTP/1.1\r\n\r\nGET http://h/x HTTP/1.1\r\n\r\n"),
]

/// Pieces of HTTP syntax worth inserting: line ends, separators, framing fields, digits.
private let syntaxFragments: [[UInt8]] = [
    "\r\n", "\n", "\r", "\r\n\r\n", ":", " ", "\t", "\u{0}", ";", ",", "%", "?", "/", "*", "0", "f", "-",
    "Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n", "Content-Length: 99999999999\r\n",
    "Expect: 100-continue\r\n", "Connection: close\r\n", "0\r\n\r\n", "ffffffffffffffff\r\n", "HTTP/1.1", "GET / ",
].map(http)

/// Applies one random change to `bytes`.
private func mutate(_ bytes: inout [UInt8], using random: inout SplitMix64) {
    switch Int.random(in: 0..<7, using: &random) {
    case 0 where !bytes.isEmpty:
        let bit = Int.random(in: 0..<(bytes.count * 8), using: &random)
        bytes[bit / 8] ^= 1 << UInt8(bit % 8)
    case 1 where !bytes.isEmpty:
        bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(in: .min ... .max, using: &random)
    case 2:
        let fragment = syntaxFragments.randomElement(using: &random) ?? []
        bytes.insert(contentsOf: fragment, at: Int.random(in: 0...bytes.count, using: &random))
    case 3 where !bytes.isEmpty:
        let start = Int.random(in: 0..<bytes.count, using: &random)
        bytes.removeSubrange(start..<min(bytes.count, start + Int.random(in: 1...16, using: &random)))
    case 4:
        bytes.removeSubrange(Int.random(in: 0...bytes.count, using: &random)...)
    case 5:
        // Splice: a random slice of another valid request replaces a random slice of this one.
        let donor = validRequests.randomElement(using: &random) ?? []
        let donorStart = Int.random(in: 0..<donor.count, using: &random)
        let donorEnd = Int.random(in: donorStart...donor.count, using: &random)
        let start = Int.random(in: 0...bytes.count, using: &random)
        let end = Int.random(in: start...min(bytes.count, start + 32), using: &random)
        bytes.replaceSubrange(start..<end, with: donor[donorStart..<donorEnd])
    default:
        // Repeat a slice several times (long lines, many fields, many chunks).
        guard !bytes.isEmpty else { return }
        let start = Int.random(in: 0..<bytes.count, using: &random)
        let slice = bytes[start..<min(bytes.count, start + Int.random(in: 1...24, using: &random))]
        let copies = Array(repeating: Array(slice), count: Int.random(in: 1...40, using: &random)).flatMap { $0 }
        bytes.insert(contentsOf: copies, at: start)
    }
}

private func randomLimits(using random: inout SplitMix64) -> HTTPLimits {
    guard Bool.random(using: &random) else { return HTTPLimits() }
    var limits = HTTPLimits()
    limits.maxRequestLineBytes = Int.random(in: 0...80, using: &random)
    limits.maxHeaderCount = Int.random(in: 0...6, using: &random)
    limits.maxHeaderBytes = Int.random(in: 0...120, using: &random)
    limits.maxBodyBytes = Int.random(in: 0...40, using: &random)
    limits.maxChunkLineBytes = Int.random(in: 0...20, using: &random)
    limits.maxLeadingEmptyLines = Int.random(in: 0...2, using: &random)
    return limits
}

/// What one decoder did with an input, checked as it went.
private struct FuzzRun: Equatable {
    var requests: [HTTPRequest] = []
    var error: HTTPRequestError?
    var problems: [String] = []

    static func == (lhs: FuzzRun, rhs: FuzzRun) -> Bool { lhs.requests == rhs.requests && lhs.error == rhs.error }
}

/// Feeds `input` in `pieces`, checking every promise the decoder makes along the way.
private func fuzzRun(_ input: [UInt8], pieces: [Int], limits: HTTPLimits) -> FuzzRun {
    // While waiting, at most one partial line is held: the longest line limit, plus a CR.
    let bound = max(limits.maxRequestLineBytes, limits.maxHeaderBytes, limits.maxChunkLineBytes, 0) + 1
    var decoder = HTTPRequestDecoder(limits: limits)
    var run = FuzzRun()
    var offset = 0
    var continuePending = false
    for size in pieces where offset < input.count {
        decoder.feed(Array(input[offset..<min(input.count, offset + size)]))
        offset += size
        do {
            while let event = try decoder.next() {
                switch event {
                case .continueExpected:
                    if continuePending { run.problems.append("two continueExpected for one request") }
                    continuePending = true
                case .request(let request):
                    continuePending = false
                    run.requests.append(request)
                    if request.body.count > limits.maxBodyBytes { run.problems.append("body of \(request.body.count) bytes") }
                    if request.headers.count > limits.maxHeaderCount { run.problems.append("\(request.headers.count) headers") }
                    if request.method.isEmpty { run.problems.append("empty method") }
                    if request.target.first != UInt8(ascii: "/") && request.target != [UInt8(ascii: "*")] {
                        run.problems.append("target \(request.target)")
                    }
                    if request.version != .http1_0 && request.version != .http1_1 { run.problems.append("version \(request.version)") }
                }
            }
            if decoder.bufferedByteCount > bound {
                run.problems.append("\(decoder.bufferedByteCount) bytes buffered while waiting (bound \(bound))")
            }
        } catch {
            run.error = error
            do {
                _ = try decoder.next()
                run.problems.append("next() after \(error) did not throw")
            } catch let again {
                if again != error { run.problems.append("next() after \(error) threw \(again)") }
            }
            return run
        }
    }
    return run
}

@Suite("HTTP request decoder: random mutations")
struct HTTPRequestFuzzTests {
    @Test("mutated requests give events or a typed error, in bounded memory, whatever the read sizes",
          arguments: [UInt64(0xF022_0001), 0xF022_0002])
    func mutatedRequests(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var outcomes = [0, 0]  // requests decoded, errors thrown: the mutations reach both
        for trial in 0..<5000 {
            var input = (0..<Int.random(in: 1...3, using: &random)).flatMap { _ in
                validRequests.randomElement(using: &random) ?? []
            }
            for _ in 0..<Int.random(in: 1...4, using: &random) { mutate(&input, using: &random) }
            let limits = randomLimits(using: &random)

            let whole = fuzzRun(input, pieces: [input.count], limits: limits)
            var pieces: [Int] = []
            while pieces.reduce(0, +) < input.count {
                pieces.append(Bool.random(using: &random) ? 1 : Int.random(in: 1...32, using: &random))
            }
            let split = fuzzRun(input, pieces: pieces, limits: limits)

            let context = "seed \(seed), trial \(trial), input \(input), limits \(limits)"
            #expect(whole.problems.isEmpty, "\(whole.problems) — \(context)")
            #expect(split.problems.isEmpty, "\(split.problems) — \(context)")
            #expect(whole == split, "whole: \(whole.requests.count) requests, \(String(describing: whole.error)); split: \(split.requests.count), \(String(describing: split.error)) — \(context)")
            outcomes[0] += whole.requests.count
            outcomes[1] += whole.error == nil ? 0 : 1
        }
        #expect(outcomes[0] > 1500)
        #expect(outcomes[1] > 1500)
    }

    @Test("random bytes give events or a typed error, in bounded memory", arguments: [UInt64(0xB17E_0001)])
    func randomBytes(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for trial in 0..<1000 {
            var input: [UInt8] = []
            for _ in 0..<Int.random(in: 0...30, using: &random) {
                input += Bool.random(using: &random)
                    ? syntaxFragments.randomElement(using: &random) ?? []
                    : random.bytes(Int.random(in: 1...8, using: &random))
            }
            let limits = randomLimits(using: &random)
            let run = fuzzRun(input, pieces: [Int.random(in: 1...64, using: &random)] + [input.count], limits: limits)
            #expect(run.problems.isEmpty, "\(run.problems) — seed \(seed), trial \(trial), input \(input)")
        }
    }
}
