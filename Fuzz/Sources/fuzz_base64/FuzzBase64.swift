// Fuzz target: base64 decoding of untrusted text. A typed `Base64Error` is a normal outcome. Also
// differential against the encoder: what decodes must stay within `maximumDecodedCount`, and
// decode(encode(bytes)) == bytes for the bytes it decoded to.
import WireProtocol

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let text = UnsafeBufferPointer(start: data, count: size)
    guard let decoded = try? Base64.decode(text) else { return 0 }
    precondition(decoded.count <= Base64.maximumDecodedCount(of: size), "decoded more than the maximum")
    let encoded = Base64.encode(decoded)
    precondition(encoded.utf8.count == Base64.encodedCount(of: decoded.count), "encodedCount disagrees with encode")
    precondition((try? Base64.decode(Array(encoded.utf8))) == decoded, "decode(encode(x)) != x")
    return 0
}
