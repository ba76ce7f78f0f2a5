import StorageEngine
import WireProtocol

/// The 412 answers of a write whose condition did not hold (nothing was written):
///
///     PUT/DELETE /v1/kv/{key}   {"error":"precondition failed","key":…,"key_encoding":…,"revision":N}
///     POST /v1/txn              {"error":"precondition failed","failed":[{"key":…,"key_encoding":…,"revision":N},…]}
///
/// N is the key's mod revision when the committer checked it (0: absent), so a client that lost a
/// compare-and-set race can retry from it without another GET (it is the ETag the key has now).
enum PreconditionAnswer {
    static func singleKey(_ failures: [ConditionFailure], key: Key) -> HTTPResponse {
        var body = Array(#"{"error":"precondition failed","#.utf8)
        key.withUnsafeBytes { KeyJSON.appendMembers($0, to: &body) }
        body.append(contentsOf: Array(#","revision":"#.utf8))
        DecimalText.append(failures.first?.currentRevision ?? 0, to: &body)
        body.append(contentsOf: Array("}\n".utf8))
        return .json(status: 412, body: body)
    }

    static func transaction(_ failures: [ConditionFailure]) -> HTTPResponse {
        var body = Array(#"{"error":"precondition failed","failed":["#.utf8)
        for (index, failure) in failures.enumerated() {
            if index > 0 { body.append(UInt8(ascii: ",")) }
            body.append(UInt8(ascii: "{"))
            failure.key.withUnsafeBytes { KeyJSON.appendMembers($0, to: &body) }
            body.append(contentsOf: Array(#","revision":"#.utf8))
            DecimalText.append(failure.currentRevision, to: &body)
            body.append(UInt8(ascii: "}"))
        }
        body.append(contentsOf: Array("]}\n".utf8))
        return .json(status: 412, body: body)
    }
}
