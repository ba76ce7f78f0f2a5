import Platform
import StorageEngine
import Synchronization

/// One loop's request counters and latency histograms.
final class LoopMetrics: Sendable {
    struct RequestKey: Hashable {
        let route: RouteName
        let method: String
        let status: Int
    }

    let requests = Lock<[RequestKey: Int]>([:])
    let latency: [RouteName: Histogram] = Dictionary(
        uniqueKeysWithValues: RouteName.allCases.map { ($0, Histogram(bounds: Histogram.latencyBounds, sumScale: 1e9)) })

    func record(route: RouteName, method: String, status: Int, duration: Duration) {
        // Methods outside the API are folded into one label value, so a client cannot grow the
        // series without bound.
        let label = switch method {
        case "GET", "HEAD", "PUT", "DELETE", "POST": method
        default: "OTHER"
        }
        requests.withLock { $0[RequestKey(route: route, method: label, status: status), default: 0] += 1 }
        latency[route]?.record(duration)
    }
}
