import Foundation
import HTTPFront
import Testing

/// GET /metrics: the Prometheus text exposition format, with the HTTP front's series and the
/// engine's, counting what the test did.
@Suite("Metrics")
struct MetricsTests {
    @Test func metricsCountTheRequestsAndTheEngineWork() throws {
        try withServer { server in
            let connection = try server.connect()
            for index in 0..<7 {
                #expect(try connection.exchange(RawRequest.put("/v1/kv/m\(index)", text: "value \(index)")).status == 200)
            }
            #expect(try connection.exchange(RawRequest.get("/v1/kv/m1")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/m2")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv/none")).status == 404)
            #expect(try connection.exchange(RawRequest.get("/v1/kv?prefix=m&limit=2")).status == 200)
            #expect(try connection.exchange(RawRequest.get("/v1/kv?count_only=true")).status == 200)
            #expect(try connection.exchange(RawRequest.make("DELETE", "/v1/kv/m6")).status == 200)
            #expect(try connection.exchange(RawRequest.make("POST", "/v1/kv/m6")).status == 405)
            #expect(try connection.exchange(RawRequest.get("/nowhere")).status == 404)
            #expect(try connection.exchange(RawRequest.get("/v1/health")).status == 200)
            let second = try server.connect()
            #expect(try second.exchange(RawRequest.get("/v1/health")).status == 200)

            let response = try connection.exchange(RawRequest.get("/metrics"))
            #expect(response.status == 200)
            #expect(response.header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8")
            let text = response.text

            #expect(metricValue(text, #"smalldb_http_requests_total{route="kv",method="PUT",status="200"}"#) == 7)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="kv",method="GET",status="200"}"#) == 2)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="kv",method="GET",status="404"}"#) == 1)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="kv",method="DELETE",status="200"}"#) == 1)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="kv",method="POST",status="405"}"#) == 1)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="health",method="GET",status="200"}"#) == 2)
            #expect(metricValue(text, #"smalldb_http_requests_total{route="other",method="GET",status="404"}"#) == 1)
            #expect(text.contains("# TYPE smalldb_http_requests_total counter\n"))

            #expect(metricValue(text, "smalldb_puts_total") == 7)
            #expect(metricValue(text, "smalldb_gets_total") == 3)
            #expect(metricValue(text, "smalldb_listings_total") == 2)
            #expect(metricValue(text, "smalldb_deletes_total") == 1)
            let syncs = try #require(metricValue(text, "smalldb_syncs_total"))
            #expect(syncs >= 1 && syncs <= 8)
            #expect(metricValue(text, "smalldb_keys") == 6)
            #expect(metricValue(text, "smalldb_http_open_connections") == 2)
            #expect(metricValue(text, "smalldb_http_connections_accepted_total") == 2)
            let resident = try #require(metricValue(text, "smalldb_resident_memory_bytes"))
            #expect(resident > 1_000_000)

            // Histograms: cumulative buckets ending in +Inf, which equals _count.
            for (name, count) in [("smalldb_sync_duration_seconds", syncs), ("smalldb_commit_size", syncs)] {
                #expect(text.contains("# TYPE \(name) histogram\n"))
                let buckets = text.split(separator: "\n").filter { $0.hasPrefix(name + "_bucket{le=\"") }
                #expect(buckets.count >= 2, "\(name) buckets")
                let values = buckets.compactMap { Double($0.split(separator: " ").last ?? "") }
                #expect(values == values.sorted(), "\(name) buckets are not cumulative")
                #expect(metricValue(text, name + "_bucket{le=\"+Inf\"}") == count)
                #expect(metricValue(text, name + "_count") == count)
            }
            // Write requests per commit add up to the writes.
            #expect(metricValue(text, "smalldb_commit_size_sum") == 8)

            // Every sample line is "name{labels} value" or "name value", with a # TYPE for its family.
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                #expect(parts.count == 2 && Double(parts[1]) != nil, "bad sample line: \(line)")
            }
        }
    }

    /// Clients that connect in a burst (a benchmark's connections, a pool warming up) are spread
    /// over the event loops, whichever loop the kernel wakes to accept them.
    @Test func connectionsAreSpreadEvenlyOverTheLoops() throws {
        try withServer { server in  // two event loops
            let connections = try (0..<16).map { _ in try server.connect() }
            // A request on each: every connection has been accepted and adopted by its loop.
            for connection in connections { #expect(try connection.exchange(RawRequest.get("/v1/health")).status == 200) }
            let text = try connections[0].exchange(RawRequest.get("/metrics")).text
            let perLoop = [0, 1].map { metricValue(text, #"smalldb_http_loop_connections{loop="\#($0)"}"#) }
            #expect(perLoop.allSatisfy { ($0 ?? 0) >= 7 }, "connections per loop: \(perLoop)")
        }
    }

    @Test func metricsCountRefusedAndTimedOutConnections() throws {
        try withServer({ $0.maxConnections = 1 }) { server in
            let first = try server.connect()
            #expect(try first.exchange(RawRequest.get("/v1/health")).status == 200)
            let refused = try server.connect()
            #expect(try refused.readResponse().status == 503)
            let text = try first.exchange(RawRequest.get("/metrics")).text
            #expect(metricValue(text, "smalldb_http_connections_rejected_total") == 1)
            #expect(metricValue(text, "smalldb_http_open_connections") == 1)
        }
    }
}
