import Foundation
import Synchronization
import Platform
import StorageEngine

/// Write latency while a checkpoint of `keys` keys runs: 16 writers put continuously, and every
/// put's start time and latency is recorded. Two windows are compared: one of 500 ms with no
/// checkpoint (the baseline: what this machine's disk and scheduler do anyway), then the
/// checkpoint from its start until it is durable. The Go version stops every writer for the whole
/// checkpoint; ours pauses them only for the segment switch.
enum CheckpointLatencyBench {
    struct Sample: Sendable {
        let start: ContinuousClock.Instant
        let latency: Duration
    }

    static func run(_ context: BenchContext) async throws -> [BenchResult] {
        let directory = context.freshDirectory("checkpoint")
        let db = try openBenchDatabase(directory)
        try await preload(db, count: context.keys)
        _ = try await db.checkpoint()  // the first checkpoint also pays for page-cache warm-up

        let writers = 16
        let stop = StopFlag()
        let clock = ContinuousClock()
        let keyCount = context.keys
        let recording = Task { () async throws -> [Sample] in
            try await withThrowingTaskGroup(of: [Sample].self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var samples: [Sample] = []
                        var count = 0
                        while !stop.isSet {
                            let key = benchKey((writer * 65_537 + count * 31) % keyCount)
                            let started = clock.now
                            try await db.put(key, benchValue(count))
                            samples.append(Sample(start: started, latency: clock.now - started))
                            count += 1
                        }
                        return samples
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
        }
        try await Task.sleep(for: .milliseconds(200))  // let the writers reach a steady state
        let baselineStart = clock.now
        try await Task.sleep(for: .milliseconds(500))
        let checkpointStart = clock.now
        let checkpoint = try await db.checkpoint()
        let checkpointEnd = clock.now
        stop.set()
        let samples = try await recording.value
        db.close()
        try? FileManager.default.removeItem(atPath: directory)

        let baseline = samples.filter { $0.start >= baselineStart && $0.start < checkpointStart }.map(\.latency).sorted()
        let during = samples.filter { $0.start >= checkpointStart && $0.start < checkpointEnd }.map(\.latency).sorted()
        return [
            BenchResult(name: "checkpoint duration (\(context.keys) keys)", value: checkpoint.duration.millisecondsValue, unit: "ms"),
            BenchResult(name: "put p50 during checkpoint", value: percentile(during, 0.50).millisecondsValue, unit: "ms", note: "16 writers, \(during.count) puts"),
            BenchResult(name: "put p99 during checkpoint", value: percentile(during, 0.99).millisecondsValue, unit: "ms"),
            BenchResult(name: "put worst during checkpoint", value: (during.last ?? .zero).millisecondsValue, unit: "ms"),
            BenchResult(name: "put p99 without checkpoint", value: percentile(baseline, 0.99).millisecondsValue, unit: "ms", note: "the 500 ms before, \(baseline.count) puts"),
            BenchResult(name: "put worst without checkpoint", value: (baseline.last ?? .zero).millisecondsValue, unit: "ms"),
        ]
    }
}

/// A flag one task sets and others poll.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}
