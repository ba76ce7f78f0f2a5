import StorageEngine
import WireProtocol

/// The answer to a GET of a large value, produced a chunk at a time as the socket drains instead
/// of built whole (a 16 MiB value is a 22 MB answer; a client that never reads would make us hold
/// all of it until the write timeout). The connection holds a retained reference to the stored
/// value's immutable bytes (`Database.storedValue(for:)`: no copy, and a later write of the key
/// stores a new buffer rather than changing this one) and at most one chunk of the encoding.
///
/// The bytes are exactly those of the whole answer (`KeyValueHandlers.get`'s body, then
/// `HTTPResponseEncoder.encode`), in this order:
///
///     head                            `HTTPResponseEncoder.encodeHead`, Content-Length up front
///     {"key":<key>,"value":"          these two are `start`, appended with the first chunk
///     base64 of the value             `valueChunk` bytes of value (64 KiB of text) per piece
///     ","encoding":"base64"}\n        `suffix`, appended with the last chunk
///
/// What must stay true: `valueChunk` is a multiple of 3, so the encodings of the chunks, one
/// after the other, are the encoding of the whole value (padding only at the very end).
struct StreamedValueAnswer: Sendable {
    /// Value bytes encoded per piece: 48 KiB of value is 64 KiB of base64.
    static let valueChunk = 48 << 10
    static let suffix: [UInt8] = Array(#"","encoding":"base64"}"#.utf8) + [0x0A]

    /// The head and the body's start.
    private var start: [UInt8]
    private let value: StoredValue
    private var valueOffset = 0
    /// Answer bytes not yet appended to an output buffer (at first, the whole answer).
    private(set) var remainingCount: Int

    /// The answer's body length for `bodyStart` (the JSON before the base64) and a value of
    /// `valueCount` bytes.
    static func bodyCount(bodyStart: Int, valueCount: Int) -> Int {
        bodyStart + Base64.encodedCount(of: valueCount) + suffix.count
    }

    /// `head` is the encoded head (with Content-Length `bodyCount(bodyStart: bodyStart.count, …)`),
    /// `bodyStart` the JSON up to the value's opening quote.
    init(head: [UInt8], bodyStart: [UInt8], value: StoredValue) {
        assert(StreamedValueAnswer.valueChunk % 3 == 0)
        self.start = head + bodyStart
        self.value = value
        self.remainingCount = start.count + Base64.encodedCount(of: value.count) + StreamedValueAnswer.suffix.count
    }

    var isFinished: Bool { remainingCount == 0 }

    /// Appends the next piece of the answer to `output` (the start and the first chunk, then one
    /// chunk at a time, the suffix with the last). Call only while `!isFinished`.
    mutating func appendNext(to output: inout [UInt8]) {
        assert(!isFinished)
        let before = output.count
        if !start.isEmpty {
            output.append(contentsOf: start)
            start = []
        }
        let end = min(value.count, valueOffset + StreamedValueAnswer.valueChunk)
        value.withUnsafeBytes { bytes in
            Base64.encode(UnsafeRawBufferPointer(rebasing: bytes[valueOffset..<end]), to: &output)
        }
        valueOffset = end
        if valueOffset == value.count { output.append(contentsOf: StreamedValueAnswer.suffix) }
        remainingCount -= output.count - before
        assert(remainingCount >= 0 && (remainingCount == 0) == (valueOffset == value.count))
    }
}
