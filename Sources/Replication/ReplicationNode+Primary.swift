import Dispatch
import Synchronization
import StorageEngine
import WireProtocol

/// The primary's side: accepting a backup, deciding how it catches up, streaming, heartbeats.
///
/// A backup's session, in order (`serve`):
/// 1. Receive its hello (within `handshakeTimeout`); check the protocol version.
/// 2. Decide (`decide`): refuse it (a newer epoch fences this primary), stream from its position,
///    or send a snapshot first.
/// 3. Attach it, replacing any backup attached before (a restarted backup's old connection may
///    still look alive). Start its ack reader. Send the welcome.
/// 4. Snapshot mode: checkpoint, send the checkpoint file in chunks; the stream then starts at
///    (its generation, 0).
/// 5. Catch up (`catchUp`): send the log from the stream's start to the committer's last batch,
///    segment by segment, in whole records; then, under the lock the committer's `replicate`
///    takes, mark the backup in sync. From that batch on, the committer sends every batch itself
///    and waits for its ack (the output rule).
/// Any failure detaches the backup; it reconnects and starts again at step 1.
extension ReplicationNode {
    static let handshakeTimeout: Duration = .seconds(10)
    /// Catch-up stops sending while this much is unacknowledged, so a slow backup is not buried.
    static let catchUpWindow = 16 << 20

    func startPrimaryServices() throws(ReplicationStartError) {
        if let makeListener = configuration.makeListener {
            let listener: any ReplicationListener
            do throws(TransportError) {
                listener = try makeListener()
            } catch {
                throw .listener(error)
            }
            let accepted = state.withLock { state -> Bool in
                guard !state.isStopping else { return false }
                state.listener = listener
                state.threads.append(JoinableThread { [self] in acceptBackups(listener) })
                return true
            }
            guard accepted else { return listener.close() }
            log(.info, "replication: listening for backups on \(listener.address)")
        }
        if configuration.heartbeatInterval > .zero {
            state.withLock { state in
                guard !state.isStopping else { return }
                state.threads.append(JoinableThread { [self] in sendHeartbeats() })
            }
        }
    }

    private func acceptBackups(_ listener: any ReplicationListener) {
        while true {
            let connection: any ReplicationConnection
            do throws(TransportError) {
                connection = try listener.accept()
            } catch {
                if error != .closed { log(.error, "replication: accepting backups stopped: \(error)") }
                return
            }
            // Tracked, so that `stop` waits for it: a session must not touch the database
            // after it is closed.
            let accepted = state.withLock { state -> Bool in
                guard !state.isStopping else { return false }
                state.threads.removeAll { $0.isFinished }
                state.connections[ObjectIdentifier(connection)] = connection
                state.threads.append(JoinableThread { [self] in
                    serve(connection)
                    self.state.withLock { _ = $0.connections.removeValue(forKey: ObjectIdentifier(connection)) }
                })
                return true
            }
            if !accepted {
                connection.close()
                return
            }
        }
    }

    private func sendHeartbeats() {
        while true {
            _ = stopSignal.wait(timeout: .now() + dispatchInterval(configuration.heartbeatInterval))
            let (stopping, session, epoch, end) = state.withLock { state in
                (state.isStopping, state.role == .primary ? state.session : nil, state.persistent?.epoch ?? 0, state.lastEnd)
            }
            if stopping {
                stopSignal.signal()  // let every other waiter see it too
                return
            }
            guard let session else { continue }
            do throws(TransportError) {
                try session.connection.send(.heartbeat(epoch: epoch, position: ReplicationPosition(end)), timeout: liveSendTimeout)
            } catch {
                detach(session, because: "sending a heartbeat failed: \(error)")
            }
        }
    }

    // MARK: One backup's session

    private enum Decision {
        case refuse(Refusal)
        case stream(from: LogPosition)
        case snapshot(because: String)
    }

    func serve(_ connection: any ReplicationConnection) {
        // Step 1.
        let hello: Hello
        do throws(TransportError) {
            let frame = try connection.receive(timeout: ReplicationNode.handshakeTimeout)
            guard case .hello(let received) = frame else {
                try? connection.send(.refuse(Refusal(code: .protocolViolation, message: "expected a hello")))
                connection.close()
                log(.warning, "replication: dropped \(connection.peer): it sent \(frame.kind) before a hello")
                return
            }
            hello = received
        } catch {
            if case .frame(.unsupportedVersion(let version)) = error {
                // The decoder stops at another version's hello: tell the peer why before closing.
                try? connection.send(.refuse(Refusal(
                    code: .unsupportedVersion,
                    message: "protocol version \(version) is not supported (this primary speaks \(ReplicationProtocol.version))")))
            }
            connection.close()
            log(.warning, "replication: dropped \(connection.peer) before its hello: \(error)")
            return
        }
        guard hello.protocolVersion == ReplicationProtocol.version else {
            refuse(connection, Refusal(
                code: .unsupportedVersion,
                message: "protocol version \(hello.protocolVersion) is not supported (this primary speaks \(ReplicationProtocol.version))"))
            return
        }
        // Step 2.
        let decision = decide(hello, peer: connection.peer)
        let start: LogPosition
        var snapshotReason: String?
        switch decision {
        case .refuse(let refusal):
            refuse(connection, refusal)
            return
        case .stream(let position):
            start = position
        case .snapshot(let reason):
            start = LogPosition(generation: 0, offset: 0)
            snapshotReason = reason
        }
        guard let (database, persistent) = state.withLock({ state in
            state.database.flatMap { database in state.persistent.map { (database, $0) } }
        }) else {
            return refuse(connection, Refusal(code: .notPrimary, message: "this server is not ready"))
        }
        // Step 3.
        let session = PrimarySession(connection: connection, start: start)
        let replaced: PrimarySession?? = state.withLock { state in
            guard state.role == .primary, state.fencedBy == nil, !state.isStopping else { return .none }
            let old = state.session
            state.session = session
            state.sessionInSync = false
            return .some(old)
        }
        guard let replaced else {
            return refuse(connection, Refusal(code: .notPrimary, message: "this server is no longer a primary"))
        }
        if let replaced {
            replaced.fail("replaced by a new connection from the backup")
            log(.warning, "replication: backup \(replaced.peer) replaced by \(connection.peer)")
        }
        let reading = state.withLock { state -> Bool in
            guard !state.isStopping else { return false }
            state.threads.append(JoinableThread { [self, session] in
                session.readAcks()
                detach(session, because: session.failure ?? "the ack stream ended")
            })
            return true
        }
        guard reading else { return detach(session, because: "this server is stopping") }
        do throws(TransportError) {
            let mode: Welcome.Mode = snapshotReason == nil ? .stream : .snapshot
            try connection.send(.welcome(Welcome(
                epoch: persistent.epoch, lineage: persistent.lineage, history: persistent.history, mode: mode)))
        } catch {
            return detach(session, because: "sending the welcome failed: \(error)")
        }
        // Step 4.
        var cursor = start
        if let snapshotReason {
            log(.info, "replication: backup \(connection.peer) needs a snapshot: \(snapshotReason)")
            switch sendSnapshot(database, to: session) {
            case .success(let generation):
                cursor = LogPosition(generation: generation, offset: 0)
                noteResync()
            case .failure(let failure):
                return detach(session, because: failure.description)
            }
        } else {
            log(.info, "replication: backup \(connection.peer) attached, streaming from \(start)")
        }
        // Step 5.
        if let failure = catchUp(session, database, from: cursor) {
            detach(session, because: failure)
        }
    }

    private func refuse(_ connection: any ReplicationConnection, _ refusal: Refusal) {
        try? connection.send(.refuse(refusal))
        connection.close()
        log(.warning, "replication: refused \(connection.peer): \(refusal.message)")
    }

    /// Step 2: what to do with a backup that says `hello`.
    private func decide(_ hello: Hello, peer: String) -> Decision {
        let (role, fencedBy, persistent, lastEnd, database) = state.withLock { state in
            (state.role, state.fencedBy, state.persistent, state.lastEnd, state.database)
        }
        guard role == .primary, fencedBy == nil, let persistent, let database else {
            return .refuse(Refusal(code: .notPrimary, message: "this server is not a primary"))
        }
        guard let position = LogPosition(hello.position) else {
            return .refuse(Refusal(code: .protocolViolation, message: "position out of range"))
        }
        // Epochs compare only within a lineage: a directory of another one is replaced whole.
        if let lineage = hello.lineage, lineage != persistent.lineage {
            return .snapshot(because: "its directory descends from another primary (lineage \(lineage))")
        }
        if hello.epoch > persistent.epoch {
            fence(newerEpoch: hello.epoch, peer: peer)
            return .refuse(Refusal(
                code: .newerEpoch,
                message: "your epoch \(hello.epoch) is newer than this primary's \(persistent.epoch): it has stepped down"))
        }
        // Both must agree on where the backup's epoch began: two promotions to the same epoch
        // number are two different histories.
        let startHere = persistent.history.last { $0.epoch == hello.epoch }?.start
        if startHere != hello.epochStart {
            return .snapshot(because: "its epoch \(hello.epoch) began at \(hello.epochStart.map { "\($0)" } ?? "the start"), "
                + "here at \(startHere.map { "\($0)" } ?? "the start"): their histories differ")
        }
        // Its log must end before the first later epoch began here (anything after is its own).
        if let epochEnd = persistent.history.filter({ $0.epoch > hello.epoch }).compactMap({ LogPosition($0.start) }).min(),
            position > epochEnd
        {
            return .snapshot(because: "its log goes past \(epochEnd), where its epoch \(hello.epoch) ended: it diverged")
        }
        if hello.lineage == nil && position.generation > 0 && position.offset == 0 {
            // A directory that never followed anyone, at the start of a segment: its checkpoint
            // underneath cannot be compared, and there is no log to compare.
            return .snapshot(because: "nothing of its state at \(position) can be checked against this primary's")
        }
        if position > lastEnd {
            return .snapshot(because: "its log (\(position)) is ahead of this primary's (\(lastEnd))")
        }
        if position.generation < lastEnd.generation, state.withLock({ $0.retiredSegmentEnds[position.generation] }) == nil {
            return .snapshot(because: "logfile.\(position.generation) was retired before this server became primary")
        }
        do throws(DatabaseError) {
            guard try database.logGenerations().contains(position.generation) else {
                return .snapshot(because: "this primary no longer has logfile.\(position.generation)")
            }
            guard try database.logPrefixChecksum(generation: position.generation, length: position.offset) == hello.prefixCRC
            else {
                return .snapshot(because: "its log differs from this primary's before \(position)")
            }
        } catch {
            return .snapshot(because: "reading this primary's log failed: \(error)")
        }
        return .stream(from: position)
    }

    /// Step 4. Returns the snapshot's generation. The checkpoint file is streamed from disk, a
    /// chunk at a time (it stays readable even if a newer checkpoint deletes it meanwhile), and its
    /// CRC is computed over exactly the bytes sent.
    private func sendSnapshot(_ database: Database, to session: PrimarySession) -> Result<UInt64, ReplicationFailure> {
        let source: ReplicaSnapshotSource
        switch blockingCall({ database.snapshotSourceForReplica(completion: $0) }) {
        case .success(let value): source = value
        case .failure(let error): return .failure(ReplicationFailure("making a snapshot failed: \(error)"))
        }
        defer { source.close() }
        do throws(TransportError) {
            try session.connection.send(.snapshotBegin(generation: source.generation, totalBytes: UInt64(source.size)))
            var crc = CRC32()
            var offset = 0
            while offset < source.size {
                let chunk: [UInt8]
                do throws(DatabaseError) {
                    chunk = try source.read(from: offset, maxBytes: min(configuration.streamChunkSize, source.size - offset))
                } catch {
                    return .failure(ReplicationFailure("reading checkpoint.\(source.generation) for the snapshot failed: \(error)"))
                }
                guard !chunk.isEmpty else {
                    return .failure(ReplicationFailure("checkpoint.\(source.generation) ended at byte \(offset) of \(source.size)"))
                }
                crc.update(chunk)
                try session.connection.send(.snapshotChunk(chunk))
                offset += chunk.count
            }
            try session.connection.send(.snapshotEnd(crc32: crc.value))
        } catch {
            return .failure(ReplicationFailure("sending the snapshot failed: \(error)"))
        }
        return .success(source.generation)
    }

    /// Step 5. Returns nil once the backup is in sync, else why it failed.
    private func catchUp(_ session: PrimarySession, _ database: Database, from start: LogPosition) -> String? {
        var cursor = start
        while true {
            let (attached, end, retiredEnd) = state.withLock { state in
                (state.session === session, state.lastEnd, state.retiredSegmentEnds[cursor.generation])
            }
            guard attached else { return session.failure ?? "detached" }
            if let failure = session.failure { return failure }
            if cursor == end {
                // The switch: no batch can be handed over between this check and the flag.
                let inSync = state.withLock { state -> Bool in
                    guard state.session === session, state.lastEnd == cursor else { return false }
                    state.sessionInSync = true
                    return true
                }
                if inSync {
                    log(.info, "replication: backup \(session.peer) in sync at \(cursor)")
                    return nil
                }
                continue
            }
            guard cursor < end else { return "the stream got ahead of the log (\(cursor) > \(end))" }
            do throws(TransportError) {
                let chunk: [UInt8]
                // A segment below the last one is finished: send it to its recorded end.
                let limit: Int
                if cursor.generation < end.generation {
                    guard let retiredEnd else {
                        return "logfile.\(cursor.generation) was retired before this server became primary (the backup needs a snapshot)"
                    }
                    limit = retiredEnd
                } else {
                    limit = end.offset
                }
                do throws(DatabaseError) {
                    chunk = try database.readCommittedLog(
                        generation: cursor.generation, from: cursor.offset, maxBytes: configuration.streamChunkSize, limit: limit)
                } catch {
                    return "reading \(cursor) for the backup failed: \(error)"
                }
                if chunk.isEmpty {
                    guard cursor.generation < end.generation, cursor.offset == limit else {
                        // A checkpoint removed the segment while it was being sent.
                        return "logfile.\(cursor.generation) ended at \(cursor.offset) while \(limit) bytes were committed (removed by a checkpoint?)"
                    }
                    cursor = LogPosition(generation: cursor.generation + 1, offset: 0)
                    try session.sendSegmentStart(cursor.generation)
                    continue
                }
                try chunk.withBytes { (raw) throws(TransportError) in try session.sendRecords(raw, at: cursor) }
                cursor.offset += chunk.count
            } catch {
                return "sending the log to the backup failed: \(error)"
            }
            // Flow control: wait while too much is unacknowledged.
            if distance(from: session.acknowledged, to: cursor) > ReplicationNode.catchUpWindow {
                let limit = max(configuration.ackTimeout, .seconds(30))
                let target = LogPosition(generation: cursor.generation, offset: cursor.offset - ReplicationNode.catchUpWindow / 2)
                if let failure = session.waitForAcknowledgement(of: target, timeout: limit) { return failure }
            }
        }
    }
}
