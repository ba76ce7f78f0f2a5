// Fuzz target: the body decoder of POST /v1/txn. A typed `TransactionBodyError` is a normal
// outcome; a trap, a crash or an ASan report is the finding. What it decodes is also checked:
// never more operations than the limit it was given.
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let body = Array(UnsafeRawBufferPointer(start: data, count: size))
    let limit = 128
    if let request = try? TransactionRequestDecoder.decode(body, maxOperations: limit) {
        let operations = request.conditions.count + request.puts.count + request.deletes.count
        precondition(operations <= limit, "decoded \(operations) operations past the limit of \(limit)")
    }
    return 0
}
