import Foundation
import Platform
import StorageEngine

/// Reads of existing keys from 1 and 2 threads (this machine has 2 cores), 100k keys loaded.
enum GetBench {
    static func run(_ context: BenchContext) async throws -> [BenchResult] {
        let directory = context.freshDirectory("gets")
        let db = try openBenchDatabase(directory)
        let keyCount = 100_000
        try await preload(db, count: keyCount)
        var results: [BenchResult] = []
        for threads in [1, 2] {
            let rate = measure(db, threads: threads, keyCount: keyCount, duration: context.duration)
            results.append(BenchResult(name: "gets, \(threads) thread\(threads == 1 ? "" : "s")", value: rate, unit: "gets/s"))
        }
        db.close()
        return results
    }

    static func measure(_ db: Database, threads: Int, keyCount: Int, duration: Duration) -> Double {
        let keys = (0..<keyCount).map(benchKey)
        let clock = ContinuousClock()
        let start = clock.now
        let counts = UnsafeMutableBufferPointer<Int>.allocate(capacity: threads)
        defer { counts.deallocate() }
        nonisolated(unsafe) let slots = counts  // each thread writes only its own slot
        DispatchQueue.concurrentPerform(iterations: threads) { thread in
            var count = 0
            var index = thread * 7919
            while true {
                for _ in 0..<1000 {
                    _ = try? db.get(keys[index % keyCount])
                    index &+= 104_729
                }
                count += 1000
                if clock.now - start >= duration { break }
            }
            slots[thread] = count
        }
        return Double(counts.reduce(0, +)) / (clock.now - start).secondsValue
    }
}
