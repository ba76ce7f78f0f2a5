@testable import HTTPFront
import Testing
import WireProtocol

/// The hot routes' answers encoded straight into bytes (`KeyValueHandlers.encodedValueAnswer`
/// and `encodedNotFoundAnswer`, `Responder.encodedWritten`) are byte for byte what the general encoder writes for the same
/// answer: the fast paths cannot drift from the API's documented answers.
@Suite struct PlainAnswerTests {
    private static func general(_ response: HTTPResponse) -> [UInt8] {
        var bytes: [UInt8] = []
        HTTPResponseEncoder.encode(response, headOnly: false, closeConnection: false, to: &bytes)
        return bytes
    }

    @Test(arguments: [0, 1, 2, 3, 24, 100, 4096], [UInt64(0), 7, 1_000_000_007, .max])
    func aGetAnswerIsWhatTheEncoderWrites(valueCount: Int, revision: UInt64) throws {
        let key = Array("key:12345/with spaces-and.dots".utf8)
        let value = (0..<valueCount).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        let fast = try #require(value.withUnsafeBytes { KeyValueHandlers.encodedValueAnswer(keyBytes: key, value: $0, modRevision: revision) })
        var body = Array(#"{"key":"#.utf8)
        key.withUnsafeBytes { JSONWriter.appendString($0, to: &body) }
        body += Array(#","value":""#.utf8) + Array(Base64.encode(value).utf8) + Array(#"","encoding":"base64"}"#.utf8) + [0x0A]
        #expect(fast == Self.general(.json(status: 200, body: body, headers: [KeyValueHandlers.etag(revision)])))
    }

    @Test(arguments: ["k", "key:12345/with spaces-and.dots", String(repeating: "x", count: 1000)])
    func aMissedGetAnswerIsWhatTheEncoderWrites(key: String) throws {
        let bytes = Array(key.utf8)
        let fast = try #require(KeyValueHandlers.encodedNotFoundAnswer(keyBytes: bytes))
        #expect(fast == Self.general(.json(status: 404, errorBytes: Array("key not found: ".utf8) + bytes)))
    }

    /// A key JSON escapes (a quote, '<', a control byte, non-ASCII) takes the general path.
    @Test(arguments: ["a\"b", "a<b", "tab\there", "é", "back\\slash", "amp&"])
    func aKeyThatNeedsEscapingIsLeftToTheGeneralPath(key: String) {
        let bytes = Array(key.utf8)
        #expect([UInt8]().withUnsafeBytes { KeyValueHandlers.encodedValueAnswer(keyBytes: bytes, value: $0, modRevision: 1) } == nil)
        #expect(KeyValueHandlers.encodedNotFoundAnswer(keyBytes: bytes) == nil)
    }

    @Test(arguments: [UInt64(1), 42, .max], [true, false])
    func aWriteAnswerIsWhatTheEncoderWrites(revision: UInt64, etag: Bool) {
        #expect(Responder.encodedWritten(revision: revision, etag: etag) == Self.general(KeyValueHandlers.written(revision: revision, etag: etag)))
    }
}
