@testable import HTTPFront
import Testing

@Suite struct LoopMetricsTests {
    @Test func aRoutesOrdinalIsItsPlaceInAllCases() {
        for (index, route) in RouteName.allCases.enumerated() { #expect(route.ordinal == index, "\(route)") }
    }

    /// Counts come back by route, method label and status, from the table and from the
    /// dictionary of statuses outside it alike; unknown methods fold into "OTHER".
    @Test func countsComeBackAsRecorded() {
        let metrics = LoopMetrics()
        metrics.record(route: .kv, method: "GET", status: 200, duration: .zero)
        metrics.record(route: .kv, method: "GET", status: 200, duration: .zero)
        metrics.record(route: .txn, method: "POST", status: 412, duration: .zero)
        metrics.record(route: .other, method: "BREW", status: 418, duration: .zero)
        metrics.record(route: .kvList, method: "HEAD", status: 505, duration: .zero)
        #expect(metrics.requests == [
            .init(route: .kv, method: "GET", status: 200): 2,
            .init(route: .txn, method: "POST", status: 412): 1,
            .init(route: .other, method: "OTHER", status: 418): 1,
            .init(route: .kvList, method: "HEAD", status: 505): 1,
        ])
        #expect(metrics.latency(of: .kv).count == 2)
        #expect(metrics.latency(of: .health).count == 0)
    }
}
