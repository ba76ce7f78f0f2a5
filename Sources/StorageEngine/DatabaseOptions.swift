import WireProtocol

/// How a database is opened and run. The defaults match the Go small-db where it has one.
public struct DatabaseOptions: Sendable {
    /// Size limits. A write over a limit is refused with a typed error and writes nothing.
    public struct Limits: Sendable, Equatable {
        /// Largest key, in bytes. Default 4 KiB: keys travel in URLs, and a key is held twice in
        /// memory while a shard is copied for a checkpoint.
        public var maxKeySize: Int = 4 << 10
        /// Largest value, in bytes. Default 16 MiB.
        public var maxValueSize: Int = 16 << 20
        /// Largest encoded batch record. Fixed by the format: the WAL reader refuses payloads over
        /// 64 MiB (the Go reader's limit too), so nothing larger is ever written.
        public var maxBatchSize: Int = WALFormat.maxPayloadSize

        public init() {}
    }

    /// When checkpoints run by themselves (the Go version's triggers and defaults).
    public struct CheckpointPolicy: Sendable, Equatable {
        /// Run background checkpoints at all.
        public var enabled: Bool = true
        /// Checkpoint when the last one is older than this. Default 60 s.
        public var interval: Duration = .seconds(60)
        /// Checkpoint when the log since the last checkpoint reaches this many bytes. Default 64 MiB.
        public var logBytes: Int = 64 << 20
        /// Checkpoint after this many committed updates; 0 = off (the default).
        public var updates: Int = 0

        public init() {}
    }

    /// What to do with a WAL record that is damaged in the middle of the log.
    public enum CorruptLogPolicy: Sendable, Equatable {
        /// Refuse to open, naming the file and offset (the default: never guess with data).
        case refuse
        /// Cut the log at the damaged record, dropping it and everything after it; the recovery
        /// report says what was dropped.
        case truncate
    }

    public var limits = Limits()
    public var checkpoints = CheckpointPolicy()
    public var corruptLog: CorruptLogPolicy = .refuse
    /// Receives one line per notable event (recovery, checkpoints, failures). Default: none.
    public var log: (@Sendable (LogLevel, String) -> Void)?

    public init() {}
}

/// The level of a line given to `DatabaseOptions.log`.
public enum LogLevel: String, Sendable {
    case info, warning, error
}
