import Foundation
import HTTPFront
import StorageEngine
import Testing

/// POST /v1/txn over real sockets: all or nothing, the revision it committed at, 412 naming every
/// failed condition, every kind of bad input refused (400/413) with nothing written, and a backup
/// that serves listings but refuses transactions.
@Suite("Transactions over HTTP")
struct TransactionTests {
    @Test func aFailedConditionWritesNothingAndAHoldingOneWritesEverything() throws {
        try withServer { server in
            let connection = try server.connect()
            let aRevision = try #require(connection.exchange(RawRequest.put("/v1/kv/a", text: "1")).header("X-Revision"))
            #expect(try connection.exchange(RawRequest.put("/v1/kv/gone", text: "x")).status == 200)
            let before = server.database.revision
            let stale = try connection.exchange(RawRequest.txn("""
                {"conditions":[{"key":"a","revision":\(UInt64(aRevision)! + 1)},{"key":"gone","present":true},{"key":"b","absent":true}],
                 "puts":[{"key":"b","value":"Yg=="},{"key":"c","value":"see","encoding":"utf8"}],
                 "deletes":[{"key":"gone"}]}
                """))
            #expect(stale.status == 412)
            #expect(stale.header("Content-Type") == "application/json")
            #expect(stale.text == #"{"error":"precondition failed","failed":[{"key":"a","key_encoding":"utf8","revision":\#(aRevision)}]}"# + "\n")
            #expect(server.database.revision == before)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/b")).status == 404)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/gone")).status == 200)

            let committed = try connection.exchange(RawRequest.txn("""
                {"conditions":[{"key":"a","revision":\(aRevision)},{"key":"gone","present":true},{"key":"b","absent":true},
                               {"key":"a","value":"MQ=="}],
                 "puts":[{"key":"b","value":"Yg=="},{"key":"c","value":"see","encoding":"utf8"}],
                 "deletes":[{"key":"gone"}]}
                """))
            #expect(committed.status == 200)
            let revision = before + 1
            #expect(committed.text == #"{"ok":true,"revision":\#(revision)}"# + "\n")
            #expect(committed.header("X-Revision") == String(revision))
            #expect(server.database.revision == revision)
            // One revision for the whole batch: both puts carry it.
            #expect(try connection.exchange(RawRequest.get("/v1/kv/b")).header("ETag") == "\"\(revision)\"")
            #expect(try connection.exchange(RawRequest.get("/v1/kv/c")).text == getBody(jsonKey: "\"c\"", value: Array("see".utf8)))
            #expect(try connection.exchange(RawRequest.get("/v1/kv/gone")).status == 404)
        }
    }

    @Test func every412NamesEveryFailedCondition() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/x", text: "1")).status == 200)
            let response = try connection.exchange(RawRequest.txn("""
                {"conditions":[{"key":"x","absent":true},{"key":"x","present":true},{"key":"/w==","key_encoding":"base64","present":true},
                               {"key":"x","value":"Mg=="},{"key":"nothing","revision":0}],
                 "puts":[{"key":"y","value":""}]}
                """))
            #expect(response.status == 412)
            let failed = try #require(jsonObject(response)["failed"] as? [[String: Any]])
            #expect(try failed.map(itemKey) == [Array("x".utf8), [0xFF], Array("x".utf8)])
            #expect(failed.map { ($0["revision"] as? NSNumber)?.uint64Value } == [1, 0, 1])
            #expect(try connection.exchange(RawRequest.get("/v1/kv/y")).status == 404)
        }
    }

    /// Keys sent as base64 are their bytes: what a listing returns goes back into a transaction.
    @Test func binaryKeysRoundTripBetweenListingAndTransaction() throws {
        try withServer { server in
            let connection = try server.connect()
            let keys: [[UInt8]] = [[0x00], [0xFF, 0x00], [0x80], Array("plain".utf8)]
            let puts = keys.map { #"{"key":"\#(base64($0))","key_encoding":"base64","value":"\#(base64($0))"}"# }
            #expect(try connection.exchange(RawRequest.txn(#"{"puts":[\#(puts.joined(separator: ","))]}"#)).status == 200)
            let page = try ListedPage(connection.exchange(RawRequest.get("/v1/kv")))
            #expect(try page.keys() == keys.sorted { $0.lexicographicallyPrecedes($1) })
            #expect(try page.items.allSatisfy { try itemValue($0) == itemKey($0) })
            // Each listed item's key and key_encoding, as a client's JSON encoder writes them, name
            // its key in a delete.
            let deletes = page.items.map { ["key": $0["key"]!, "key_encoding": $0["key_encoding"]!] }
            let body = try JSONSerialization.data(withJSONObject: ["deletes": deletes])
            #expect(try connection.exchange(RawRequest.make("POST", "/v1/txn", body: Array(body))).status == 200)
            #expect(try ListedPage(connection.exchange(RawRequest.get("/v1/kv"))).items.isEmpty)
        }
    }

    @Test func aTransactionOfConditionsOnlyChecksThemAndWritesNothing() throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/k", text: "v")).status == 200)
            let response = try connection.exchange(RawRequest.txn(#"{"conditions":[{"key":"k","present":true}]}"#))
            #expect(response.text == #"{"ok":true,"revision":1}"# + "\n")
            #expect(try connection.exchange(RawRequest.txn("{}")).text == #"{"ok":true,"revision":1}"# + "\n")
            #expect(try connection.exchange(RawRequest.txn(#"{"conditions":null,"puts":[],"deletes":null}"#)).status == 200)
            #expect(server.database.revision == 1)
        }
    }

    static let tooManyOperations: String = {
        let puts = (0..<100).map { #"{"key":"p\#($0)","value":""}"# }
        let deletes = (0..<29).map { #"{"key":"d\#($0)"}"# }
        return #"{"puts":[\#(puts.joined(separator: ","))],"deletes":[\#(deletes.joined(separator: ","))]}"#
    }()

    static let badBodies: [(body: String, status: Int)] = [
        ("", 400), ("   ", 400), ("[]", 400), ("null", 400), ("{", 400), (#"{"puts":[}"#, 400), (#"{"puts":[]} x"#, 400),
        (#"{"ranges":[]}"#, 400), (#"{"Puts":[]}"#, 400), (#"{"puts":[],"puts":[]}"#, 400), (#"{"puts":{}}"#, 400),
        (#"{"puts":["k"]}"#, 400), (#"{"puts":[{"key":"k","value":"dg==","ttl":5}]}"#, 400), (#"{"puts":[{"key":"k"}]}"#, 400),
        (#"{"puts":[{"value":"dg=="}]}"#, 400), (#"{"puts":[{"key":5,"value":"dg=="}]}"#, 400), (#"{"puts":[{"key":"k","value":"!!"}]}"#, 400),
        (#"{"puts":[{"key":"k","value":"dg==","encoding":"hex"}]}"#, 400), (#"{"puts":[{"key":"k","key_encoding":"hex","value":""}]}"#, 400),
        (#"{"puts":[{"key":"k","key":"j","value":""}]}"#, 400), (#"{"puts":[{"key":"","value":""}]}"#, 400),
        (#"{"puts":[{"key":"k","value":{"nested":1}}]}"#, 400), (#"{"puts":[{"key":"\ud800","value":""}]}"#, 400),
        (#"{"puts":[{"key":"k","value":""},{"key":"k","value":"dg=="}]}"#, 400),
        (#"{"puts":[{"key":"k","value":""}],"deletes":[{"key":"k"}]}"#, 400),
        (#"{"puts":[{"key":"aw==","key_encoding":"base64","value":""}],"deletes":[{"key":"k"}]}"#, 400),
        (#"{"deletes":[{"key":"k"},{"key":"k"}]}"#, 400), (#"{"deletes":[{"key":"k","value":""}]}"#, 400),
        (#"{"conditions":[{"key":"k"}],"puts":[{"key":"p","value":""}]}"#, 400),
        (#"{"conditions":[{"key":"k","absent":true,"present":true}],"puts":[{"key":"p","value":""}]}"#, 400),
        (#"{"conditions":[{"key":"k","absent":false}],"puts":[{"key":"p","value":""}]}"#, 400),
        (#"{"conditions":[{"key":"k","revision":-1}],"puts":[{"key":"p","value":""}]}"#, 400),
        (#"{"conditions":[{"key":"k","revision":1.5}],"puts":[{"key":"p","value":""}]}"#, 400),
        (#"{"conditions":[{"key":"k","revision":1e3}],"puts":[{"key":"p","value":""}]}"#, 400),
        (#"{"conditions":[{"key":"k","revision":"3"}],"puts":[{"key":"p","value":""}]}"#, 400),
        (#"{"conditions":[{"key":"k","revision":18446744073709551616}],"puts":[{"key":"p","value":""}]}"#, 400),
        (#"{"conditions":[{"key":"k","present":true,"encoding":"utf8"}],"puts":[{"key":"p","value":""}]}"#, 400),
        (#"{"conditions":[{"key":"","present":true}],"puts":[{"key":"p","value":""}]}"#, 400),
        (#"{"puts":[{"key":"\#(String(repeating: "k", count: 4097))","value":""}]}"#, 400),
        (TransactionTests.tooManyOperations, 413),
    ]

    @Test(arguments: TransactionTests.badBodies)
    func badBodiesAreRefusedAndWriteNothing(_ bad: (body: String, status: Int)) throws {
        try withServer { server in
            let connection = try server.connect()
            #expect(try connection.exchange(RawRequest.put("/v1/kv/k", text: "v")).status == 200)
            let revision = server.database.revision
            let response = try connection.exchange(RawRequest.txn(bad.body))
            #expect(response.status == bad.status, "\(bad.body.prefix(200)): \(response)")
            #expect(response.header("Content-Type") == "application/json")
            #expect((try jsonObject(response)["error"] as? String)?.isEmpty == false, "\(response)")
            #expect(server.database.revision == revision)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/k")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/p")).status == 404)
        }
    }

    /// 128 operations is the limit, not one fewer; a value over the engine's limit is the PUT
    /// route's 400.
    @Test func theLimits() throws {
        try withServer { server in
            let connection = try server.connect()
            let puts = (0..<128).map { #"{"key":"p\#($0)","value":""}"# }
            #expect(try connection.exchange(RawRequest.txn(#"{"puts":[\#(puts.joined(separator: ","))]}"#)).status == 200)
            #expect(try ListedPage(connection.exchange(RawRequest.get("/v1/kv?limit=1000"))).items.count == 128)
            let tooMany = try connection.exchange(RawRequest.txn(TransactionTests.tooManyOperations))
            #expect(tooMany.text.contains("at most 128"), "\(tooMany)")

            let huge = base64([UInt8](repeating: 1, count: (16 << 20) + 1))
            let response = try connection.exchange(RawRequest.txn(#"{"puts":[{"key":"big","value":"\#(huge)"}]}"#))
            let put = try connection.exchange(RawRequest.make("PUT", "/v1/kv/big", body: #"{"value":"\#(huge)"}"#))
            #expect(response.status == 400)
            #expect(put.status == 400)
            #expect(response.text == put.text)
        }
    }

    @Test func otherMethodsAre405AndMetricsCountTheRoute() throws {
        try withServer { server in
            let connection = try server.connect()
            let get = try connection.exchange(RawRequest.get("/v1/txn"))
            #expect(get.status == 405)
            #expect(get.header("Allow") == "POST")
            #expect(try connection.exchange(RawRequest.txn(#"{"puts":[{"key":"m","value":""}]}"#)).status == 200)
            #expect(try connection.exchange(RawRequest.txn(#"{"bogus":1}"#)).status == 400)
            let text = try connection.exchange(RawRequest.get("/metrics")).text
            #expect(metricValue(text, #"smalldb_http_requests_total{route="txn",method="POST",status="200"}"#) == 1)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="txn",method="POST",status="400"}"#) == 1)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="txn",method="GET",status="405"}"#) == 1)
        }
    }

    /// A backup serves listings, counts and ETags, and refuses transactions and conditional
    /// writes exactly as it refuses a PUT.
    @Test func aBackupServesListingsAndRefusesTransactions() throws {
        try withServer(role: ReadOnlyBackup()) { server in
            try seed(server.database, [Array("r1".utf8), Array("r2".utf8), [0xFF]])
            let connection = try server.connect()
            let page = try ListedPage(connection.exchange(RawRequest.get("/v1/kv?limit=2")))
            #expect(try page.keys() == [Array("r1".utf8), Array("r2".utf8)])
            #expect(try connection.exchange(RawRequest.get("/v1/kv?count_only=true")).text == #"{"count":3,"revision":1}"# + "\n")
            #expect(try connection.exchange(RawRequest.get("/v1/kv/r1")).header("ETag") == "\"1\"")

            let refusedPut = try connection.exchange(RawRequest.put("/v1/kv/r1", text: "w"))
            #expect(refusedPut.status == 403)
            #expect(refusedPut.text == "{\"error\":\"writes are disabled on backup\"}\n")
            for request in [
                RawRequest.txn(#"{"puts":[{"key":"r3","value":""}]}"#),
                RawRequest.txn("not even JSON"),
                RawRequest.put("/v1/kv/r1", text: "w", headers: ["If-Match: \"1\""]),
                RawRequest.make("DELETE", "/v1/kv/r1", headers: ["If-Match: garbage"]),
            ] {
                let response = try connection.exchange(request)
                #expect(response.status == 403)
                #expect(response.text == refusedPut.text)
            }
            #expect(server.database.revision == 1)
        }
    }
}
