import Foundation
import HTTPFront
import Testing

/// Request size limits, malformed requests and the connection limit: each refusal has its status,
/// is the last thing sent on the connection, and the connection is then closed.
@Suite("Limits and malformed requests")
struct LimitTests {
    /// Reads one response and then the end of the stream; returns the response.
    private func answerThenClose(_ connection: RawConnection) throws -> RawResponse {
        let response = try connection.readResponse()
        let rest = try connection.readUntilClosed(timeout: .seconds(5))
        #expect(rest.isEmpty, "bytes after the closing response: \(String(decoding: rest, as: UTF8.self))")
        return response
    }

    @Test func requestLineOverTheLimitIs414() throws {
        try withServer({ $0.limits.maxRequestLineBytes = 256 }) { server in
            let fits = try server.connect()
            let okTarget = "/v1/kv/" + String(repeating: "a", count: 256 - 4 - 7 - 9)  // "GET " + target + " HTTP/1.1": 256 bytes
            #expect(try fits.exchange(RawRequest.get(okTarget)).status == 404)
            let connection = try server.connect()
            try connection.send(RawRequest.get(okTarget + "a") + RawRequest.get("/v1/health"))
            let response = try answerThenClose(connection)
            #expect(response.status == 414)
            #expect(response.announcesClose)
            #expect(response.header("Content-Type") == "application/json")
        }
    }

    /// The default limit (16 KiB), without waiting for the line's end.
    @Test func requestLineOverTheDefaultLimitIs414BeforeItEnds() throws {
        try withServer { server in
            let connection = try server.connect()
            // One byte over the limit, and no line end: the refusal cannot wait for one.
            let line = "GET /v1/kv/" + String(repeating: "x", count: (16 << 10) + 1 - 11)
            try connection.send(line)
            let response = try answerThenClose(connection)
            #expect(response.status == 414)
        }
    }

    @Test func tooManyHeaderFieldsIs431() throws {
        try withServer { server in
            let hundred = (0..<99).map { "X-Field-\($0): \($0)" }  // plus Host: 100 fields
            #expect(try server.exchange(RawRequest.get("/v1/health", headers: hundred)).status == 200)
            let connection = try server.connect()
            try connection.send(RawRequest.get("/v1/health", headers: hundred + ["X-One-Too-Many: 1"]))
            let response = try answerThenClose(connection)
            #expect(response.status == 431)
            #expect(response.announcesClose)
        }
    }

    @Test func headerFieldsOverTheByteLimitAre431() throws {
        try withServer { server in
            let connection = try server.connect()
            try connection.send(RawRequest.get("/v1/health", headers: ["X-Big: " + String(repeating: "b", count: 16 << 10)]))
            let response = try answerThenClose(connection)
            #expect(response.status == 431)
            #expect(response.announcesClose)
        }
    }

    @Test func headerFieldsOverASmallByteLimitTogetherAre431() throws {
        try withServer({ $0.limits.maxHeaderBytes = 200 }) { server in
            let fields = (0..<10).map { "X-F\($0): " + String(repeating: "v", count: 15) }  // 10 × 22 bytes + Host
            let connection = try server.connect()
            try connection.send(RawRequest.get("/v1/health", headers: fields))
            #expect(try answerThenClose(connection).status == 431)
        }
    }

    @Test func contentLengthOverTheBodyLimitIs413() throws {
        try withServer({ $0.limits.maxBodyBytes = 100 }) { server in
            let connection = try server.connect()
            // Refused from the head alone: the client never sends the body.
            try connection.send("PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n")
            let response = try answerThenClose(connection)
            #expect(response.status == 413)
            #expect(response.announcesClose)
            #expect(response.header("Content-Type") == "application/json")
            #expect(try server.exchange(RawRequest.make("PUT", "/v1/kv/k", body: #"{"value":"aGk="}"#)).status == 200)
        }
    }

    @Test func chunkedBodyOverTheBodyLimitIs413() throws {
        try withServer({ $0.limits.maxBodyBytes = 100 }) { server in
            let connection = try server.connect()
            let chunk = String(repeating: " ", count: 60)
            try connection.send("PUT /v1/kv/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3c\r\n\(chunk)\r\n3c\r\n")
            let response = try answerThenClose(connection)
            #expect(response.status == 413)
        }
    }

    struct Malformed: Sendable, CustomTestStringConvertible {
        let name: String
        let bytes: String
        var status = 400
        var testDescription: String { name }
    }

    /// Each is followed in the same send by a valid request, which must not be answered.
    @Test(arguments: [
        Malformed(name: "not HTTP", bytes: "GARBAGE\r\n\r\n"),
        Malformed(name: "no version", bytes: "GET /v1/health\r\n\r\n"),
        Malformed(name: "two spaces", bytes: "GET  /v1/health HTTP/1.1\r\n\r\n"),
        Malformed(name: "lower-case version", bytes: "GET /v1/health http/1.1\r\n\r\n"),
        Malformed(name: "HTTP/2.0", bytes: "GET /v1/health HTTP/2.0\r\n\r\n", status: 505),
        Malformed(name: "target without slash", bytes: "GET v1/health HTTP/1.1\r\n\r\n"),
        Malformed(name: "header without colon", bytes: "GET /v1/health HTTP/1.1\r\nNo colon here\r\n\r\n"),
        Malformed(name: "space before colon", bytes: "GET /v1/health HTTP/1.1\r\nHost : x\r\n\r\n"),
        Malformed(name: "obsolete folding", bytes: "GET /v1/health HTTP/1.1\r\nX-A: 1\r\n  continued\r\n\r\n"),
        Malformed(name: "bare CR", bytes: "GET /v1/health HTTP/1.1\r\nX-A: 1\rX-B: 2\r\n\r\n"),
        Malformed(name: "two Host fields", bytes: "GET /v1/health HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        Malformed(name: "bad Content-Length", bytes: "PUT /v1/kv/a HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"),
        Malformed(name: "negative Content-Length", bytes: "PUT /v1/kv/a HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
        Malformed(name: "conflicting Content-Lengths", bytes: "PUT /v1/kv/a HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}"),
        Malformed(name: "Content-Length and chunked", bytes: "PUT /v1/kv/a HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        Malformed(name: "bad chunk size", bytes: "PUT /v1/kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
        Malformed(name: "chunk longer than its size", bytes: "PUT /v1/kv/a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{}\r\n0\r\n\r\n"),
        Malformed(name: "chunked in HTTP/1.0", bytes: "PUT /v1/kv/a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"),
        Malformed(name: "gzip before chunked", bytes: "PUT /v1/kv/a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", status: 501),
        Malformed(name: "control byte in a value", bytes: "GET /v1/health HTTP/1.1\r\nX-A: a\u{1}b\r\n\r\n"),
    ])
    func malformedRequestIsRefusedAndTheConnectionClosed(_ malformed: Malformed) throws {
        try withServer { server in
            let connection = try server.connect()
            try connection.send(malformed.bytes + "GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            let response = try answerThenClose(connection)
            #expect(response.status == malformed.status, "\(response)")
            #expect(response.announcesClose)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text.hasPrefix("{\"error\":\"") && response.text.hasSuffix("\"}\n"))
            // The server is fine.
            #expect(try server.exchange(RawRequest.get("/v1/health")).status == 200)
        }
    }

    /// Answers already due on the connection go out before the refusal.
    @Test func malformedRequestAfterValidOnesIsAnsweredLast() throws {
        try withServer { server in
            let connection = try server.connect()
            try connection.send(RawRequest.put("/v1/kv/a", text: "1") + RawRequest.get("/v1/health") + Array("BAD REQUEST LINE\r\n\r\n".utf8))
            #expect(try connection.readResponse().status == 200)
            #expect(try connection.readResponse().text == "{\"ok\":true}\n")
            let refusal = try answerThenClose(connection)
            #expect(refusal.status == 400)
        }
    }

    @Test func connectionsOverTheLimitGet503AndAreClosed() throws {
        try withServer({ $0.maxConnections = 2 }) { server in
            // Both first connections are known to be accepted once each has an answer.
            let first = try server.connect()
            let second = try server.connect()
            #expect(try first.exchange(RawRequest.get("/v1/health")).status == 200)
            #expect(try second.exchange(RawRequest.get("/v1/health")).status == 200)

            let third = try server.connect()
            let refusal = try answerThenClose(third)
            #expect(refusal.status == 503)
            #expect(refusal.announcesClose)
            #expect(refusal.header("Content-Type") == "application/json")
            #expect(refusal.text.hasPrefix("{\"error\":\""))

            // The first two still work; once one closes, a new connection is served again.
            #expect(try first.exchange(RawRequest.get("/v1/role")).status == 200)
            second.close()
            let served = Poll.until(timeout: .seconds(5)) {
                guard let fourth = try? server.connect() else { return false }
                return (try? fourth.exchange(RawRequest.get("/v1/health")).status) == 200
            }
            #expect(served)
        }
    }
}
