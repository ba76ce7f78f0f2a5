import Foundation
import HTTPFront
import Testing

/// Every route and status of the API, over real sockets against an in-process server, byte for
/// byte where the Go server's output is known (docs: /work/shared/reference/go-small-db.md).
@Suite("Routes and statuses")
struct RouteTests {
    // MARK: health and role

    @Test func healthAnswersOkJSON() throws {
        try withServer { server in
            let response = try server.exchange(RawRequest.get("/v1/health"))
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text == "{\"ok\":true}\n")
            #expect(response.header("Content-Length") == "12")
        }
    }

    @Test func roleAnswersPrimary() throws {
        try withServer { server in
            let response = try server.exchange(RawRequest.get("/v1/role"))
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text == "{\"role\":\"primary\",\"writable\":true}\n")
        }
    }

    // MARK: PUT and GET

    @Test func putWithoutEncodingIsBase64AndGetReturnsBase64() throws {
        try withServer { server in
            let connection = try server.connect()
            let put = try connection.exchange(RawRequest.make("PUT", "/v1/kv/greeting", body: #"{"value":"aGVsbG8gd29ybGQ="}"#))
            #expect(put.status == 200)
            #expect(put.header("Content-Type") == "application/json")
            #expect(put.text == "{\"ok\":true}\n")
            let get = try connection.exchange(RawRequest.get("/v1/kv/greeting"))
            #expect(get.status == 200)
            #expect(get.header("Content-Type") == "application/json")
            #expect(get.text == "{\"key\":\"greeting\",\"value\":\"aGVsbG8gd29ybGQ=\",\"encoding\":\"base64\"}\n")
        }
    }

    @Test(arguments: ["base64", "BASE64", " Base64 ", ""])
    func putWithBase64EncodingStoresDecodedBytes(encoding: String) throws {
        try withServer { server in
            let connection = try server.connect()
            let value: [UInt8] = [0, 1, 2, 0xFE, 0xFF, 0x80]
            let body = #"{"value":"\#(base64(value))","encoding":"\#(encoding)"}"#
            let put = try connection.exchange(RawRequest.make("PUT", "/v1/kv/bin", body: body))
            #expect(put.status == 200, "\(put)")
            #expect(put.text == "{\"ok\":true}\n")
            let get = try connection.exchange(RawRequest.get("/v1/kv/bin"))
            #expect(get.text == getBody(jsonKey: "\"bin\"", value: value))
        }
    }

    /// utf-8, utf8, plain and text store the string's UTF-8 bytes; the name is compared without
    /// case and trimmed (JSON escapes: "\t" is a tab, "\n" a line feed).
    @Test(arguments: ["utf-8", "utf8", "plain", "text", "UTF-8", " UTF-8 ", "Utf8", "PLAIN", "\\tText\\n"])
    func putWithTextEncodingStoresUTF8Bytes(encoding: String) throws {
        try withServer { server in
            let connection = try server.connect()
            let text = "héllo wörld ✓ <&>"
            let put = try connection.exchange(RawRequest.make("PUT", "/v1/kv/t", body: #"{"value":"\#(text)","encoding":"\#(encoding)"}"#))
            #expect(put.status == 200, "\(put)")
            #expect(put.text == "{\"ok\":true}\n")
            let get = try connection.exchange(RawRequest.get("/v1/kv/t"))
            #expect(get.status == 200)
            #expect(get.text == getBody(jsonKey: "\"t\"", value: Array(text.utf8)))
        }
    }

    /// With a text encoding, a value whose JSON string holds invalid UTF-8 or an unpaired
    /// surrogate escape is refused (400): Go would store U+FFFD in its place, silently. Nothing
    /// is stored.
    static let textsThatAreNotUnicode: [(body: [UInt8], defect: String)] = {
        let invalidByte: [UInt8] = Array(#"{"encoding":"utf-8","value":"ab"#.utf8) + [0xFF] + Array(#""}"#.utf8)
        let encodedSurrogate: [UInt8] = Array(#"{"value":"a"#.utf8) + [0xED, 0xA0, 0x80] + Array(#"","encoding":"plain"}"#.utf8)
        return [
            (invalidByte, "invalid UTF-8 byte 0xff at byte 31"),
            (Array(#"{"value":"\ud800","encoding":"utf-8"}"#.utf8), #"unpaired surrogate \\ud800 at byte 10"#),
            (Array(#"{"value":"x\udc00y","encoding":"text"}"#.utf8), #"unpaired surrogate \\udc00 at byte 11"#),
            (Array(#"{"value":"ok","value":"\ud83d","encoding":"utf8"}"#.utf8), #"unpaired surrogate \\ud83d at byte 23"#),
            (encodedSurrogate, "invalid UTF-8 byte 0xed at byte 11"),
        ]
    }()

    @Test(arguments: RouteTests.textsThatAreNotUnicode)
    func putOfTextThatIsNotUnicodeIs400(body: [UInt8], defect: String) throws {
        try withServer { server in
            let connection = try server.connect()
            let put = try connection.exchange(RawRequest.make("PUT", "/v1/kv/t", body: body))
            #expect(put.status == 400, "\(put)")
            #expect(put.text.contains(defect), "\(put.text)")
            #expect(put.text.contains("base64"), "\(put.text)")
            #expect(!put.announcesClose)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/t")).status == 404)
            #expect(server.database.stats.puts == 0)
        }
    }

    /// A surrogate pair, U+FFFD sent as such, and a defect in a value that a later duplicate
    /// replaced are all fine.
    @Test func putOfTextWithAPairOrAnEscapedReplacementCharacterIsStoredExactly() throws {
        try withServer { server in
            let connection = try server.connect()
            let body = #"{"value":"\ud83d\ude00 \ufffd","encoding":"utf-8"}"#
            #expect(try connection.exchange(RawRequest.make("PUT", "/v1/kv/t", body: body)).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/t")).text == getBody(jsonKey: "\"t\"", value: Array("😀 \u{FFFD}".utf8)))
            let replaced = #"{"value":"\ud800","value":"fine","encoding":"utf-8"}"#
            #expect(try connection.exchange(RawRequest.make("PUT", "/v1/kv/u", body: replaced)).status == 200)
        }
    }

    @Test func putOverwritesThePreviousValue() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/k", text: "one")).status == 200)
            #expect(try connection.exchange(RawRequest.put("/v1/kv/k", text: "two")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/k")).text == getBody(jsonKey: "\"k\"", value: Array("two".utf8)))
        }
    }

    @Test func getOfMissingKeyIs404WithError() throws {
        try withServer { server in
            let response = try server.exchange(RawRequest.get("/v1/kv/nope"))
            #expect(response.status == 404)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text == "{\"error\":\"key not found: nope\"}\n")
        }
    }

    // MARK: DELETE

    @Test func deleteRemovesTheKeyAndAnswersOk() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/gone", text: "x")).status == 200)
            let delete = try connection.exchange(RawRequest.make("DELETE", "/v1/kv/gone"))
            #expect(delete.status == 200)
            #expect(delete.header("Content-Type") == "application/json")
            #expect(delete.text == "{\"ok\":true}\n")
            #expect(try connection.exchange(RawRequest.get("/v1/kv/gone")).status == 404)
        }
    }

    @Test func deleteOfMissingKeyIs200() throws {
        try withServer { server in
            let delete = try server.exchange(RawRequest.make("DELETE", "/v1/kv/never-there"))
            #expect(delete.status == 200)
            #expect(delete.text == "{\"ok\":true}\n")
        }
    }

    // MARK: checkpoint

    @Test func checkpointAnswersOkAndWritesTheCheckpointFile() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/a", text: "1")).status == 200)
            #expect(!FileManager.default.fileExists(atPath: server.dataDirectory + "/checkpoint.1"))
            let response = try connection.exchange(RawRequest.make("POST", "/v1/checkpoint"))
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text == "{\"ok\":true}\n")
            // Answered once durable: the file is there when the answer arrives.
            #expect(FileManager.default.fileExists(atPath: server.dataDirectory + "/checkpoint.1"))
            #expect(try connection.exchange(RawRequest.get("/v1/kv/a")).text == getBody(jsonKey: "\"a\"", value: Array("1".utf8)))
        }
    }

    // MARK: 405

    struct WrongMethod: Sendable, CustomTestStringConvertible {
        let method: String
        let path: String
        let allow: String
        var testDescription: String { "\(method) \(path)" }
    }

    @Test(arguments: [
        WrongMethod(method: "POST", path: "/v1/kv/a", allow: "GET, PUT, DELETE"),
        WrongMethod(method: "PATCH", path: "/v1/kv/a", allow: "GET, PUT, DELETE"),
        WrongMethod(method: "OPTIONS", path: "/v1/kv/a", allow: "GET, PUT, DELETE"),
        WrongMethod(method: "GET", path: "/v1/checkpoint", allow: "POST"),
        WrongMethod(method: "PUT", path: "/v1/checkpoint", allow: "POST"),
        WrongMethod(method: "DELETE", path: "/v1/checkpoint", allow: "POST"),
        WrongMethod(method: "POST", path: "/v1/health", allow: "GET"),
        WrongMethod(method: "PUT", path: "/v1/health", allow: "GET"),
        WrongMethod(method: "POST", path: "/v1/role", allow: "GET"),
        WrongMethod(method: "DELETE", path: "/v1/role", allow: "GET"),
        WrongMethod(method: "GET", path: "/v1/promote", allow: "POST"),
        WrongMethod(method: "PUT", path: "/v1/promote", allow: "POST"),
        WrongMethod(method: "POST", path: "/v1/replication", allow: "GET"),
        WrongMethod(method: "DELETE", path: "/v1/replication", allow: "GET"),
    ])
    func wrongMethodIs405WithAllow(_ wrong: WrongMethod) throws {
        try withServer { server in
            let connection = try server.connect()
            let response = try connection.exchange(RawRequest.make(wrong.method, wrong.path, body: "{}"))
            #expect(response.status == 405)
            #expect(response.headerValues("Allow") == [wrong.allow])
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text.hasPrefix("{\"error\":\""))
            // The connection stays usable.
            #expect(try connection.exchange(RawRequest.get("/v1/health")).status == 200)
        }
    }

    // MARK: 400 for bad bodies

    @Test(arguments: [
        #"{"value":"#,                                  // malformed JSON
        #"{"value":"aGk=""#,                            // unterminated object
        #"{value:"aGk="}"#,                             // unquoted name
        #"{"value":"aGk=","extra":1}"#,                 // unknown field
        #"{"valu":"aGk="}"#,                            // unknown field
        #"{"value":"aGk="} x"#,                         // trailing data
        #"{"value":"aGk="}{}"#,                         // a second value
        #"{"value":"not base64!"}"#,                    // bad base64
        #"{"value":"aGk"}"#,                            // base64 without its padding
        #"{"value":"aGk=","encoding":"latin1"}"#,       // unknown encoding
        #"{"value":"aGk=","encoding":"hex"}"#,          // unknown encoding
        #"{"value":5}"#,                                // wrong type
        #"["aGk="]"#,                                   // not an object
        "",                                             // no body
    ])
    func badPutBodyIs400AndWritesNothing(body: String) throws {
        try withServer { server in
            let connection = try server.connect()
            let response = try connection.exchange(RawRequest.make("PUT", "/v1/kv/k", body: body))
            #expect(response.status == 400, "\(response)")
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text.hasPrefix("{\"error\":\"") && response.text.hasSuffix("\"}\n"))
            #expect(try connection.exchange(RawRequest.get("/v1/kv/k")).status == 404)
        }
    }

    // MARK: keys

    @Test(arguments: ["GET", "PUT", "DELETE"])
    func emptyKeyIs400(method: String) throws {
        try withServer { server in
            let body: [UInt8]? = method == "PUT" ? Array(#"{"value":"aGk="}"#.utf8) : nil
            let response = try server.exchange(RawRequest.make(method, "/v1/kv/", body: body))
            #expect(response.status == 400)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text.hasPrefix("{\"error\":\""))
        }
    }

    @Test(arguments: ["/", "/v1", "/v1/", "/v1/healthz", "/v1/health/", "/v2/kv/a", "/kv/a", "/metricsx", "/v1/checkpoint/now"])
    func unknownPathIs404(path: String) throws {
        try withServer { server in
            let response = try server.exchange(RawRequest.get(path))
            #expect(response.status == 404)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.text.hasPrefix("{\"error\":\""))
        }
    }

    /// The key is the percent-decoded rest of the path, as bytes, with no path cleaning and no
    /// redirect (the Go router's 301s are a documented defect); GET reports it JSON-escaped as Go's
    /// encoder writes it.
    struct KeyCase: Sendable, CustomTestStringConvertible {
        let target: String
        let jsonKey: String
        var testDescription: String { target }
    }

    @Test(arguments: [
        KeyCase(target: "/v1/kv//a", jsonKey: #""/a""#),
        KeyCase(target: "/v1/kv/a%2Fb", jsonKey: #""a/b""#),
        KeyCase(target: "/v1/kv/a%2fb", jsonKey: #""a/b""#),
        KeyCase(target: "/v1/kv/%00", jsonKey: #""\u0000""#),
        KeyCase(target: "/v1/kv/%FF", jsonKey: #""\ufffd""#),
        KeyCase(target: "/v1/kv/a%FFb%00", jsonKey: #""a\ufffdb\u0000""#),
        KeyCase(target: "/v1/kv/a/./b", jsonKey: #""a/./b""#),
        KeyCase(target: "/v1/kv/a/../b", jsonKey: #""a/../b""#),
        KeyCase(target: "/v1/kv/..", jsonKey: #""..""#),
        KeyCase(target: "/v1/kv/a//b/", jsonKey: #""a//b/""#),
        KeyCase(target: "/v1/kv/a+b%20c", jsonKey: #""a+b c""#),
        KeyCase(target: "/v1/kv/%3Cx%3E%26", jsonKey: #""\u003cx\u003e\u0026""#),
        KeyCase(target: "/v1/kv/%22q%5C%0A", jsonKey: #""\"q\\\n""#),
        KeyCase(target: "/v1/kv/caf%C3%A9", jsonKey: #""café""#),
        KeyCase(target: "/v1/kv/what%3F", jsonKey: #""what?""#),
        KeyCase(target: "/v1/kv/%25", jsonKey: #""%""#),
    ])
    func keyFromPathIsPercentDecodedBytesAndRoundTrips(_ key: KeyCase) throws {
        try withServer { server in
            let connection = try server.connect()
            let value = Array("value of \(key.target)".utf8)
            let put = try connection.exchange(RawRequest.put(key.target, value: value))
            #expect(put.status == 200, "\(put)")
            let get = try connection.exchange(RawRequest.get(key.target))
            #expect(get.status == 200)
            #expect(get.text == getBody(jsonKey: key.jsonKey, value: value))
            #expect(try connection.exchange(RawRequest.make("DELETE", key.target)).status == 200)
            let missing = try connection.exchange(RawRequest.get(key.target))
            #expect(missing.status == 404)
            #expect(missing.text == "{\"error\":\"key not found: " + key.jsonKey.dropFirst().dropLast() + "\"}\n")
        }
    }

    @Test func escapedAndUnescapedSlashNameTheSameKeyButDotSegmentsAreKept() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/a%2Fb", text: "slash")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/a/b")).text == getBody(jsonKey: #""a/b""#, value: Array("slash".utf8)))
            #expect(try connection.exchange(RawRequest.put("/v1/kv/x/./y", text: "dot")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/x/y")).status == 404)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/x/%2E/y")).text == getBody(jsonKey: #""x/./y""#, value: Array("dot".utf8)))
        }
    }

    /// The query is not part of the key (Go's r.URL.Path); "%3F" is a '?' that is.
    @Test func queryIsNotPartOfTheKey() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/q?version=2", text: "v")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/q")).text == getBody(jsonKey: #""q""#, value: Array("v".utf8)))
            #expect(try connection.exchange(RawRequest.get("/v1/kv/q?")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/q%3F")).status == 404)
            #expect(try connection.exchange(RawRequest.get("/v1/health?verbose=1")).text == "{\"ok\":true}\n")
        }
    }

    /// An absolute-form target (as sent to a proxy) is served like its path.
    @Test func absoluteFormTargetIsServedLikeItsPath() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("http://127.0.0.1:\(server.port)/v1/kv/abs", text: "v")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/abs")).status == 200)
            #expect(try connection.exchange(RawRequest.get("HTTP://example.com/v1/health")).text == "{\"ok\":true}\n")
        }
    }

    @Test(arguments: ["/v1/kv/%G1", "/v1/kv/a%", "/v1/kv/a%4", "/v1/kv/%%41", "/v1/kv/ok%zz"])
    func invalidPercentEscapeIs400(target: String) throws {
        try withServer { server in
            let connection = try server.connect()
            for request in [RawRequest.get(target), RawRequest.put(target, text: "x"), RawRequest.make("DELETE", target)] {
                let response = try connection.exchange(request)
                #expect(response.status == 400, "\(response)")
                #expect(response.text.hasPrefix("{\"error\":\""))
            }
        }
    }

    @Test func keyOf4096BytesIsAcceptedAndOneByteMoreIs400() throws {
        try withServer { server in
            let connection = try server.connect()
            let longest = String(repeating: "k", count: 4096)
            #expect(try connection.exchange(RawRequest.put("/v1/kv/" + longest, text: "v")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/" + longest)).status == 200)
            let tooLong = longest + "k"
            let put = try connection.exchange(RawRequest.put("/v1/kv/" + tooLong, text: "v"))
            #expect(put.status == 400, "\(put)")
            #expect(put.text.hasPrefix("{\"error\":\""))
            #expect(try connection.exchange(RawRequest.make("DELETE", "/v1/kv/" + tooLong)).status == 400)
            // A GET or HEAD of a key that cannot exist is the same 400 as its PUT, not a 404.
            let get = try connection.exchange(RawRequest.get("/v1/kv/" + tooLong))
            #expect(get.status == 400, "\(get)")
            #expect(get.text == "{\"error\":\"key of 4097 bytes exceeds the limit of 4096 bytes\"}\n")
            #expect(!get.announcesClose)
            #expect(try connection.exchange(RawRequest.make("HEAD", "/v1/kv/" + tooLong), toHEAD: true).status == 400)
        }
    }

    /// The request line limit (16 KiB) lets through the longest key fully percent-encoded (12 KiB).
    @Test func longestKeyFullyPercentEncodedIsAccepted() throws {
        try withServer { server in
            let key = (0..<4096).map { UInt8($0 % 256) }
            let target = "/v1/kv/" + percentEncodeAll(key)
            let connection = try server.connect()
            let put = try connection.exchange(RawRequest.put(target, text: "v"))
            #expect(put.status == 200, "\(put)")
            #expect(try connection.exchange(RawRequest.get(target)).status == 200)
        }
    }

    @Test func valueOverTheBodyLimitIs413() throws {
        try withServer({ $0.limits.maxBodyBytes = 1024 }) { server in
            let value = [UInt8](repeating: 0x61, count: 1024)  // 1368 bytes of base64, in JSON
            let connection = try server.connect()
            let response = try connection.exchange(RawRequest.put("/v1/kv/big", value: value))
            #expect(response.status == 413)
            #expect(response.header("Content-Type") == "application/json")
            #expect(response.announcesClose)
            #expect(try server.exchange(RawRequest.get("/v1/kv/big")).status == 404)
            // Just under the limit is fine.
            let fits = [UInt8](repeating: 0x61, count: 700)
            #expect(try server.exchange(RawRequest.put("/v1/kv/big", value: fits)).status == 200)
        }
    }

    /// With the default limits, a Content-Length over 24 MiB is refused from the head alone.
    @Test func contentLengthOverTheDefaultBodyLimitIs413BeforeTheBody() throws {
        try withServer { server in
            let connection = try server.connect()
            try connection.send("PUT /v1/kv/huge HTTP/1.1\r\nHost: x\r\nContent-Length: \((24 << 20) + 1)\r\n\r\n")
            let response = try connection.readResponse()
            #expect(response.status == 413)
            #expect(response.announcesClose)
            #expect(try connection.readUntilClosed().isEmpty)
        }
    }

    // MARK: HEAD

    @Test(arguments: ["/v1/health", "/v1/role", "/v1/kv/present", "/v1/kv/absent", "/v1/kv/%G1"])
    func headAnswersGetsHeadersWithoutBody(path: String) throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/present", text: "here I am")).status == 200)
            let get = try connection.exchange(RawRequest.get(path))
            // HEAD, then GET on the same connection: had HEAD sent a body, the GET's answer would
            // not start where the HEAD's head ends.
            try connection.send(RawRequest.make("HEAD", path) + RawRequest.get("/v1/health"))
            let head = try connection.readResponse(toHEAD: true)
            let after = try connection.readResponse()
            #expect(head.status == get.status)
            #expect(head.headers.map { "\($0.name): \($0.value)" } == get.headers.map { "\($0.name): \($0.value)" })
            #expect(head.header("Content-Length") == String(get.body.count))
            #expect(after.status == 200 && after.text == "{\"ok\":true}\n")
        }
    }

    @Test func headOnMetricsHasNoBody() throws {
        try withServer { server in
            let connection = try server.connect()
            try connection.send(RawRequest.make("HEAD", "/metrics") + RawRequest.get("/v1/health"))
            let head = try connection.readResponse(toHEAD: true)
            #expect(head.status == 200)
            #expect(Int(head.header("Content-Length") ?? "") ?? 0 > 0)
            #expect(try connection.readResponse().text == "{\"ok\":true}\n")
        }
    }
}
