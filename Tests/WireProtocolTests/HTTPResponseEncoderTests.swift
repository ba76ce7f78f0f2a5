// The response encoder: exact bytes for each kind of response, HEAD, Connection: close, and the
// guarantees that keep a response's framing intact.
import Testing
import WireProtocol

private func encoded(_ response: HTTPResponse, headOnly: Bool = false, close: Bool = false) -> String {
    var buffer: [UInt8] = []
    HTTPResponseEncoder.encode(response, headOnly: headOnly, closeConnection: close, to: &buffer)
    return String(decoding: buffer, as: UTF8.self)
}

private let jsonBody = Array("{\"ok\":true}\n".utf8)
private let jsonType = [(name: "Content-Type", value: "application/json")]

@Suite("HTTP response encoder")
struct HTTPResponseEncoderTests {
    @Test("a 200 with a body: status line, headers, Content-Length, blank line, body")
    func okWithBody() {
        #expect(encoded(HTTPResponse(status: 200, headers: jsonType, body: jsonBody))
            == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n{\"ok\":true}\n")
    }

    @Test("a 404 with an error body")
    func notFound() {
        let body = Array("{\"error\":\"key not found: k\"}\n".utf8)
        #expect(encoded(HTTPResponse(status: 404, headers: jsonType, body: body))
            == "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 29\r\n\r\n{\"error\":\"key not found: k\"}\n")
    }

    @Test("an empty body gets Content-Length: 0")
    func emptyBody() {
        #expect(encoded(HTTPResponse(status: 200)) == "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    }

    @Test("a HEAD response has the GET's Content-Length and no body")
    func headOnly() {
        #expect(encoded(HTTPResponse(status: 200, headers: jsonType, body: jsonBody), headOnly: true)
            == "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n")
    }

    @Test("closeConnection adds Connection: close after Content-Length")
    func connectionClose() {
        #expect(encoded(HTTPResponse(status: 400, body: Array("bad".utf8)), close: true)
            == "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad")
    }

    @Test("headers are written in the given order, names as given")
    func headerOrder() {
        let response = HTTPResponse(status: 405, headers: [("Allow", "GET, PUT, DELETE"), ("x-custom", "1")])
        #expect(encoded(response) == "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, PUT, DELETE\r\nx-custom: 1\r\nContent-Length: 0\r\n\r\n")
    }

    @Test("a Content-Length given in headers is not written: the encoder's is the only one")
    func givenContentLengthSkipped() {
        let response = HTTPResponse(status: 200, headers: [("content-length", "999")], body: Array("abc".utf8))
        #expect(encoded(response) == "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    }

    @Test("CR, LF and NUL in a header cannot split the response: they are written as spaces")
    func noResponseSplitting() {
        let response = HTTPResponse(status: 200, headers: [("X-Evil", "a\r\nSet-Cookie: x=1\u{0}"), ("Bad\nName", "v")])
        #expect(encoded(response) == "HTTP/1.1 200 OK\r\nX-Evil: a  Set-Cookie: x=1 \r\nBad Name: v\r\nContent-Length: 0\r\n\r\n")
    }

    @Test("204 and 1xx responses have neither Content-Length nor body")
    func noContentStatuses() {
        #expect(encoded(HTTPResponse(status: 204)) == "HTTP/1.1 204 No Content\r\n\r\n")
        #expect(encoded(HTTPResponse(status: 101, headers: [("Upgrade", "x")])) == "HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n")
    }

    @Test("responses append to what the buffer already holds")
    func appends() {
        var buffer = Array("previous".utf8)
        HTTPResponseEncoder.encode(HTTPResponse(status: 200), headOnly: false, closeConnection: false, to: &buffer)
        HTTPResponseEncoder.encode(HTTPResponse(status: 503), headOnly: false, closeConnection: true, to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self)
            == "previousHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    }

    @Test("Content-Length is the body's size in decimal, for sizes of every digit count", arguments: [0, 9, 10, 99, 100, 12345, 1 << 20])
    func contentLengthDigits(size: Int) {
        var buffer: [UInt8] = []
        HTTPResponseEncoder.encode(HTTPResponse(status: 200, body: Array(repeating: 0x61, count: size)), headOnly: true, closeConnection: false, to: &buffer)
        #expect(String(decoding: buffer, as: UTF8.self) == "HTTP/1.1 200 OK\r\nContent-Length: \(size)\r\n\r\n")
    }

    @Test("the 100 Continue interim response")
    func continueResponse() {
        #expect(HTTPResponseEncoder.continueResponse == Array("HTTP/1.1 100 Continue\r\n\r\n".utf8))
    }

    @Test("reason phrases of the statuses the server answers with", arguments: [
        (200, "OK"), (400, "Bad Request"), (403, "Forbidden"), (404, "Not Found"), (405, "Method Not Allowed"),
        (408, "Request Timeout"), (413, "Payload Too Large"), (414, "URI Too Long"), (417, "Expectation Failed"),
        (431, "Request Header Fields Too Large"), (500, "Internal Server Error"), (501, "Not Implemented"),
        (503, "Service Unavailable"), (505, "HTTP Version Not Supported"),
    ])
    func reasonPhrases(status: Int, phrase: String) {
        #expect(HTTPResponseEncoder.reasonPhrase(status) == phrase)
    }

    @Test("an unlisted status has the reason phrase Unknown, and is still encoded")
    func unknownStatus() {
        #expect(HTTPResponseEncoder.reasonPhrase(299) == "Unknown")
        #expect(encoded(HTTPResponse(status: 299)) == "HTTP/1.1 299 Unknown\r\nContent-Length: 0\r\n\r\n")
    }

    @Test("every status a decoder error maps to has a reason phrase")
    func errorStatusesHavePhrases() {
        let errors: [HTTPRequestError] = [
            .malformedRequestLine, .requestLineTooLong(limit: 1), .tooManyHeaders(limit: 1), .bodyTooLarge(limit: 1),
            .unsupportedExpectation("x"), .unsupportedTransferEncoding("x"), .unsupportedVersion("x"),
        ]
        for error in errors {
            #expect(HTTPResponseEncoder.reasonPhrase(error.status) != "Unknown", "\(error.status)")
        }
    }

    @Test("an encoded response decodes back as HTTP: its framing is exact")
    func framingIsExact() {
        var buffer: [UInt8] = []
        let body: [UInt8] = Array(0...255) + Array("\r\n\r\nHTTP/1.1 200 OK\r\n".utf8)
        HTTPResponseEncoder.encode(HTTPResponse(status: 200, body: body), headOnly: false, closeConnection: false, to: &buffer)
        let headEnd = buffer.firstRange(of: Array("\r\n\r\n".utf8))!.upperBound
        #expect(Array(buffer[headEnd...]) == body)
    }

    @Test("encodeHead writes exactly the head encode writes for a body of that length (a streamed answer)")
    func headForAStreamedBody() {
        let body = [UInt8](repeating: 0x41, count: 100_003)
        for close in [false, true] {
            for status in [200, 404, 204, 100] {
                let hasBody = status != 204 && status != 100
                let response = HTTPResponse(status: status, headers: jsonType + [("Connection", "keep-alive")], body: hasBody ? body : [])
                var whole: [UInt8] = []
                HTTPResponseEncoder.encode(response, headOnly: false, closeConnection: close, to: &whole)
                var head: [UInt8] = Array("earlier".utf8)
                var bodiless = response
                bodiless.body = []
                HTTPResponseEncoder.encodeHead(bodiless, contentLength: response.body.count, closeConnection: close, to: &head)
                #expect(Array(head.dropFirst(7)) + response.body == whole, "status \(status), close \(close)")
            }
        }
    }
}
