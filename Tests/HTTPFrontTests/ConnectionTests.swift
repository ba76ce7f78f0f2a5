import Foundation
import HTTPFront
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Persistent connections, pipelining, chunked bodies and 100-continue, over raw sockets.
@Suite("Connections")
struct ConnectionTests {
    // MARK: Keep-alive

    @Test func manyRequestsShareOneKeepAliveConnection() throws {
        try withServer { server in
            let connection = try server.connect()
            for index in 0..<100 {
                let put = try connection.exchange(RawRequest.put("/v1/kv/k\(index % 10)", text: "v\(index)"))
                #expect(put.status == 200)
                #expect(!put.announcesClose)
                let get = try connection.exchange(RawRequest.get("/v1/kv/k\(index % 10)"))
                #expect(get.text == getBody(jsonKey: "\"k\(index % 10)\"", value: Array("v\(index)".utf8)))
            }
            let metrics = try connection.exchange(RawRequest.get("/metrics")).text
            #expect(metricValue(metrics, "smalldb_http_connections_accepted_total") == 1)
        }
    }

    @Test func http10WithoutKeepAliveClosesAfterTheResponse() throws {
        try withServer { server in
            let connection = try server.connect()
            let response = try connection.exchange(RawRequest.make("GET", "/v1/health", version: "HTTP/1.0"))
            #expect(response.status == 200)
            #expect(response.text == "{\"ok\":true}\n")
            #expect(try connection.readUntilClosed(timeout: .seconds(5)).isEmpty)
        }
    }

    @Test func http10WithConnectionKeepAliveStaysOpen() throws {
        try withServer { server in
            let connection = try server.connect()
            for index in 0..<3 {
                let put = try connection.exchange(
                    RawRequest.make("PUT", "/v1/kv/old\(index)", body: #"{"value":"aGk="}"#, headers: ["Connection: keep-alive"], version: "HTTP/1.0"))
                #expect(put.status == 200)
                #expect(!put.announcesClose)
            }
            #expect(connection.staysQuiet(for: .milliseconds(300)))
            let last = try connection.exchange(RawRequest.make("GET", "/v1/kv/old2", headers: ["Connection: Keep-Alive"], version: "HTTP/1.0"))
            #expect(last.text == getBody(jsonKey: "\"old2\"", value: Array("hi".utf8)))
        }
    }

    /// An HTTP/1.0 client keeps the connection only if the response says "Connection: keep-alive"
    /// (RFC 9112 §9.3, RFC 2068 §19.7.1); Go's net/http writes it, and HTTP/1.0 clients such as
    /// ApacheBench's -k wait for it.
    @Test
    func http10KeepAliveResponseAnnouncesKeepAlive() throws {
        try withServer { server in
            let connection = try server.connect()
            let response = try connection.exchange(RawRequest.make("GET", "/v1/health", headers: ["Connection: keep-alive"], version: "HTTP/1.0"))
            #expect(response.status == 200)
            #expect(response.headerValues("Connection").map { $0.lowercased() } == ["keep-alive"])
        }
    }

    @Test func connectionCloseOnHTTP11ClosesAfterTheResponse() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.get("/v1/health")).status == 200)
            // A request pipelined after the closing one is never answered.
            try connection.send(RawRequest.get("/v1/role", headers: ["Connection: close"]) + RawRequest.get("/v1/health"))
            let response = try connection.readResponse()
            #expect(response.status == 200)
            #expect(response.text == "{\"role\":\"primary\",\"writable\":true}\n")
            #expect(response.headerValues("Connection") == ["close"])
            #expect(try connection.readUntilClosed(timeout: .seconds(5)).isEmpty)
        }
    }

    // MARK: Pipelining

    /// Fifty requests in one send, over a handful of keys: PUTs, GETs, DELETEs. The answers come
    /// back in request order, each the answer to its request.
    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        try withServer { server in
            let connection = try server.connect()
            // Keys written in the pipeline are read only by requests on another connection, so
            // this test is about order alone (pipelinedGetSeesEarlierPutsOfThePipeline is about
            // what a GET sees).
            let setup = try server.connect()
            for index in 0..<5 { #expect(try setup.exchange(RawRequest.put("/v1/kv/fixed\(index)", text: "fixed \(index)")).status == 200) }
            var requests: [UInt8] = []
            var expected: [(status: Int, body: String)] = []
            for index in 0..<50 {
                switch index % 5 {
                case 0, 3:
                    requests += RawRequest.put("/v1/kv/written\(index)", text: "w\(index)")
                    expected.append((200, "{\"ok\":true}\n"))
                case 1:
                    let key = "fixed\(index / 10)"
                    requests += RawRequest.get("/v1/kv/" + key)
                    expected.append((200, getBody(jsonKey: "\"\(key)\"", value: Array("fixed \(index / 10)".utf8))))
                case 2:
                    requests += RawRequest.get("/v1/kv/missing\(index)")
                    expected.append((404, "{\"error\":\"key not found: missing\(index)\"}\n"))
                default:
                    requests += RawRequest.make("DELETE", "/v1/kv/never\(index)")
                    expected.append((200, "{\"ok\":true}\n"))
                }
            }
            try connection.send(requests)
            for (index, want) in expected.enumerated() {
                let response = try connection.readResponse()
                #expect(response.status == want.status && response.text == want.body, "response \(index): \(response)")
            }
            for index in stride(from: 0, to: 50, by: 5) {
                #expect(try setup.exchange(RawRequest.get("/v1/kv/written\(index)")).status == 200)
            }
        }
    }

    /// More requests in one send than the server keeps answers pending for (it stops reading
    /// while 64 wait), with PUTs whose answers wait for the disk among them: all are answered,
    /// in order.
    @Test func pipelineLongerThanThePendingAnswerLimitIsAnsweredInOrder() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/base", text: "base")).status == 200)
            var requests: [UInt8] = []
            for index in 0..<300 {
                requests += index % 3 == 0 ? RawRequest.put("/v1/kv/long\(index)", text: "\(index)") : RawRequest.get(index % 3 == 1 ? "/v1/kv/base" : "/v1/role")
            }
            try connection.send(requests)
            for index in 0..<300 {
                let response = try connection.readResponse()
                switch index % 3 {
                case 0: #expect(response.text == "{\"ok\":true}\n", "response \(index): \(response)")
                case 1: #expect(response.text == getBody(jsonKey: #""base""#, value: Array("base".utf8)), "response \(index): \(response)")
                default: #expect(response.text == "{\"role\":\"primary\",\"writable\":true}\n", "response \(index): \(response)")
                }
            }
            #expect(try connection.exchange(RawRequest.get("/v1/kv/long297")).status == 200)
        }
    }

    /// Empty lines before a request line are skipped (RFC 9112 §2.2: some clients send a CRLF
    /// after a body).
    @Test func emptyLinesBetweenPipelinedRequestsAreSkipped() throws {
        try withServer { server in
            let connection = try server.connect()
            try connection.send(Array("\r\n".utf8) + RawRequest.put("/v1/kv/e", text: "x") + Array("\r\n\n".utf8) + RawRequest.get("/v1/health"))
            #expect(try connection.readResponse().status == 200)
            #expect(try connection.readResponse().text == "{\"ok\":true}\n")
        }
    }

    /// A client that half-closes after its requests still gets every answer, then the end.
    @Test func halfClosedClientGetsItsAnswersThenTheConnectionCloses() throws {
        try withServer { server in
            let connection = try server.connect()
            try connection.send(RawRequest.put("/v1/kv/h", text: "half") + RawRequest.get("/v1/health") + RawRequest.make("DELETE", "/v1/kv/other"))
            #expect(shutdown(connection.descriptor, Int32(SHUT_WR)) == 0)
            #expect(try connection.readResponse().text == "{\"ok\":true}\n")
            #expect(try connection.readResponse().text == "{\"ok\":true}\n")
            #expect(try connection.readResponse().text == "{\"ok\":true}\n")
            #expect(try connection.readUntilClosed(timeout: .seconds(5)).isEmpty)
            #expect(try server.exchange(RawRequest.get("/v1/kv/h")).status == 200)
        }
    }

    /// Go's server handles a connection's requests one after the other; a pipelining client must
    /// see the same: a GET sees every PUT and DELETE sent before it on the connection (whose 200
    /// it receives before the GET's answer).
    @Test func pipelinedGetSeesEarlierPutsOfThePipeline() throws {
        try withServer { server in
            let connection = try server.connect()
            var model: [String: String] = [:]
            var requests: [UInt8] = []
            var expected: [(status: Int, body: String)] = []
            var random = SystemRandomNumberGenerator()
            for index in 0..<50 {
                let key = "p\(Int.random(in: 0..<6, using: &random))"
                switch index % 4 == 0 ? 3 : Int.random(in: 0..<3, using: &random) {
                case 0:
                    requests += RawRequest.put("/v1/kv/" + key, text: "v\(index)")
                    model[key] = "v\(index)"
                    expected.append((200, "{\"ok\":true}\n"))
                case 1:
                    requests += RawRequest.make("DELETE", "/v1/kv/" + key)
                    model[key] = nil
                    expected.append((200, "{\"ok\":true}\n"))
                default:
                    requests += RawRequest.get("/v1/kv/" + key)
                    if let value = model[key] {
                        expected.append((200, getBody(jsonKey: "\"\(key)\"", value: Array(value.utf8))))
                    } else {
                        expected.append((404, "{\"error\":\"key not found: \(key)\"}\n"))
                    }
                }
            }
            try connection.send(requests)
            for (index, want) in expected.enumerated() {
                let response = try connection.readResponse()
                #expect(response.status == want.status && response.text == want.body, "response \(index): \(response)")
            }
        }
    }

    /// The smallest case of the above: PUT then GET of the same key in one send.
    @Test func pipelinedPutThenGetOfTheSameKey() throws {
        try withServer { server in
            let connection = try server.connect()
            try connection.send(RawRequest.put("/v1/kv/k", text: "v") + RawRequest.get("/v1/kv/k"))
            #expect(try connection.readResponse().status == 200)
            let get = try connection.readResponse()
            #expect(get.status == 200)
            #expect(get.text == getBody(jsonKey: "\"k\"", value: Array("v".utf8)))
        }
    }

    /// Writes read in one loop iteration go to the engine together and are committed as one
    /// round: ten PUTs pipelined in one send cost one fdatasync (Redis's loop; before, the first
    /// PUT woke the committer, which often took it alone).
    @Test func pipelinedPutsReadTogetherShareOneSync() throws {
        try withServer { server in
            let connection = try server.connect()
            let syncsBefore = try #require(metricValue(connection.exchange(RawRequest.get("/metrics")).text, "smalldb_syncs_total"))
            try connection.send((0..<10).flatMap { RawRequest.put("/v1/kv/together\($0)", text: "t\($0)") })
            for index in 0..<10 {
                let response = try connection.readResponse()
                #expect(response.status == 200, "response \(index): \(response)")
            }
            let metrics = try connection.exchange(RawRequest.get("/metrics")).text
            #expect(metricValue(metrics, "smalldb_syncs_total") == syncsBefore + 1)
            #expect(metricValue(metrics, "smalldb_puts_total") == 10)
        }
    }

    // MARK: Request bodies

    @Test func chunkedRequestBodyIsDechunked() throws {
        try withServer { server in
            let connection = try server.connect()
            let json = Array(#"{"value":"Y2h1bmtlZCBib2R5","encoding":"base64"}"#.utf8)
            var request = Array("PUT /v1/kv/chunky HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
            for piece in [json[0..<7], json[7..<20], json[20..<21], json[21...]] {
                request += Array((String(piece.count, radix: 16) + ";ext=1\r\n").utf8) + piece + Array("\r\n".utf8)
            }
            request += Array("0\r\nX-Trailer: yes\r\n\r\n".utf8)
            let response = try connection.exchange(request)
            #expect(response.status == 200, "\(response)")
            #expect(response.text == "{\"ok\":true}\n")
            let get = try connection.exchange(RawRequest.get("/v1/kv/chunky"))
            #expect(get.text == getBody(jsonKey: "\"chunky\"", value: Array("chunked body".utf8)))
        }
    }

    @Test func chunkedBodySentInPiecesOverTime() throws {
        try withServer { server in
            let connection = try server.connect()
            try connection.send("PUT /v1/kv/slow HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            for piece in [#"{"value""#, #":"c2xvdw==""#, "}"] {
                #expect(connection.staysQuiet(for: .milliseconds(50)))
                try connection.send(String(piece.utf8.count, radix: 16) + "\r\n" + piece + "\r\n")
            }
            try connection.send("0\r\n\r\n")
            #expect(try connection.readResponse().status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/slow")).text == getBody(jsonKey: "\"slow\"", value: Array("slow".utf8)))
        }
    }

    @Test func expect100ContinueIsAnsweredBeforeTheBodyIsSent() throws {
        try withServer { server in
            let connection = try server.connect()
            let body = #"{"value":"Y29udGludWVk"}"#
            try connection.send("PUT /v1/kv/c HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
            let interim = try connection.readResponse(timeout: .seconds(5))
            #expect(interim.status == 100)
            #expect(interim.version == "HTTP/1.1")
            #expect(interim.headers.isEmpty)
            #expect(connection.staysQuiet(for: .milliseconds(100)))
            try connection.send(body)
            let final = try connection.readResponse()
            #expect(final.status == 200)
            #expect(final.text == "{\"ok\":true}\n")
            #expect(try connection.exchange(RawRequest.get("/v1/kv/c")).text == getBody(jsonKey: "\"c\"", value: Array("continued".utf8)))
        }
    }

    @Test func expect100ContinueWithChunkedBody() throws {
        try withServer { server in
            let connection = try server.connect()
            try connection.send("PUT /v1/kv/cc HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
            #expect(try connection.readResponse(timeout: .seconds(5)).status == 100)
            let body = #"{"value":"aGk="}"#
            try connection.send(String(body.utf8.count, radix: 16) + "\r\n" + body + "\r\n0\r\n\r\n")
            #expect(try connection.readResponse().status == 200)
        }
    }

    /// A body that arrives with the head needs no 100 Continue: only the final answer is sent.
    @Test func expect100ContinueWithTheBodyAlreadySentGetsOnlyTheFinalResponse() throws {
        try withServer { server in
            let connection = try server.connect()
            let response = try connection.exchange(RawRequest.make("PUT", "/v1/kv/e", body: #"{"value":"aGk="}"#, headers: ["Expect: 100-continue"]))
            #expect(response.status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/health")).status == 200)
        }
    }

    @Test func unsupportedExpectationIs417() throws {
        try withServer { server in
            let connection = try server.connect()
            let response = try connection.exchange(RawRequest.make("PUT", "/v1/kv/e", body: #"{"value":"aGk="}"#, headers: ["Expect: something-else"]))
            #expect(response.status == 417)
            #expect(response.announcesClose)
        }
    }
}
