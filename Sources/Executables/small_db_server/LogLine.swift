import StorageEngine
#if canImport(Glibc)
import Glibc
#endif

/// Log lines on standard error: "2026-11-25T15:30:00.123Z INFO message". One write(2) per line,
/// so lines from different threads never interleave.
enum LogLine {
    static func write(_ level: LogLevel, _ message: String) {
        let line = Array("\(timestamp()) \(level.rawValue.uppercased()) \(message)\n".utf8)
        _ = line.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, $0.count) }
    }

    /// UTC, millisecond precision, RFC 3339.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T"
            + "\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2)).\(pad(Int32(now.tv_nsec / 1_000_000), 3))Z"
    }
}
