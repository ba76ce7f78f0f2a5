import Dispatch
import Platform
import WireProtocol

/// Opening a data directory: choose the generation to load, prove it whole, load it, and only then
/// clean up what it supersedes.
///
/// The rule that orders the steps: nothing is deleted until the generation that will be loaded is
/// proven whole (its files present and contiguous, its checkpoint's header and checksum verified,
/// its log replayed). `version` and `newVersion` carry no checksum (the Go format), so one flipped
/// bit in them must not be able to destroy the files they should have named: any state that
/// contradicts them refuses the open, names the files, says what to check, and deletes nothing.
///
/// The steps, in order, one function each:
/// 0. `refuseIncompleteResync`: a directory that holds the `resync` marker is refused: a replica
///    was replacing its whole state with a snapshot from its primary and stopped half-way, so no
///    state in it is complete (the replication layer discards such a directory and resyncs; see
///    `ReplicaSnapshotReceiver`).
/// 1. `chooseGeneration` (reads only): if `newVersion` names G and both checkpoint.G and
///    logfile.G exist, a switch passed its commit point: G is the candidate, to be finished.
///    Otherwise the generation in `version` (N) is, and a `newVersion` is discarded at step 5 (that
///    switch never committed). A directory with no `version`, no checkpoint and no segment is new:
///    write version 0 and an empty logfile.0, as the Go version does (that writes, deletes nothing).
/// 2. `proveFilesPresent` (reads only): the candidate's checkpoint exists (none is needed for
///    generation 0), logfile.N exists, segments from N on are contiguous (N…M), and no checkpoint
///    lies above M+1 (an uncommitted switch leaves checkpoint.G with G ≤ M+1: ours creates
///    logfile.G first, Go's creates it just after). Segments above N are kept: a checkpoint starts
///    logfile.N+1 before its commit point, and writes acknowledged since then live only there.
///    (Generation 0 with no file at all is a crash during initialisation: create logfile.0.)
/// 3. `loadCheckpoint`: load checkpoint.N, checking its header (its generation field must be N)
///    and its checksum while parsing it. If the candidate was a committed switch to G whose
///    checkpoint is damaged, and the generation in `version` is still present (its checkpoint and
///    every segment up to G), fall back to it: it is proven by loading it in turn. Deleting it
///    first would have destroyed the only good copy. If it is not present, refuse to open.
/// 4. `replayLog`: replay logfile.N, N+1, …, M in order. Zero bytes after a segment's last record
///    are space written ahead (`FileLogSegment`): the segment ends there, and the last one is cut
///    there. A torn tail of the last segment is cut off (it was never acknowledged). Any other
///    damage is corruption: refuse to open, naming the file and offset, unless the options allow
///    truncation; then drop every later segment, the last first, and only then cut there, so that
///    an open stopped part-way leaves the damage for the next one to find.
/// 5. `removeSuperseded` (the first deletion, but for an allowed truncation's): temporaries (newVersion.tmp, version.tmp,
///    checkpoint.*.tmp: never a commit point), every checkpoint other than checkpoint.N (older:
///    superseded; newer: never committed) and the segments below N; then finish the switch
///    (rename newVersion to version) or discard the uncommitted `newVersion`.
/// 6. `openForAppend`: open logfile.M for appending; its size must be where replay left it.
struct Recovery {
    /// Checkpoints at least this large have their CRC checked on a second thread while parsing.
    static let parallelVerifyThreshold = 4 << 20
    /// How much of a segment or a checkpoint recovery reads at a time (more only to hold one
    /// record or entry that is larger): opening costs the data once, not twice. LevelDB reads its
    /// log in 32 KiB blocks; a larger chunk means fewer system calls, and is still nothing beside
    /// the data it loads.
    static let readChunkSize = 1 << 20

    let logStore: any LogStore
    let snapshotStore: any SnapshotStore
    let options: DatabaseOptions

    struct Result: Sendable {
        let map: OrderedMap
        let segment: any LogSegmentWriter
        let generation: UInt64
        let retiredLogBytes: Int
        let report: RecoveryReport
    }

    /// What step 1 chose.
    private struct Candidate {
        /// The generation to load.
        var generation: UInt64
        /// Whether `newVersion` names `generation` with its files present: a committed switch to finish.
        var finishesSwitch: Bool
        /// The generation in `newVersion`, if it is readable.
        var pendingSwitch: UInt64?
        /// The generation in `version`, if the file exists (read only when it is needed).
        var version: UInt64?
    }

    /// What step 4 left: where appends continue.
    private struct Replayed {
        var lastSegment: UInt64
        var lastSegmentSize: Int
        var retiredLogBytes: Int
    }

    func run() throws(DatabaseError) -> Result {
        let started = ContinuousClock.now
        var report = RecoveryReport()
        try refuseIncompleteResync()
        var candidate = try chooseGeneration(report: &report)
        var segments = try proveFilesPresent(candidate.generation)
        let map: OrderedMap
        do {
            map = try loadCheckpoint(candidate.generation, report: &report)
        } catch {
            // Only a committed switch has an older generation to fall back to.
            guard candidate.finishesSwitch, case .corruptCheckpoint(let file, let reason) = error,
                  let old = candidate.version, old < candidate.generation,
                  let oldSegments = try? proveFilesPresent(old), oldSegments.contains(candidate.generation)
            else { throw error }
            report.damagedCheckpoint = "\(file): \(reason)"
            candidate = Candidate(generation: old, finishesSwitch: false, pendingSwitch: candidate.pendingSwitch, version: old)
            segments = oldSegments
            map = try loadCheckpoint(old, report: &report)
        }
        let replayed = try replayLog(segments, into: map, report: &report)
        try removeSuperseded(candidate, report: &report)
        let writer = try openForAppend(replayed)
        report.keys = map.count
        report.duration = ContinuousClock.now - started
        return Result(
            map: map, segment: writer, generation: candidate.generation, retiredLogBytes: replayed.retiredLogBytes,
            report: report)
    }

    // MARK: Step 0

    private func refuseIncompleteResync() throws(DatabaseError) {
        if try snapshotStore.readMetadata(.resync) != nil {
            throw .incompleteResync(path: snapshotStore.metadataLocation(.resync))
        }
    }

    // MARK: Step 1

    private func chooseGeneration(report: inout RecoveryReport) throws(DatabaseError) -> Candidate {
        let pending = try snapshotStore.readNewVersion()
        let version = try snapshotStore.readVersion()
        if let pending, try snapshotStore.checkpointGenerations().contains(pending),
           try logStore.logGenerations().contains(pending)
        {
            // newVersion is written only by a switch away from `version`, to a higher generation.
            if let version, version >= pending {
                throw .inconsistentDirectory(
                    "newVersion names generation \(pending) but version names \(version): a switch only ever goes to a "
                        + "higher generation, so one of them is damaged. \(filesHeld()). Nothing was deleted. "
                        + Recovery.whatToCheck)
            }
            return Candidate(generation: pending, finishesSwitch: true, pendingSwitch: pending, version: version)
        }
        if let version {
            return Candidate(generation: version, finishesSwitch: false, pendingSwitch: pending, version: version)
        }
        guard try logStore.logGenerations().isEmpty, try snapshotStore.checkpointGenerations().isEmpty else {
            throw .inconsistentDirectory(
                "the version file is missing but the directory holds checkpoints or log segments. \(filesHeld()). "
                    + "Nothing was deleted. " + Recovery.whatToCheck)
        }
        try snapshotStore.writeVersion(0)
        try logStore.createLog(0).close()
        report.initialized = true
        return Candidate(generation: 0, finishesSwitch: false, pendingSwitch: pending, version: 0)
    }

    // MARK: Step 2

    /// The segments of `generation`, N…M, once its files are known to be present and nothing
    /// contradicts it; otherwise an error that names the files.
    private func proveFilesPresent(_ generation: UInt64) throws(DatabaseError) -> [UInt64] {
        var segments = try logStore.logGenerations().filter { $0 >= generation }
        let checkpoints = try snapshotStore.checkpointGenerations()
        if generation == 0 && segments.isEmpty && checkpoints.isEmpty {
            // A crash while initialising, between `version` and logfile.0: nothing was ever written.
            try logStore.createLog(0).close()
            segments = [0]
        }
        var missing: [String] = []
        if generation > 0 && !checkpoints.contains(generation) { missing.append(snapshotStore.checkpointLocation(generation)) }
        if segments.first != generation { missing.append(logStore.logLocation(generation)) }
        guard missing.isEmpty else {
            throw .inconsistentDirectory(
                "\(missing.joined(separator: " and ")) \(missing.count == 1 ? "is" : "are") missing (version is \(generation)). "
                    + "\(filesHeld()). Nothing was deleted. " + Recovery.whatToCheck)
        }
        for (index, segment) in segments.enumerated() where segment != generation + UInt64(index) {
            throw .inconsistentDirectory(
                "\(logStore.logLocation(generation + UInt64(index))) is missing before \(logStore.logLocation(segment)). "
                    + "\(filesHeld()). Nothing was deleted. Restore the missing segment, or the directory from a backup")
        }
        let last = segments[segments.count - 1]
        if let stray = checkpoints.last, stray > last + 1 {
            throw .inconsistentDirectory(
                "\(snapshotStore.checkpointLocation(stray)) is newer than any checkpoint generation \(generation) can have "
                    + "started (its last segment is \(logStore.logLocation(last))). \(filesHeld()). Nothing was deleted. "
                    + Recovery.whatToCheck)
        }
        return segments
    }

    /// What an operator should check when the markers and the files disagree.
    static let whatToCheck =
        "Check `version` (and `newVersion`): they carry no checksum. If one is damaged, write into `version` the "
        + "generation N whose checkpoint.N (none for 0) and logfile.N are present, delete `newVersion`, and start "
        + "again; otherwise restore the directory from a backup"

    /// The checkpoints and segments in the directory, for error messages ("the directory holds
    /// checkpoint.3, logfile.3"). Never throws: it only adds to a message.
    private func filesHeld() -> String {
        let checkpoints = (try? snapshotStore.checkpointGenerations()) ?? []
        let segments = (try? logStore.logGenerations()) ?? []
        let names = checkpoints.map { "checkpoint.\($0)" } + segments.map { "logfile.\($0)" }
        guard !names.isEmpty else { return "The directory holds no checkpoint and no log segment" }
        let shown = names.prefix(12).joined(separator: ", ")
        return "The directory holds \(shown)\(names.count > 12 ? " and \(names.count - 12) more" : "")"
    }

    // MARK: Step 3

    /// Loads checkpoint.N into a new map (an empty map for generation 0 without one).
    private func loadCheckpoint(_ generation: UInt64, report: inout RecoveryReport) throws(DatabaseError) -> OrderedMap {
        guard try snapshotStore.checkpointGenerations().contains(generation) else {
            assert(generation == 0, "step 2 proved the checkpoint present")
            report.checkpointGeneration = nil
            report.checkpointEntries = 0
            return OrderedMap()  // revision 0: nothing written yet
        }
        let checkpoint = try snapshotStore.openCheckpoint(generation)
        defer { checkpoint.close() }
        let (map, entries) = try Recovery.decodeCheckpoint(
            checkpoint, generation: generation, file: snapshotStore.checkpointLocation(generation))
        report.checkpointGeneration = generation
        report.checkpointEntries = entries
        return map
    }

    // MARK: Step 4

    private func replayLog(
        _ segments: [UInt64], into map: OrderedMap, report: inout RecoveryReport
    ) throws(DatabaseError) -> Replayed {
        var replayed = Replayed(lastSegment: segments[segments.count - 1], lastSegmentSize: 0, retiredLogBytes: 0)
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            var records = 0
            let logStore = self.logStore
            let read: ByteWindow<DatabaseError>.Read = { (offset, maxBytes) throws(DatabaseError) -> [UInt8] in
                try logStore.readLog(segment, from: offset, maxBytes: maxBytes)
            }
            // In bounded chunks (`WALChunkedScan`): the segment is never held whole.
            // Each record is one revision, as the committer numbered it (docs/ARCHITECTURE.md).
            var revision = map.revision
            let scan = try WALChunkedScan.scan(chunkSize: Recovery.readChunkSize, read: read) { (record) throws(DatabaseError) in
                records += 1
                revision += 1
                record.forEachEntry { opcode, key, value in
                    if opcode == .set {
                        map.set(Key(bytes: key), StoredValue(value), revision: revision)
                    } else {
                        map.remove(Key(bytes: key))
                    }
                }
            }
            map.setRevision(revision)
            let outcome = scan.result
            report.segmentsReplayed.append(segment)
            report.recordsReplayed += records
            let file = logStore.logLocation(segment)
            // Zeros after the last record are space written ahead (`FileLogSegment`), never a
            // record: a clean end, cut from the last segment so that appends continue there.
            let end: Int
            switch outcome {
            case .clean(let cleanEnd):
                end = cleanEnd
            case .tornTail(let offset, _, _) where scan.tailIsZeros:
                end = offset
                if isLast { try logStore.truncateLog(segment, to: end) }
            case .tornTail(let offset, let dropped, let damage) where isLast:
                try logStore.truncateLog(segment, to: offset)
                report.tornTail = .init(file: file, offset: offset, droppedBytes: dropped, reason: damage.description)
                end = offset
            case .tornTail(let offset, _, let damage), .corrupted(let offset, let damage, _):
                // Damage with acknowledged data after it, in this segment or in a later one.
                guard options.corruptLog == .truncate else {
                    throw .corruptLog(file: file, offset: offset, reason: damage.description)
                }
                // The later segments go first, the last one first, and the cut comes after them:
                // an open that stops part-way (an I/O error, a crash) leaves the damage in place
                // followed by a contiguous run, so the next open finds the same damage. Cutting
                // first would leave a clean segment followed by records from after the gap, which
                // the next open would replay as if nothing were missing.
                for later in segments[(index + 1)...].reversed() {
                    try logStore.removeLog(later)
                }
                try logStore.truncateLog(segment, to: offset)
                report.truncatedCorruption = .init(
                    file: file, offset: offset, droppedBytes: scan.fileSize - offset, reason: damage.description)
                report.droppedSegments.append(contentsOf: segments[(index + 1)...])
                replayed.lastSegment = segment
                replayed.lastSegmentSize = offset
                return replayed
            }
            if isLast { replayed.lastSegmentSize = end } else { replayed.retiredLogBytes += end }
        }
        return replayed
    }

    // MARK: Step 5

    /// The first deletion: everything the loaded generation supersedes.
    private func removeSuperseded(_ candidate: Candidate, report: inout RecoveryReport) throws(DatabaseError) {
        let generation = candidate.generation
        try snapshotStore.removeTemporaries()
        if !candidate.finishesSwitch {
            // First, so that a crash from here on cannot leave a `newVersion` naming a checkpoint
            // already deleted below.
            try snapshotStore.removeNewVersion()
            if let pending = candidate.pendingSwitch { report.discardedSwitch = pending }
        }
        for stale in try snapshotStore.checkpointGenerations() where stale != generation {
            try snapshotStore.removeCheckpoint(stale)
        }
        for stale in try logStore.logGenerations() where stale < generation {
            try logStore.removeLog(stale)
        }
        if candidate.finishesSwitch {
            try snapshotStore.promoteNewVersion()
            report.finishedSwitch = generation
        }
    }

    // MARK: Step 6

    private func openForAppend(_ replayed: Replayed) throws(DatabaseError) -> any LogSegmentWriter {
        let writer = try logStore.openLogForAppend(replayed.lastSegment)
        guard writer.size == replayed.lastSegmentSize else {
            writer.close()
            throw .inconsistentDirectory(
                "\(logStore.logLocation(replayed.lastSegment)) is \(writer.size) bytes, but recovery left it at "
                    + "\(replayed.lastSegmentSize): something else changed it during the open (another program writing "
                    + "into the data directory?). Nothing was appended; stop whatever writes there and start again")
        }
        return writer
    }

    /// Parses an open checkpoint into a new map, reading it in bounded chunks (also used to
    /// install a replica's snapshot). The checksum is
    /// verified by a second pass over the file on another thread while this one parses (each pass
    /// reads on its own; the page cache serves the second); a mismatch discards the map. (Parsing
    /// stays on the calling thread so every value is allocated from one malloc arena, which keeps
    /// resident memory down.)
    ///
    /// If no thread can be made (`startThread` throws: the process is out of threads or memory for
    /// a stack), the checksum is verified on this thread first: slower, never a trap. (A replica
    /// decodes its primary's snapshot here, so a peer can make this run at any time.)
    static func decodeCheckpoint(
        _ checkpoint: any CheckpointFile, generation: UInt64, file: String,
        startThread: (@escaping @Sendable () -> Void) throws(ThreadStartError) -> Void = tryStartDetachedThread
    ) throws(DatabaseError) -> (map: OrderedMap, entries: Int) {
        let read: @Sendable (Int, Int) throws -> [UInt8] = { offset, maxBytes in
            try checkpoint.read(from: offset, maxBytes: maxBytes)
        }
        do {
            let header = try CheckpointChunkedReader.header(
                fileSize: checkpoint.size, expectedGeneration: generation, read: read)
            let checksumFailure = Lock<(any Error)?>(nil)
            let verified = DispatchSemaphore(value: 0)
            let verify: @Sendable () -> Void = {
                do {
                    try CheckpointChunkedReader.verifyChecksum(header: header, chunkSize: readChunkSize, read: read)
                } catch {
                    checksumFailure.withLock { $0 = error }
                }
                verified.signal()
            }
            // A thread of its own, not a Dispatch or cooperative-pool worker: the caller blocks
            // below, and a pool that must first grow to run the verifier would stall the open.
            if checkpoint.size >= Recovery.parallelVerifyThreshold {
                do throws(ThreadStartError) {
                    try startThread(verify)
                } catch {
                    verify()
                }
            } else {
                verify()
            }
            let map: OrderedMap
            do {
                map = try loadEntries(header: header, read: read)
            } catch {
                verified.wait()
                throw error
            }
            verified.wait()
            if let error = checksumFailure.withLock({ $0 }) { throw error }
            return (map, Int(header.entryCount))
        } catch let error as CheckpointError {
            throw .corruptCheckpoint(file: file, reason: error.description)
        } catch let error as DatabaseError {
            throw error
        } catch {
            throw .corruptCheckpoint(file: file, reason: "\(error)")
        }
    }

    /// The revision a checkpoint without revisions (the Go version's, or this project's before
    /// them) stands for: one write that created every key in it, or nothing if it holds none.
    static func unrevisedCheckpointRevision(entries: UInt64) -> UInt64 { entries > 0 ? 1 : 0 }

    /// The entries of a checkpoint, into a new map. Version 3 lists keys ascending with their
    /// revisions, and loads straight into full shards; older versions list them in any order,
    /// so they are sorted first (a key listed twice keeps its last value, as the old loaders did).
    private static func loadEntries(header: CheckpointHeader, read: @escaping @Sendable (Int, Int) throws -> [UInt8]) throws -> OrderedMap {
        if header.hasRevisions {
            var loader = OrderedMap.Loader()
            try CheckpointChunkedReader.forEachEntryWithRevisions(header: header, chunkSize: readChunkSize, read: read) { key, value, revisions in
                loader.append(MapEntry(
                    key: Key(bytes: key), value: StoredValue(value), createRevision: revisions.create, modRevision: revisions.mod))
            }
            return loader.finish(revision: header.revision)
        }
        let revision = unrevisedCheckpointRevision(entries: header.entryCount)
        var entries: [MapEntry] = []
        entries.reserveCapacity(Int(clamping: min(header.entryCount, 1 << 24)))
        try CheckpointChunkedReader.forEachEntry(header: header, chunkSize: readChunkSize, read: read) { key, value in
            entries.append(MapEntry(key: Key(bytes: key), value: StoredValue(value), createRevision: revision, modRevision: revision))
        }
        // A stable sort keeps a repeated key's entries in file order: the last one wins below.
        let order = entries.indices.sorted { left, right in
            let comparison = entries[left].key.compare(entries[right].key)
            return comparison != 0 ? comparison < 0 : left < right
        }
        var loader = OrderedMap.Loader()
        for (position, index) in order.enumerated() {
            if position + 1 < order.count, entries[order[position + 1]].key == entries[index].key { continue }
            loader.append(entries[index])
        }
        return loader.finish(revision: revision)
    }
}
