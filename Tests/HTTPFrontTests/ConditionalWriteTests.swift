import Foundation
import HTTPFront
import Platform
import StorageEngine
import Testing

/// ETag on GET, If-Match / If-None-Match on PUT and DELETE, X-Revision on every acknowledged
/// write: the 412 bodies, the 400s of malformed fields (nothing written), and races over real
/// sockets in which exactly one writer may win.
@Suite("Conditional writes over HTTP")
struct ConditionalWriteTests {
    @Test func getAnswersTheModRevisionAsETagAndWritesAnswerTheirRevision() throws {
        try withServer { server in
            let connection = try server.connect()
            let put = try connection.exchange(RawRequest.put("/v1/kv/e", text: "one"))
            #expect(put.status == 200)
            #expect(put.text == "{\"ok\":true}\n")
            #expect(put.header("X-Revision") == "1")
            #expect(put.header("ETag") == "\"1\"")
            #expect(try connection.exchange(RawRequest.put("/v1/kv/other", text: "x")).header("X-Revision") == "2")
            let get = try connection.exchange(RawRequest.get("/v1/kv/e"))
            #expect(get.header("ETag") == "\"1\"")
            #expect(get.text == getBody(jsonKey: "\"e\"", value: Array("one".utf8)))
            let head = try connection.exchange(RawRequest.make("HEAD", "/v1/kv/e"), toHEAD: true)
            #expect(head.header("ETag") == "\"1\"")
            let again = try connection.exchange(RawRequest.put("/v1/kv/e", text: "two"))
            #expect(again.header("ETag") == "\"3\"")
            #expect(try connection.exchange(RawRequest.get("/v1/kv/e")).header("ETag") == "\"3\"")
            let delete = try connection.exchange(RawRequest.make("DELETE", "/v1/kv/e"))
            #expect(delete.status == 200)
            #expect(delete.text == "{\"ok\":true}\n")
            #expect(delete.header("X-Revision") == "4")
            #expect(delete.header("ETag") == nil)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/e")).header("ETag") == nil)  // 404
        }
    }

    /// The fast path (a keep-alive HTTP/1.1 answer built from bytes) and the general one
    /// (HTTP/1.0, Connection: close) give the same fields, in the same order.
    @Test func theWrittenAnswerIsTheSameOnBothPaths() throws {
        try withServer { server in
            let fast = try server.connect().exchange(RawRequest.put("/v1/kv/p", text: "v"))
            let general = try server.connect().exchange(RawRequest.put("/v1/kv/p", text: "v", headers: ["Connection: close"]))
            #expect(fast.headers.map(\.name) == ["Content-Type", "ETag", "X-Revision", "Content-Length"])
            #expect(general.headers.map(\.name) == ["Content-Type", "ETag", "X-Revision", "Content-Length", "Connection"])
            #expect(general.header("ETag") == "\"2\"" && general.header("X-Revision") == "2")
            #expect(fast.body == general.body)
        }
    }

    @Test func ifMatchWritesOnlyOverTheRevisionItNames() throws {
        try withServer { server in
            let connection = try server.connect()
            let etag = try #require(connection.exchange(RawRequest.put("/v1/kv/cas", text: "v1")).header("ETag"))
            let stale = "\"\(UInt64(etag.dropFirst().dropLast())! + 5)\""
            let refused = try connection.exchange(RawRequest.put("/v1/kv/cas", text: "nope", headers: ["If-Match: \(stale)"]))
            #expect(refused.status == 412)
            #expect(refused.header("Content-Type") == "application/json")
            #expect(refused.text == #"{"error":"precondition failed","key":"cas","key_encoding":"utf8","revision":1}"# + "\n")
            #expect(try connection.exchange(RawRequest.get("/v1/kv/cas")).text == getBody(jsonKey: "\"cas\"", value: Array("v1".utf8)))

            let accepted = try connection.exchange(RawRequest.put("/v1/kv/cas", text: "v2", headers: ["If-Match: \(etag)"]))
            #expect(accepted.status == 200)
            #expect(accepted.header("ETag") == "\"2\"")  // the refused write took no revision
            // The old ETag no longer matches; the new one does, with OWS around it.
            #expect(try connection.exchange(RawRequest.put("/v1/kv/cas", text: "v3", headers: ["If-Match: \(etag)"])).status == 412)
            #expect(try connection.exchange(RawRequest.put("/v1/kv/cas", text: "v3", headers: ["If-Match:   \"2\"  "])).status == 200)
            // If-Match: * needs the key to exist.
            #expect(try connection.exchange(RawRequest.put("/v1/kv/cas", text: "v4", headers: ["If-Match: *"])).status == 200)
            let missing = try connection.exchange(RawRequest.put("/v1/kv/absent%FF", text: "x", headers: ["If-Match: *"]))
            #expect(missing.status == 412)
            #expect(missing.text == #"{"error":"precondition failed","key":"YWJzZW50/w==","key_encoding":"base64","revision":0}"# + "\n")
            #expect(try connection.exchange(RawRequest.get("/v1/kv/absent%FF")).status == 404)
        }
    }

    @Test func ifNoneMatchStarCreatesOnly() throws {
        try withServer { server in
            let connection = try server.connect()
            let created = try connection.exchange(RawRequest.put("/v1/kv/once", text: "first", headers: ["If-None-Match: *"]))
            #expect(created.status == 200)
            let second = try connection.exchange(RawRequest.put("/v1/kv/once", text: "second", headers: ["If-None-Match: *"]))
            #expect(second.status == 412)
            #expect(second.text == #"{"error":"precondition failed","key":"once","key_encoding":"utf8","revision":\#(created.header("X-Revision")!)}"# + "\n")
            #expect(try connection.exchange(RawRequest.get("/v1/kv/once")).text == getBody(jsonKey: "\"once\"", value: Array("first".utf8)))
        }
    }

    /// RFC 9110 §13.1.1: a DELETE with If-Match of a missing key is 412, not a quiet success.
    @Test func deleteWithIfMatch() throws {
        try withServer { server in
            let connection = try server.connect()
            let missing = try connection.exchange(RawRequest.make("DELETE", "/v1/kv/gone", headers: ["If-Match: \"7\""]))
            #expect(missing.status == 412)
            #expect(missing.text == #"{"error":"precondition failed","key":"gone","key_encoding":"utf8","revision":0}"# + "\n")
            #expect(try connection.exchange(RawRequest.make("DELETE", "/v1/kv/gone", headers: ["If-Match: *"])).status == 412)
            let etag = try #require(connection.exchange(RawRequest.put("/v1/kv/gone", text: "v")).header("ETag"))
            #expect(try connection.exchange(RawRequest.make("DELETE", "/v1/kv/gone", headers: ["If-Match: \"999\""])).status == 412)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/gone")).status == 200)
            let deleted = try connection.exchange(RawRequest.make("DELETE", "/v1/kv/gone", headers: ["If-Match: \(etag)"]))
            #expect(deleted.status == 200)
            #expect(deleted.header("X-Revision") != nil)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/gone")).status == 404)
        }
    }

    static let malformedFields: [[String]] = [
        ["If-Match: 5"], ["If-Match: \"abc\""], ["If-Match: \"1\", \"2\""], ["If-Match: W/\"1\""], ["If-Match: \"\""],
        ["If-Match: \"01\""], ["If-Match: \"-1\""], ["If-Match: \"1"], ["If-Match: "], ["If-Match: \"18446744073709551616\""],
        ["If-Match: *, \"1\""], ["If-None-Match: \"1\""], ["If-None-Match: W/\"1\""], ["If-None-Match: *, *"],
        ["If-Match: \"1\"", "If-Match: \"1\""], ["If-Match: \"1\"", "If-None-Match: *"], ["If-None-Match: *", "If-None-Match: *"],
    ]

    @Test(arguments: ConditionalWriteTests.malformedFields)
    func malformedConditionsAre400AndWriteNothing(_ fields: [String]) throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/k", text: "v")).status == 200)
            let revision = server.database.revision
            for request in [RawRequest.put("/v1/kv/k", text: "w", headers: fields), RawRequest.make("DELETE", "/v1/kv/k", headers: fields)] {
                let response = try connection.exchange(request)
                #expect(response.status == 400, "\(fields): \(response)")
                #expect(response.header("Content-Type") == "application/json")
                #expect((try jsonObject(response)["error"] as? String)?.isEmpty == false)
            }
            #expect(server.database.revision == revision)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/k")).text == getBody(jsonKey: "\"k\"", value: Array("v".utf8)))
        }
    }

    /// 16 clients create one key with If-None-Match: * at once (every request sent before any
    /// answer is read, each on its own connection): exactly one 200, fifteen 412s.
    @Test func ofSixteenConcurrentCreatesExactlyOneWins() throws {
        try withServer { server in
            let connections = try (0..<16).map { _ in try server.connect() }
            for (index, connection) in connections.enumerated() {
                try connection.send(RawRequest.put("/v1/kv/race", text: "writer \(index)", headers: ["If-None-Match: *"]))
            }
            let answers = try connections.map { try $0.readResponse() }
            let winners = answers.indices.filter { answers[$0].status == 200 }
            #expect(winners.count == 1, "\(answers.map(\.status))")
            #expect(answers.filter { $0.status == 412 }.count == 15)
            let winner = try #require(winners.first)
            let get = try server.exchange(RawRequest.get("/v1/kv/race"))
            #expect(get.text == getBody(jsonKey: "\"race\"", value: Array("writer \(winner)".utf8)))
            #expect(get.header("ETag") == answers[winner].header("ETag"))
            for answer in answers where answer.status == 412 {
                #expect(answer.text.hasSuffix(#""revision":\#(answers[winner].header("X-Revision")!)}"# + "\n"))
            }
        }
    }

    /// 32 clients, each on its own connection and thread, increment one counter by GET then
    /// PUT If-Match (retrying on 412) until each has made its increments: no increment is lost.
    @Test func thirtyTwoClientsIncrementingOneCounterLoseNothing() throws {
        try withServer { server in
            #expect(try server.exchange(RawRequest.put("/v1/kv/counter", text: "0")).status == 200)
            let clients = 32
            let increments = 8
            let problems = Lock<[String]>([])
            let conflicts = Lock(0)
            let group = DispatchGroup()
            let port = server.port
            for client in 0..<clients {
                group.enter()
                Thread {
                    defer { group.leave() }
                    do {
                        let connection = try RawConnection(port: port)
                        var done = 0
                        while done < increments {
                            let get = try connection.exchange(RawRequest.get("/v1/kv/counter"))
                            guard get.status == 200, let etag = get.header("ETag"),
                                  let value = (try jsonObject(get)["value"] as? String).flatMap({ Data(base64Encoded: $0) }),
                                  let count = Int(String(decoding: value, as: UTF8.self))
                            else { throw TestFailure("client \(client): GET answered \(get)") }
                            let put = try connection.exchange(RawRequest.put("/v1/kv/counter", text: String(count + 1), headers: ["If-Match: \(etag)"]))
                            switch put.status {
                            case 200: done += 1
                            case 412: conflicts.withLock { $0 += 1 }
                            default: throw TestFailure("client \(client): PUT answered \(put)")
                            }
                        }
                    } catch {
                        problems.withLock { $0.append("\(error)") }
                    }
                }.start()
            }
            #expect(group.wait(timeout: .now() + .seconds(120 * Sanitizer.slowdown)) == .success, "the clients did not finish")
            #expect(problems.withLock { $0 }.isEmpty, "\(problems.withLock { $0 })")
            let final = try server.exchange(RawRequest.get("/v1/kv/counter"))
            #expect(final.text == getBody(jsonKey: "\"counter\"", value: Array(String(clients * increments).utf8)))
            // Every acknowledged PUT is one revision; the 412s wrote nothing.
            #expect(final.header("ETag") == "\"\(1 + clients * increments)\"", "\(conflicts.withLock { $0 }) conflicts")
        }
    }

    /// A large (streamed) value's GET carries the ETag of the bytes it sends.
    @Test func aStreamedGetCarriesItsETag() throws {
        try withServer { server in
            let value = [UInt8](repeating: 0x41, count: 200 << 10)
            let connection = try server.connect()
            let put = try connection.exchange(RawRequest.put("/v1/kv/large", value: value))
            let get = try connection.exchange(RawRequest.get("/v1/kv/large"))
            #expect(get.status == 200)
            #expect(get.header("ETag") == put.header("ETag"))
            #expect(get.text == getBody(jsonKey: "\"large\"", value: value))
        }
    }
}
