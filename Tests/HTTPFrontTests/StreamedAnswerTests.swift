import Foundation
@testable import HTTPFront
import Reactor
import Platform
import StorageEngine
import Synchronization
import Testing
import WireProtocol
#if canImport(Glibc)
import Glibc
#endif

/// GET answers of values over `KeyValueHandlers.streamedValueThreshold` are produced a chunk at a
/// time as the socket drains: the same bytes as the whole encoding, in pipelined order, and never
/// built whole for a client that does not read. Also: a refused change of a connection's epoll
/// events closes it and is counted.
@Suite("Streamed answers")
struct StreamedAnswerTests {
    /// Random bytes from a fixed seed (xorshift64*), so a failure can be replayed.
    static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var state = seed | 1
        return (0..<count).map { _ in
            state ^= state >> 12
            state ^= state << 25
            state ^= state >> 27
            return UInt8(truncatingIfNeeded: (state &* 2_685_821_657_736_338_717) >> 56)
        }
    }

    /// The answer to a GET (or the head alone, for a HEAD) of `key` holding `value`, encoded
    /// whole, as the server built every GET answer before streaming: the JSON body (key escaped
    /// by JSONWriter, value in base64 by Foundation), framed by HTTPResponseEncoder.
    /// `modRevision` is the key's, which the answer carries as its ETag.
    static func wholeAnswer(
        key: [UInt8], value: [UInt8], modRevision: UInt64, head: Bool = false, close: Bool = false, http10KeepAlive: Bool = false
    ) -> [UInt8] {
        var body: [UInt8] = Array(#"{"key":"#.utf8)
        key.withUnsafeBytes { JSONWriter.appendString($0, to: &body) }
        body += Array(#","value":""#.utf8) + Array(base64(value).utf8) + Array(#"","encoding":"base64"}"#.utf8) + [0x0A]
        var headers: [(name: String, value: String)] = [("Content-Type", "application/json"), ("ETag", "\"\(modRevision)\"")]
        if http10KeepAlive { headers.append(("Connection", "keep-alive")) }
        var bytes: [UInt8] = []
        HTTPResponseEncoder.encode(HTTPResponse(status: 200, headers: headers, body: body), headOnly: head, closeConnection: close, to: &bytes)
        return bytes
    }

    static func target(_ key: [UInt8]) -> String { "/v1/kv/" + percentEncodeAll(key) }

    /// Pipelined GETs and HEADs mixing small values, large ones (1 MiB + 1 byte, just over the
    /// threshold, and a size that ends on each base64 remainder), a missing key and an HTTP/1.0
    /// keep-alive GET, and a 1 MiB+ text value stored with encoding utf-8, the last request
    /// closing the connection: every byte the server sends is compared with the whole encodings,
    /// in request order. (GET answers only in base64, whatever encoding the PUT used: the API has
    /// no other encoding for answers.)
    @Test func streamedAnswersAreByteIdenticalToWholeOnesAndKeepTheirOrder() throws {
        try withServer({ $0.eventLoops = 1 }) { server in
            let keys: [[UInt8]] = [Array("small".utf8), [0x62, 0x22, 0x3C, 0xC3, 0xBC, 0x01, 0x2F], Array("edge".utf8), Array("odd".utf8), Array("tiny".utf8)]
            let values: [[UInt8]] = [
                StreamedAnswerTests.randomBytes(24, seed: 1),
                StreamedAnswerTests.randomBytes((1 << 20) + 1, seed: 2),
                StreamedAnswerTests.randomBytes(KeyValueHandlers.streamedValueThreshold + 1, seed: 3),
                StreamedAnswerTests.randomBytes(3 * StreamedValueAnswer.valueChunk + 2, seed: 4),
                StreamedAnswerTests.randomBytes(1, seed: 5),
            ]
            let admin = try server.connect()
            for (key, value) in zip(keys, values) {
                #expect(try admin.exchange(RawRequest.put(StreamedAnswerTests.target(key), value: value)).status == 200)
            }
            // Text (1-, 2- and 3-byte UTF-8 sequences) PUT with encoding utf-8: stored as its UTF-8 bytes.
            let text = String(repeating: "a\u{E9}\u{20AC}-", count: (1 << 20) / 7 + 1)
            let textKey = Array("text".utf8)
            #expect(try admin.exchange(RawRequest.make("PUT", "/v1/kv/text", body: #"{"value":"\#(text)","encoding":"utf-8"}"#)).status == 200)

            var requests: [UInt8] = []
            var expected: [UInt8] = []
            func get(_ index: Int, head: Bool = false) {
                requests += RawRequest.make(head ? "HEAD" : "GET", StreamedAnswerTests.target(keys[index]))
                // The keys were put one by one, in order, from revision 1.
                expected += StreamedAnswerTests.wholeAnswer(key: keys[index], value: values[index], modRevision: UInt64(index + 1), head: head)
            }
            get(0); get(1); get(4); get(1, head: true); get(2); get(3); get(0); get(3); get(1, head: true)
            requests += RawRequest.make("GET", "/v1/kv/text")
            expected += StreamedAnswerTests.wholeAnswer(key: textKey, value: Array(text.utf8), modRevision: UInt64(keys.count + 1))
            requests += RawRequest.make("GET", "/v1/kv/missing")
            var missing: [UInt8] = []
            HTTPResponseEncoder.encode(
                HTTPResponse(status: 404, headers: [("Content-Type", "application/json")], body: Array(#"{"error":"key not found: missing"}"#.utf8) + [0x0A]),
                headOnly: false, closeConnection: false, to: &missing)
            expected += missing
            requests += RawRequest.make("GET", StreamedAnswerTests.target(keys[1]), headers: ["Connection: keep-alive"], version: "HTTP/1.0")
            expected += StreamedAnswerTests.wholeAnswer(key: keys[1], value: values[1], modRevision: 2, http10KeepAlive: true)
            requests += RawRequest.make("GET", StreamedAnswerTests.target(keys[3]), headers: ["Connection: close"])
            expected += StreamedAnswerTests.wholeAnswer(key: keys[3], value: values[3], modRevision: 4, close: true)

            let client = try server.connect()
            try client.send(requests)
            let received = try client.readUntilClosed(timeout: .seconds(60))
            #expect(received.count == expected.count)
            if received != expected {
                let first = (0..<min(received.count, expected.count)).first { received[$0] != expected[$0] } ?? min(received.count, expected.count)
                Issue.record("the answers differ from the whole encodings at byte \(first) of \(expected.count)")
            }
        }
    }

    /// A PUT of the key while its streamed answer is being sent does not change that answer: the
    /// connection holds the old value's buffer, which a write replaces in the map and never
    /// mutates. The client reads slowly (a 4 KiB receive buffer), so most of the answer is built
    /// after the PUT is durable; it must still be all old bytes, and a GET after it the new ones.
    @Test func aWriteDuringAStreamedAnswerDoesNotChangeIt() throws {
        try withServer({ $0.eventLoops = 1 }) { server in
            let admin = try server.connect()
            let old = StreamedAnswerTests.randomBytes(2 << 20, seed: 7)
            let new = StreamedAnswerTests.randomBytes(2 << 20, seed: 8)
            #expect(try admin.exchange(RawRequest.put("/v1/kv/k", value: old)).status == 200)
            let reader = try server.connect(receiveBufferSize: 4096)
            try reader.send(RawRequest.get("/v1/kv/k"))
            let answered = try Poll.until(timeout: .seconds(30)) {
                metricValue(try admin.exchange(RawRequest.get("/metrics")).text, #"smalldb_http_requests_total{route="kv",method="GET",status="200"}"#) == 1
            }
            #expect(answered)
            #expect(try admin.exchange(RawRequest.put("/v1/kv/k", value: new)).status == 200)
            let response = try reader.readResponse(timeout: .seconds(30))
            #expect(response.text == getBody(jsonKey: #""k""#, value: old))
            #expect(try admin.exchange(RawRequest.get("/v1/kv/k")).text == getBody(jsonKey: #""k""#, value: new))
        }
    }

    /// A client GETs an 8 MiB value (an 11 MB answer) and never reads: the server holds at most a
    /// chunk of it built (the rest is the stored value, referenced). (Before: the whole answer was
    /// built and held; the kernel takes at most a few MB of it.)
    @Test func aLargeAnswerIsNotBuiltWholeForAClientThatDoesNotRead() throws {
        try withServer({ $0.eventLoops = 1 }) { server in
            let admin = try server.connect()
            let value = StreamedAnswerTests.randomBytes(8 << 20, seed: 6)
            #expect(try admin.exchange(RawRequest.put("/v1/kv/big", value: value)).status == 200)
            let stuck = try server.connect(receiveBufferSize: 4096)
            try stuck.send(RawRequest.get("/v1/kv/big"))
            let answered = try Poll.until(timeout: .seconds(30)) {
                metricValue(try admin.exchange(RawRequest.get("/metrics")).text, #"smalldb_http_requests_total{route="kv",method="GET",status="200"}"#) == 1
            }
            #expect(answered)
            let bytes = server.server.builtAnswerBytesForTesting
            #expect(bytes <= 256 << 10, "\(bytes) bytes of answers built for a client that reads nothing")
            stuck.close()
        }
    }

    /// epoll refuses to change a connection's events (injected, as EPOLL_CTL_MOD fails with
    /// ENOMEM): the connection is closed, counted and logged, and the server goes on serving.
    /// The request that triggers the change is a `Connection: close` GET (reading stops). (Before:
    /// the failure was ignored, and the connection went on with the events it had.)
    @Test func aRefusedEventChangeClosesTheConnectionAndIsCounted() throws {
        let logged = Lock<[String]>([])
        try withServer({
            $0.eventLoops = 1
            $0.connectionWatchFaults = RegistrationFaults(count: 1, errno: ENOMEM)
            $0.log = { _, line in logged.withLock { $0.append(line) } }
        }) { server in
            let client = try server.connect()
            try client.send(RawRequest.get("/v1/health", headers: ["Connection: close"]))
            let received = try client.readUntilClosed(timeout: .seconds(10))
            #expect(received.isEmpty, "the connection answered although its events could not be changed")
            let admin = try server.connect()
            let text = try admin.exchange(RawRequest.get("/metrics")).text
            #expect(metricValue(text, "smalldb_http_connection_watch_failures_total") == 1)
            #expect(logged.withLock { $0.contains { $0.contains("cannot change the events watched on a connection") } })
        }
    }
}
