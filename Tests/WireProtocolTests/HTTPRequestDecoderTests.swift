// The decoder on valid input: what it delivers for each kind of request, how it frames bodies,
// pipelining, Expect: 100-continue, limits at their boundaries, and that the way bytes are split
// into reads never changes the result.
import Testing
import WireProtocol

// MARK: - Helpers

private func http(_ text: String) -> [UInt8] { Array(text.utf8) }

/// Everything a decoder produced from an input: its events, and the error that ended it, if any.
private struct HTTPDecodeOutcome: Equatable, CustomStringConvertible {
    var events: [HTTPDecodeEvent] = []
    var error: HTTPRequestError?

    var requests: [HTTPRequest] {
        events.compactMap { if case .request(let request) = $0 { request } else { nil } }
    }

    /// The events without `.continueExpected`, the one event that depends on how bytes arrive.
    var withoutContinues: HTTPDecodeOutcome {
        HTTPDecodeOutcome(events: events.filter { $0 != .continueExpected }, error: error)
    }

    var description: String { "\(events.count) events, error: \(error.map(String.init(describing:)) ?? "none")" }
}

/// Drains every event `decoder` can produce now into `outcome`; false once it has thrown.
private func drain(_ decoder: inout HTTPRequestDecoder, into outcome: inout HTTPDecodeOutcome) -> Bool {
    do {
        while let event = try decoder.next() { outcome.events.append(event) }
        return true
    } catch {
        outcome.error = error
        return false
    }
}

/// Feeds `input` in pieces of the given sizes (whatever is left in one last piece), draining the
/// decoder after each piece.
private func decode(_ input: [UInt8], pieces: [Int] = [], limits: HTTPLimits = HTTPLimits()) -> HTTPDecodeOutcome {
    var decoder = HTTPRequestDecoder(limits: limits)
    var outcome = HTTPDecodeOutcome()
    var offset = 0
    for size in pieces + [input.count] where offset < input.count {
        let end = min(input.count, offset + size)
        decoder.feed(Array(input[offset..<end]))
        offset = end
        guard drain(&decoder, into: &outcome) else { return outcome }
    }
    return outcome
}

private func decodeOneByteAtATime(_ input: [UInt8], limits: HTTPLimits = HTTPLimits()) -> HTTPDecodeOutcome {
    decode(input, pieces: Array(repeating: 1, count: input.count), limits: limits)
}

/// The single request `input` holds; records an issue if it does not decode to exactly one.
private func onlyRequest(_ input: [UInt8], limits: HTTPLimits = HTTPLimits()) -> HTTPRequest? {
    let outcome = decode(input, limits: limits)
    #expect(outcome.error == nil)
    #expect(outcome.events.count == 1)
    return outcome.requests.first
}

private func randomPieces(count: Int, using random: inout SplitMix64) -> [Int] {
    var pieces: [Int] = []
    var total = 0
    while total < count {
        let size = Int.random(in: 1...max(1, min(count - total, 64)), using: &random)
        pieces.append(size)
        total += size
    }
    return pieces
}

/// Requests that cover every framing and most header shapes, for the split-independence tests.
private let variedRequests: [[UInt8]] = [
    http("GET /v1/health HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"),
    http("PUT /v1/kv/a%2Fb HTTP/1.1\r\nHost: h\r\nContent-Length: 27\r\nContent-Type: application/json\r\n\r\n{\"value\":\"aGk=\",\"x\":[1,2]}\n"),
    http("POST /v1/checkpoint HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer-One: x\r\n\r\n"),
    http("\r\n\nGET /a?b=c HTTP/1.0\nConnection: keep-alive\n\n"),
    http("DELETE /v1/kv/k HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
    http("HEAD /v1/kv/%00%FF HTTP/1.1\r\nX-Tab:\tvalue with\ttabs \t\r\n\r\n"),
]

// MARK: - Requests and their fields

@Suite("HTTP request decoder: valid requests")
struct HTTPRequestDecoderTests {
    @Test("a GET request delivers its method, target, version and headers, and no body")
    func getRequest() throws {
        let request = try #require(onlyRequest(http("GET /v1/health HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\n\r\n")))
        #expect(request.method == "GET")
        #expect(request.target == http("/v1/health"))
        #expect(request.version == .http1_1)
        #expect(request.headers == HTTPHeaders([("Host", "localhost:8080"), ("Accept", "*/*")]))
        #expect(request.body.isEmpty)
        #expect(request.keepAlive)
    }

    @Test("each common method is delivered as sent, with its Content-Length body", arguments: [
        ("GET", ""), ("HEAD", ""), ("PUT", "{\"value\":\"x\"}"), ("DELETE", ""), ("POST", "payload"), ("PATCH", "p"),
    ])
    func methods(method: String, body: String) throws {
        let input = http("\(method) /v1/kv/key HTTP/1.1\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        let request = try #require(onlyRequest(input))
        #expect(request.method == method)
        #expect(request.body == http(body))
    }

    @Test("methods are case-sensitive: a lowercase method is delivered as sent")
    func lowercaseMethod() throws {
        let request = try #require(onlyRequest(http("get / HTTP/1.1\r\n\r\n")))
        #expect(request.method == "get")
    }

    @Test("an HTTP/1.0 request closes the connection by default")
    func http10ClosesByDefault() throws {
        let request = try #require(onlyRequest(http("GET / HTTP/1.0\r\n\r\n")))
        #expect(request.version == .http1_0)
        #expect(!request.keepAlive)
    }

    @Test("an HTTP/1.0 request with Connection: keep-alive (any case) keeps the connection")
    func http10KeepAlive() throws {
        let request = try #require(onlyRequest(http("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")))
        #expect(request.keepAlive)
    }

    @Test("an HTTP/1.1 request keeps the connection unless a Connection option is close", arguments: [
        ("", true),
        ("Connection: keep-alive\r\n", true),
        ("Connection: close\r\n", false),
        ("Connection: CLOSE\r\n", false),
        ("Connection: upgrade , close\r\n", false),
        ("Connection: te\r\nConnection: close\r\n", false),
        ("Connection: closed\r\n", true),
    ])
    func http11Persistence(fields: String, keepAlive: Bool) throws {
        let request = try #require(onlyRequest(http("GET / HTTP/1.1\r\n\(fields)\r\n")))
        #expect(request.keepAlive == keepAlive)
    }

    @Test("close wins over keep-alive in HTTP/1.0")
    func http10CloseWins() throws {
        let request = try #require(onlyRequest(http("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n")))
        #expect(!request.keepAlive)
    }

    @Test("HTTPRequest's initializer derives keepAlive from version and Connection fields")
    func initializerDerivesKeepAlive() {
        #expect(HTTPRequest(method: "GET", target: http("/")).keepAlive)
        #expect(!HTTPRequest(method: "GET", target: http("/"), version: .http1_0).keepAlive)
        #expect(!HTTPRequest(method: "GET", target: http("/"), headers: HTTPHeaders([("connection", "Close")])).keepAlive)
    }

    @Test("header lookup ignores case; names keep their case; all values are kept in order")
    func headerLookup() throws {
        let input = http("GET / HTTP/1.1\r\nX-Thing: one\r\nx-thing: two\r\nContent-TYPE: text/plain\r\n\r\n")
        let headers = try #require(onlyRequest(input)).headers
        #expect(headers["content-type"] == "text/plain")
        #expect(headers["CONTENT-TYPE"] == "text/plain")
        #expect(headers["X-THING"] == "one")
        #expect(headers.values("x-Thing") == ["one", "two"])
        #expect(headers["Missing"] == nil)
        #expect(headers.values("Missing").isEmpty)
        #expect(headers.count == 3)
        #expect(headers.map(\.name) == ["X-Thing", "x-thing", "Content-TYPE"])
    }

    @Test("field values are trimmed of spaces and tabs; an empty value is kept")
    func fieldValuesTrimmed() throws {
        let input = http("GET / HTTP/1.1\r\nA: \t padded value \t \r\nB:\r\nC:x\r\n\r\n")
        let headers = try #require(onlyRequest(input)).headers
        #expect(headers["A"] == "padded value")
        #expect(headers["B"] == "")
        #expect(headers["C"] == "x")
    }

    @Test("field values may hold UTF-8 (obs-text bytes)")
    func utf8FieldValue() throws {
        let request = try #require(onlyRequest(http("GET / HTTP/1.1\r\nX-Name: café\r\n\r\n")))
        #expect(request.headers["x-name"] == "café")
    }

    @Test("path is the target before the first '?', query what follows it", arguments: [
        ("/v1/kv/a?x=1&y", "/v1/kv/a", "x=1&y" as String?),
        ("/v1/kv/a", "/v1/kv/a", nil),
        ("/a?", "/a", ""),
        ("/a?b?c", "/a", "b?c"),
        ("/?", "/", ""),
    ])
    func pathAndQuery(target: String, path: String, query: String?) throws {
        let request = try #require(onlyRequest(http("GET \(target) HTTP/1.1\r\n\r\n")))
        #expect(Array(request.path) == http(path))
        #expect(request.query.map(Array.init) == query.map(http))
    }

    @Test("a percent-encoded target is delivered raw, escapes and all")
    func percentEncodedTargetKeptRaw() throws {
        let request = try #require(onlyRequest(http("GET /v1/kv/a%2Fb%00%ff+c?x=%41 HTTP/1.1\r\n\r\n")))
        #expect(request.target == http("/v1/kv/a%2Fb%00%ff+c?x=%41"))
        #expect(Array(request.path) == http("/v1/kv/a%2Fb%00%ff+c"))
    }

    @Test("bytes 0x80 and up in the target are delivered raw")
    func highBytesInTarget() throws {
        let request = try #require(onlyRequest(http("GET /v1/kv/") + [0xC3, 0xA9, 0xFF] + http(" HTTP/1.1\r\n\r\n")))
        #expect(request.target == http("/v1/kv/") + [0xC3, 0xA9, 0xFF])
    }

    @Test("an absolute-form target is reduced to its path and query", arguments: [
        ("http://example.com/v1/health?x=1", "/v1/health?x=1"),
        ("HTTPS://example.com:8443/a/b", "/a/b"),
        ("http://example.com", "/"),
        ("http://example.com?q", "/?q"),
    ])
    func absoluteFormReduced(target: String, expected: String) throws {
        let request = try #require(onlyRequest(http("GET \(target) HTTP/1.1\r\n\r\n")))
        #expect(request.target == http(expected))
    }

    @Test("OPTIONS * is accepted")
    func optionsAsterisk() throws {
        let request = try #require(onlyRequest(http("OPTIONS * HTTP/1.1\r\n\r\n")))
        #expect(request.target == http("*"))
        #expect(request.path == http("*")[...])
    }

    @Test("a request without Host is accepted")
    func hostNotRequired() throws {
        let request = try #require(onlyRequest(http("GET / HTTP/1.1\r\n\r\n")))
        #expect(request.headers.isEmpty)
    }

    // MARK: Framing

    @Test("a Content-Length body is delivered whole, and the bytes after it start the next request")
    func contentLengthBody() throws {
        let outcome = decode(http("PUT /k HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n\r\n"))
        #expect(outcome.error == nil)
        #expect(outcome.requests.map(\.body) == [http("hello"), []])
    }

    @Test("identical repeated Content-Length fields are accepted")
    func identicalContentLengths() throws {
        let request = try #require(onlyRequest(http("PUT /k HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 003\r\n\r\nabc")))
        #expect(request.body == http("abc"))
    }

    @Test("a chunked body is de-chunked; extensions and trailer fields are dropped")
    func chunkedBody() throws {
        let input = http("""
            POST /v1/checkpoint HTTP/1.1\r
            Transfer-Encoding: chunked\r
            \r
            4;name=value;flag\r
            Wiki\r
            5 ; x="quoted; string"\r
            pedia\r
            E\r
             in\r\n\r\nchunks.\r
            0;last\r
            Expires: never\r
            X-Checksum: abc\r
            \r

            """)
        let request = try #require(onlyRequest(input))
        #expect(request.body == http("Wikipedia in\r\n\r\nchunks."))
        #expect(request.headers["Transfer-Encoding"] == "chunked")
        #expect(request.headers["Expires"] == nil)
    }

    @Test("chunk sizes are hex in either case; Transfer-Encoding is case-insensitive; leading zeros are fine")
    func chunkSizeHexCase() throws {
        let body = [UInt8](repeating: 0x61, count: 0xAB)
        let input = http("PUT /k HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n0000aB\r\n") + body + http("\r\n0\r\n\r\n")
        let request = try #require(onlyRequest(input))
        #expect(request.body == body)
    }

    @Test("a chunked body of only the last chunk is empty")
    func emptyChunkedBody() throws {
        let request = try #require(onlyRequest(http("PUT /k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")))
        #expect(request.body.isEmpty)
    }

    @Test("bare LF line endings are accepted in the head and in chunked framing")
    func bareLineFeeds() throws {
        let request = try #require(onlyRequest(http("PUT /k HTTP/1.1\nTransfer-Encoding: chunked\n\n3\nabc\n0\nT: x\n\n")))
        #expect(request.body == http("abc"))
    }

    @Test("empty lines before a request line are skipped, up to the limit")
    func leadingEmptyLines() throws {
        var limits = HTTPLimits()
        limits.maxLeadingEmptyLines = 3
        let request = try #require(onlyRequest(http("\r\n\n\r\nGET / HTTP/1.1\r\n\r\n"), limits: limits))
        #expect(request.method == "GET")
    }

    // MARK: Splits and pipelining

    @Test("feeding one byte at a time gives the same requests as feeding everything at once")
    func oneByteAtATime() {
        for input in variedRequests {
            let whole = decode(input)
            #expect(whole.error == nil)
            #expect(whole.requests.count == 1)
            #expect(decodeOneByteAtATime(input) == whole)
        }
    }

    @Test("random splits give the same requests as feeding everything at once", arguments: [UInt64(0x4854_5450), 0x4854_5451])
    func randomSplits(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let stream = variedRequests.flatMap { $0 }
        let whole = decode(stream)
        #expect(whole.error == nil)
        #expect(whole.requests.count == variedRequests.count)
        for trial in 0..<200 {
            let pieces = randomPieces(count: stream.count, using: &random)
            #expect(decode(stream, pieces: pieces) == whole, "trial \(trial), pieces \(pieces)")
        }
    }

    @Test("pipelined requests in one read come out in order, then nil, and the decoder is idle")
    func pipelined() throws {
        let input = http("GET /1 HTTP/1.1\r\n\r\nPUT /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiPOST /3 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\nDELETE /4 HTTP/1.1\r\n\r\n")
        var decoder = HTTPRequestDecoder()
        decoder.feed(input)
        var targets: [[UInt8]] = []
        while case .request(let request)? = try decoder.next() { targets.append(request.target) }
        #expect(targets == [http("/1"), http("/2"), http("/3"), http("/4")])
        #expect(try decoder.next() == nil)
        #expect(decoder.isIdle)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test("feeding an UnsafeRawBufferPointer is the same as feeding an array")
    func feedRawBuffer() throws {
        var decoder = HTTPRequestDecoder()
        http("PUT /k HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc").withUnsafeBytes { decoder.feed($0) }
        let event = try decoder.next()
        #expect(event == decode(http("PUT /k HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")).events.first)
    }

    @Test("thousands of pipelined requests in random reads all decode (the buffer compacts correctly)")
    func manyPipelinedRequests() throws {
        var random = SplitMix64(seed: 0xC0FFEE)
        var stream: [UInt8] = []
        var expectedBodies: [[UInt8]] = []
        for index in 0..<3000 {
            let body = http(String(index))
            expectedBodies.append(body)
            stream += http("PUT /v1/kv/\(index) HTTP/1.1\r\nContent-Length: \(body.count)\r\n\r\n") + body
        }
        let outcome = decode(stream, pieces: randomPieces(count: stream.count, using: &random))
        #expect(outcome.error == nil)
        #expect(outcome.requests.map(\.body) == expectedBodies)
        #expect(outcome.requests.last?.target == http("/v1/kv/2999"))
    }

    @Test("a large body arriving in many reads is delivered intact")
    func largeBodyInPieces() throws {
        var random = SplitMix64(seed: 7)
        let body = random.bytes(1 << 20)
        let input = http("PUT /k HTTP/1.1\r\nContent-Length: \(body.count)\r\n\r\n") + body
        let outcome = decode(input, pieces: Array(repeating: 4096, count: input.count / 4096))
        #expect(outcome.error == nil)
        #expect(outcome.requests.first?.body == body)
    }

    // MARK: Idle and buffered bytes

    @Test("isIdle is true between requests and false while a request is partly received")
    func idleBetweenRequests() throws {
        var decoder = HTTPRequestDecoder()
        #expect(decoder.isIdle)
        decoder.feed(http("GET / HT"))
        #expect(!decoder.isIdle)
        #expect(try decoder.next() == nil)
        #expect(!decoder.isIdle)
        decoder.feed(http("TP/1.1\r\n\r\n"))
        #expect(!decoder.isIdle, "fed but not yet decoded")
        #expect(try decoder.next() != nil)
        #expect(decoder.isIdle)
        decoder.feed(http("\r\n"))
        #expect(try decoder.next() == nil)
        #expect(decoder.isIdle, "a skipped empty line is not the start of a request")
    }

    @Test("a decoder waiting for a body is not idle")
    func notIdleWhileWaitingForBody() throws {
        var decoder = HTTPRequestDecoder()
        decoder.feed(http("PUT /k HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"))
        #expect(try decoder.next() == nil)
        #expect(!decoder.isIdle)
    }

    @Test("bufferedByteCount counts fed bytes not yet consumed")
    func bufferedByteCount() throws {
        var decoder = HTTPRequestDecoder()
        decoder.feed(http("GET / HTTP/1.1\r\n\r\nGET /next HTTP"))
        #expect(decoder.bufferedByteCount == 32)
        _ = try decoder.next()
        #expect(decoder.bufferedByteCount == 14)
        #expect(try decoder.next() == nil)
        #expect(decoder.bufferedByteCount == 14)
    }

    // MARK: Expect: 100-continue

    @Test("Expect: 100-continue yields continueExpected once, when the head arrives without its body")
    func continueExpectedOnce() throws {
        var decoder = HTTPRequestDecoder()
        decoder.feed(http("PUT /k HTTP/1.1\r\nExpect: 100-Continue\r\nContent-Length: 6\r\n\r\n"))
        #expect(try decoder.next() == .continueExpected)
        #expect(try decoder.next() == nil)
        decoder.feed(http("ab"))
        #expect(try decoder.next() == nil, "not a second time")
        decoder.feed(http("cdef"))
        guard case .request(let request)? = try decoder.next() else {
            Issue.record("expected the request")
            return
        }
        #expect(request.body == http("abcdef"))
    }

    @Test("no continueExpected when the body arrived with the head")
    func noContinueWhenBodyBuffered() {
        let outcome = decode(http("PUT /k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"))
        #expect(outcome.events.count == 1)
        #expect(!outcome.events.contains(.continueExpected))
    }

    @Test("continueExpected comes once for a chunked body, before its request")
    func continueExpectedChunked() {
        let head = http("POST /k HTTP/1.1\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
        let body = http("3\r\nabc\r\n0\r\n\r\n")
        let outcome = decode(head + body, pieces: [head.count, 2, 5, 3])
        #expect(outcome.events.first == .continueExpected)
        #expect(outcome.events.count == 2)
        #expect(outcome.requests.first?.body == http("abc"))
        #expect(decode(head + body).events.count == 1, "not when the whole chunked body is there")
    }

    @Test("no continueExpected for an empty body or an HTTP/1.0 request", arguments: [
        "PUT /k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        "GET /k HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        "PUT /k HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    ])
    func noContinueWithoutBody(head: String) throws {
        var decoder = HTTPRequestDecoder()
        decoder.feed(http(head))
        #expect(try decoder.next() != .continueExpected)
    }

    @Test("continueExpected comes again for the next request that expects it")
    func continueExpectedPerRequest() throws {
        let request = http("PUT /k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n")
        var decoder = HTTPRequestDecoder()
        for _ in 0..<2 {
            decoder.feed(request)
            #expect(try decoder.next() == .continueExpected)
            decoder.feed(http("x"))
            #expect(try decoder.next() != nil)
        }
    }

    // MARK: Limits at their boundaries

    @Test("a request line of exactly maxRequestLineBytes is accepted")
    func requestLineAtLimit() throws {
        var limits = HTTPLimits()
        limits.maxRequestLineBytes = 64
        let prefix = "GET /"
        let suffix = " HTTP/1.1"
        let path = String(repeating: "a", count: 64 - prefix.count - suffix.count)
        #expect(onlyRequest(http(prefix + path + suffix + "\r\n\r\n"), limits: limits) != nil)
        #expect(decode(http(prefix + path + "a" + suffix + "\r\n\r\n"), limits: limits).error == .requestLineTooLong(limit: 64))
    }

    @Test("exactly maxHeaderCount fields are accepted, one more is refused")
    func headerCountAtLimit() throws {
        var limits = HTTPLimits()
        limits.maxHeaderCount = 5
        let fields = (0..<5).map { "F\($0): v\r\n" }.joined()
        #expect(onlyRequest(http("GET / HTTP/1.1\r\n\(fields)\r\n"), limits: limits)?.headers.count == 5)
        #expect(decode(http("GET / HTTP/1.1\r\n\(fields)X: y\r\n\r\n"), limits: limits).error == .tooManyHeaders(limit: 5))
    }

    @Test("field lines of exactly maxHeaderBytes together are accepted, one byte more is refused")
    func headerBytesAtLimit() throws {
        var limits = HTTPLimits()
        limits.maxHeaderBytes = 20
        #expect(onlyRequest(http("GET / HTTP/1.1\r\nA: 123456\r\nB: 12345678\r\n\r\n"), limits: limits) != nil)
        #expect(decode(http("GET / HTTP/1.1\r\nA: 123456\r\nB: 123456789\r\n\r\n"), limits: limits).error == .headersTooLarge(limit: 20))
    }

    @Test("a body of exactly maxBodyBytes is accepted, by Content-Length and chunked")
    func bodyAtLimit() throws {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 10
        #expect(onlyRequest(http("PUT /k HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789"), limits: limits) != nil)
        let chunked = http("PUT /k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n")
        #expect(onlyRequest(chunked, limits: limits)?.body == http("0123456789"))
    }

    @Test("an oversized Content-Length is refused from the head alone, before any body byte")
    func bodyTooLargeFromHead() throws {
        var decoder = HTTPRequestDecoder()
        decoder.feed(http("PUT /k HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 900000000000000000\r\n\r\n"))
        #expect(throws: HTTPRequestError.bodyTooLarge(limit: HTTPLimits().maxBodyBytes)) { try decoder.next() }
    }

    @Test("a chunk that would pass maxBodyBytes is refused at its size line, before its data")
    func chunkTooLargeFromSizeLine() throws {
        var limits = HTTPLimits()
        limits.maxBodyBytes = 100
        var decoder = HTTPRequestDecoder(limits: limits)
        decoder.feed(http("PUT /k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n") + Array(repeating: 0x61, count: 64) + http("\r\n25\r\n"))
        #expect(throws: HTTPRequestError.bodyTooLarge(limit: 100)) { try decoder.next() }
    }

    @Test("an endless header line is cut off at the limit, never buffering more than the limit", arguments: [1, 100, 5000])
    func slowLorisHeaderLine(readSize: Int) throws {
        let limits = HTTPLimits()
        var decoder = HTTPRequestDecoder(limits: limits)
        decoder.feed(http("GET / HTTP/1.1\r\nX-Endless: "))
        var fed = 0
        var thrown: HTTPRequestError?
        while thrown == nil && fed < 10 * limits.maxHeaderBytes {
            decoder.feed(Array(repeating: UInt8(ascii: "a"), count: readSize))
            fed += readSize
            do {
                #expect(try decoder.next() == nil)
                #expect(decoder.bufferedByteCount <= limits.maxHeaderBytes + 1)
            } catch {
                thrown = error
            }
        }
        #expect(thrown == .headersTooLarge(limit: limits.maxHeaderBytes))
        #expect(fed <= limits.maxHeaderBytes + readSize)
    }

    @Test("an endless request line is cut off at the limit")
    func endlessRequestLine() throws {
        let limits = HTTPLimits()
        var decoder = HTTPRequestDecoder(limits: limits)
        decoder.feed(http("GET /"))
        var thrown: HTTPRequestError?
        var fed = 0
        while thrown == nil && fed < 4 * limits.maxRequestLineBytes {
            decoder.feed(Array(repeating: UInt8(ascii: "b"), count: 1000))
            fed += 1000
            do { _ = try decoder.next() } catch { thrown = error }
        }
        #expect(thrown == .requestLineTooLong(limit: limits.maxRequestLineBytes))
        #expect(fed <= limits.maxRequestLineBytes + 1000)
    }

    @Test("after an error the decoder throws it again and ignores further bytes")
    func failureIsFinal() throws {
        var decoder = HTTPRequestDecoder()
        decoder.feed(http("GET / HTTP/9.9\r\n\r\n"))
        #expect(throws: HTTPRequestError.unsupportedVersion("HTTP/9.9")) { try decoder.next() }
        decoder.feed(http("GET / HTTP/1.1\r\n\r\n"))
        #expect(throws: HTTPRequestError.unsupportedVersion("HTTP/9.9")) { try decoder.next() }
        #expect(!decoder.isIdle)
    }
}
