import Platform
import Dispatch
import Synchronization
import StorageEngine
import WireProtocol

/// The primary's side: accepting a backup, deciding how it catches up, streaming, heartbeats.
///
/// A backup's session, in order (`serve`):
/// 0. (At accept: at most `configuration.maxHandshakingConnections` connections in steps 1–2 at
///    once; frames no larger than `ReplicationProtocol.maxPayloadSizeToPrimary`.)
/// 1. With a token: authenticate it (`ReplicationAuthentication`: nothing but its frames is
///    accepted before the backup's proof). Then receive its hello; check the protocol version.
///    All of it within one `configuration.handshakeTimeout`.
/// 2. Decide (`decide`): refuse it (a newer epoch of this lineage with a history that fits
///    fences this primary), stream from its position, or send a snapshot first, if the snapshot
///    gate allows one now (else refuse it as busy: it retries).
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
    /// Catch-up stops sending while this much is unacknowledged, so a slow backup is not buried.
    static let catchUpWindow = 16 << 20

    func startPrimaryServices() throws(ReplicationStartError) {
        let starter = configuration.startThread
        if let makeListener = configuration.makeListener {
            let listener: any ReplicationListener
            do throws(TransportError) {
                listener = try makeListener()
            } catch {
                throw .listener(error)
            }
            let accepted = try state.withLock { (state) throws(ReplicationStartError) -> Bool in
                guard !state.isStopping else { return false }
                do throws(ThreadStartError) {
                    state.threads.append(try JoinableThread(starter: starter) { [self] in acceptBackups(listener) })
                } catch {
                    listener.close()
                    throw .thread(error)
                }
                state.listener = listener
                return true
            }
            guard accepted else { return listener.close() }
            if configuration.token == nil {
                log(.warning, "replication: listening for backups on \(listener.address) WITHOUT authentication (no -repl-token-file): "
                    + "anyone who can reach this port can follow this primary or fence it")
            } else {
                log(.info, "replication: listening for backups on \(listener.address) (backups must prove the -repl-token-file token)")
            }
        }
        if configuration.heartbeatInterval > .zero {
            try state.withLock { (state) throws(ReplicationStartError) in
                guard !state.isStopping else { return }
                do throws(ThreadStartError) {
                    state.threads.append(try JoinableThread(starter: starter) { [self] in sendHeartbeats() })
                } catch {
                    throw .thread(error)
                }
            }
        }
    }

    /// Accepts connections until the listener closes. A connection gets a thread of its own only
    /// while fewer than `configuration.maxHandshakingConnections` are in their handshake, and if
    /// a thread can be made; otherwise it is closed at once (and counted, and logged: the first
    /// time and every 100th). Its frames are limited to the handshake's size from the start: a
    /// primary never receives anything larger.
    private func acceptBackups(_ listener: any ReplicationListener) {
        let starter = configuration.startThread
        while true {
            let connection: any ReplicationConnection
            do throws(TransportError) {
                connection = try listener.accept()
            } catch {
                if error != .closed { log(.error, "replication: accepting backups stopped: \(error)") }
                return
            }
            connection.limitIncomingPayloads(to: ReplicationProtocol.maxPayloadSizeToPrimary)
            enum Admission {
                case admitted
                case stopping
                case refused(reason: String, count: Int)
            }
            // Tracked, so that `stop` waits for it: a session must not touch the database
            // after it is closed.
            let admission = state.withLock { state -> Admission in
                guard !state.isStopping else { return .stopping }
                state.threads.removeAll { $0.isFinished }
                guard state.handshaking < configuration.maxHandshakingConnections else {
                    state.connectionsRefusedAtAccept += 1
                    return .refused(
                        reason: "\(state.handshaking) connections are already in their handshake (the limit)",
                        count: state.connectionsRefusedAtAccept)
                }
                let thread: JoinableThread
                do throws(ThreadStartError) {
                    thread = try JoinableThread(starter: starter) { [self] in
                        serve(connection)
                        self.state.withLock { _ = $0.connections.removeValue(forKey: ObjectIdentifier(connection)) }
                    }
                } catch {
                    state.connectionsRefusedAtAccept += 1
                    return .refused(reason: "\(error)", count: state.connectionsRefusedAtAccept)
                }
                state.handshaking += 1
                state.connections[ObjectIdentifier(connection)] = connection
                state.threads.append(thread)
                return .admitted
            }
            switch admission {
            case .admitted:
                continue
            case .stopping:
                connection.close()
                return
            case .refused(let reason, let count):
                if count == 1 || count % 100 == 0 {
                    log(.warning, "replication: closed a connection from \(connection.peer) at once: \(reason) (\(count) so far)")
                }
                connection.close()
            }
        }
    }

    private func sendHeartbeats() {
        while true {
            _ = stopSignal.wait(timeout: .now() + configuration.heartbeatInterval.dispatchInterval)
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
        // Past the handshake (or ended), the connection no longer counts against the limit.
        var inHandshake = true
        func leaveHandshake() {
            guard inHandshake else { return }
            inHandshake = false
            state.withLock { $0.handshaking -= 1 }
        }
        defer { leaveHandshake() }
        // Step 1.
        let deadline = ContinuousClock.now + configuration.handshakeTimeout
        let remaining = { max(.zero, deadline - ContinuousClock.now) }
        let hello: Hello
        do throws(TransportError) {
            var frame = try connection.receive(timeout: remaining())
            if let token = configuration.token {
                if let failure = ReplicationAuthentication.authenticateBackup(
                    first: frame, over: connection, token: token, receiveWithin: remaining)
                {
                    if let refusal = failure.refusal { try? connection.send(.refuse(refusal)) }
                    log(.warning, "replication: refused \(connection.peer): \(failure.logLine)")
                    connection.close()
                    return
                }
                frame = try connection.receive(timeout: remaining())
            } else if case .authChallenge = frame {
                refuse(connection, Refusal(
                    code: .unauthenticated,
                    message: "this primary has no -repl-token-file: give both servers the same token, or neither"),
                    logAs: "it asked to authenticate, but this primary has no -repl-token-file")
                return
            }
            guard case .hello(let received) = frame else {
                try? connection.send(.refuse(Refusal(code: .protocolViolation, message: "expected a hello")))
                log(.warning, "replication: dropped \(connection.peer): it sent \(frame.kind) before a hello")
                connection.close()
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
            log(.warning, "replication: dropped \(connection.peer) before its hello: \(error)")
            connection.close()
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
            if let busy = snapshotGate.claim() {
                refuse(connection, Refusal(code: .busy, message: "it needs a snapshot (\(reason)), but \(busy)"))
                return
            }
            start = LogPosition(generation: 0, offset: 0)
            snapshotReason = reason
        }
        // Released once the snapshot is sent or has failed (or was never started).
        var holdsSnapshotGate = snapshotReason != nil
        defer { if holdsSnapshotGate { snapshotGate.release() } }
        leaveHandshake()
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
        let reading = state.withLock { state -> String? in
            guard !state.isStopping else { return "this server is stopping" }
            do throws(ThreadStartError) {
                state.threads.append(try JoinableThread(starter: configuration.startThread) { [self, session] in
                    session.readAcks()
                    detach(session, because: session.failure ?? "the ack stream ended")
                })
            } catch {
                return "cannot start its ack reader: \(error)"
            }
            return nil
        }
        if let reading { return detach(session, because: reading) }
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
            let sent = sendSnapshot(database, to: session)
            snapshotGate.release()
            holdsSnapshotGate = false
            switch sent {
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

    /// Sends `refusal`, logs it, closes. Here and wherever a connection is dropped, the log line
    /// comes before the close: whoever sees the connection end finds its reason already logged.
    private func refuse(_ connection: any ReplicationConnection, _ refusal: Refusal, logAs reason: String? = nil) {
        try? connection.send(.refuse(refusal))
        log(.warning, "replication: refused \(connection.peer): \(reason ?? refusal.message)")
        connection.close()
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
        guard let lineage = hello.lineage else {
            // A directory that never followed anyone has no epoch of its own to claim.
            guard hello.epoch == 0, hello.epochStart == nil else {
                return refuseFencingClaim(hello, peer: peer, because: "it has no lineage, so no epoch of this primary's lineage")
            }
            return decidePosition(hello, position: position, persistent: persistent, lastEnd: lastEnd, database: database)
        }
        if lineage != persistent.lineage {
            return .snapshot(because: "its directory descends from another primary (lineage \(lineage))")
        }
        if hello.epoch > persistent.epoch {
            if let misfit = newerEpochMisfit(hello, position: position, persistent: persistent, lastEnd: lastEnd) {
                return refuseFencingClaim(hello, peer: peer, because: misfit)
            }
            fence(newerEpoch: hello.epoch, peer: peer)
            return .refuse(Refusal(
                code: .newerEpoch,
                message: "your epoch \(hello.epoch) is newer than this primary's \(persistent.epoch): it has stepped down"))
        }
        return decidePosition(hello, position: position, persistent: persistent, lastEnd: lastEnd, database: database)
    }

    /// Why a hello of this lineage claiming a newer epoch does not fit this primary's history,
    /// or nil if it does (then this primary was superseded). A backup promoted while it followed
    /// this primary began its epoch at its log end then: at or after the start of this primary's
    /// epoch (it followed this epoch), not past this primary's log end (it held nothing else),
    /// and its own log has reached that start.
    private func newerEpochMisfit(
        _ hello: Hello, position: LogPosition, persistent: ReplicationState, lastEnd: LogPosition
    ) -> String? {
        guard let claimedStart = hello.epochStart, let start = LogPosition(claimedStart) else {
            return "a newer epoch without a recorded start"
        }
        let currentStart = persistent.history.last { $0.epoch == persistent.epoch }.flatMap { LogPosition($0.start) }
            ?? LogPosition(generation: 0, offset: 0)
        if start < currentStart {
            return "its epoch \(hello.epoch) began at \(start), before this primary's epoch \(persistent.epoch) did (\(currentStart))"
        }
        if start > lastEnd {
            return "its epoch \(hello.epoch) began at \(start), past this primary's log end (\(lastEnd)): nothing it followed here"
        }
        if position < start {
            return "its log ends at \(position), before its epoch \(hello.epoch) began (\(start))"
        }
        return nil
    }

    /// A hello that claims an epoch this primary does not believe: refused, counted and logged;
    /// nothing here changes (no fencing).
    private func refuseFencingClaim(_ hello: Hello, peer: String, because reason: String) -> Decision {
        state.withLock { $0.fencingClaimsRefused += 1 }
        log(.warning, "replication: \(peer) claims epoch \(hello.epoch), but \(reason): not believed, this primary stays")
        return .refuse(Refusal(code: .protocolViolation, message: "epoch \(hello.epoch) refused: \(reason)"))
    }

    /// Step 2, for a hello that cannot fence: stream from its position if this primary's log
    /// provably holds the same bytes up to it, else a snapshot.
    private func decidePosition(
        _ hello: Hello, position: LogPosition, persistent: ReplicationState, lastEnd: LogPosition, database: Database
    ) -> Decision {
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
