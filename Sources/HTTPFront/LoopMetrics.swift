import Platform
import StorageEngine
import Synchronization

/// One loop's request counters and latency histograms.
///
/// Recording is on every request's path, so it hashes nothing: the route, the method and the
/// status become indices into a flat table of counts (`RequestCounts`), behind a lock only this
/// loop takes (and a scrape, rarely); a status outside the table's list is counted in a small
/// dictionary beside it. The latency histograms are an array by route.
final class LoopMetrics: Sendable {
    struct RequestKey: Hashable {
        let route: RouteName
        let method: String
        let status: Int
    }

    /// Method labels: those of the API, and "OTHER" for any other, so that a client cannot grow
    /// the series without bound.
    static let methods = ["GET", "HEAD", "PUT", "DELETE", "POST", "OTHER"]
    /// The statuses the server answers with; any other is counted in `RequestCounts.others`.
    static let statuses = [200, 201, 204, 304, 400, 401, 403, 404, 405, 408, 409, 411, 412, 413, 414, 415, 422, 429, 431, 500, 501, 503, 505]

    struct RequestCounts {
        var table = [Int](repeating: 0, count: RouteName.allCases.count * LoopMetrics.methods.count * LoopMetrics.statuses.count)
        var others: [RequestKey: Int] = [:]
    }

    private let counts = Lock(RequestCounts())
    private let latency: [Histogram] = RouteName.allCases.map { _ in Histogram(bounds: Histogram.latencyBounds, sumScale: 1e9) }

    func record(route: RouteName, method: String, status: Int, duration: Duration) {
        let methodIndex = Self.methodIndex(method)
        let routeIndex = route.ordinal
        if let statusIndex = Self.statusIndex(status) {
            let index = (routeIndex * Self.methods.count + methodIndex) * Self.statuses.count + statusIndex
            counts.withLock { $0.table[index] += 1 }
        } else {
            let key = RequestKey(route: route, method: Self.methods[methodIndex], status: status)
            counts.withLock { $0.others[key, default: 0] += 1 }
        }
        latency[routeIndex].record(duration)
    }

    /// Every count recorded so far, by route, method label and status (zero counts left out).
    var requests: [RequestKey: Int] {
        let snapshot = counts.withLock { $0 }
        var result = snapshot.others
        for (index, count) in snapshot.table.enumerated() where count > 0 {
            let status = Self.statuses[index % Self.statuses.count]
            let method = Self.methods[index / Self.statuses.count % Self.methods.count]
            let route = RouteName.allCases[index / (Self.statuses.count * Self.methods.count)]
            result[RequestKey(route: route, method: method, status: status), default: 0] += count
        }
        return result
    }

    func latency(of route: RouteName) -> HistogramSnapshot { latency[route.ordinal].snapshot }

    private static func methodIndex(_ method: String) -> Int {
        switch method {
        case "GET": 0
        case "HEAD": 1
        case "PUT": 2
        case "DELETE": 3
        case "POST": 4
        default: 5
        }
    }

    private static func statusIndex(_ status: Int) -> Int? {
        if status == 200 { return 0 }
        return statuses.firstIndex(of: status)
    }
}

extension RouteName {
    /// The route's position in `allCases`: an index for per-route tables.
    var ordinal: Int {
        switch self {
        case .health: 0
        case .role: 1
        case .writable: 2
        case .kv: 3
        case .checkpoint: 4
        case .metrics: 5
        case .replication: 6
        case .promote: 7
        case .other: 8
        case .kvList: 9
        case .txn: 10
        }
    }
}
