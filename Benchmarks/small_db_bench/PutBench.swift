import Foundation
import Synchronization
import Platform
import StorageEngine

/// Durable puts: W concurrent writers, each awaiting its own put before the next, 100-byte values.
/// Every put is acknowledged only after fdatasync, so this measures group commit.
enum PutBench {
    static func run(_ context: BenchContext) async throws -> [BenchResult] {
        var results: [BenchResult] = []
        for writers in context.writerCounts {
            let directory = context.freshDirectory("puts-\(writers)")
            let db = try openBenchDatabase(directory)
            let rate = try await measure(db, writers: writers, duration: context.duration)
            let stats = db.stats
            db.close()
            try? FileManager.default.removeItem(atPath: directory)
            results.append(BenchResult(
                name: "durable puts, \(writers) writer\(writers == 1 ? "" : "s")", value: rate, unit: "puts/s",
                note: String(format: "%.1f puts per sync", Double(stats.puts) / Double(max(1, stats.syncs)))))
        }
        return results
    }

    static func measure(_ db: Database, writers: Int, duration: Duration) async throws -> Double {
        let clock = ContinuousClock()
        let deadline = clock.now + duration
        let start = clock.now
        let total = try await withThrowingTaskGroup(of: Int.self) { group in
            for writer in 0..<writers {
                group.addTask {
                    var count = 0
                    let value = benchValue(writer)
                    while clock.now < deadline {
                        try await db.put(benchKey(writer * 1_000_000 + count % 1_000_000), value)
                        count += 1
                    }
                    return count
                }
            }
            return try await group.reduce(0, +)
        }
        return Double(total) / (clock.now - start).secondsValue
    }
}

/// One writer against the disk's own limit, interleaved so both see the same disk: five rounds of
/// (synced 128-byte appends for a second, then durable puts by one writer for a second), and the
/// median of the five ratios. A lone writer waits for its own sync, so 1.0 is the ceiling.
enum LoneWriterBench {
    static func run(_ context: BenchContext) async throws -> [BenchResult] {
        let directory = context.freshDirectory("lone-writer")
        let db = try openBenchDatabase(directory)
        var disk: [Double] = []
        var puts: [Double] = []
        var ratios: [Double] = []
        for _ in 0..<5 {
            let diskRate = DiskBench.measure(directory: context.directory, duration: .seconds(1), blockSize: 128)
            let putRate = try await PutBench.measure(db, writers: 1, duration: .seconds(1))
            disk.append(diskRate)
            puts.append(putRate)
            ratios.append(putRate / diskRate)
        }
        db.close()
        try? FileManager.default.removeItem(atPath: directory)
        let median = { (values: [Double]) in values.sorted()[values.count / 2] }
        return [
            BenchResult(name: "lone writer: disk 128 B synced appends", value: median(disk), unit: "syncs/s", note: "median of 5 × 1 s"),
            BenchResult(name: "lone writer: durable puts", value: median(puts), unit: "puts/s", note: "median of 5 × 1 s, interleaved"),
            BenchResult(name: "lone writer: puts / disk syncs", value: median(ratios), unit: "ratio", note: "median of the 5 paired ratios"),
        ]
    }
}
