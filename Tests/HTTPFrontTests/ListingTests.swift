import Foundation
import HTTPFront
import StorageEngine
import Testing

/// GET /v1/kv?…: pages of keys in the engine's order over real sockets, binary keys round-tripping
/// through key_encoding, pagination by token, counts, the page-size bound, and every malformed
/// query refused with a 400 that says why.
@Suite("Listing keys over HTTP")
struct ListingTests {
    /// Keys that are hard to carry: NUL, 0xFF, keys that are prefixes of each other, invalid and
    /// valid UTF-8 (a lone 0xC3, "é", U+2028, quotes and control characters).
    static let awkwardKeys: [[UInt8]] = [
        [0x00], [0x00, 0x00], [0x00, 0xFF], [0x01], [0xFF], [0xFF, 0x00], [0xFF, 0xFF],
        Array("a".utf8), Array("ab".utf8), Array("abc".utf8), [0x61, 0xFF], [0x61, 0x00], [0xC3], Array("é".utf8),
        Array("\u{2028}".utf8), Array("q\"<&>\\\n\t".utf8), Array("a b+c".utf8),
    ]

    @Test func binaryKeysRoundTripThroughKeyEncoding() throws {
        try withServer { server in
            let connection = try server.connect()
            for key in ListingTests.awkwardKeys {
                let put = try connection.exchange(RawRequest.put("/v1/kv/" + percentEncodeAll(key), value: key + [0x7E]))
                #expect(put.status == 200, "\(put)")
            }
            let page = try ListedPage(connection.exchange(RawRequest.get("/v1/kv")))
            let expected = ListingTests.awkwardKeys.sorted { $0.lexicographicallyPrecedes($1) }
            #expect(try page.keys() == expected)
            #expect(page.more == false)
            for item in page.items {
                let key = try itemKey(item)
                let isUTF8 = String(validating: key, as: UTF8.self) != nil
                #expect(item["key_encoding"] as? String == (isUTF8 ? "utf8" : "base64"), "\(item)")
                #expect(try itemValue(item) == key + [0x7E])
                #expect((item["create_revision"] as? NSNumber)?.uint64Value ?? 0 > 0)
                #expect(item["mod_revision"] as? NSNumber == item["create_revision"] as? NSNumber)
                // The listed key, percent-encoded into the key route, reaches the same key.
                let get = try connection.exchange(RawRequest.get("/v1/kv/" + percentEncodeAll(key)))
                #expect(get.status == 200)
                #expect(get.header("ETag") == "\"\((item["mod_revision"] as? NSNumber)?.uint64Value ?? 0)\"")
            }
            // Prefixes of each other: prefix=%00 is the three keys that start with NUL, prefix=a four.
            #expect(try ListedPage(connection.exchange(RawRequest.get("/v1/kv?prefix=%00"))).keys() == [[0x00], [0x00, 0x00], [0x00, 0xFF]])
            #expect(try ListedPage(connection.exchange(RawRequest.get("/v1/kv?prefix=a"))).keys().count == 6)
            #expect(try ListedPage(connection.exchange(RawRequest.get("/v1/kv?prefix=%FF"))).keys() == [[0xFF], [0xFF, 0x00], [0xFF, 0xFF]])
            // '+' is a plus (as in the path), a space is %20.
            #expect(try ListedPage(connection.exchange(RawRequest.get("/v1/kv?prefix=a%20b+"))).keys() == [Array("a b+c".utf8)])
        }
    }

    @Test func theExactBodyOfAPage() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/k1", text: "one")).status == 200)
            #expect(try connection.exchange(RawRequest.put("/v1/kv/k%FF", text: "two")).status == 200)
            let first = try connection.exchange(RawRequest.get("/v1/kv?limit=1"))
            #expect(first.status == 200)
            #expect(first.header("Content-Type") == "application/json")
            #expect(first.text == #"{"items":[{"key":"k1","key_encoding":"utf8","value":"b25l","encoding":"base64","create_revision":1,"mod_revision":1}],"count":1,"more":true,"token":"AQBrMQ","revision":2}"# + "\n")
            let second = try connection.exchange(RawRequest.get("/v1/kv?limit=1&token=AQBrMQ&keys_only=true"))
            #expect(second.text == #"{"items":[{"key":"a/8=","key_encoding":"base64","create_revision":2,"mod_revision":2}],"count":1,"more":false,"token":null,"revision":2}"# + "\n")
            let empty = try connection.exchange(RawRequest.get("/v1/kv?prefix=none"))
            #expect(empty.text == #"{"items":[],"count":0,"more":false,"token":null,"revision":2}"# + "\n")
            let head = try connection.exchange(RawRequest.make("HEAD", "/v1/kv?limit=1"), toHEAD: true)
            #expect(head.status == 200)
            #expect(head.header("Content-Length") == String(first.body.count))
        }
    }

    /// A few thousand keys; every combination of range, direction and page size, followed by
    /// token, gives exactly the engine's order, each key once.
    @Test func paginationEqualsTheEnginesOrder() throws {
        try withServer { server in
            var keys: [[UInt8]] = (0..<3000).map { Array(String(format: "k/%04d", $0).utf8) }
            keys += (0..<200).map { [0x00, UInt8($0 % 256), UInt8($0 / 256)] }
            keys += (0..<200).map { [0xFF, UInt8($0 % 256)] } + [Array("k".utf8), Array("k/".utf8), Array("k/0".utf8)]
            try seed(server.database, keys)
            let connection = try server.connect()
            let cases: [(query: String, range: KeyRange)] = [
                ("", .all),
                ("prefix=k/1", .prefix("k/1")),
                ("prefix=k", .prefix("k")),
                ("prefix=%FF", .prefix(Key([0xFF]))),
                ("start=k/0500&end=k/2500", KeyRange(start: "k/0500", end: "k/2500")),
                ("start=%00%05", KeyRange(start: Key([0x00, 0x05]))),
                ("end=k/0010", KeyRange(end: "k/0010")),
                ("start=k/2&end=k/1", KeyRange(start: "k/2", end: "k/1")),
            ]
            for (query, range) in cases {
                for reverse in [false, true] {
                    for limit in [1000, 333, 7] {
                        if limit == 7 && query.isEmpty { continue }  // 500 pages: covered by the others
                        let full = (query.isEmpty ? "" : query + "&") + "limit=\(limit)&reverse=\(reverse)&keys_only=true"
                        let (listed, pages) = try listAll(connection, query: full)
                        let expected = try engineKeys(server.database, range, reverse: reverse)
                        #expect(listed == expected, "\(full): \(listed.count) keys listed, the engine has \(expected.count)")
                        #expect(pages.allSatisfy { $0.items.count <= limit })
                        #expect(pages.dropLast().allSatisfy { $0.items.count == limit })
                        #expect(Set(pages.map(\.revision)).count == 1, "nothing was written meanwhile")
                    }
                }
            }
            // The default limit is 100.
            #expect(try ListedPage(connection.exchange(RawRequest.get("/v1/kv?prefix=k/"))).items.count == 100)
            // Values come with the items unless keys_only.
            let valued = try ListedPage(connection.exchange(RawRequest.get("/v1/kv?start=k/0042&limit=2")))
            #expect(try valued.items.map { try itemValue($0) } == [Array("k/0042".utf8), Array("k/0043".utf8)])
        }
    }

    /// A token carries on after its key even when that key is deleted and others are inserted
    /// before it: keys present and unchanged throughout are listed exactly once.
    @Test func aTokenSurvivesWritesBetweenPages() throws {
        try withServer { server in
            try seed(server.database, (0..<50).map { Array(String(format: "t%02d", $0).utf8) })
            let connection = try server.connect()
            let first = try ListedPage(connection.exchange(RawRequest.get("/v1/kv?limit=10&keys_only=true")))
            #expect(try first.keys().last == Array("t09".utf8))
            #expect(try connection.exchange(RawRequest.make("DELETE", "/v1/kv/t09")).status == 200)
            #expect(try connection.exchange(RawRequest.put("/v1/kv/t00a", text: "x")).status == 200)
            let second = try ListedPage(connection.exchange(RawRequest.get("/v1/kv?limit=10&keys_only=true&token=" + first.token!)))
            #expect(try second.keys().first == Array("t10".utf8))
            #expect(second.revision == first.revision + 2)
        }
    }

    @Test func countOnlyCountsTheRange() throws {
        try withServer { server in
            try seed(server.database, (0..<1500).map { Array(String(format: "c/%04d", $0).utf8) } + [[0x00], [0xFF, 0xFF]])
            let connection = try server.connect()
            let revision = server.database.revision
            for (query, count) in [("", 1502), ("prefix=c/", 1500), ("prefix=c/01", 100), ("start=c/0100&end=c/0200", 100),
                                   ("start=%FF", 1), ("end=%01", 1), ("prefix=nothing", 0), ("start=z&end=a", 0)] {
                let response = try connection.exchange(RawRequest.get("/v1/kv?count_only=true" + (query.isEmpty ? "" : "&" + query)))
                #expect(response.status == 200)
                #expect(response.text == #"{"count":\#(count),"revision":\#(revision)}"# + "\n", "\(query)")
            }
            #expect(try connection.exchange(RawRequest.get("/v1/kv?count_only=false&limit=3")).status == 200)
        }
    }

    /// A page of large values stops before its body passes 4 MiB (more=true, a token), and the
    /// tokens still reach every key.
    @Test func aPageOfLargeValuesStopsEarly() throws {
        try withServer { server in
            let value = [UInt8](repeating: 0x5A, count: 1 << 20)
            try seed(server.database, (0..<8).map { Array("big\($0)".utf8) }) { _ in value }
            let connection = try server.connect()
            let (keys, pages) = try listAll(connection, query: "limit=8")
            #expect(keys == (0..<8).map { Array("big\($0)".utf8) })
            #expect(pages.count > 1)
            #expect(pages.allSatisfy { $0.bodyCount <= 4 << 20 }, "\(pages.map(\.bodyCount))")
            #expect(pages.dropLast().allSatisfy { $0.more && $0.items.count >= 1 })
            #expect(try pages.flatMap(\.items).allSatisfy { try itemValue($0) == value })
            // keys_only pages are not cut: the values are not in them.
            #expect(try ListedPage(connection.exchange(RawRequest.get("/v1/kv?limit=8&keys_only=true"))).items.count == 8)
        }
    }

    static let malformedQueries: [String] = [
        "limit=0", "limit=-1", "limit=1001", "limit=abc", "limit=", "limit=1.5", "limit=+5", "limit=99999999999999999999", "limit=0x10",
        "reverse=yes", "reverse=", "keys_only=1", "count_only=maybe", "reverse=TRUE",
        "prefix=a&start=b", "prefix=a&end=b", "prefix=a&start=",
        "token=!!!", "token=AQ", "token=AAAA", "token=AQBh%3D", "token=AQFh", "token=",
        "bogus=1", "Limit=5", "limit=1&limit=2", "prefix", "prefix=%zz", "start=%4", "&&reverse",
        "count_only=true&limit=5", "count_only=true&token=AQBh", "count_only=true&reverse=true", "count_only=true&keys_only=false",
    ]

    @Test(arguments: ListingTests.malformedQueries)
    func malformedQueriesAre400WithAMessage(_ query: String) throws {
        try withServer { server in
            try seed(server.database, [Array("a".utf8), Array("b".utf8)])
            let revision = server.database.revision
            let response = try server.exchange(RawRequest.get("/v1/kv?" + query))
            #expect(response.status == 400, "\(query): \(response)")
            #expect(response.header("Content-Type") == "application/json")
            let message = try jsonObject(response)["error"] as? String
            #expect(message?.isEmpty == false, "\(response)")
            #expect(server.database.revision == revision)
        }
    }

    /// A token works only in the direction it was issued for; the message says so.
    @Test func aTokenOfTheOtherDirectionIsRefused() throws {
        try withServer { server in
            try seed(server.database, (0..<5).map { [UInt8(0x30 + $0)] })
            let connection = try server.connect()
            let page = try ListedPage(connection.exchange(RawRequest.get("/v1/kv?limit=2&reverse=true")))
            let wrong = try connection.exchange(RawRequest.get("/v1/kv?limit=2&token=" + page.token!))
            #expect(wrong.status == 400)
            #expect(wrong.text.contains("reverse=true"), "\(wrong)")
        }
    }

    @Test func otherMethodsAre405AndMetricsCountTheRoute() throws {
        try withServer { server in
            let connection = try server.connect()
            let post = try connection.exchange(RawRequest.make("POST", "/v1/kv?limit=1", body: "{}"))
            #expect(post.status == 405)
            #expect(post.header("Allow") == "GET")
            #expect(try connection.exchange(RawRequest.get("/v1/kv?limit=2")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv?limit=0")).status == 400)
            let text = try connection.exchange(RawRequest.get("/metrics")).text
            #expect(metricValue(text, #"smalldb_http_requests_total{route="kv_list",method="GET",status="200"}"#) == 1)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="kv_list",method="GET",status="400"}"#) == 1)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="kv_list",method="POST",status="405"}"#) == 1)
            #expect(text.contains(#"smalldb_http_request_duration_seconds_count{route="kv_list"}"#))
        }
    }

    @Test func theListingNeedsTheBearerTokenWhenOneIsSet() throws {
        try withServer(role: StandalonePrimary(), { $0.authToken = Array("secret".utf8) }) { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.get("/v1/kv")).status == 401)
            #expect(try connection.exchange(RawRequest.txn("{}")).status == 401)
            #expect(try connection.exchange(RawRequest.get("/v1/kv", headers: ["Authorization: Bearer secret"])).status == 200)
        }
    }
}
