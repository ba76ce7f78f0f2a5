import Synchronization

/// A histogram with fixed bucket bounds, recorded without locks from any thread: the engine's
/// batch-size and sync-latency distributions, and the HTTP front's request latencies. Shaped for
/// Prometheus (cumulative `le` buckets, a sum and a count).
public final class Histogram: Sendable {
    /// Upper bounds of the buckets, ascending; a value above the last falls in the implicit +Inf.
    public let bounds: [Double]
    private let counts: [AtomicCount]
    /// The sum, in units of 1/`sumScale` (atomics hold integers).
    private let scaledSum = Atomic<Int>(0)
    private let sumScale: Double

    /// `sumScale` fixes the precision of the sum: 1e9 for seconds (nanosecond resolution), 1 for counts.
    public init(bounds: [Double], sumScale: Double = 1) {
        precondition(zip(bounds, bounds.dropFirst()).allSatisfy { $0 < $1 }, "bounds must ascend")
        self.bounds = bounds
        self.counts = (0...bounds.count).map { _ in AtomicCount() }
        self.sumScale = sumScale
    }

    public func record(_ value: Double) {
        var index = 0
        while index < bounds.count && value > bounds[index] { index += 1 }
        counts[index].value.add(1, ordering: .relaxed)
        scaledSum.add(Int((value * sumScale).rounded()), ordering: .relaxed)
    }

    public func record(_ duration: Duration) {
        record(duration.secondsValue)
    }

    /// The counts so far: per bucket (not cumulative; the last is +Inf), the sum and the total.
    public var snapshot: HistogramSnapshot {
        let perBucket = counts.map { $0.value.load(ordering: .relaxed) }
        return HistogramSnapshot(
            bounds: bounds, counts: perBucket, sum: Double(scaledSum.load(ordering: .relaxed)) / sumScale,
            count: perBucket.reduce(0, +))
    }

    /// Bounds for latencies in seconds: 50 µs to 10 s.
    public static let latencyBounds: [Double] = [
        0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
    ]
}

/// A histogram's counts at one moment.
public struct HistogramSnapshot: Sendable, Equatable {
    public var bounds: [Double]
    /// Per bucket, not cumulative; `counts.count == bounds.count + 1` (the last is +Inf).
    public var counts: [Int]
    public var sum: Double
    public var count: Int
}

/// One atomic counter in a heap cell (an `Atomic` cannot be an array element: it is not copyable).
final class AtomicCount: Sendable {
    let value = Atomic<Int>(0)
}
