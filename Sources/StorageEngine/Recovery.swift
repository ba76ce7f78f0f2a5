import Dispatch
import Synchronization
import WireProtocol

/// Opening a data directory: finish or discard an interrupted version switch, load the checkpoint,
/// replay the log.
///
/// The steps, in order (the code below follows them):
/// 0. Refuse a directory that holds the `resync` marker: a replica was replacing its whole state
///    with a snapshot from its primary and stopped half-way, so no state in it is complete (the
///    replication layer discards such a directory and resyncs; see `Database.installSnapshot`).
/// 1. Delete temporaries (newVersion.tmp, version.tmp, checkpoint.*.tmp): never a commit point.
/// 2. If `newVersion` names G and both checkpoint.G and logfile.G exist, a switch passed its commit
///    point: check checkpoint.G, then finish the switch (delete checkpoints and segments below G,
///    rename newVersion to version). Otherwise delete `newVersion`: that switch never committed.
///    If checkpoint.G is damaged and the old generation is still whole (its checkpoint and every
///    segment up to G), fall back to it instead: deleting it first would destroy the only good
///    copy. If the old generation is gone too, refuse to open.
/// 3. Read `version` (N). A directory without it and without any segment or checkpoint is new:
///    write version 0 and create an empty logfile.0, as the Go version does. (Generation 0 with
///    no segment at all is a crash during that initialisation: create logfile.0.)
/// 4. Delete checkpoints other than checkpoint.N (older: superseded; newer: never committed) and
///    segments below N. Segments above N are kept: a checkpoint starts logfile.N+1 before its
///    commit point, and writes acknowledged since then live only there.
/// 5. Load checkpoint.N (required for N > 0), checking its checksum while parsing it.
/// 6. Replay logfile.N, N+1, …, M in order. Zero bytes after a segment's last record are space
///    written ahead (`FileLogSegment`): the segment ends there, and the last one is cut there. A
///    torn tail of the last segment is cut off (it was never acknowledged). Any other damage is corruption: refuse to open, naming the file and
///    offset, unless the options allow truncation; then cut there and drop every later segment.
/// 7. Open logfile.M for appending.
struct Recovery {
    /// Checkpoints at least this large have their CRC checked on a second thread while parsing.
    static let parallelVerifyThreshold = 4 << 20

    let logStore: any LogStore
    let snapshotStore: any SnapshotStore
    let options: DatabaseOptions

    struct Result: Sendable {
        let map: ShardedMap
        let segment: any LogSegmentWriter
        let generation: UInt64
        let retiredLogBytes: Int
        let report: RecoveryReport
    }

    func run() throws(DatabaseError) -> Result {
        let started = ContinuousClock.now
        var report = RecoveryReport()

        // Step 0.
        if try snapshotStore.readMetadata(.resync) != nil {
            throw .incompleteResync(path: snapshotStore.metadataLocation(.resync))
        }

        // Step 1.
        try snapshotStore.removeTemporaries()

        // Step 2.
        if let pending = try snapshotStore.readNewVersion() {
            let hasCheckpoint = try snapshotStore.checkpointGenerations().contains(pending)
            let hasLog = try logStore.logGenerations().contains(pending)
            let damage = hasCheckpoint && hasLog ? try checkpointDamage(pending) : nil
            if hasCheckpoint && hasLog && damage == nil {
                try removeGenerations(below: pending)
                try snapshotStore.promoteNewVersion()
                report.finishedSwitch = pending
            } else if let damage {
                guard try oldGenerationIsWhole(below: pending) else {
                    throw .corruptCheckpoint(file: snapshotStore.checkpointLocation(pending), reason: damage)
                }
                try snapshotStore.removeNewVersion()
                report.discardedSwitch = pending
                report.damagedCheckpoint = "\(snapshotStore.checkpointLocation(pending)): \(damage)"
            } else {
                try snapshotStore.removeNewVersion()
                report.discardedSwitch = pending
            }
        } else {
            try snapshotStore.removeNewVersion()  // absent, or never finished writing: not a commit
        }

        // Step 3.
        let generation: UInt64
        if let version = try snapshotStore.readVersion() {
            generation = version
        } else if try logStore.logGenerations().isEmpty, try snapshotStore.checkpointGenerations().isEmpty {
            try snapshotStore.writeVersion(0)
            try logStore.createLog(0).close()
            report.initialized = true
            generation = 0
        } else {
            throw .inconsistentDirectory("the version file is missing but the directory holds checkpoints or log segments")
        }

        // Step 4.
        for stale in try snapshotStore.checkpointGenerations() where stale != generation {
            try snapshotStore.removeCheckpoint(stale)
        }
        for stale in try logStore.logGenerations() where stale < generation {
            try logStore.removeLog(stale)
        }
        var segments = try logStore.logGenerations()
        if generation == 0 && segments.isEmpty, try snapshotStore.checkpointGenerations().isEmpty {
            // A crash while initialising, between `version` and logfile.0: nothing was ever written.
            try logStore.createLog(0).close()
            segments = [0]
        }
        guard segments.first == generation else {
            throw .inconsistentDirectory("\(logStore.logLocation(generation)) is missing (version is \(generation))")
        }
        for (index, segment) in segments.enumerated() where segment != generation + UInt64(index) {
            throw .inconsistentDirectory("\(logStore.logLocation(generation + UInt64(index))) is missing before \(logStore.logLocation(segment))")
        }

        // Step 5.
        let map: ShardedMap
        if try snapshotStore.checkpointGenerations().contains(generation) {
            map = try loadCheckpoint(generation, report: &report)
        } else if generation == 0 {
            map = ShardedMap()
        } else {
            throw .inconsistentDirectory("\(snapshotStore.checkpointLocation(generation)) is missing (version is \(generation))")
        }

        // Step 6.
        var lastSegment = segments[segments.count - 1]
        var retiredLogBytes = 0
        var lastSegmentSize = 0
        for (index, segment) in segments.enumerated() {
            let isLast = index == segments.count - 1
            let bytes = try logStore.readLog(segment)
            var records = 0
            let outcome = bytes.withUnsafeBytes { raw in
                WALSegmentReader.scan(raw) { record in
                    records += 1
                    record.forEachEntry { opcode, key, value in
                        if opcode == .set {
                            map.set(Key(bytes: key), StoredValue(value))
                        } else {
                            map.remove(Key(bytes: key))
                        }
                    }
                }
            }
            report.segmentsReplayed.append(segment)
            report.recordsReplayed += records
            let file = logStore.logLocation(segment)
            var stopHere = false
            // Zeros after the last record are space written ahead (`FileLogSegment`), never a
            // record: a clean end, cut from the last segment so that appends continue there.
            let zeroTail: Int? = if case .tornTail(let offset, _, _) = outcome, bytes[offset...].allSatisfy({ $0 == 0 }) {
                offset
            } else {
                nil
            }
            switch outcome {
            case .clean(let end):
                if isLast { lastSegmentSize = end } else { retiredLogBytes += end }
            case .tornTail where zeroTail != nil:
                let end = zeroTail!
                if isLast {
                    try logStore.truncateLog(segment, to: end)
                    lastSegmentSize = end
                } else {
                    retiredLogBytes += end
                }
            case .tornTail(let offset, let dropped, let damage) where isLast:
                try logStore.truncateLog(segment, to: offset)
                report.tornTail = .init(file: file, offset: offset, droppedBytes: dropped, reason: damage.description)
                lastSegmentSize = offset
            case .tornTail(let offset, _, let damage), .corrupted(let offset, let damage, _):
                // Damage with acknowledged data after it, in this segment or in a later one.
                guard options.corruptLog == .truncate else {
                    throw .corruptLog(file: file, offset: offset, reason: damage.description)
                }
                try logStore.truncateLog(segment, to: offset)
                report.truncatedCorruption = .init(
                    file: file, offset: offset, droppedBytes: bytes.count - offset, reason: damage.description)
                lastSegmentSize = offset
                lastSegment = segment
                stopHere = true
            }
            if stopHere {
                for later in segments[(index + 1)...] {
                    try logStore.removeLog(later)
                    report.droppedSegments.append(later)
                }
                break
            }
        }

        // Step 7.
        let writer = try logStore.openLogForAppend(lastSegment)
        precondition(writer.size == lastSegmentSize, "segment size changed during recovery")
        report.keys = map.count
        report.duration = ContinuousClock.now - started
        return Result(map: map, segment: writer, generation: generation, retiredLogBytes: retiredLogBytes, report: report)
    }

    /// Why checkpoint.N cannot be loaded, or nil if it is whole: header, checksum and structure
    /// are checked, nothing is kept. Only an interrupted switch pays for it (step 5 then reads the
    /// file a second time): the check must come before step 2 deletes the old generation.
    private func checkpointDamage(_ generation: UInt64) throws(DatabaseError) -> String? {
        let bytes = try snapshotStore.readCheckpoint(generation)
        do {
            try bytes.withUnsafeBytes { raw in
                let header = try CheckpointReader.header(of: raw, expectedGeneration: generation)
                try CheckpointReader.verifyChecksum(of: raw, header: header)
                try CheckpointReader.forEachEntry(of: raw, header: header) { _, _ in }
            }
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// Whether the generation in `version` can still be recovered on its own: its checkpoint (none
    /// needed for generation 0) and every segment from it up to `pending`.
    private func oldGenerationIsWhole(below pending: UInt64) throws(DatabaseError) -> Bool {
        guard let old = try snapshotStore.readVersion(), old < pending else { return false }
        if old > 0, try !snapshotStore.checkpointGenerations().contains(old) { return false }
        let segments = Set(try logStore.logGenerations())
        return (old...pending).allSatisfy { segments.contains($0) }
    }

    /// Deletes checkpoints and segments of generations below `generation` (`version` is then
    /// replaced by the rename of `newVersion`).
    private func removeGenerations(below generation: UInt64) throws(DatabaseError) {
        for old in try snapshotStore.checkpointGenerations() where old < generation {
            try snapshotStore.removeCheckpoint(old)
        }
        for old in try logStore.logGenerations() where old < generation {
            try logStore.removeLog(old)
        }
    }

    /// Loads checkpoint.N into a new map.
    private func loadCheckpoint(_ generation: UInt64, report: inout RecoveryReport) throws(DatabaseError) -> ShardedMap {
        let file = snapshotStore.checkpointLocation(generation)
        let bytes = try snapshotStore.readCheckpoint(generation)
        let (map, entries) = try Recovery.decodeCheckpoint(bytes, generation: generation, file: file)
        report.checkpointGeneration = generation
        report.checkpointEntries = entries
        return map
    }

    /// Parses a checkpoint's bytes into a new map (also used to install a replica's snapshot). The
    /// checksum is verified on another core while this thread parses; a mismatch discards the map.
    /// (Parsing stays on the calling thread so every value is allocated from one malloc arena,
    /// which keeps resident memory down.)
    static func decodeCheckpoint(
        _ bytes: [UInt8], generation: UInt64, file: String
    ) throws(DatabaseError) -> (map: ShardedMap, entries: Int) {
        do {
            return try bytes.withUnsafeBytes { unsafeRaw in
                // The verifier only reads the buffer, and we wait for it before the buffer goes.
                nonisolated(unsafe) let raw = unsafeRaw
                let header = try CheckpointReader.header(of: raw, expectedGeneration: generation)
                let checksumFailure = Mutex<CheckpointError?>(nil)
                let verified = DispatchSemaphore(value: 0)
                let verify: @Sendable () -> Void = {
                    do throws(CheckpointError) {
                        try CheckpointReader.verifyChecksum(of: raw, header: header)
                    } catch {
                        checksumFailure.withLock { $0 = error }
                    }
                    verified.signal()
                }
                // A thread of its own, not a Dispatch or cooperative-pool worker: the caller blocks
                // below, and a pool that must first grow to run the verifier would stall the open.
                if raw.count >= Recovery.parallelVerifyThreshold {
                    startDetachedThread(verify)
                } else {
                    verify()
                }
                let map = ShardedMap(expectedKeys: Int(clamping: min(header.entryCount, UInt64(raw.count / 8))))
                do {
                    try CheckpointReader.forEachEntry(of: raw, header: header) { key, value in
                        map.set(Key(bytes: key), StoredValue(value))
                    }
                } catch {
                    verified.wait()
                    throw error
                }
                verified.wait()
                if let error = checksumFailure.withLock({ $0 }) { throw error }
                return (map, Int(header.entryCount))
            }
        } catch let error as CheckpointError {
            throw .corruptCheckpoint(file: file, reason: error.description)
        } catch let error as DatabaseError {
            throw error
        } catch {
            throw .corruptCheckpoint(file: file, reason: "\(error)")
        }
    }
}
