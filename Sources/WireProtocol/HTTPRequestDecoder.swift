/// The incremental HTTP/1.x request decoder: bytes in as they arrive, requests out (RFC 9112).
///
/// A request, step by step; the decoder's states follow this list:
/// 1. Skip up to `maxLeadingEmptyLines` empty lines before the request line (RFC 9112 §2.2: some
///    clients send a CRLF after a body).
/// 2. Request line: `method SP request-target SP HTTP-version`, at most `maxRequestLineBytes`.
///    The method is a token; the target is origin-form ("/path?query"), "*" (OPTIONS only) or
///    absolute-form ("http://host/path", reduced to "/path"); authority-form (CONNECT) is refused.
///    HTTP/1.0 and HTTP/1.1 only: any other well-formed version is refused with 505.
/// 3. Field lines, `name ":" OWS value OWS`, until an empty line: at most `maxHeaderCount` lines of
///    at most `maxHeaderBytes` together (line endings not counted). A line starting with
///    whitespace (obsolete folding) is refused; so is whitespace between name and colon (RFC 9112
///    §5.1: both have been used to smuggle requests). Host is not required: our clients all send
///    it and the store does not use it (Go's server requires it for HTTP/1.1); two Host fields
///    are refused.
/// 4. Framing (RFC 9112 §6.3), decided once the head is complete:
///    - Transfer-Encoding and Content-Length together: refused (the classic request smuggling);
///    - Transfer-Encoding: must be exactly "chunked"; chunked not last (or absent, or twice) is a
///      400, another coding before chunked is 501; not allowed in HTTP/1.0 at all;
///    - Content-Length: digits only; several fields must agree; over `maxBodyBytes` is refused
///      here, before any body byte is read;
///    - neither: no body.
/// 5. Expect: an HTTP/1.1 "100-continue" with a body to come yields `.continueExpected` the first
///    time the decoder runs out of body bytes (so never when the whole body arrived with the
///    head); any other expectation is refused with 417, as Go does.
/// 6. Body: Content-Length bytes, or chunks: `hex-size [;ext] CRLF data CRLF` ..., then a last
///    chunk of size 0, trailer fields (checked like header fields, counted against the same limits,
///    then dropped), and an empty line. The de-chunked total may not exceed `maxBodyBytes`: a chunk
///    that would pass it is refused when its size line arrives, before its data.
/// 7. `.request`; the next request starts at the next byte (pipelining).
///
/// Lines end in CRLF or a bare LF (robustness); a CR anywhere else is refused, because two
/// parsers that disagree on line ends disagree on where requests end.
///
/// What must stay true:
/// - It never traps, whatever the bytes, and every error is an `HTTPRequestError`.
/// - Memory is bounded by the limits, not by what a client sends: a line is refused as soon as
///   it is longer than its limit, complete or not, so while `next()` waits the unconsumed bytes
///   are at most one partial line (the longest limit, plus a CR). Body bytes are moved into the
///   request as they arrive, so a body costs its received size once, up to `maxBodyBytes`; no
///   capacity is ever reserved from a length the client announced.
/// - Each byte is examined a constant number of times: a line that arrives in pieces is scanned
///   from where the last search stopped, and consumed bytes are dropped from the front of the
///   buffer once they are at least half of it (amortized O(1) per byte).
/// - Events do not depend on how the bytes were split into `feed` calls, except for
///   `.continueExpected`, which depends on whether the body had arrived yet.
public struct HTTPRequestDecoder: Sendable {
    public let limits: HTTPLimits

    /// Received bytes; `buffer[readIndex...]` are not consumed yet.
    private var buffer: [UInt8] = []
    private var readIndex = 0
    /// How far past `readIndex` the current line has been searched for its end, without finding
    /// it: the next search starts there.
    private var scanOffset = 0
    private var state = State.requestLine
    private var request = RequestInProgress()
    /// Set by the first error; every later `next()` throws it again.
    private var failure: HTTPRequestError?

    public init(limits: HTTPLimits = HTTPLimits()) {
        self.limits = limits
    }

    /// Bytes fed but not yet consumed. Body bytes already moved into the request being decoded
    /// are not counted. When `next()` has returned nil this is at most one partial line.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// True between requests: nothing of a next request has been received (empty lines skipped
    /// before a request line do not count). The server uses it to choose between its idle timeout
    /// and its header-read timeout.
    ///
    /// A stored property, set at the end of every mutating entry point (`feed`, `next`) from
    /// `computedIsIdle`: the server reads it several times per request, and reading a computed
    /// property of a struct held in a class copies the whole decoder (its buffer and the request
    /// in progress, with a retain and release of each), which was 1% of a GET's CPU.
    public private(set) var isIdle = true

    /// What `isIdle` is set to after every mutating entry point.
    private var computedIsIdle: Bool {
        guard failure == nil, readIndex == buffer.count, case .requestLine = state else { return false }
        return true
    }

    /// Appends received bytes. After an error, bytes are dropped (the connection is closing).
    public mutating func feed(_ bytes: UnsafeRawBufferPointer) {
        defer { isIdle = computedIsIdle }
        guard prepareToAppend(bytes.count) else { return }
        buffer.append(contentsOf: bytes)
    }

    /// Appends received bytes. After an error, bytes are dropped (the connection is closing).
    public mutating func feed(_ bytes: [UInt8]) {
        defer { isIdle = computedIsIdle }
        guard prepareToAppend(bytes.count) else { return }
        buffer.append(contentsOf: bytes)
    }

    /// The next event from the bytes fed so far, or nil if more bytes are needed. Call it until it
    /// returns nil: several pipelined requests may be buffered. After it throws, it throws the
    /// same error on every call (the server answers `error.status` and closes the connection).
    public mutating func next() throws(HTTPRequestError) -> HTTPDecodeEvent? {
        defer { isIdle = computedIsIdle }
        if let failure { throw failure }
        // A second reference to the storage, not a copy: the buffer is only read while decoding,
        // and this keeps `self` free to be mutated inside the closure.
        let storage = buffer
        do throws(HTTPRequestError) {
            return try storage.withUnsafeBufferPointer { (bytes) throws(HTTPRequestError) -> HTTPDecodeEvent? in
                try decode(bytes)
            }
        } catch {
            failure = error
            throw error
        }
    }

    // MARK: - Buffer

    /// Drops consumed bytes when they are at least half the buffer (or all of it); false if the
    /// decoder has failed and bytes should be dropped.
    private mutating func prepareToAppend(_ count: Int) -> Bool {
        guard failure == nil else { return false }
        guard count > 0, readIndex > 0 else { return count > 0 }
        if readIndex == buffer.count {
            // A large buffer (a big body went through it) is given back rather than kept for the
            // life of the connection.
            if buffer.capacity > Self.retainedCapacity {
                buffer = []
            } else {
                buffer.removeAll(keepingCapacity: true)
            }
            readIndex = 0
        } else if readIndex >= buffer.count - readIndex {
            buffer.removeSubrange(0..<readIndex)
            readIndex = 0
        }
        return true
    }

    /// The capacity an emptied buffer keeps for the next reads.
    private static let retainedCapacity = 64 << 10

    // MARK: - States

    private enum State {
        case requestLine
        case fieldLines
        case fixedBody(remaining: Int)
        case chunkSizeLine
        case chunkData(remaining: Int)
        case chunkDataEnd
        case trailerLines
    }

    /// What is known of the request being decoded.
    private struct RequestInProgress {
        var method = ""
        var target: [UInt8] = []
        var version = HTTPVersion.http1_1
        var headers = HTTPHeaders()
        var body: [UInt8] = []
        var leadingEmptyLines = 0
        /// Lines of the head read so far, the request line being line 1.
        var headLines = 0
        /// Trailer lines read so far.
        var trailerLines = 0
        /// Header and trailer field lines, and their bytes without line ends.
        var fieldCount = 0
        var fieldBytes = 0
        var contentLength: Int?
        var contentLengthText = ""
        var transferEncodings: [String] = []
        var connection = HTTPConnectionOptions()
        var expectsContinue = false
        /// The first Expect value other than 100-continue.
        var unsupportedExpectation: String?
        var hostCount = 0
        var continuePending = false
    }

    /// Runs the state machine over `bytes` (the whole buffer) from `readIndex`.
    private mutating func decode(_ bytes: UnsafeBufferPointer<UInt8>) throws(HTTPRequestError) -> HTTPDecodeEvent? {
        while true {
            switch state {
            case .requestLine:
                guard let line = try nextLine(in: bytes, limit: limits.maxRequestLineBytes,
                                              tooLong: .requestLineTooLong(limit: limits.maxRequestLineBytes),
                                              bareCR: .bareCarriageReturn(line: 1))
                else { return nil }
                if line.isEmpty {
                    request.leadingEmptyLines += 1
                    guard request.leadingEmptyLines <= limits.maxLeadingEmptyLines else {
                        throw .tooManyEmptyLines(limit: limits.maxLeadingEmptyLines)
                    }
                    continue
                }
                request.headLines = 1
                try parseRequestLine(UnsafeBufferPointer(rebasing: bytes[line]))
                state = .fieldLines

            case .fieldLines:
                let lineNumber = request.headLines + 1
                guard let line = try nextLine(in: bytes, limit: limits.maxHeaderBytes - request.fieldBytes,
                                              tooLong: .headersTooLarge(limit: limits.maxHeaderBytes),
                                              bareCR: .bareCarriageReturn(line: lineNumber))
                else { return nil }
                request.headLines = lineNumber
                if line.isEmpty {
                    if let event = try finishHead() { return event }
                    continue
                }
                try addHeaderField(UnsafeBufferPointer(rebasing: bytes[line]), lineNumber: lineNumber)

            case .fixedBody(let remaining):
                let taken = takeBody(from: bytes, upTo: remaining)
                if taken == remaining { return finishRequest() }
                state = .fixedBody(remaining: remaining - taken)
                return waitForBody()

            case .chunkSizeLine:
                guard let line = try nextLine(in: bytes, limit: limits.maxChunkLineBytes,
                                              tooLong: .chunkLineTooLong(limit: limits.maxChunkLineBytes),
                                              bareCR: .malformedChunk)
                else { return waitForBody() }
                let size = try Self.chunkSize(UnsafeBufferPointer(rebasing: bytes[line]))
                if size == 0 {
                    state = .trailerLines
                } else {
                    guard size <= limits.maxBodyBytes - request.body.count else {
                        throw .bodyTooLarge(limit: limits.maxBodyBytes)
                    }
                    state = .chunkData(remaining: size)
                }

            case .chunkData(let remaining):
                let taken = takeBody(from: bytes, upTo: remaining)
                guard taken == remaining else {
                    state = .chunkData(remaining: remaining - taken)
                    return waitForBody()
                }
                state = .chunkDataEnd

            case .chunkDataEnd:
                // The CRLF (or LF) that ends a chunk's data; anything else means the size was wrong.
                let available = bytes.count - readIndex
                guard available > 0 else { return waitForBody() }
                if bytes[readIndex] == HTTPSyntax.lineFeed {
                    readIndex += 1
                } else if bytes[readIndex] == HTTPSyntax.carriageReturn {
                    guard available > 1 else { return waitForBody() }
                    guard bytes[readIndex + 1] == HTTPSyntax.lineFeed else { throw .malformedChunk }
                    readIndex += 2
                } else {
                    throw .malformedChunk
                }
                state = .chunkSizeLine

            case .trailerLines:
                let lineNumber = request.trailerLines + 1
                guard let line = try nextLine(in: bytes, limit: limits.maxHeaderBytes - request.fieldBytes,
                                              tooLong: .headersTooLarge(limit: limits.maxHeaderBytes),
                                              bareCR: .malformedTrailer(line: lineNumber))
                else { return waitForBody() }
                request.trailerLines = lineNumber
                if line.isEmpty { return finishRequest() }
                try addTrailerField(UnsafeBufferPointer(rebasing: bytes[line]), lineNumber: lineNumber)
            }
        }
    }

    /// Nil when the body needs more bytes; `.continueExpected` instead, once, if the client is
    /// waiting for permission to send them.
    private mutating func waitForBody() -> HTTPDecodeEvent? {
        guard request.continuePending else { return nil }
        request.continuePending = false
        return .continueExpected
    }

    /// Moves up to `limit` available bytes into the body; returns how many.
    private mutating func takeBody(from bytes: UnsafeBufferPointer<UInt8>, upTo limit: Int) -> Int {
        let count = min(limit, bytes.count - readIndex)
        request.body.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[readIndex..<(readIndex + count)]))
        readIndex += count
        return count
    }

    private mutating func finishRequest() -> HTTPDecodeEvent {
        let finished = request
        request = RequestInProgress()
        state = .requestLine
        return .request(HTTPRequest(
            method: finished.method, target: finished.target, version: finished.version,
            headers: finished.headers, body: finished.body,
            keepAlive: finished.connection.keepAlive(version: finished.version)))
    }

    // MARK: - Lines

    /// The next line's content (without its line end), consuming it; nil if its end has not
    /// arrived. Throws `tooLong` as soon as the content is known to exceed `limit` bytes, and
    /// `bareCR` for a CR that is not followed by LF.
    ///
    /// The scan compares each byte once against 13 (CR): bytes at or below it are rare in
    /// requests, so the loop is one compare per byte for ordinary text.
    private mutating func nextLine(
        in bytes: UnsafeBufferPointer<UInt8>, limit: Int, tooLong: HTTPRequestError, bareCR: HTTPRequestError
    ) throws(HTTPRequestError) -> Range<Int>? {
        let start = readIndex
        let available = bytes.count - start
        let limit = max(0, limit)
        // A line end may start at most `limit` bytes in; past that the line is too long.
        let reachesLimit = limit < available
        let stop = reachesLimit ? start + limit + 1 : bytes.count
        var index = start + scanOffset
        while index < stop {
            let byte = bytes[index]
            if byte <= HTTPSyntax.carriageReturn {
                if byte == HTTPSyntax.lineFeed {
                    scanOffset = 0
                    readIndex = index + 1
                    return start..<index
                }
                if byte == HTTPSyntax.carriageReturn {
                    guard index + 1 < bytes.count else { break }
                    guard bytes[index + 1] == HTTPSyntax.lineFeed else { throw bareCR }
                    scanOffset = 0
                    readIndex = index + 2
                    return start..<index
                }
            }
            index += 1
        }
        if reachesLimit && index == stop { throw tooLong }
        scanOffset = index - start
        return nil
    }

    // MARK: - Request line

    private mutating func parseRequestLine(_ line: UnsafeBufferPointer<UInt8>) throws(HTTPRequestError) {
        // Exactly two spaces: method SP target SP version.
        guard let methodEnd = line.firstIndex(of: HTTPSyntax.space), methodEnd > 0 else { throw .malformedRequestLine }
        let targetStart = methodEnd + 1
        guard let targetEnd = line[targetStart...].firstIndex(of: HTTPSyntax.space), targetEnd > targetStart else {
            throw .malformedRequestLine
        }
        let version = UnsafeBufferPointer(rebasing: line[(targetEnd + 1)...])
        guard !version.isEmpty, !version.contains(HTTPSyntax.space) else { throw .malformedRequestLine }
        request.version = try Self.parseVersion(version)

        let method = UnsafeBufferPointer(rebasing: line[..<methodEnd])
        guard method.allSatisfy(HTTPSyntax.isTokenByte) else { throw .invalidMethod }
        request.method = String(decoding: method, as: UTF8.self)
        request.target = try Self.parseTarget(
            UnsafeBufferPointer(rebasing: line[targetStart..<targetEnd]), method: request.method)
    }

    // As bytes: comparing against a String's UTF8View takes the generic path (0.3% of a GET).
    private static let versionPrefix: [UInt8] = Array("HTTP/".utf8)

    /// "HTTP/1.0" or "HTTP/1.1"; another "HTTP/d.d" is unsupported (505), anything else malformed.
    private static func parseVersion(_ text: UnsafeBufferPointer<UInt8>) throws(HTTPRequestError) -> HTTPVersion {
        guard text.count == 8, text[0..<5].elementsEqual(Self.versionPrefix),
              HTTPSyntax.isDigit(text[5]), text[6] == UInt8(ascii: "."), HTTPSyntax.isDigit(text[7])
        else { throw .malformedVersion }
        let version = HTTPVersion(major: Int(text[5] - UInt8(ascii: "0")), minor: Int(text[7] - UInt8(ascii: "0")))
        guard version == .http1_1 || version == .http1_0 else {
            throw .unsupportedVersion(String(decoding: text, as: UTF8.self))
        }
        return version
    }

    /// The target's bytes if it is origin-form or an OPTIONS "*"; an absolute-form target reduced
    /// to origin-form. Control bytes, spaces and DEL are refused anywhere in it (bytes 0x80 and up
    /// are let through raw, as Go does).
    private static func parseTarget(
        _ target: UnsafeBufferPointer<UInt8>, method: String
    ) throws(HTTPRequestError) -> [UInt8] {
        guard !target.contains(where: { $0 <= HTTPSyntax.space || $0 == HTTPSyntax.delete }) else { throw .invalidTarget }
        switch target[0] {
        case HTTPSyntax.slash:
            return Array(target)
        case HTTPSyntax.asterisk where target.count == 1:
            guard method == "OPTIONS" else { throw .invalidTarget }
            return Array(target)
        default:
            return try originForm(ofAbsolute: target)
        }
    }

    /// "http://authority/path?query" (scheme http or https, any case, non-empty authority) as
    /// "/path?query", "/" standing in for an empty path. The authority is dropped: this server
    /// serves one origin and never uses it.
    private static func originForm(ofAbsolute target: UnsafeBufferPointer<UInt8>) throws(HTTPRequestError) -> [UInt8] {
        guard let colon = target.firstIndex(of: HTTPSyntax.colon) else { throw .invalidTarget }
        let scheme = UnsafeBufferPointer(rebasing: target[..<colon])
        guard HTTPSyntax.equalsIgnoringCase(scheme, "http") || HTTPSyntax.equalsIgnoringCase(scheme, "https"),
              target.count >= colon + 3, target[colon + 1] == HTTPSyntax.slash, target[colon + 2] == HTTPSyntax.slash
        else { throw .invalidTarget }
        let authorityStart = colon + 3
        let rest = target[authorityStart...].firstIndex { $0 == HTTPSyntax.slash || $0 == HTTPSyntax.questionMark }
            ?? target.count
        guard rest > authorityStart else { throw .invalidTarget }
        if rest < target.count, target[rest] == HTTPSyntax.slash { return Array(target[rest...]) }
        return [HTTPSyntax.slash] + target[rest...]
    }

    // MARK: - Field lines

    /// A field line split into name and trimmed value, or what is wrong with it.
    private enum FieldLine {
        case field(name: UnsafeBufferPointer<UInt8>, value: UnsafeBufferPointer<UInt8>)
        case obsoleteFolding, malformed, whitespaceBeforeColon, invalidValue
    }

    private static func splitFieldLine(_ line: UnsafeBufferPointer<UInt8>) -> FieldLine {
        if HTTPSyntax.isWhitespace(line[0]) { return .obsoleteFolding }
        guard let colon = line.firstIndex(of: HTTPSyntax.colon), colon > 0 else { return .malformed }
        let name = UnsafeBufferPointer(rebasing: line[..<colon])
        for byte in name where !HTTPSyntax.isTokenByte(byte) {
            return HTTPSyntax.isWhitespace(byte) ? .whitespaceBeforeColon : .malformed
        }
        var valueStart = colon + 1
        var valueEnd = line.count
        while valueStart < valueEnd, HTTPSyntax.isWhitespace(line[valueStart]) { valueStart += 1 }
        while valueEnd > valueStart, HTTPSyntax.isWhitespace(line[valueEnd - 1]) { valueEnd -= 1 }
        let value = UnsafeBufferPointer(rebasing: line[valueStart..<valueEnd])
        // field-vchar: visible ASCII and obs-text (0x80...); HTAB only between them.
        guard !value.contains(where: { ($0 < HTTPSyntax.space && $0 != HTTPSyntax.tab) || $0 == HTTPSyntax.delete }) else {
            return .invalidValue
        }
        return .field(name: name, value: value)
    }

    /// Counts a header or trailer field line against the limits.
    private mutating func countField(bytes: Int) throws(HTTPRequestError) {
        request.fieldCount += 1
        request.fieldBytes += bytes
        guard request.fieldCount <= limits.maxHeaderCount else { throw .tooManyHeaders(limit: limits.maxHeaderCount) }
    }

    private mutating func addHeaderField(_ line: UnsafeBufferPointer<UInt8>, lineNumber: Int) throws(HTTPRequestError) {
        try countField(bytes: line.count)
        let name: UnsafeBufferPointer<UInt8>
        let value: UnsafeBufferPointer<UInt8>
        switch Self.splitFieldLine(line) {
        case .field(let fieldName, let fieldValue): (name, value) = (fieldName, fieldValue)
        case .obsoleteFolding: throw .obsoleteLineFolding(line: lineNumber)
        case .malformed: throw .malformedHeader(line: lineNumber)
        case .whitespaceBeforeColon: throw .whitespaceBeforeColon(line: lineNumber)
        case .invalidValue: throw .invalidHeaderValue(line: lineNumber)
        }
        let valueText = String(decoding: value, as: UTF8.self)
        // The fields that decide framing and persistence, recognized by length first.
        switch name.count {
        case 4 where HTTPSyntax.equalsIgnoringCase(name, "host"):
            request.hostCount += 1
            guard request.hostCount == 1 else { throw .multipleHostHeaders }
        case 6 where HTTPSyntax.equalsIgnoringCase(name, "expect"):
            if HTTPSyntax.equalsIgnoringCase(value, "100-continue") {
                request.expectsContinue = true
            } else if !value.isEmpty && request.unsupportedExpectation == nil {
                request.unsupportedExpectation = valueText
            }
        case 10 where HTTPSyntax.equalsIgnoringCase(name, "connection"):
            request.connection.add(value)
        case 14 where HTTPSyntax.equalsIgnoringCase(name, "content-length"):
            guard let length = Self.contentLength(value) else { throw .invalidContentLength(valueText) }
            if let previous = request.contentLength, previous != length {
                throw .conflictingContentLengths(request.contentLengthText, valueText)
            }
            request.contentLength = length
            request.contentLengthText = valueText
        case 17 where HTTPSyntax.equalsIgnoringCase(name, "transfer-encoding"):
            request.transferEncodings.append(valueText)
        default:
            break
        }
        request.headers.append(name: String(decoding: name, as: UTF8.self), value: valueText)
    }

    /// Trailer fields are checked like header fields and dropped: nothing in them may change how
    /// the request was framed or is handled.
    private mutating func addTrailerField(_ line: UnsafeBufferPointer<UInt8>, lineNumber: Int) throws(HTTPRequestError) {
        try countField(bytes: line.count)
        guard case .field = Self.splitFieldLine(line) else { throw .malformedTrailer(line: lineNumber) }
    }

    /// Content-Length: one or more digits, nothing else, within Int.
    private static func contentLength(_ value: UnsafeBufferPointer<UInt8>) -> Int? {
        guard !value.isEmpty else { return nil }
        var length = 0
        for byte in value {
            guard HTTPSyntax.isDigit(byte) else { return nil }
            let (times10, overflow1) = length.multipliedReportingOverflow(by: 10)
            let (sum, overflow2) = times10.addingReportingOverflow(Int(byte &- UInt8(ascii: "0")))
            guard !overflow1, !overflow2 else { return nil }
            length = sum
        }
        return length
    }

    // MARK: - End of head: framing

    /// Decides the framing (step 4) and expectation (step 5); returns the request if it has no
    /// body, else nil with the state set to read it.
    private mutating func finishHead() throws(HTTPRequestError) -> HTTPDecodeEvent? {
        // RFC 9110 §10.1.1: an HTTP/1.0 client cannot expect 100-continue; its Expect is ignored.
        let isHTTP11 = request.version == .http1_1
        if isHTTP11, let expectation = request.unsupportedExpectation { throw .unsupportedExpectation(expectation) }
        if !request.transferEncodings.isEmpty {
            guard request.contentLength == nil else { throw .conflictingFraming }
            guard isHTTP11 else { throw .transferEncodingInHTTP10 }
            try Self.checkChunkedOnly(request.transferEncodings)
            state = .chunkSizeLine
        } else if let length = request.contentLength, length > 0 {
            guard length <= limits.maxBodyBytes else { throw .bodyTooLarge(limit: limits.maxBodyBytes) }
            state = .fixedBody(remaining: length)
        } else {
            return finishRequest()
        }
        request.continuePending = isHTTP11 && request.expectsContinue
        return nil
    }

    /// The Transfer-Encoding list (over all its field lines) must be exactly "chunked".
    /// RFC 9112 §6.3: if chunked is not the final coding the body length is unknown, a 400; a
    /// coding we do not implement applied before chunked is a 501 (§6.1).
    private static func checkChunkedOnly(_ fields: [String]) throws(HTTPRequestError) {
        let value = fields.joined(separator: ", ")
        let codings = value.utf8.split(separator: HTTPSyntax.comma, omittingEmptySubsequences: false)
            .map(HTTPSyntax.trimmingWhitespace)
        let chunkedCount = codings.count { HTTPSyntax.equalsIgnoringCase($0, "chunked") }
        guard let last = codings.last, HTTPSyntax.equalsIgnoringCase(last, "chunked"), chunkedCount == 1,
              !codings.contains(where: \.isEmpty)
        else { throw .invalidTransferEncoding(value) }
        guard codings.count == 1 else { throw .unsupportedTransferEncoding(value) }
    }

    // MARK: - Chunks

    /// The size of a chunk size line: hex digits, then optional whitespace and extensions
    /// (";name[=value]", ignored, but no control bytes).
    private static func chunkSize(_ line: UnsafeBufferPointer<UInt8>) throws(HTTPRequestError) -> Int {
        var size = 0
        var index = 0
        while index < line.count, let digit = HTTPSyntax.hexValue(line[index]) {
            guard size <= Int.max >> 4 else { throw .invalidChunkSize(String(decoding: line, as: UTF8.self)) }
            size = size << 4 | Int(digit)
            index += 1
        }
        guard index > 0 else { throw .invalidChunkSize(String(decoding: line, as: UTF8.self)) }
        while index < line.count, HTTPSyntax.isWhitespace(line[index]) { index += 1 }
        guard index == line.count || line[index] == HTTPSyntax.semicolon else {
            throw .invalidChunkSize(String(decoding: line, as: UTF8.self))
        }
        guard !line[index...].contains(where: { ($0 < HTTPSyntax.space && $0 != HTTPSyntax.tab) || $0 == HTTPSyntax.delete }) else {
            throw .malformedChunk
        }
        return size
    }
}

/// How much one request may make the decoder hold. The defaults suit the store's API: keys and
/// headers are small, values are at most a few MB (base64 in JSON: 24 MiB holds a 16 MiB value).
public struct HTTPLimits: Sendable, Equatable {
    /// The request line, without its line end. Longer: `.requestLineTooLong` (414).
    public var maxRequestLineBytes = 8 << 10
    /// Header field lines (trailer lines count too). More: `.tooManyHeaders` (431).
    public var maxHeaderCount = 100
    /// All header and trailer field lines together, without line ends. More: `.headersTooLarge` (431).
    public var maxHeaderBytes = 16 << 10
    /// The body (de-chunked). More: `.bodyTooLarge` (413), known from Content-Length before the
    /// body is read, or from the chunk size line that would pass it.
    public var maxBodyBytes = 24 << 20
    /// One chunk size line with its extensions, without line end. Longer: `.chunkLineTooLong` (400).
    public var maxChunkLineBytes = 4 << 10
    /// Empty lines skipped before a request line. More: `.tooManyEmptyLines` (400).
    public var maxLeadingEmptyLines = 8

    public init() {}
}

/// What `HTTPRequestDecoder.next()` produces.
public enum HTTPDecodeEvent: Sendable, Equatable {
    /// The head carried "Expect: 100-continue" and the (non-empty) body has not arrived: the server
    /// should send `HTTPResponseEncoder.continueResponse` (or a final error status). At most once
    /// per request, before its `.request`, and only if its body is not already complete in the
    /// buffer.
    case continueExpected
    /// A complete request.
    case request(HTTPRequest)
}

/// Why a request was refused. Each case has the status to answer with (`status`) and a sentence a
/// client developer can act on (`description`). After any of them the server closes the
/// connection: where this request ends cannot be trusted, so neither can the next one.
public enum HTTPRequestError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Not `method SP target SP version`: missing parts, extra spaces, an empty method or target.
    case malformedRequestLine
    /// More empty lines before the request line than `HTTPLimits.maxLeadingEmptyLines`.
    case tooManyEmptyLines(limit: Int)
    case requestLineTooLong(limit: Int)
    /// The method has bytes that are not token characters.
    case invalidMethod
    /// The target is not origin-form, "*" for OPTIONS, or http(s) absolute-form, or holds control
    /// bytes, spaces or DEL.
    case invalidTarget
    /// The version is not of the form "HTTP/<digit>.<digit>".
    case malformedVersion
    /// A well-formed version other than HTTP/1.0 and HTTP/1.1 (505).
    case unsupportedVersion(String)
    /// A CR not followed by LF in the head; `line` counts from the request line (1).
    case bareCarriageReturn(line: Int)
    /// A field line starting with whitespace (obsolete line folding, RFC 9112 §5.2).
    case obsoleteLineFolding(line: Int)
    /// A field line without a colon, with an empty name, or a name that is not a token.
    case malformedHeader(line: Int)
    /// Whitespace between a field name and its colon (RFC 9112 §5.1).
    case whitespaceBeforeColon(line: Int)
    /// A control byte (NUL, ...) or DEL in a field value.
    case invalidHeaderValue(line: Int)
    case tooManyHeaders(limit: Int)
    case headersTooLarge(limit: Int)
    case multipleHostHeaders
    /// A Content-Length that is not all digits, or does not fit in an Int.
    case invalidContentLength(String)
    /// Two Content-Length fields with different values.
    case conflictingContentLengths(String, String)
    /// Both Transfer-Encoding and Content-Length.
    case conflictingFraming
    /// Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1: its framing cannot be trusted).
    case transferEncodingInHTTP10
    /// A Transfer-Encoding list whose final coding is not chunked, or with chunked twice or an
    /// empty element.
    case invalidTransferEncoding(String)
    /// Codings other than chunked (applied before it), which this server does not implement (501).
    case unsupportedTransferEncoding(String)
    /// An Expect other than 100-continue (417).
    case unsupportedExpectation(String)
    /// A chunk size that is not hex digits (optionally followed by extensions), or overflows.
    case invalidChunkSize(String)
    case chunkLineTooLong(limit: Int)
    /// A chunk whose data is not followed by CRLF, or a control byte in a chunk extension.
    case malformedChunk
    /// A trailer field line that would be refused as a header field; `line` counts trailer lines.
    case malformedTrailer(line: Int)
    case bodyTooLarge(limit: Int)

    /// The HTTP status to answer with.
    public var status: Int {
        switch self {
        case .requestLineTooLong: 414
        case .tooManyHeaders, .headersTooLarge: 431
        case .bodyTooLarge: 413
        case .unsupportedExpectation: 417
        case .unsupportedTransferEncoding: 501
        case .unsupportedVersion: 505
        default: 400
        }
    }

    public var description: String {
        switch self {
        case .malformedRequestLine:
            "the request line must be: method, one space, target, one space, HTTP version (\"GET /v1/health HTTP/1.1\")"
        case .tooManyEmptyLines(let limit):
            "more than \(limit) empty lines before the request line"
        case .requestLineTooLong(let limit):
            "the request line is longer than \(limit) bytes; use a shorter URL"
        case .invalidMethod:
            "the method must be a token (letters, digits and !#$%&'*+-.^_`|~), like GET or PUT"
        case .invalidTarget:
            "the request target must be a path starting with '/' (or \"*\" for OPTIONS) without spaces or control characters"
        case .malformedVersion:
            "the HTTP version must be written \"HTTP/1.1\" or \"HTTP/1.0\" (upper case)"
        case .unsupportedVersion(let version):
            "\(version) is not supported; use HTTP/1.1 or HTTP/1.0"
        case .bareCarriageReturn(let line):
            "line \(line) of the request head has a CR that is not followed by LF; end lines with CRLF"
        case .obsoleteLineFolding(let line):
            "line \(line) of the request head starts with whitespace (obsolete line folding); put each field on one line"
        case .malformedHeader(let line):
            "line \(line) of the request head is not a header field \"Name: value\" with a token as name"
        case .whitespaceBeforeColon(let line):
            "line \(line) of the request head has whitespace between the field name and the colon"
        case .invalidHeaderValue(let line):
            "the header field value on line \(line) of the request head contains a control character"
        case .tooManyHeaders(let limit):
            "the request has more than \(limit) header fields"
        case .headersTooLarge(let limit):
            "the request's header fields are larger than \(limit) bytes together"
        case .multipleHostHeaders:
            "the request has more than one Host header field"
        case .invalidContentLength(let value):
            "Content-Length \"\(value)\" is not a decimal number of bytes"
        case .conflictingContentLengths(let first, let second):
            "the request has two different Content-Length fields (\"\(first)\" and \"\(second)\")"
        case .conflictingFraming:
            "the request has both Transfer-Encoding and Content-Length; send only one"
        case .transferEncodingInHTTP10:
            "Transfer-Encoding is not allowed in an HTTP/1.0 request; use Content-Length or HTTP/1.1"
        case .invalidTransferEncoding(let value):
            "Transfer-Encoding \"\(value)\" does not end in exactly one \"chunked\", so the body length is unknown"
        case .unsupportedTransferEncoding(let value):
            "Transfer-Encoding \"\(value)\" is not supported; send the body with Content-Length or \"chunked\" alone"
        case .unsupportedExpectation(let value):
            "Expect \"\(value)\" is not supported; only \"100-continue\" is"
        case .invalidChunkSize(let line):
            "chunk size line \"\(line)\" does not start with a hexadecimal size that fits in 63 bits"
        case .chunkLineTooLong(let limit):
            "a chunk size line (with its extensions) is longer than \(limit) bytes"
        case .malformedChunk:
            "a chunk's data is not followed by CRLF (the chunk size is wrong), or a chunk extension has control characters"
        case .malformedTrailer(let line):
            "trailer line \(line) after the last chunk is not a valid \"Name: value\" field"
        case .bodyTooLarge(let limit):
            "the request body is larger than \(limit) bytes"
        }
    }
}
