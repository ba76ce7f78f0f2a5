import StorageEngine
import WireProtocol

/// `POST /v1/txn`: conditions, puts and deletes as one atomic batch (`TransactionRequest` has the
/// body), answered only once durable:
///
///     200 {"ok":true,"revision":R}        with X-Revision: R; R is the store's revision if the
///                                         transaction writes nothing (conditions only)
///     412 {"error":"precondition failed","failed":[{"key":…,"key_encoding":…,"revision":N},…]}
///     400 malformed JSON, an unknown field or operation, a duplicate key, a key or value over
///         the engine's limits (as PUT answers them)
///     413 more than `maxOperations` conditions, puts and deletes together
///
/// The conditions are checked by the committer against the state it writes on, with the round's
/// earlier writes: all hold and every write is applied, or none is (etcd's Txn with one `then`).
/// A key may be written once per transaction: a put and a delete of one key, or two puts, would
/// make the outcome depend on their order, which a JSON object of arrays does not make plain.
struct TransactionHandler: Sendable {
    let database: Database
    let role: any ServerRole

    /// etcd's default (`--max-txn-ops`): a transaction is a handful of keys, not a bulk load.
    static let maxOperations = 128

    func handle(_ request: HTTPRequest, _ responder: Responder) {
        if let refusal = role.writeRefusal { return responder.send(KeyValueHandlers.refused(refusal), route: .txn) }
        let transaction: TransactionRequest
        do {
            transaction = try TransactionRequestDecoder.decode(request.body, maxOperations: TransactionHandler.maxOperations)
        } catch {
            let status = if case .tooManyOperations = error { 413 } else { 400 }
            return responder.send(.json(status: status, error: error.description), route: .txn)
        }

        var batch = WriteBatch()
        var written = Set<[UInt8]>()
        written.reserveCapacity(transaction.puts.count + transaction.deletes.count)
        for condition in transaction.conditions {
            let requirement: WriteCondition = switch condition.requirement {
            case .modRevision(0), .absent: .absent  // etcd: a missing key's mod_revision is 0
            case .modRevision(let revision): .modRevision(revision)
            case .present: .present
            case .value(let bytes): .value(bytes)
            }
            batch.require(Key(condition.key), requirement)
        }
        for put in transaction.puts {
            guard written.insert(put.key).inserted else { return duplicate(put.key, responder) }
            batch.put(Key(put.key), put.value)
        }
        for key in transaction.deletes {
            guard written.insert(key).inserted else { return duplicate(key, responder) }
            batch.delete(Key(key))
        }
        do {
            try database.validate(batch)
        } catch {
            return responder.send(KeyValueHandlers.failure(error), route: .txn)
        }
        responder.connection.submitAtIterationEnd(Database.Submission(batch) { result in
            switch result {
            case .success(let revision): responder.send(TransactionHandler.committed(revision), route: .txn)
            case .failure(.conditionFailed(let failures)): responder.send(PreconditionAnswer.transaction(failures), route: .txn)
            case .failure(let error): responder.send(KeyValueHandlers.failure(error), route: .txn)
            }
        })
    }

    private func duplicate(_ key: [UInt8], _ responder: Responder) {
        var message = Array("duplicate key: a transaction may put or delete each key once, but it writes ".utf8)
        message.append(contentsOf: key)
        message.append(contentsOf: Array(" more than once".utf8))
        responder.send(.json(status: 400, errorBytes: message), route: .txn)
    }

    static func committed(_ revision: UInt64) -> HTTPResponse {
        var body = Array(#"{"ok":true,"revision":"#.utf8)
        DecimalText.append(revision, to: &body)
        body.append(contentsOf: Array("}\n".utf8))
        return .json(status: 200, body: body, headers: [("X-Revision", String(revision))])
    }
}
