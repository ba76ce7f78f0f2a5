#if canImport(Glibc)
import Glibc
#endif
import Platform
public import StorageEngine
import Synchronization

/// An in-memory simulated disk that is both a `LogStore` and a `SnapshotStore`, for crash and
/// fault tests (after LevelDB's fault_injection_test). It keeps `FileStore`'s file names and
/// follows its system calls step by step, and it can fail any of them with EIO or cut the power.
///
/// What it simulates, faithful to a POSIX file system under `FileStore`'s call pattern:
/// - **File data.** Each file has its current content (what reads see) and its durable content
///   (what survives power loss). `LogSegmentWriter.sync` (fdatasync) makes every byte appended to
///   that file durable; appends alone never do. `writeCheckpoint`, `writeVersion` and
///   `writeNewVersion` write a temporary, sync it, then rename it, as `FileStore` does;
///   `truncateLog` is ftruncate + fsync. `close()` makes nothing durable.
/// - **Directory entries.** The name → file map has a durable copy. Every call that `FileStore`
///   follows with an fsync of the directory (`createLog`, `removeLog`, `removeCheckpoint`, the
///   renames in `writeCheckpoint`/`writeVersion`/`writeNewVersion`/`promoteNewVersion`,
///   `removeVersion`, `removeNewVersion`, `removeTemporaries`) copies the whole current directory to
///   the durable one, as an fsync of a real directory persists every entry in it. Temporaries are
///   created (O_CREAT) without a directory sync, so they are durable only if some later directory
///   sync (any thread's) happens before the power loss. Files are inodes: a rename moves the file,
///   an unlinked file stays readable and writable through handles already open on it.
/// - **Power loss** (`powerLoss(_:)` and its conveniences). Atomically: the directory reverts to its
///   durable entries, each surviving file reverts to its durable content, every open writer and
///   every store call in progress fails from then on, and the store stays *off* (every call throws
///   EIO) until `powerOn()`. Optionally the unsynced tail of a surviving file partly survives: a
///   chosen prefix of the unsynced bytes is kept (a torn write), and one kept byte may come back
///   as garbage (inverted).
/// - **Injected faults** (`inject(_:skip:times:effect:)`): the chosen operation throws
///   `DatabaseError.io(operation:path:errno: EIO)`. Effects: fail cleanly; fail an append after a
///   prefix of its bytes landed (unsynced); make the change but fail the sync that would make it
///   durable (`failAfterApplying`, e.g. a rename done whose directory fsync failed); or cut the
///   power just as the operation starts (`powerLoss`, `tornPowerLoss`), so that a test can crash
///   at an exact step. `operationCount(_:)` tells how many operations of a kind a run performs,
///   so a test can measure a run once and then crash it at each of its steps.
/// - **Failure clean-up as `FileStore` does it**: a failed checkpoint or marker write unlinks its
///   temporary without a directory sync; a failed createLog leaves the file it created.
///
/// What it does not simulate:
/// - Finer-grained data loss: only a prefix of each file's unsynced bytes can survive, plus at most
///   one garbled byte. Real disks may also keep later pages without earlier ones, expose zeros
///   after a size update (some file systems), or lose durable data (media failure: use
///   `corrupt(file:offset:)`).
/// - Linux's behaviour after a failed fsync (dirty pages may be marked clean and silently dropped):
///   here, bytes whose sync failed stay in the current content and a later successful sync makes
///   them durable. The engine refuses every write after a failed sync, so this does not matter to it.
/// - Metadata ordering beyond the directory: a file's size is durable exactly with its data.
/// - The intermediate fdatasync `FileStore` issues every 8 MiB of a checkpoint (the temporary is
///   never a commit point, so it changes nothing that survives).
/// - The LOCK file: nothing stops two `Database`s from opening one store. After `powerLoss`, close
///   the old `Database` *before* `powerOn()`: a call the dead "process" starts after power is back
///   cannot be told apart from a call of the new one (calls in progress and open writers are fenced).
/// - Timing, disk full (ENOSPC, except as an injected EIO), permissions, and the 64 MiB record limit.
///
/// Thread-safe and `Sendable` without `@unchecked`: all state is behind one `Lock`, and the writer
/// objects hold only constants. The inspection and damage helpers (`fileNames()`, `contents(of:)`,
/// `corrupt(file:offset:mask:)`…) are the test's hands on the platters: they work with the power
/// off too. File names are the store's paths ("logfile.3"), so errors and recovery reports name
/// them the same way.
public final class FaultInjectingStore: LogStore, SnapshotStore {
    /// The operations a fault can be injected into. Each call counts as one operation of its kind
    /// (see `operationCount(_:)`) when the store is on and the call gets as far as the operation.
    public enum Operation: String, Sendable, Hashable, CaseIterable, CustomStringConvertible {
        /// `LogSegmentWriter.append` (write).
        case logAppend
        /// `LogSegmentWriter.sync` (fdatasync).
        case logSync
        /// `truncateLog` (ftruncate + fsync).
        case logTruncate
        /// Each piece `writeCheckpoint` writes to checkpoint.N.tmp, then (one more operation) the
        /// fsync of that temporary. The rename after it is a `.directory` operation.
        case checkpointWrite
        /// Writing and syncing version.tmp, newVersion.tmp or a metadata file's temporary
        /// (`writeVersion`, `writeNewVersion`, `writeMetadata`). The rename after it is a
        /// `.directory` operation.
        case markerWrite
        /// A call that changes the directory and that `FileStore` follows with a directory fsync:
        /// `createLog`, the renames (in `writeCheckpoint`, `writeVersion`, `writeNewVersion`,
        /// `promoteNewVersion`), and the removals of files that exist (`removeLog`,
        /// `removeCheckpoint`, `removeVersion`, `removeNewVersion`, and `removeTemporaries` when it
        /// finds something, as one operation). Removing a missing file is no operation.
        case directory
        /// Reading a file: `readLog`, `readCheckpoint`, `readVersion`, `readNewVersion` (when the file
        /// exists).
        case read

        public var description: String { rawValue }
    }

    /// What an injected fault does. Every effect makes the call throw `.io(…, errno: EIO)`.
    public enum FaultEffect: Sendable, Hashable {
        /// Nothing changes.
        case fail
        /// For `.logAppend` and `.checkpointWrite`: the first `bytes` bytes of the write land
        /// (unsynced), the rest do not. Other operations: as `.fail`.
        case partialWrite(bytes: Int)
        /// The change is made in the current state but the sync that would make it durable fails:
        /// a directory change is visible but not durable (its directory fsync failed); an append
        /// lands entirely, unsynced; a truncation is visible but not durable; a marker or
        /// checkpoint temporary is written, then removed, as `FileStore` does when its fsync fails.
        /// For `.logSync` and `.read`: as `.fail`.
        case failAfterApplying
        /// The power is cut as the operation starts (as `powerLoss()`: every unsynced byte is lost):
        /// nothing of the operation happens and the store is off until `powerOn()`.
        case powerLoss
        /// As `.powerLoss`, but unsynced tails are torn as `powerLoss(seed:garble:)` tears them.
        case tornPowerLoss(seed: UInt64, garble: Bool)
        /// For `.logSync`: the sync succeeds, after this long (a slow or overloaded disk). Other
        /// operations: as `.fail`.
        case delay(Duration)
        /// For `.logSync`: the sync waits until the barrier is released, then succeeds (a test
        /// holds a round at its sync and looks at what is visible meanwhile). Other operations:
        /// as `.fail`.
        case hold(SyncBarrier)
    }

    /// How much of a file's unsynced tail survives a power loss.
    public struct TornWrite: Sendable, Equatable {
        /// How many of the unsynced bytes survive, from the first one (clamped to 0…unsynced).
        public var keep: Int
        /// If set (and `keep > 0`), the kept unsynced byte at this index (clamped to 0..<keep)
        /// comes back inverted: garbage.
        public var garbage: Int?

        public init(keep: Int, garbage: Int? = nil) {
            self.keep = keep
            self.garbage = garbage
        }

        /// Every unsynced byte is lost.
        public static let dropAll = TornWrite(keep: 0)
        /// Every unsynced byte survives (as if the page cache had been flushed just in time).
        public static let keepAll = TornWrite(keep: .max)
    }

    /// What a power loss did.
    public struct PowerLossReport: Sendable, Equatable {
        /// A surviving file that had unsynced bytes, and what became of them.
        public struct TornFile: Sendable, Equatable {
            public var name: String
            /// Durable bytes: the file's length if nothing unsynced had survived.
            public var syncedBytes: Int
            public var unsyncedBytes: Int
            public var keptBytes: Int
            /// The offset in the file of the byte that came back as garbage, if any.
            public var garbageOffset: Int?
        }

        /// Surviving files that had unsynced bytes, by name.
        public var tornFiles: [TornFile] = []
        /// Names whose current entry did not survive: created, or replaced by a rename, since the
        /// last directory sync.
        public var lostEntries: [String] = []
        /// Names that came back: removed, or renamed away, since the last directory sync.
        public var revivedEntries: [String] = []
    }

    /// Counters of what the store did (successful operations only).
    public struct Statistics: Sendable, Equatable {
        public var appends = 0
        public var appendedBytes = 0
        /// Successful `LogSegmentWriter.sync` calls.
        public var logSyncs = 0
        /// Successful fsyncs of checkpoint and marker temporaries and of truncated logs.
        public var fileSyncs = 0
        /// Directory fsyncs (one per durable directory change).
        public var directorySyncs = 0
        /// Faults injected so far (each failed call counts once).
        public var injectedFaults = 0
        public var powerLosses = 0
        /// The most bytes one read returned (`readLog`, `readCheckpoint`, a `CheckpointFile`'s read):
        /// how a test checks that recovery reads in bounded chunks.
        public var largestRead = 0
    }

    private let disk: Lock<Disk>

    /// An empty disk, or one holding `files` (durable, with durable entries): for example a data
    /// directory copied from a fixture.
    public init(files: [String: [UInt8]] = [:]) {
        var disk = Disk()
        for (name, content) in files.sorted(by: { $0.key < $1.key }) {
            disk.directory[name] = disk.newFile(File(durableContent: content))
        }
        disk.durableDirectory = disk.directory
        self.disk = Lock(disk)
    }

    // MARK: Power and faults

    /// Cuts the power. `tear` is called, in name order, for each file that survives with unsynced
    /// bytes (its name and how many bytes are unsynced) and says how many of them survive; it runs
    /// under the store's lock and must not call the store. Then the store is off until `powerOn()`.
    /// With the power already off, nothing happens (and the report is empty).
    @discardableResult
    public func powerLoss(_ tear: (_ file: String, _ unsyncedBytes: Int) -> TornWrite) -> PowerLossReport {
        disk.withLock { $0.cutPower(tear) }
    }

    /// Cuts the power; every unsynced byte is lost.
    @discardableResult
    public func powerLoss() -> PowerLossReport {
        powerLoss { _, _ in .dropAll }
    }

    /// Cuts the power; `keepUnsynced` says how many of a file's unsynced bytes survive (0: none).
    @discardableResult
    public func powerLoss(keepUnsynced: (_ file: String, _ unsyncedBytes: Int) -> Int) -> PowerLossReport {
        powerLoss { file, count in TornWrite(keep: keepUnsynced(file, count)) }
    }

    /// Cuts the power, tearing unsynced tails at random but reproducibly from `seed`: for each file
    /// with unsynced bytes, a quarter of the time all are lost, a quarter of the time all survive,
    /// otherwise a random prefix survives. With `garble`, a third of the files with surviving
    /// unsynced bytes also get one of those bytes inverted.
    @discardableResult
    public func powerLoss(seed: UInt64, garble: Bool = false) -> PowerLossReport {
        disk.withLock { $0.cutPower(seed: seed, garble: garble) }
    }

    /// What the last power loss did (whether `powerLoss` or an injected `.powerLoss` fault cut it).
    public var lastPowerLoss: PowerLossReport? { disk.withLock { $0.lastPowerLoss } }

    /// Restores power after `powerLoss`. Writers opened before the power loss stay dead; new ones
    /// (and every store call) work again. Close the old `Database` first (see the type's notes).
    public func powerOn() {
        disk.withLock { $0.isPoweredOn = true }
    }

    /// False between `powerLoss` and `powerOn`.
    public var isPoweredOn: Bool { disk.withLock { $0.isPoweredOn } }

    /// Arms a fault: the next `skip` operations of kind `operation` succeed (they are counted from
    /// now), then the following `times` ones get `effect` (pass `.max` for every one). Several
    /// armed faults each count every matching operation; one operation fires at most one fault.
    public func inject(_ operation: Operation, skip: Int = 0, times: Int = 1, effect: FaultEffect = .fail) {
        precondition(skip >= 0 && times >= 0, "skip and times must not be negative")
        disk.withLock { $0.faults.append(ArmedFault(operation: operation, skip: skip, remaining: times, effect: effect)) }
    }

    /// Disarms every fault not yet fired.
    public func clearFaults() {
        disk.withLock { $0.faults.removeAll() }
    }

    /// Faults armed and not yet used up.
    public var pendingFaultCount: Int { disk.withLock { $0.faults.count } }

    /// How many operations of kind `operation` were attempted (with the store on), failed or not.
    public func operationCount(_ operation: Operation) -> Int {
        disk.withLock { $0.operationCounts[operation, default: 0] }
    }

    public var statistics: Statistics { disk.withLock { $0.statistics } }

    // MARK: Inspection

    /// The names in the directory as a reader sees it now, sorted.
    public func fileNames() -> [String] {
        disk.withLock { $0.directory.keys.sorted() }
    }

    /// The names that would survive a power loss now, sorted.
    public func durableFileNames() -> [String] {
        disk.withLock { $0.durableDirectory.keys.sorted() }
    }

    /// The current bytes of `name` (what a read sees), or nil if there is no such entry.
    public func contents(of name: String) -> [UInt8]? {
        disk.withLock { disk in disk.directory[name].map { disk.files[$0]!.content } }
    }

    /// The durable bytes of the file currently named `name` (what would survive with nothing torn).
    public func durableContents(of name: String) -> [UInt8]? {
        disk.withLock { disk in disk.directory[name].map { disk.files[$0]!.durable } }
    }

    /// How many bytes of `name` are appended but not synced (0 for a missing file).
    public func unsyncedByteCount(of name: String) -> Int {
        disk.withLock { disk in disk.directory[name].map { disk.files[$0]!.unsyncedCount } ?? 0 }
    }

    /// Damages the durable byte at `offset` of `file` (and the current one): it is XORed with
    /// `mask`. Models media corruption of data already on disk.
    public func corrupt(file name: String, offset: Int, mask: UInt8 = 0xFF) {
        disk.withLock { disk in
            guard let id = disk.directory[name] else { preconditionFailure("corrupt: no file named \(name)") }
            precondition(offset >= 0 && offset < disk.files[id]!.durable.count,
                         "corrupt: offset \(offset) is not a durable byte of \(name)")
            disk.files[id]!.durable[offset] ^= mask
            if offset < disk.files[id]!.content.count { disk.files[id]!.content[offset] ^= mask }
        }
    }

    /// Creates (or replaces) `name` with `content`, durably: file synced, directory synced.
    public func createFile(_ name: String, contents content: [UInt8]) {
        disk.withLock { disk in
            disk.directory[name] = disk.newFile(File(durableContent: content))
            disk.syncDirectory()
        }
    }

    // MARK: LogStore

    public func logGenerations() throws(DatabaseError) -> [UInt64] {
        try disk.withLock { (disk) throws(DatabaseError) in
            try disk.requirePower("opendir", ".")
            return disk.generations(withPrefix: "logfile.")
        }
    }

    public func readLog(_ generation: UInt64) throws(DatabaseError) -> [UInt8] {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.read(logName(generation)) }
    }

    public func readLog(_ generation: UInt64, from offset: Int, maxBytes: Int) throws(DatabaseError) -> [UInt8] {
        try disk.withLock { (disk) throws(DatabaseError) in
            try disk.read(logName(generation), from: offset, maxBytes: maxBytes)
        }
    }

    public func truncateLog(_ generation: UInt64, to length: Int) throws(DatabaseError) {
        let name = logName(generation)
        try disk.withLock { (disk) throws(DatabaseError) in
            let id = try disk.lookup(name)
            switch try disk.fault(.logTruncate, "ftruncate", name) {
            case nil:
                disk.files[id]!.truncate(to: length)
                disk.files[id]!.sync()
                disk.statistics.fileSyncs += 1
            case .failAfterApplying:
                disk.files[id]!.truncate(to: length)
                throw .io(operation: "fsync", path: name, errno: EIO)
            default:
                throw .io(operation: "ftruncate", path: name, errno: EIO)
            }
        }
    }

    public func createLog(_ generation: UInt64) throws(DatabaseError) -> any LogSegmentWriter {
        let name = logName(generation)
        let descriptor = try disk.withLock { (disk) throws(DatabaseError) -> Int in
            try disk.requirePower("open", name)
            guard disk.directory[name] == nil else { throw .io(operation: "open", path: name, errno: EEXIST) }
            switch try disk.fault(.directory, "open", name) {
            case nil:
                disk.directory[name] = disk.newFile(File())
                disk.syncDirectory()
                return disk.open(name)
            case .failAfterApplying:
                disk.directory[name] = disk.newFile(File())
                throw .io(operation: "fsync", path: ".", errno: EIO)
            default:
                throw .io(operation: "open", path: name, errno: EIO)
            }
        }
        return Writer(store: self, descriptor: descriptor, generation: generation)
    }

    public func openLogForAppend(_ generation: UInt64) throws(DatabaseError) -> any LogSegmentWriter {
        let name = logName(generation)
        let descriptor = try disk.withLock { (disk) throws(DatabaseError) -> Int in
            _ = try disk.lookup(name)
            return disk.open(name)
        }
        return Writer(store: self, descriptor: descriptor, generation: generation)
    }

    public func removeLog(_ generation: UInt64) throws(DatabaseError) {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.remove(logName(generation)) }
    }

    // MARK: SnapshotStore

    public func checkpointGenerations() throws(DatabaseError) -> [UInt64] {
        try disk.withLock { (disk) throws(DatabaseError) in
            try disk.requirePower("opendir", ".")
            return disk.generations(withPrefix: "checkpoint.")
        }
    }

    public func readCheckpoint(_ generation: UInt64) throws(DatabaseError) -> [UInt8] {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.read(checkpointName(generation)) }
    }

    public func openCheckpoint(_ generation: UInt64) throws(DatabaseError) -> any CheckpointFile {
        let name = checkpointName(generation)
        let (descriptor, size) = try disk.withLock { (disk) throws(DatabaseError) -> (Int, Int) in
            let id = try disk.lookup(name)
            let descriptor = disk.open(name)
            return (descriptor, disk.files[id]!.content.count)
        }
        return Reader(store: self, descriptor: descriptor, name: name, size: size)
    }

    public func writeCheckpoint(
        _ generation: UInt64,
        _ produce: (_ write: ([UInt8]) throws(DatabaseError) -> Void) throws(DatabaseError) -> Void
    ) throws(DatabaseError) {
        let name = checkpointName(generation)
        let temporary = name + ".tmp"
        // open(O_CREAT | O_TRUNC): a directory entry, but no directory sync.
        let (descriptor, epoch) = try disk.withLock { (disk) throws(DatabaseError) -> (Int, Int) in
            try disk.requirePower("open", temporary)
            return (disk.openTruncating(temporary), disk.epoch)
        }
        defer { disk.withLock { $0.release(descriptor) } }
        do throws(DatabaseError) {
            try produce { (bytes) throws(DatabaseError) in
                try disk.withLock { (disk) throws(DatabaseError) in
                    try disk.writeCheckpointBytes(bytes, descriptor: descriptor, name: temporary)
                }
            }
            try disk.withLock { (disk) throws(DatabaseError) in
                let id = try disk.handle(descriptor, "fsync", temporary)
                switch try disk.fault(.checkpointWrite, "fsync", temporary) {
                case nil:
                    disk.files[id]!.sync()
                    disk.statistics.fileSyncs += 1
                default:
                    throw .io(operation: "fsync", path: temporary, errno: EIO)
                }
            }
            try disk.withLock { (disk) throws(DatabaseError) in
                guard disk.epoch == epoch else { throw .io(operation: "rename to \(name)", path: temporary, errno: EIO) }
                try disk.rename(temporary, to: name)
            }
        } catch {
            // FileStore unlinks the temporary (without a directory sync) and ignores the result:
            // after a rename whose directory fsync failed, there is nothing left to unlink.
            disk.withLock { disk in
                if disk.isPoweredOn && disk.epoch == epoch { disk.unlinkWithoutSync(temporary) }
            }
            throw error
        }
    }

    public func createCheckpointTemporary(_ generation: UInt64) throws(DatabaseError) -> any CheckpointTemporary {
        let temporary = checkpointName(generation) + ".tmp"
        // open(O_CREAT | O_TRUNC): a directory entry, but no directory sync (as in writeCheckpoint).
        let (descriptor, epoch) = try disk.withLock { (disk) throws(DatabaseError) -> (Int, Int) in
            try disk.requirePower("open", temporary)
            return (disk.openTruncating(temporary), disk.epoch)
        }
        return Temporary(store: self, generation: generation, name: temporary, descriptor: descriptor, epoch: epoch)
    }

    public func removeCheckpoint(_ generation: UInt64) throws(DatabaseError) {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.remove(checkpointName(generation)) }
    }

    public func readVersion() throws(DatabaseError) -> UInt64? {
        try disk.withLock { (disk) throws(DatabaseError) -> UInt64? in
            try disk.requirePower("access", "version")
            guard disk.directory["version"] != nil else { return nil }
            guard let generation = FileStore.parseGeneration(try disk.read("version")) else {
                throw .inconsistentDirectory("version does not hold a generation number")
            }
            return generation
        }
    }

    public func readNewVersion() throws(DatabaseError) -> UInt64? {
        try disk.withLock { (disk) throws(DatabaseError) -> UInt64? in
            try disk.requirePower("access", "newVersion")
            guard disk.directory["newVersion"] != nil else { return nil }
            return FileStore.parseGeneration(try disk.read("newVersion"))
        }
    }

    public func writeVersion(_ generation: UInt64) throws(DatabaseError) {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.writeMarker("version", generation) }
    }

    public func writeNewVersion(_ generation: UInt64) throws(DatabaseError) {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.writeMarker("newVersion", generation) }
    }

    public func promoteNewVersion() throws(DatabaseError) {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.rename("newVersion", to: "version") }
    }

    public func removeVersion() throws(DatabaseError) {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.remove("version") }
    }

    public func removeNewVersion() throws(DatabaseError) {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.remove("newVersion") }
    }

    public func readMetadata(_ file: MetadataFile) throws(DatabaseError) -> [UInt8]? {
        try disk.withLock { (disk) throws(DatabaseError) -> [UInt8]? in
            try disk.requirePower("access", file.rawValue)
            guard disk.directory[file.rawValue] != nil else { return nil }
            return try disk.read(file.rawValue)
        }
    }

    public func writeMetadata(_ file: MetadataFile, _ bytes: [UInt8]) throws(DatabaseError) {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.writeAtomically(file.rawValue, bytes) }
    }

    public func removeMetadata(_ file: MetadataFile) throws(DatabaseError) {
        try disk.withLock { (disk) throws(DatabaseError) in try disk.remove(file.rawValue) }
    }

    public func removeTemporaries() throws(DatabaseError) {
        try disk.withLock { (disk) throws(DatabaseError) in
            try disk.requirePower("opendir", ".")
            let temporaries = disk.directory.keys.filter(FileStore.isTemporary).sorted()
            guard let first = temporaries.first else { return }
            switch try disk.fault(.directory, "unlink", first) {
            case nil:
                for name in temporaries { disk.directory[name] = nil }
                disk.syncDirectory()
            case .failAfterApplying:
                for name in temporaries { disk.directory[name] = nil }
                disk.collectGarbage()
                throw .io(operation: "fsync", path: ".", errno: EIO)
            default:
                throw .io(operation: "unlink", path: first, errno: EIO)
            }
        }
    }

    // MARK: Names

    private func logName(_ generation: UInt64) -> String { "logfile.\(generation)" }
    private func checkpointName(_ generation: UInt64) -> String { "checkpoint.\(generation)" }

    // MARK: Readers

    /// An open checkpoint.N (`openCheckpoint`): a descriptor on the file, which stays readable
    /// after an unlink, as an inode does. Each read is one `.read` operation.
    private final class Reader: CheckpointFile {
        let store: FaultInjectingStore
        let descriptor: Int
        let name: String
        let size: Int

        init(store: FaultInjectingStore, descriptor: Int, name: String, size: Int) {
            self.store = store
            self.descriptor = descriptor
            self.name = name
            self.size = size
        }

        deinit { store.disk.withLock { $0.release(descriptor) } }

        func read(from offset: Int, maxBytes: Int) throws(DatabaseError) -> [UInt8] {
            try store.disk.withLock { (disk) throws(DatabaseError) in
                let id = try disk.handle(descriptor, "pread", name)
                guard try disk.fault(.read, "pread", name) == nil else { throw .io(operation: "pread", path: name, errno: EIO) }
                let count = disk.files[id]!.content.count
                let start = min(max(0, offset), count)
                let end = min(count, start + max(0, maxBytes))
                disk.statistics.largestRead = max(disk.statistics.largestRead, end - start)
                return Array(disk.files[id]!.content[start..<end])
            }
        }

        func close() {
            store.disk.withLock { disk in
                disk.descriptors[descriptor]?.isClosed = true
                disk.collectGarbage()
            }
        }
    }

    /// checkpoint.N.tmp written piece by piece: each `write` and the `sync` are `.checkpointWrite`
    /// operations, the `commit` a `.directory` one, as in `writeCheckpoint`.
    private final class Temporary: CheckpointTemporary {
        let store: FaultInjectingStore
        let generation: UInt64
        let name: String
        let descriptor: Int
        let epoch: Int

        init(store: FaultInjectingStore, generation: UInt64, name: String, descriptor: Int, epoch: Int) {
            self.store = store
            self.generation = generation
            self.name = name
            self.descriptor = descriptor
            self.epoch = epoch
        }

        deinit { discard() }

        var size: Int {
            store.disk.withLock { disk in
                (try? disk.handle(descriptor, "fstat", name)).map { disk.files[$0]!.content.count } ?? 0
            }
        }

        func write(_ bytes: [UInt8]) throws(DatabaseError) {
            try store.disk.withLock { (disk) throws(DatabaseError) in
                try disk.writeCheckpointBytes(bytes, descriptor: descriptor, name: name)
            }
        }

        func sync() throws(DatabaseError) {
            try store.disk.withLock { (disk) throws(DatabaseError) in
                let id = try disk.handle(descriptor, "fsync", name)
                guard try disk.fault(.checkpointWrite, "fsync", name) == nil else {
                    throw .io(operation: "fsync", path: name, errno: EIO)
                }
                disk.files[id]!.sync()
                disk.statistics.fileSyncs += 1
            }
        }

        func openForReading() throws(DatabaseError) -> any CheckpointFile {
            let (reader, size) = try store.disk.withLock { (disk) throws(DatabaseError) -> (Int, Int) in
                let id = try disk.lookup(name)
                return (disk.open(name), disk.files[id]!.content.count)
            }
            return Reader(store: store, descriptor: reader, name: name, size: size)
        }

        func commit() throws(DatabaseError) {
            try store.disk.withLock { (disk) throws(DatabaseError) in
                guard disk.epoch == epoch else { throw .io(operation: "rename to \(name.dropLast(4))", path: name, errno: EIO) }
                try disk.rename(name, to: String(name.dropLast(4)))
                disk.release(descriptor)
            }
        }

        func discard() {
            store.disk.withLock { disk in
                // As FileStore: unlink without a directory sync; after a commit nothing is left.
                if disk.isPoweredOn && disk.epoch == epoch && disk.descriptors[descriptor] != nil {
                    disk.unlinkWithoutSync(name)
                }
                disk.release(descriptor)
            }
        }
    }

    // MARK: Writers

    /// An open logfile.N. Its state lives in the store (behind the store's lock), so the class
    /// itself holds only constants.
    private final class Writer: LogSegmentWriter {
        let store: FaultInjectingStore
        let descriptor: Int
        let generation: UInt64

        init(store: FaultInjectingStore, descriptor: Int, generation: UInt64) {
            self.store = store
            self.descriptor = descriptor
            self.generation = generation
        }

        deinit { store.disk.withLock { $0.release(descriptor) } }

        var size: Int { store.disk.withLock { $0.descriptors[descriptor]?.size ?? 0 } }

        func append(_ bytes: UnsafeRawBufferPointer) throws(DatabaseError) {
            try store.disk.withLock { (disk) throws(DatabaseError) in
                let name = disk.descriptors[descriptor]?.name ?? "logfile.\(generation)"
                let id = try disk.handle(descriptor, "write", name)
                let effect = try disk.fault(.logAppend, "write", name)
                let landed: Int
                switch effect {
                case nil, .failAfterApplying: landed = bytes.count
                case .partialWrite(let count): landed = min(max(count, 0), bytes.count)
                case .fail, .powerLoss, .tornPowerLoss, .delay, .hold: landed = 0  // (power losses throw from fault)
                }
                disk.files[id]!.content.append(contentsOf: bytes.prefix(landed))
                disk.descriptors[descriptor]!.size = disk.files[id]!.content.count
                guard effect == nil else { throw .io(operation: "write", path: name, errno: EIO) }
                disk.statistics.appends += 1
                disk.statistics.appendedBytes += bytes.count
            }
        }

        func sync() throws(DatabaseError) {
            let held = try store.disk.withLock { (disk) throws(DatabaseError) -> SyncBarrier? in
                let name = disk.descriptors[descriptor]?.name ?? "logfile.\(generation)"
                let id = try disk.handle(descriptor, "fdatasync", name)
                switch try disk.fault(.logSync, "fdatasync", name) {
                case nil: break
                case .delay(let duration)?:
                    usleep(UInt32(clamping: duration.nanoseconds / 1000))
                case .hold(let barrier)?:
                    return barrier  // waited for outside the disk's lock, then synced below
                default: throw .io(operation: "fdatasync", path: name, errno: EIO)
                }
                disk.files[id]!.sync()
                disk.statistics.logSyncs += 1
                return nil
            }
            guard let held else { return }
            held.wait()
            try store.disk.withLock { (disk) throws(DatabaseError) in
                let name = disk.descriptors[descriptor]?.name ?? "logfile.\(generation)"
                let id = try disk.handle(descriptor, "fdatasync", name)  // (off after a power loss meanwhile)
                disk.files[id]!.sync()
                disk.statistics.logSyncs += 1
            }
        }

        func close() {
            store.disk.withLock { disk in
                disk.descriptors[descriptor]?.isClosed = true
                disk.collectGarbage()
            }
        }
    }
}

// MARK: - The disk's state

/// One file (an inode): what reads see, and what survives power loss.
private struct File {
    var content: [UInt8] = []
    /// The durable content. Kept in its own buffer (never sharing `content`'s), so that appending
    /// to either never copies the whole file.
    var durable: [UInt8] = []
    /// `durable` is a prefix of `content`: the file was only appended to since its last sync. When
    /// false (an unsynced truncation), power loss restores `durable` exactly.
    var durableIsPrefix = true

    init() {}

    init(durableContent: [UInt8]) {
        content = durableContent
        durable.append(contentsOf: durableContent)
    }

    /// Bytes appended since the last sync, that a power loss may tear.
    var unsyncedCount: Int { durableIsPrefix ? content.count - durable.count : 0 }

    mutating func sync() {
        if durableIsPrefix {
            durable.append(contentsOf: content[durable.count...])
        } else {
            durable = []
            durable.append(contentsOf: content)
            durableIsPrefix = true
        }
    }

    mutating func truncate(to length: Int) {
        if length < content.count {
            content.removeLast(content.count - length)
        } else {
            content.append(contentsOf: repeatElement(0, count: length - content.count))
        }
        if length < durable.count { durableIsPrefix = false }
    }
}

/// An open file handle: a log writer, or a checkpoint temporary being written.
private struct Descriptor {
    let file: Int
    let name: String
    /// The power cycle it was opened in; it dies with it.
    let epoch: Int
    var size: Int
    var isClosed = false
}

private struct ArmedFault {
    let operation: FaultInjectingStore.Operation
    var skip: Int
    var remaining: Int
    let effect: FaultInjectingStore.FaultEffect
}

private struct Disk {
    var files: [Int: File] = [:]
    var directory: [String: Int] = [:]
    var durableDirectory: [String: Int] = [:]
    var nextFile = 0
    var descriptors: [Int: Descriptor] = [:]
    var nextDescriptor = 0
    /// Incremented by every power loss.
    var epoch = 0
    var isPoweredOn = true
    var faults: [ArmedFault] = []
    var operationCounts: [FaultInjectingStore.Operation: Int] = [:]
    var statistics = FaultInjectingStore.Statistics()
    var lastPowerLoss: FaultInjectingStore.PowerLossReport?

    mutating func newFile(_ file: File) -> Int {
        nextFile += 1
        files[nextFile] = file
        return nextFile
    }

    func requirePower(_ operation: String, _ path: String) throws(DatabaseError) {
        guard isPoweredOn else { throw .io(operation: operation, path: path, errno: EIO) }
    }

    /// Counts an operation and returns the effect of the fault it fires, if any. A `.powerLoss`
    /// fault cuts the power here and throws.
    mutating func fault(
        _ operation: FaultInjectingStore.Operation, _ call: String, _ path: String
    ) throws(DatabaseError) -> FaultInjectingStore.FaultEffect? {
        try requirePower(call, path)
        operationCounts[operation, default: 0] += 1
        var fired: FaultInjectingStore.FaultEffect?
        for index in faults.indices where faults[index].operation == operation {
            if faults[index].skip > 0 {
                faults[index].skip -= 1
            } else if fired == nil {
                faults[index].remaining -= 1
                fired = faults[index].effect
            }
        }
        faults.removeAll { $0.remaining <= 0 }
        guard let fired else { return nil }
        statistics.injectedFaults += 1
        switch fired {
        case .powerLoss:
            cutPower { _, _ in .dropAll }
            throw .io(operation: call, path: path, errno: EIO)
        case .tornPowerLoss(let seed, let garble):
            cutPower(seed: seed, garble: garble)
            throw .io(operation: call, path: path, errno: EIO)
        default:
            return fired
        }
    }

    /// Appends `bytes` to the checkpoint file open as `descriptor`, with the `.checkpointWrite`
    /// faults (a partial write, a write applied and then failed, a plain failure).
    mutating func writeCheckpointBytes(_ bytes: [UInt8], descriptor: Int, name: String) throws(DatabaseError) {
        let id = try handle(descriptor, "write", name)
        switch try fault(.checkpointWrite, "write", name) {
        case nil:
            files[id]!.content.append(contentsOf: bytes)
        case .partialWrite(let count):
            files[id]!.content.append(contentsOf: bytes.prefix(max(0, count)))
            throw .io(operation: "write", path: name, errno: EIO)
        case .failAfterApplying:
            files[id]!.content.append(contentsOf: bytes)
            throw .io(operation: "write", path: name, errno: EIO)
        default:
            throw .io(operation: "write", path: name, errno: EIO)
        }
    }

    func lookup(_ name: String) throws(DatabaseError) -> Int {
        try requirePower("open", name)
        guard let id = directory[name] else { throw .io(operation: "open", path: name, errno: ENOENT) }
        return id
    }

    mutating func read(_ name: String) throws(DatabaseError) -> [UInt8] {
        let id = try lookup(name)
        guard try fault(.read, "read", name) == nil else { throw .io(operation: "read", path: name, errno: EIO) }
        statistics.largestRead = max(statistics.largestRead, files[id]!.content.count)
        return files[id]!.content
    }

    /// Up to `maxBytes` of `name` from `offset` (copying only those bytes).
    mutating func read(_ name: String, from offset: Int, maxBytes: Int) throws(DatabaseError) -> [UInt8] {
        let id = try lookup(name)
        guard try fault(.read, "read", name) == nil else { throw .io(operation: "read", path: name, errno: EIO) }
        let count = files[id]!.content.count
        let start = min(max(0, offset), count)
        let end = min(count, start + max(0, maxBytes))
        statistics.largestRead = max(statistics.largestRead, end - start)
        return Array(files[id]!.content[start..<end])
    }

    func generations(withPrefix prefix: String) -> [UInt64] {
        directory.keys.compactMap { name -> UInt64? in
            guard name.hasPrefix(prefix) else { return nil }
            let suffix = name.dropFirst(prefix.count)
            guard !suffix.isEmpty, suffix.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
            return UInt64(suffix)
        }.sorted()
    }

    /// The fsync of the directory: every current entry becomes durable.
    mutating func syncDirectory() {
        durableDirectory = directory
        statistics.directorySyncs += 1
        collectGarbage()
    }

    /// Opens the file currently named `name` (which exists) for writing.
    mutating func open(_ name: String) -> Int {
        let id = directory[name]!
        nextDescriptor += 1
        descriptors[nextDescriptor] = Descriptor(file: id, name: name, epoch: epoch, size: files[id]!.content.count)
        return nextDescriptor
    }

    /// open(O_WRONLY | O_CREAT | O_TRUNC): creates the entry (not durable) or truncates the file.
    mutating func openTruncating(_ name: String) -> Int {
        if let id = directory[name] {
            files[id]!.truncate(to: 0)
        } else {
            directory[name] = newFile(File())
        }
        return open(name)
    }

    /// The file behind a descriptor that is still usable: open, and from this power cycle.
    func handle(_ descriptor: Int, _ call: String, _ path: String) throws(DatabaseError) -> Int {
        guard let open = descriptors[descriptor], !open.isClosed else {
            throw .io(operation: call, path: path, errno: EBADF)
        }
        guard isPoweredOn, open.epoch == epoch else { throw .io(operation: call, path: path, errno: EIO) }
        return open.file
    }

    mutating func release(_ descriptor: Int) {
        descriptors[descriptor] = nil
        collectGarbage()
    }

    /// Drops files that no entry (current or durable) and no open handle refers to.
    mutating func collectGarbage() {
        var live = Set(directory.values)
        live.formUnion(durableDirectory.values)
        for open in descriptors.values where !open.isClosed && open.epoch == epoch { live.insert(open.file) }
        if live.count < files.count {
            files = files.filter { live.contains($0.key) }
        }
    }

    mutating func unlinkWithoutSync(_ name: String) {
        directory[name] = nil
        collectGarbage()
    }

    /// unlink + directory fsync; a missing file is not an error (and no operation).
    mutating func remove(_ name: String) throws(DatabaseError) {
        try requirePower("unlink", name)
        guard directory[name] != nil else { return }
        switch try fault(.directory, "unlink", name) {
        case nil:
            directory[name] = nil
            syncDirectory()
        case .failAfterApplying:
            unlinkWithoutSync(name)
            throw .io(operation: "fsync", path: ".", errno: EIO)
        default:
            throw .io(operation: "unlink", path: name, errno: EIO)
        }
    }

    /// rename + directory fsync.
    mutating func rename(_ from: String, to: String) throws(DatabaseError) {
        try requirePower("rename to \(to)", from)
        guard let id = directory[from] else { throw .io(operation: "rename to \(to)", path: from, errno: ENOENT) }
        switch try fault(.directory, "rename to \(to)", from) {
        case nil:
            directory[from] = nil
            directory[to] = id
            syncDirectory()
        case .failAfterApplying:
            directory[from] = nil
            directory[to] = id
            collectGarbage()
            throw .io(operation: "fsync", path: ".", errno: EIO)
        default:
            throw .io(operation: "rename to \(to)", path: from, errno: EIO)
        }
    }

    /// FileStore.writeMarker: name.tmp (O_TRUNC, no directory sync), write, fsync, rename, directory fsync.
    mutating func writeMarker(_ name: String, _ generation: UInt64) throws(DatabaseError) {
        try writeAtomically(name, Array("\(generation)\n".utf8))
    }

    /// As `FileStore`: name.tmp written and synced (a `.markerWrite` operation), then renamed.
    mutating func writeAtomically(_ name: String, _ content: [UInt8]) throws(DatabaseError) {
        let temporary = name + ".tmp"
        try requirePower("open", temporary)
        let descriptor = openTruncating(temporary)
        defer { release(descriptor) }
        let id = descriptors[descriptor]!.file
        switch try fault(.markerWrite, "write", temporary) {
        case nil:
            files[id]!.content.append(contentsOf: content)
            files[id]!.sync()
            statistics.fileSyncs += 1
        case .failAfterApplying:
            files[id]!.content.append(contentsOf: content)
            unlinkWithoutSync(temporary)
            throw .io(operation: "fsync", path: temporary, errno: EIO)
        default:
            unlinkWithoutSync(temporary)
            throw .io(operation: "write", path: temporary, errno: EIO)
        }
        do throws(DatabaseError) {
            try rename(temporary, to: name)
        } catch {
            if isPoweredOn { unlinkWithoutSync(temporary) }  // as FileStore: the temporary goes
            throw error
        }
    }

    /// A power loss tearing unsynced tails at random (see `FaultInjectingStore.powerLoss(seed:garble:)`).
    @discardableResult
    mutating func cutPower(seed: UInt64, garble: Bool) -> FaultInjectingStore.PowerLossReport {
        var random = SeededRandom(seed: seed)
        return cutPower { _, count in
            var torn: FaultInjectingStore.TornWrite
            switch random.next() % 4 {
            case 0: torn = .dropAll
            case 1: torn = .init(keep: count)
            default: torn = .init(keep: Int(random.next() % UInt64(count + 1)))
            }
            if garble, torn.keep > 0, random.next() % 3 == 0 {
                torn.garbage = Int(random.next() % UInt64(torn.keep))
            }
            return torn
        }
    }

    /// The power loss itself (see `FaultInjectingStore.powerLoss(_:)`).
    @discardableResult
    mutating func cutPower(_ tear: (String, Int) -> FaultInjectingStore.TornWrite) -> FaultInjectingStore.PowerLossReport {
        var report = FaultInjectingStore.PowerLossReport()
        guard isPoweredOn else { return report }
        report.lostEntries = directory.keys.filter { durableDirectory[$0] != directory[$0] }.sorted()
        report.revivedEntries = durableDirectory.keys.filter { directory[$0] != durableDirectory[$0] }.sorted()
        var survivors: [Int: File] = [:]
        for name in durableDirectory.keys.sorted() {
            let id = durableDirectory[name]!
            guard survivors[id] == nil, let file = files[id] else { continue }
            var content = file.durable
            let unsynced = file.unsyncedCount
            if unsynced > 0 {
                let torn = tear(name, unsynced)
                let keep = min(max(torn.keep, 0), unsynced)
                content.append(contentsOf: file.content[file.durable.count..<(file.durable.count + keep)])
                var garbageOffset: Int?
                if let garbage = torn.garbage, keep > 0 {
                    let offset = file.durable.count + min(max(garbage, 0), keep - 1)
                    content[offset] = ~content[offset]
                    garbageOffset = offset
                }
                report.tornFiles.append(.init(
                    name: name, syncedBytes: file.durable.count, unsyncedBytes: unsynced, keptBytes: keep,
                    garbageOffset: garbageOffset))
            }
            survivors[id] = File(durableContent: content)
        }
        files = survivors
        directory = durableDirectory
        epoch += 1
        isPoweredOn = false
        statistics.powerLosses += 1
        lastPowerLoss = report
        return report
    }
}
