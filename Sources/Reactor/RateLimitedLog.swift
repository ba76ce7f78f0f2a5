/// A log of failures that writes at most one line per second: a failing disk or a flood of
/// refused connections must not flood the operator's log. The line after a quiet second says
/// how many were folded into it. Confined to one thread (an event loop's).
final class RateLimitedLog {
    private let sink: (@Sendable (String) -> Void)?
    private var lastLine: ContinuousClock.Instant?
    private var suppressed = 0

    init(_ sink: (@Sendable (String) -> Void)?) { self.sink = sink }

    func log(_ message: String) {
        guard let sink else { return }
        let now = ContinuousClock.now
        if let lastLine, now - lastLine < .seconds(1) {
            suppressed += 1
            return
        }
        let folded = suppressed > 0 ? " (and \(suppressed) more since the last such line)" : ""
        sink(message + folded)
        lastLine = now
        suppressed = 0
    }
}
