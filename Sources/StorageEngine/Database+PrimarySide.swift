import WireProtocol

/// The primary's side of replication: what it reads to stream its log to a backup from any
/// position it still has (`logGenerations`, `readCommittedLog`), and the checkpoint it sends first
/// when the backup's log cannot be continued (`snapshotSourceForReplica`, read in pieces through
/// `ReplicaSnapshotSource`). The overview of both sides is in Database+Replication.swift.
extension Database {
    /// The generations that have a log segment, ascending.
    public func logGenerations() throws(DatabaseError) -> [UInt64] {
        try logStore.logGenerations()
    }

    /// Whole records of logfile.`generation` from `offset`, about `maxBytes` of them (more if a
    /// single record is larger), never past `limit` (pass the end of what the caller knows to
    /// be committed; bytes beyond it may be a round still being written). Empty at the end.
    public func readCommittedLog(
        generation: UInt64, from offset: Int, maxBytes: Int, limit: Int
    ) throws(DatabaseError) -> [UInt8] {
        guard offset < limit else { return [] }
        var bytes = try logStore.readLog(generation, from: offset, maxBytes: min(maxBytes, limit - offset))
        let outcome = bytes.withUnsafeBytes { raw in WALSegmentReader.scan(raw) { _ in } }
        switch outcome {
        case .clean:
            return bytes
        case .tornTail(let cut, _, .incomplete) where cut > 0:
            return Array(bytes[..<cut])  // the chunk ended inside a record: the next read takes it
        case .tornTail(0, _, .incomplete) where bytes.count >= WALFormat.headerSize:
            // One record larger than maxBytes: read exactly it.
            let payloadLength = bytes.withUnsafeBytes { Int($0.loadLittleEndianUInt32(at: 0)) }
            let size = WALFormat.headerSize + payloadLength + WALFormat.trailerSize
            guard offset + size <= limit else { break }
            bytes = try logStore.readLog(generation, from: offset, maxBytes: size)
            if bytes.count == size, case .clean = bytes.withUnsafeBytes({ raw in WALSegmentReader.scan(raw) { _ in } }) {
                return bytes
            }
        default:
            break
        }
        throw .corruptLog(
            file: logStore.logLocation(generation), offset: offset + outcome.validPrefixLength,
            reason: "a committed record does not decode while streaming it to a replica")
    }

    /// A checkpoint to bootstrap a replica from: runs a checkpoint, then opens the file it wrote,
    /// to be read in pieces (`ReplicaSnapshotSource`) and streamed: the file is never held in
    /// memory, and it stays readable even if a newer checkpoint deletes it meanwhile. The replica
    /// then streams from (generation, 0). Retries if a concurrent checkpoint deletes the file
    /// before it is opened.
    public func snapshotSourceForReplica(
        completion: @escaping @Sendable (Result<ReplicaSnapshotSource, DatabaseError>) -> Void
    ) {
        snapshotSourceForReplica(attempts: 3, completion: completion)
    }

    private func snapshotSourceForReplica(
        attempts: Int, completion: @escaping @Sendable (Result<ReplicaSnapshotSource, DatabaseError>) -> Void
    ) {
        checkpoint { result in
            switch result {
            case .failure(let error):
                completion(.failure(error))
            case .success(let written):
                do throws(DatabaseError) {
                    let file = try self.snapshotStore.openCheckpoint(written.generation)
                    completion(.success(ReplicaSnapshotSource(generation: written.generation, file: file)))
                } catch {
                    if attempts > 1 {
                        self.snapshotSourceForReplica(attempts: attempts - 1, completion: completion)
                    } else {
                        completion(.failure(error))
                    }
                }
            }
        }
    }

    /// The whole checkpoint as one buffer (for tests and tools; replication streams it through
    /// `snapshotSourceForReplica`).
    public func snapshotForReplica(completion: @escaping @Sendable (Result<ReplicaSnapshot, DatabaseError>) -> Void) {
        snapshotSourceForReplica { result in
            completion(result.flatMap { (source) -> Result<ReplicaSnapshot, DatabaseError> in
                defer { source.close() }
                var bytes: [UInt8] = []
                while bytes.count < source.size {
                    do throws(DatabaseError) {
                        let piece = try source.read(from: bytes.count, maxBytes: 4 << 20)
                        guard !piece.isEmpty else { break }
                        bytes += piece
                    } catch {
                        return .failure(error)
                    }
                }
                return .success(ReplicaSnapshot(generation: source.generation, checkpoint: bytes))
            })
        }
    }
}
