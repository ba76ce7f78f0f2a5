import Platform
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The disk's synced-append rate: 4 KiB appends, each followed by fdatasync, to a growing file
/// (what `fio --rw=write --bs=4k --fdatasync=1` measures). No single writer that waits for its
/// own sync can beat it; it is the yardstick for the 1-writer put rate, measured in the same run.
enum DiskBench {
    static func run(_ context: BenchContext) throws -> [BenchResult] {
        let rate = measure(directory: context.directory, duration: context.duration, blockSize: 4096)
        let small = measure(directory: context.directory, duration: context.duration, blockSize: 128)
        return [
            BenchResult(name: "disk fdatasync 4 KiB appends", value: rate, unit: "syncs/s", note: "the fio anchor's pattern"),
            BenchResult(name: "disk fdatasync 128 B appends", value: small, unit: "syncs/s", note: "one 100-byte put's record size"),
        ]
    }

    static func measure(directory: String, duration: Duration, blockSize: Int) -> Double {
        let path = directory + "/disk-\(blockSize)"
        let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0o644)
        precondition(descriptor >= 0, "cannot create \(path)")
        defer {
            close(descriptor)
            unlink(path)
        }
        let block = [UInt8](repeating: 0x5A, count: blockSize)
        let clock = ContinuousClock()
        let start = clock.now
        var count = 0
        while clock.now - start < duration {
            _ = block.withUnsafeBytes { write(descriptor, $0.baseAddress, blockSize) }
            fdatasync(descriptor)
            count += 1
        }
        return Double(count) / (clock.now - start).secondsValue
    }
}
