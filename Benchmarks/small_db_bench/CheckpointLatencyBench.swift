import Foundation
import Synchronization
import StorageEngine

/// Write latency while a checkpoint of `keys` keys runs: 16 writers put continuously; we record
/// every put's latency from just before the checkpoint starts until it is durable. The Go version
/// stops every writer for the whole checkpoint; ours pauses them only for the segment switch.
enum CheckpointLatencyBench {
    static func run(_ context: BenchContext) async throws -> [BenchResult] {
        let directory = context.freshDirectory("checkpoint")
        var options = DatabaseOptions()
        options.checkpoints.enabled = false
        let db = try Database.open(directory: directory, create: true, options: options)
        try await preload(db, count: context.keys)
        _ = try await db.checkpoint()  // the first checkpoint also pays for page-cache warm-up

        let writers = 16
        let stop = StopFlag()
        let clock = ContinuousClock()
        let keyCount = context.keys
        let latencies = Task { () async throws -> [Duration] in try await withThrowingTaskGroup(of: [Duration].self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var samples: [Duration] = []
                    var count = 0
                    while !stop.isSet {
                        let key = benchKey((writer * 65_537 + count * 31) % keyCount)
                        let started = clock.now
                        try await db.put(key, benchValue(count))
                        samples.append(clock.now - started)
                        count += 1
                    }
                    return samples
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        } }
        try await Task.sleep(for: .milliseconds(200))  // let the writers reach a steady state
        let checkpoint = try await db.checkpoint()
        stop.set()
        let sorted = try await latencies.value.sorted()
        db.close()
        try? FileManager.default.removeItem(atPath: directory)
        let keys = "\(context.keys) keys"
        return [
            BenchResult(name: "checkpoint duration (\(keys))", value: checkpoint.duration.milliseconds, unit: "ms"),
            BenchResult(name: "put p50 during checkpoint", value: percentile(sorted, 0.50).milliseconds, unit: "ms", note: "16 writers, \(sorted.count) puts"),
            BenchResult(name: "put p99 during checkpoint", value: percentile(sorted, 0.99).milliseconds, unit: "ms"),
            BenchResult(name: "put worst during checkpoint", value: (sorted.last ?? .zero).milliseconds, unit: "ms"),
        ]
    }
}

/// A flag one task sets and others poll.
final class StopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .relaxed) }
    func set() { value.store(true, ordering: .relaxed) }
}
