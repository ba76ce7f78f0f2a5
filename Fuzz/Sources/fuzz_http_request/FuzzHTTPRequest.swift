// Fuzz target: the HTTP/1.1 request decoder, with its default limits, over the input as the bytes
// of one connection. Drained the way the server drains it (until nil or the first error); a typed
// `HTTPRequestError` is a normal outcome. Also differential: the same bytes fed in pieces of a
// size taken from the first byte must give the same requests and the same final verdict (the
// decoder keeps no state that depends on how the bytes arrived, except that "100-continue" is
// only announced when the body is not yet buffered, so those events are left out).
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    var whole = HTTPRequestDecoder()
    whole.feed(bytes)
    let expected = drain(&whole)

    let pieceSize = size == 0 ? 1 : Int(bytes[0] % 16) + 1
    var pieces = HTTPRequestDecoder()
    var requests: [HTTPRequest] = []
    var failure: HTTPRequestError?
    var offset = 0
    while offset < size && failure == nil {
        let end = min(size, offset + pieceSize)
        pieces.feed(UnsafeRawBufferPointer(rebasing: bytes[offset..<end]))
        offset = end
        let outcome = drain(&pieces)
        requests += outcome.requests
        failure = outcome.failure
    }
    precondition(requests == expected.requests, "pieces of \(pieceSize): requests differ")
    precondition(failure == expected.failure, "pieces of \(pieceSize): \(String(describing: failure)) != \(String(describing: expected.failure))")
    return 0
}

func drain(_ decoder: inout HTTPRequestDecoder) -> (requests: [HTTPRequest], failure: HTTPRequestError?) {
    var requests: [HTTPRequest] = []
    do throws(HTTPRequestError) {
        while let event = try decoder.next() {
            if case .request(let request) = event { requests.append(request) }
        }
        return (requests, nil)
    } catch {
        return (requests, error)
    }
}
