/// What opening the database found and did: the recovery summary a server logs at start.
public struct RecoveryReport: Sendable, Equatable {
    /// A version switch interrupted after its commit point, finished on open (its generation).
    public var finishedSwitch: UInt64?
    /// A version switch interrupted before its commit point, discarded on open (its generation).
    public var discardedSwitch: UInt64?
    /// A committed switch whose new checkpoint was found damaged; the old generation, still whole,
    /// was recovered instead. The file and what is wrong with it.
    public var damagedCheckpoint: String?
    /// The directory was empty and was initialised.
    public var initialized = false
    /// The checkpoint loaded, if any, and its entries.
    public var checkpointGeneration: UInt64?
    public var checkpointEntries = 0
    /// The log segments replayed, in order, and the records in them.
    public var segmentsReplayed: [UInt64] = []
    public var recordsReplayed = 0
    /// A torn final record, cut off: the file, the offset it started at and the bytes dropped.
    public var tornTail: LogDamage?
    /// Corruption in the middle of the log, truncated because the options allowed it.
    public var truncatedCorruption: LogDamage?
    /// Log segments removed because they followed a truncated corruption.
    public var droppedSegments: [UInt64] = []
    /// Keys held after recovery.
    public var keys = 0
    public var duration: Duration = .zero

    /// Damage found in a log segment.
    public struct LogDamage: Sendable, Equatable {
        public var file: String
        public var offset: Int
        public var droppedBytes: Int
        public var reason: String
    }

    /// One line for the log.
    public var summary: String {
        var parts: [String] = []
        if initialized { parts.append("initialised an empty directory") }
        if let finishedSwitch { parts.append("finished an interrupted checkpoint switch to generation \(finishedSwitch)") }
        if let damagedCheckpoint {
            parts.append("IGNORED damaged checkpoint \(damagedCheckpoint); recovered from the previous generation")
        } else if let discardedSwitch {
            parts.append("discarded an uncommitted checkpoint switch to generation \(discardedSwitch)")
        }
        if let checkpointGeneration {
            parts.append("loaded checkpoint.\(checkpointGeneration) (\(checkpointEntries) entries)")
        } else if !initialized {
            parts.append("no checkpoint")
        }
        let segments = segmentsReplayed.map { "logfile.\($0)" }.joined(separator: ", ")
        parts.append("replayed \(recordsReplayed) records from \(segments.isEmpty ? "no log" : segments)")
        if let tornTail {
            parts.append("cut a torn tail of \(tornTail.droppedBytes) bytes from \(tornTail.file) at offset \(tornTail.offset)")
        }
        if let truncatedCorruption {
            parts.append("TRUNCATED corrupt log \(truncatedCorruption.file) at offset \(truncatedCorruption.offset) "
                + "(\(truncatedCorruption.reason)), dropping \(truncatedCorruption.droppedBytes) bytes")
        }
        if !droppedSegments.isEmpty {
            parts.append("dropped later segments \(droppedSegments.map { "logfile.\($0)" }.joined(separator: ", "))")
        }
        parts.append("\(keys) keys in \(duration)")
        return parts.joined(separator: "; ")
    }
}
