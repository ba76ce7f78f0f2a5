#if canImport(Glibc)
import Glibc
#endif
import Platform

/// Command-line flags in Go's `flag` package syntax, so the executables accept exactly what the Go
/// small-db's do: `-name value`, `-name=value`, `--name`, booleans as `-name` or `-name=false`,
/// durations like `500ms`, `5s`, `1m30s`. Parsing stops at the first non-flag argument or `--`.
///
/// Declare flags, then `parseOrExit` (or `parse`, to handle errors yourself): errors name the
/// flag and are printed with the usage, and the program exits with status 2, as Go's does.
public final class FlagSet {
    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case unknownFlag(String)
        case missingValue(String)
        case invalidValue(flag: String, value: String, expected: String)
        /// -h or -help was given: print the usage and exit 0.
        case helpRequested

        public var description: String {
            switch self {
            case .unknownFlag(let name): "flag provided but not defined: -\(name)"
            case .missingValue(let name): "flag needs an argument: -\(name)"
            case .invalidValue(let flag, let value, let expected):
                "invalid value \"\(value)\" for flag -\(flag): expected \(expected)"
            case .helpRequested: "help requested"
            }
        }
    }

    private enum Kind {
        case bool(Bool)
        case string(String)
        case int(Int)
        case duration(Duration)
    }

    private struct Flag {
        let name: String
        let usage: String
        let defaultKind: Kind
        var kind: Kind
        var isSet = false
    }

    public let programName: String
    private var flags: [String: Flag] = [:]
    private var order: [String] = []
    /// Arguments after the flags.
    public private(set) var remaining: [String] = []

    public init(programName: String) {
        self.programName = programName
    }

    public func bool(_ name: String, default value: Bool = false, usage: String) { add(name, usage, .bool(value)) }
    public func string(_ name: String, default value: String = "", usage: String) { add(name, usage, .string(value)) }
    public func int(_ name: String, default value: Int = 0, usage: String) { add(name, usage, .int(value)) }
    public func duration(_ name: String, default value: Duration, usage: String) { add(name, usage, .duration(value)) }

    private func add(_ name: String, _ usage: String, _ kind: Kind) {
        precondition(flags[name] == nil, "flag -\(name) declared twice")
        flags[name] = Flag(name: name, usage: usage, defaultKind: kind, kind: kind)
        order.append(name)
    }

    public func bool(_ name: String) -> Bool {
        guard case .bool(let value) = flags[name]?.kind else { preconditionFailure("no bool flag -\(name)") }
        return value
    }

    public func string(_ name: String) -> String {
        guard case .string(let value) = flags[name]?.kind else { preconditionFailure("no string flag -\(name)") }
        return value
    }

    public func int(_ name: String) -> Int {
        guard case .int(let value) = flags[name]?.kind else { preconditionFailure("no int flag -\(name)") }
        return value
    }

    public func duration(_ name: String) -> Duration {
        guard case .duration(let value) = flags[name]?.kind else { preconditionFailure("no duration flag -\(name)") }
        return value
    }

    /// Whether the flag was given on the command line.
    public func isSet(_ name: String) -> Bool { flags[name]?.isSet ?? false }

    /// Parses the process's arguments; on -h prints the usage to standard error and exits 0, on an
    /// error prints it with the usage to standard error and exits 2 (Go's `flag.ExitOnError`).
    public func parseOrExit(_ arguments: [String] = Array(CommandLine.arguments.dropFirst())) {
        do {
            try parse(arguments)
        } catch .helpRequested {
            let text = Array("\(usage)\n".utf8)  // on standard error, as Go's flag package prints it
            _ = text.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            exit(0)
        } catch {
            let text = Array("\(error)\n\(usage)\n".utf8)
            _ = text.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
            exit(2)
        }
    }

    /// Parses `arguments` (without the program name).
    public func parse(_ arguments: [String]) throws(ParseError) {
        var index = 0
        while index < arguments.count {
            let argument = arguments[index]
            guard argument.count > 1, argument.hasPrefix("-") else { break }
            if argument == "--" {
                index += 1
                break
            }
            var body = argument.dropFirst()
            if body.hasPrefix("-") { body = body.dropFirst() }
            let name: String
            var inlineValue: String?
            if let equals = body.firstIndex(of: "=") {
                name = String(body[..<equals])
                inlineValue = String(body[body.index(after: equals)...])
            } else {
                name = String(body)
            }
            index += 1
            guard var flag = flags[name] else {
                if name == "h" || name == "help" { throw .helpRequested }
                throw .unknownFlag(name)
            }
            if case .bool = flag.kind, inlineValue == nil {
                flag.kind = .bool(true)
            } else {
                let value: String
                if let inlineValue {
                    value = inlineValue
                } else {
                    guard index < arguments.count else { throw .missingValue(name) }
                    value = arguments[index]
                    index += 1
                }
                flag.kind = try FlagSet.convert(value, like: flag.kind, flag: name)
            }
            flag.isSet = true
            flags[name] = flag
        }
        remaining = Array(arguments[index...])
    }

    private static func convert(_ value: String, like kind: Kind, flag: String) throws(ParseError) -> Kind {
        switch kind {
        case .bool:
            switch value {
            case "1", "t", "T", "true", "TRUE", "True": return .bool(true)
            case "0", "f", "F", "false", "FALSE", "False": return .bool(false)
            default: throw .invalidValue(flag: flag, value: value, expected: "a boolean")
            }
        case .string:
            return .string(value)
        case .int:
            guard let number = Int(value) else { throw .invalidValue(flag: flag, value: value, expected: "an integer") }
            return .int(number)
        case .duration:
            guard let duration = parseGoDuration(value) else {
                throw .invalidValue(flag: flag, value: value, expected: "a duration such as 500ms, 5s or 1m30s")
            }
            return .duration(duration)
        }
    }

    /// The usage text: one entry per flag, in declaration order, with its default.
    public var usage: String {
        var lines = ["Usage of \(programName):"]
        for name in order {
            guard let flag = flags[name] else { continue }
            let (typeName, defaultText): (String, String?) = switch flag.defaultKind {
            case .bool(let value): ("", value ? "true" : nil)
            case .string(let value): (" string", value.isEmpty ? nil : "\"\(value)\"")
            case .int(let value): (" int", value == 0 ? nil : String(value))
            case .duration(let value): (" duration", formatGoDuration(value))
            }
            lines.append("  -\(name)\(typeName)")
            lines.append("    \t\(flag.usage)" + (defaultText.map { " (default \($0))" } ?? ""))
        }
        return lines.joined(separator: "\n")
    }
}

/// Parses a Go duration: a sequence of decimal numbers with units ns, us (µs), ms, s, m, h, e.g.
/// "300ms", "1.5h", "2h45m". "0" alone is zero. Negative durations, and those over Go's limit
/// (2562047h47m16.854775807s), are refused.
public func parseGoDuration(_ text: String) -> Duration? {
    if text == "0" { return .zero }
    let units: [(String, Double)] = [
        ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
    ]
    var rest = Substring(text)
    var seconds = 0.0
    guard !rest.isEmpty else { return nil }
    while !rest.isEmpty {
        let number = rest.prefix(while: { $0.isNumber || $0 == "." })
        guard !number.isEmpty, let value = Double(number) else { return nil }
        rest = rest.dropFirst(number.count)
        let unitText = rest.prefix(while: { !$0.isNumber && $0 != "." })
        guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
        rest = rest.dropFirst(unitText.count)
        seconds += value * unit.1
    }
    // Go's limit: a duration is an Int64 of nanoseconds (about 292 years); beyond it Go says
    // "invalid duration", and the conversion below would trap.
    let nanoseconds = (seconds * 1e9).rounded()
    guard nanoseconds < Double(Int64.max) else { return nil }
    return .nanoseconds(Int64(nanoseconds))
}

/// Formats a duration as Go prints it in usage text (e.g. "5s", "1m30s", "500ms").
public func formatGoDuration(_ duration: Duration) -> String {
    let nanoseconds = duration.nanoseconds
    let wholeSeconds = nanoseconds / 1_000_000_000
    if nanoseconds == 0 { return "0s" }
    if nanoseconds < 1_000_000_000 {
        if nanoseconds % 1_000_000 == 0 { return "\(nanoseconds / 1_000_000)ms" }
        if nanoseconds % 1_000 == 0 { return "\(nanoseconds / 1_000)µs" }
        return "\(nanoseconds)ns"
    }
    var remaining = wholeSeconds
    var text = ""
    if remaining >= 3600 {
        text += "\(remaining / 3600)h"
        remaining %= 3600
    }
    if remaining >= 60 || !text.isEmpty {
        text += "\(remaining / 60)m"
        remaining %= 60
    }
    let fraction = nanoseconds % 1_000_000_000
    if fraction == 0 {
        text += "\(remaining)s"
    } else {
        var digits = String(fraction)
        digits = String(repeating: "0", count: 9 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        text += "\(remaining).\(digits)s"
    }
    return text
}
