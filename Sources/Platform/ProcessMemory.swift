#if canImport(Glibc)
import Glibc
#endif

/// The resident memory of this process (VmRSS in /proc/self/status), in bytes; 0 if unreadable.
/// Reported by the server's /metrics and measured by the benchmarks: an in-memory store's
/// footprint is the figure its operators watch.
public func residentMemoryBytes() -> Int {
    statusField("VmRSS:")
}

/// The peak resident memory of this process so far (VmHWM in /proc/self/status), in bytes; 0 if
/// unreadable. The benchmarks compare it with `residentMemoryBytes()` after an open or a resync:
/// what a step costs beyond the state it leaves.
public func peakResidentMemoryBytes() -> Int {
    statusField("VmHWM:")
}

/// A "Name:   N kB" line of /proc/self/status, in bytes.
private func statusField(_ name: String) -> Int {
    guard let file = fopen("/proc/self/status", "r") else { return 0 }
    defer { fclose(file) }
    var line = [CChar](repeating: 0, count: 512)
    while fgets(&line, Int32(line.count), file) != nil {
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if text.hasPrefix(name) {
            return (Int(text.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
        }
    }
    return 0
}
