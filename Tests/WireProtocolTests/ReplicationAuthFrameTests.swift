// The authentication frames (11 authChallenge, 12 authResponse, 13 authProof) and the per-state
// payload limits of the decoder.
import Testing
import WireProtocol

private func handFrame(_ type: UInt8, _ payload: [UInt8]) -> [UInt8] {
    let head = [type] + le32(UInt32(payload.count))
    return head + payload + le32(referenceCRC32(head + payload))
}

private func decode(_ bytes: [UInt8], limit: Int = ReplicationProtocol.maxPayloadSize) -> Result<ReplicationFrame?, ReplicationFrameError> {
    var decoder = ReplicationFrameDecoder(maxPayloadSize: limit)
    decoder.append(bytes)
    return Result { () throws(ReplicationFrameError) in try decoder.nextFrame() }
}

@Suite("Replication authentication frames")
struct ReplicationAuthFrameTests {
    private let nonce = (0..<32).map { UInt8($0) }
    private let proof = (0..<32).map { UInt8(255 - $0) }

    @Test func eachRoundTripsAndMatchesTheDocumentedLayout() throws {
        let cases: [(ReplicationFrame, [UInt8])] = [
            (.authChallenge(nonce: nonce), handFrame(11, le32(0x5244_4253) + nonce)),
            (.authResponse(nonce: nonce, proof: proof), handFrame(12, nonce + proof)),
            (.authProof(proof), handFrame(13, proof)),
        ]
        for (frame, bytes) in cases {
            #expect(ReplicationFrameEncoder.encode(frame) == bytes)
            #expect(try decode(bytes).get() == frame)
        }
    }

    @Test func wrongSizesAndABadMagicAreRefused() {
        for bytes in [handFrame(11, le32(0x5244_4253) + nonce.dropLast()), handFrame(12, nonce), handFrame(13, proof + [0])] {
            guard case .failure(.malformed) = decode(bytes) else {
                Issue.record("accepted \(bytes.count) bytes")
                continue
            }
        }
        #expect(throws: ReplicationFrameError.badMagic) { try decode(handFrame(11, le32(0x5054_5448) + nonce)).get() }
    }

    @Test func aPrimarysLimitRefusesAnyLargeFrameAtItsHeader() {
        // The header of a 64 MiB snapshot chunk: refused before any payload is buffered.
        var decoder = ReplicationFrameDecoder(maxPayloadSize: ReplicationProtocol.maxPayloadSizeToPrimary)
        decoder.append([5] + le32(64 << 20))
        #expect(throws: ReplicationFrameError.payloadTooLarge(size: 64 << 20, limit: ReplicationProtocol.maxPayloadSizeToPrimary)) {
            try decoder.nextFrame()
        }
        // Every frame a primary receives fits.
        let largestRefusal = ReplicationFrame.refuse(Refusal(code: .busy, message: String(repeating: "x", count: 5000)))
        let largestHello = handFrame(1, [UInt8](repeating: 0, count: 1024))
        var fits = ReplicationFrameDecoder(maxPayloadSize: ReplicationProtocol.maxPayloadSizeToPrimary)
        fits.append(ReplicationFrameEncoder.encode(largestRefusal))
        #expect(throws: Never.self) { try fits.nextFrame() }
        #expect(largestHello.count - 9 <= ReplicationProtocol.maxPayloadSizeToPrimary)
    }

    @Test func theLimitCanBeRaisedAfterTheHandshake() throws {
        var decoder = ReplicationFrameDecoder(maxPayloadSize: 64)
        decoder.append(ReplicationFrameEncoder.encode(.ack(ReplicationPosition(generation: 1, offset: 2))))
        #expect(try decoder.nextFrame() == .ack(ReplicationPosition(generation: 1, offset: 2)))
        decoder.maxPayloadSize = ReplicationProtocol.maxPayloadSize
        let chunk = ReplicationFrame.snapshotChunk([UInt8](repeating: 3, count: 100_000))
        decoder.append(ReplicationFrameEncoder.encode(chunk))
        #expect(try decoder.nextFrame() == chunk)
        decoder.maxPayloadSize = -5
        #expect(decoder.maxPayloadSize == 0)
    }
}
