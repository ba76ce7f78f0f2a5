// The replication frame codec: every frame kind round-trips; malformed input of every kind gives
// the right typed error; random damage never traps and whatever decodes re-encodes to exactly the
// bytes it came from; pieces of any size decode the same as the whole.
import Testing
import WireProtocol

// MARK: - Helpers

/// A frame by hand: type | u32 length | payload | u32 CRC (the correct one from the reference
/// CRC unless given; `length` lies if given).
private func handFrame(_ type: UInt8, _ payload: [UInt8], length: UInt32? = nil, crc: UInt32? = nil) -> [UInt8] {
    let head = [type] + le32(length ?? UInt32(payload.count))
    return head + payload + le32(crc ?? referenceCRC32(head + payload))
}

private func position(_ generation: UInt64, _ offset: UInt64) -> ReplicationPosition {
    ReplicationPosition(generation: generation, offset: offset)
}

private let lineageA = Lineage(high: 0x0123_4567_89AB_CDEF, low: 0xFEDC_BA98_7654_3210)

/// Valid payload pieces, by hand.
private func helloPayload(
    magic: UInt32 = 0x5244_4253, version: UInt16 = 1, epoch: UInt64 = 3, flag: UInt8 = 1,
    lineage: [UInt8] = lineageA.bytes, generation: UInt64 = 2, offset: UInt64 = 100, crc: UInt32 = 0xDEAD_BEEF,
    startFlag: UInt8 = 0, startGeneration: UInt64 = 0, startOffset: UInt64 = 0
) -> [UInt8] {
    le32(magic) + [UInt8(version & 0xFF), UInt8(version >> 8)] + le64(epoch) + [flag] + lineage
        + le64(generation) + le64(offset) + le32(crc) + [startFlag] + le64(startGeneration) + le64(startOffset)
}

private func historyEntry(_ epoch: UInt64, _ generation: UInt64, _ offset: UInt64) -> [UInt8] {
    le64(epoch) + le64(generation) + le64(offset)
}

private func welcomePayload(epoch: UInt64 = 5, mode: UInt8 = 0, count: UInt32? = nil, entries: [[UInt8]] = []) -> [UInt8] {
    le64(epoch) + lineageA.bytes + [mode] + le32(count ?? UInt32(entries.count)) + entries.flatMap { $0 }
}

private func refusePayload(code: UInt8 = 2, message: [UInt8], length: UInt32? = nil) -> [UInt8] {
    [code] + le32(length ?? UInt32(message.count)) + message
}

/// Feeds `bytes` in pieces of `pieceSize` and takes every frame; stops at the first error.
private func decodeStream(
    _ bytes: [UInt8], pieceSize: Int = .max, decoder: ReplicationFrameDecoder = ReplicationFrameDecoder()
) -> (frames: [ReplicationFrame], error: ReplicationFrameError?, buffered: Int) {
    var decoder = decoder
    var frames: [ReplicationFrame] = []
    var index = 0
    repeat {
        let end = index + min(pieceSize, bytes.count - index)
        bytes[index..<end].withUnsafeBytes { decoder.append($0) }
        index = end
        do {
            while let frame = try decoder.nextFrame() { frames.append(frame) }
        } catch {
            return (frames, error, decoder.bufferedByteCount)
        }
    } while index < bytes.count
    return (frames, nil, decoder.bufferedByteCount)
}

private func encodeAll(_ frames: [ReplicationFrame]) -> [UInt8] {
    var bytes: [UInt8] = []
    for frame in frames { ReplicationFrameEncoder.append(frame, to: &bytes) }
    return bytes
}

/// One of every kind, with the edge values that matter.
private let sampleFrames: [ReplicationFrame] = [
    .hello(Hello(epoch: 7, lineage: lineageA, position: position(3, 4096), prefixCRC: 0x1234_5678)),
    .hello(Hello(epoch: 0, lineage: nil, position: position(0, 0), prefixCRC: 0)),
    .hello(Hello(epoch: 2, lineage: lineageA, position: position(5, 10), prefixCRC: 1, epochStart: position(3, 0))),
    .welcome(Welcome(epoch: 9, lineage: lineageA, history: [], mode: .snapshot)),
    .welcome(Welcome(
        epoch: 9, lineage: lineageA,
        history: [EpochStart(epoch: 1, start: position(1, 0)), EpochStart(epoch: 4, start: position(2, 77)), EpochStart(epoch: 9, start: position(5, 1 << 40))],
        mode: .stream)),
    .refuse(Refusal(code: .staleEpoch, message: "your epoch 3 is older than mine (5) — ünïcødé ✓")),
    .refuse(Refusal(code: .newerEpoch, message: "")),
    .snapshotBegin(generation: 12, totalBytes: 1 << 33),
    .snapshotChunk([]),
    .snapshotChunk(Array(0...255)),
    .snapshotEnd(crc32: 0xFFFF_FFFF),
    .records(at: position(6, 123_456), bytes: [1, 2, 3, 4, 5, 6, 7, 8, 9]),
    .records(at: position(.max, .max), bytes: []),
    .startSegment(generation: 42),
    .heartbeat(epoch: 3, position: position(6, 999)),
    .ack(position(6, 1000)),
]

// MARK: - Round trips

@Suite struct ReplicationFrameRoundTripTests {
    @Test(arguments: sampleFrames)
    func roundTrip(_ frame: ReplicationFrame) throws {
        let bytes = ReplicationFrameEncoder.encode(frame)
        let result = decodeStream(bytes)
        #expect(result.error == nil)
        #expect(result.frames == [frame])
        #expect(result.buffered == 0)
        // The layout: type, length, payload, CRC over all before it.
        #expect(Int(readLE32(bytes, at: 1)) == bytes.count - 9)
        #expect(readLE32(bytes, at: bytes.count - 4) == referenceCRC32(bytes.dropLast(4)))
    }

    @Test func handBuiltHelloDecodes() throws {
        let result = decodeStream(handFrame(1, helloPayload()))
        #expect(result.frames == [.hello(Hello(epoch: 3, lineage: lineageA, position: position(2, 100), prefixCRC: 0xDEAD_BEEF))])
        #expect(Array(ReplicationFrameEncoder.encode(result.frames[0]).prefix(9)) == [1, 68, 0, 0, 0, 0x53, 0x42, 0x44, 0x52])
    }

    @Test func handBuiltHelloWithAnEpochStartDecodes() throws {
        let result = decodeStream(handFrame(1, helloPayload(startFlag: 1, startGeneration: 4, startOffset: 77)))
        #expect(result.frames == [.hello(Hello(
            epoch: 3, lineage: lineageA, position: position(2, 100), prefixCRC: 0xDEAD_BEEF, epochStart: position(4, 77)))])
    }

    @Test func wholeStreamByteByByteDecodesTheSame() {
        let bytes = encodeAll(sampleFrames)
        #expect(decodeStream(bytes).frames == sampleFrames)
        let split = decodeStream(bytes, pieceSize: 1)
        #expect(split.error == nil)
        #expect(split.frames == sampleFrames)
        #expect(split.buffered == 0)
        for pieceSize in [2, 3, 7, 64, 1000] {
            #expect(decodeStream(bytes, pieceSize: pieceSize).frames == sampleFrames)
        }
    }

    @Test func recordsFastPathMatchesTheEnumCase() {
        let records: [UInt8] = Array(repeating: 0xAB, count: 300)
        var fast: [UInt8] = [9, 9]  // appends after what is there
        records.withUnsafeBytes { ReplicationFrameEncoder.appendRecords(at: position(4, 8), bytes: $0, to: &fast) }
        #expect(Array(fast.dropFirst(2)) == ReplicationFrameEncoder.encode(.records(at: position(4, 8), bytes: records)))
        #expect(fast.count - 2 == ReplicationFrameEncoder.encodedRecordsFrameSize(byteCount: 300))
    }

    @Test func largeRecordsFrameInSocketSizedPieces() {
        var generator = SplitMix64(seed: 10)
        let records = generator.bytes(10 << 20)
        let frames: [ReplicationFrame] = [.records(at: position(1, 0), bytes: records), .ack(position(1, 10 << 20))]
        let result = decodeStream(encodeAll(frames), pieceSize: 64 << 10)
        #expect(result.error == nil)
        #expect(result.frames == frames)
    }

    @Test func manySmallFramesInPiecesAllDecode() {
        let frames = (0..<50_000).map { ReplicationFrame.ack(position(1, UInt64($0))) }
        let result = decodeStream(encodeAll(frames), pieceSize: 65_536 + 3)
        #expect(result.frames.count == frames.count)
        #expect(result.frames == frames)
    }

    @Test func refusalMessagesAreCutAtAScalarBoundary() {
        let long = String(repeating: "é", count: 600)  // 1200 UTF-8 bytes
        let refusal = Refusal(code: .busy, message: long)
        #expect(refusal.message.utf8.count == 1024)
        var raw = Refusal(code: .busy, message: "")
        raw.message = long + "x"  // set behind the initialiser's back: the encoder cuts it too
        let decoded = decodeStream(ReplicationFrameEncoder.encode(.refuse(raw))).frames
        #expect(decoded == [.refuse(refusal)])
    }

    @Test func positionsAndLineages() {
        #expect(position(1, 900) < position(2, 0))
        #expect(position(2, 5) < position(2, 6))
        #expect(position(3, 17).description == "logfile.3@17")
        #expect(lineageA.description == "0123456789abcdeffedcba9876543210")
        #expect(Lineage(bytes: lineageA.bytes) == lineageA)
        #expect(Lineage(bytes: [UInt8](repeating: 1, count: 15)) == nil)
        var generator = SplitMix64(seed: 1)
        let one = Lineage.random(using: &generator)
        let two = Lineage.random(using: &generator)
        #expect(one != two)
        #expect(Lineage.random() != Lineage.random())
    }
}

// MARK: - Malformed input

enum ReplicationExpectedError: CustomStringConvertible {
    case error(ReplicationFrameError)
    case malformed

    func matches(_ error: ReplicationFrameError?) -> Bool {
        switch (self, error) {
        case (.error(let expected), let actual?): return expected == actual
        case (.malformed, .malformed?): return true
        default: return false
        }
    }

    var description: String {
        switch self {
        case .error(let error): "\(error)"
        case .malformed: "malformed"
        }
    }
}

struct ReplicationMalformedCase: CustomStringConvertible, Sendable {
    let name: String
    let bytes: [UInt8]
    let expected: @Sendable () -> ReplicationExpectedError
    var description: String { name }

    init(_ name: String, _ bytes: [UInt8], _ expected: @autoclosure @escaping @Sendable () -> ReplicationExpectedError) {
        self.name = name
        self.bytes = bytes
        self.expected = expected
    }
}

private let maxPayload = ReplicationProtocol.maxPayloadSize

private let malformedCases: [ReplicationMalformedCase] = [
    ReplicationMalformedCase("type 0", [0], .error(.unknownFrameType(0))),
    ReplicationMalformedCase("type 14", handFrame(14, []), .error(.unknownFrameType(14))),
    ReplicationMalformedCase("type 255, one byte", [255], .error(.unknownFrameType(255))),
    ReplicationMalformedCase("HTTP request", Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8), .error(.unknownFrameType(0x47))),
    ReplicationMalformedCase("TLS client hello", [0x16, 0x03, 0x01, 0x02, 0x00], .error(.unknownFrameType(0x16))),
    ReplicationMalformedCase("length over the limit", [10] + le32(UInt32(maxPayload + 1)), .error(.payloadTooLarge(size: maxPayload + 1, limit: maxPayload))),
    ReplicationMalformedCase("length 0xFFFFFFFF", [7] + le32(.max), .error(.payloadTooLarge(size: Int(UInt32.max), limit: maxPayload))),
    ReplicationMalformedCase("ack of 15 bytes", [10] + le32(15), .malformed),
    ReplicationMalformedCase("ack of 17 bytes", handFrame(10, [UInt8](repeating: 0, count: 17)), .malformed),
    ReplicationMalformedCase("heartbeat of 25 bytes", [9] + le32(25), .malformed),
    ReplicationMalformedCase("snapshotEnd empty", handFrame(6, []), .malformed),
    ReplicationMalformedCase("startSegment of 4 bytes", handFrame(8, le32(1)), .malformed),
    ReplicationMalformedCase("records without a position", handFrame(7, le64(1)), .malformed),
    ReplicationMalformedCase("bad CRC", handFrame(10, le64(1) + le64(2), crc: 0x0BAD_F00D), .error(.checksumMismatch(stored: 0x0BAD_F00D, computed: referenceCRC32([10] + le32(16) + le64(1) + le64(2))))),
    ReplicationMalformedCase("hello with bad magic", handFrame(1, helloPayload(magic: 0x5054_5448)), .error(.badMagic)),
    ReplicationMalformedCase("hello of version 2", handFrame(1, helloPayload(version: 2)), .error(.unsupportedVersion(2))),
    ReplicationMalformedCase("hello of version 0, short", handFrame(1, le32(0x5244_4253) + [0, 0]), .error(.unsupportedVersion(0))),
    ReplicationMalformedCase("hello lineage flag 2", handFrame(1, helloPayload(flag: 2)), .malformed),
    ReplicationMalformedCase("hello epoch start flag 2", handFrame(1, helloPayload(startFlag: 2)), .malformed),
    ReplicationMalformedCase("hello without epoch start but its bytes", handFrame(1, helloPayload(startFlag: 0, startOffset: 9)), .malformed),
    ReplicationMalformedCase("hello without lineage but lineage bytes", handFrame(1, helloPayload(flag: 0)), .malformed),
    ReplicationMalformedCase("hello with a trailing byte", handFrame(1, helloPayload() + [0]), .malformed),
    ReplicationMalformedCase("hello cut short", handFrame(1, Array(helloPayload().dropLast())), .malformed),
    ReplicationMalformedCase("hello of 1025 bytes", [1] + le32(1025), .malformed),
    ReplicationMalformedCase("welcome mode 2", handFrame(2, welcomePayload(mode: 2)), .malformed),
    ReplicationMalformedCase("welcome count past the payload", handFrame(2, welcomePayload(count: 2, entries: [historyEntry(1, 1, 0)])), .malformed),
    ReplicationMalformedCase("welcome count 2^32-1", handFrame(2, welcomePayload(count: .max)), .malformed),
    ReplicationMalformedCase("welcome trailing bytes", handFrame(2, welcomePayload(entries: [historyEntry(1, 1, 0)]) + [0, 0]), .malformed),
    ReplicationMalformedCase("welcome history not ascending", handFrame(2, welcomePayload(entries: [historyEntry(2, 1, 0), historyEntry(2, 3, 0)])), .malformed),
    ReplicationMalformedCase("welcome history after its epoch", handFrame(2, welcomePayload(epoch: 5, entries: [historyEntry(6, 1, 0)])), .malformed),
    ReplicationMalformedCase("welcome too short", handFrame(2, le64(1)), .malformed),
    ReplicationMalformedCase("refuse code 0", handFrame(3, refusePayload(code: 0, message: [])), .malformed),
    ReplicationMalformedCase("refuse code 8", handFrame(3, refusePayload(code: 8, message: [])), .malformed),
    ReplicationMalformedCase("refuse message past the payload", handFrame(3, refusePayload(message: Array("abc".utf8), length: 4)), .malformed),
    ReplicationMalformedCase("refuse message not UTF-8", handFrame(3, refusePayload(message: [0x61, 0xFF, 0xFE])), .malformed),
    ReplicationMalformedCase("refuse trailing bytes", handFrame(3, refusePayload(message: Array("abc".utf8), length: 2)), .malformed),
    ReplicationMalformedCase("refuse message over 1024 bytes", [3] + le32(5 + 1025), .malformed),
]

@Suite struct ReplicationFrameMalformedTests {
    @Test(arguments: malformedCases)
    func malformedInputGivesTheRightError(_ testCase: ReplicationMalformedCase) {
        let result = decodeStream(testCase.bytes)
        let expected = testCase.expected()
        #expect(result.frames.isEmpty)
        #expect(expected.matches(result.error), "\(testCase.name): expected \(expected), got \(String(describing: result.error))")
        // The same, a byte at a time: the error comes as soon as the bytes show it.
        let split = decodeStream(testCase.bytes, pieceSize: 1)
        #expect(expected.matches(split.error), "\(testCase.name), byte by byte: got \(String(describing: split.error))")
    }

    @Test func atLeastTwentyCases() {
        #expect(malformedCases.count >= 20)
    }

    @Test func anHTTPRequestIsRefusedAtItsFirstByte() throws {
        var decoder = ReplicationFrameDecoder()
        decoder.append([UInt8(ascii: "G")])
        #expect(throws: ReplicationFrameError.unknownFrameType(0x47)) { try decoder.nextFrame() }
        var post = ReplicationFrameDecoder()
        post.append(Array("POST /v1/kv/a HTTP/1.1\r\n".utf8))
        #expect(throws: ReplicationFrameError.unknownFrameType(UInt8(ascii: "P"))) { try post.nextFrame() }
    }

    @Test func errorsAreSticky() throws {
        var decoder = ReplicationFrameDecoder()
        decoder.append(handFrame(10, [UInt8](repeating: 0, count: 16), crc: 1))
        #expect(throws: ReplicationFrameError.self) { try decoder.nextFrame() }
        decoder.append(ReplicationFrameEncoder.encode(.ack(position(1, 1))))
        #expect(throws: ReplicationFrameError.self) { try decoder.nextFrame() }
    }

    @Test func aSmallerLimitIsEnforcedBeforeThePayloadArrives() throws {
        var decoder = ReplicationFrameDecoder(maxPayloadSize: 64)
        decoder.append([5] + le32(100))
        #expect(throws: ReplicationFrameError.payloadTooLarge(size: 100, limit: 64)) { try decoder.nextFrame() }
        var fits = ReplicationFrameDecoder(maxPayloadSize: 64)
        fits.append(ReplicationFrameEncoder.encode(.snapshotChunk([UInt8](repeating: 1, count: 64))))
        #expect(try fits.nextFrame() == .snapshotChunk([UInt8](repeating: 1, count: 64)))
    }

    @Test func incompleteFramesWaitForMoreBytes() throws {
        let bytes = ReplicationFrameEncoder.encode(.heartbeat(epoch: 1, position: position(2, 3)))
        var decoder = ReplicationFrameDecoder()
        for byte in bytes.dropLast() {
            decoder.append([byte])
            #expect(try decoder.nextFrame() == nil)
        }
        decoder.append([bytes.last!])
        #expect(try decoder.nextFrame() == .heartbeat(epoch: 1, position: position(2, 3)))
        #expect(try decoder.nextFrame() == nil)
    }
}

// MARK: - Random damage

@Suite struct ReplicationFrameFuzzTests {
    private static func randomFrame(_ generator: inout SplitMix64) -> ReplicationFrame {
        switch Int.random(in: 0..<12, using: &generator) {
        case 0...3:
            return .records(at: position(generator.next() % 8, generator.next() % 100_000), bytes: generator.interestingBytes(maxCount: 80))
        case 4: return .ack(position(generator.next() % 8, generator.next()))
        case 5: return .heartbeat(epoch: generator.next() % 5, position: position(2, generator.next() % 1000))
        case 6: return .startSegment(generation: generator.next() % 10)
        case 7: return .snapshotChunk(generator.interestingBytes(maxCount: 40))
        case 8: return .snapshotBegin(generation: 3, totalBytes: generator.next() % 10_000)
        case 9: return .snapshotEnd(crc32: UInt32(truncatingIfNeeded: generator.next()))
        case 10:
            return .hello(Hello(
                epoch: generator.next() % 9, lineage: Bool.random(using: &generator) ? Lineage.random(using: &generator) : nil,
                position: position(1, generator.next() % 500), prefixCRC: UInt32(truncatingIfNeeded: generator.next())))
        default:
            if Bool.random(using: &generator) {
                return .refuse(Refusal(code: .busy, message: String(decoding: generator.interestingBytes(maxCount: 20), as: UTF8.self)))
            }
            let count = Int.random(in: 0...3, using: &generator)
            let history = (0..<count).map { EpochStart(epoch: UInt64($0 * 2 + 1), start: position(UInt64($0), 10)) }
            return .welcome(Welcome(epoch: 10, lineage: Lineage.random(using: &generator), history: history, mode: .stream))
        }
    }

    private static func mutate(_ bytes: inout [UInt8], _ generator: inout SplitMix64) {
        for _ in 0..<Int.random(in: 1...3, using: &generator) {
            guard !bytes.isEmpty else { bytes.append(UInt8.random(in: 0...255, using: &generator)); continue }
            let index = Int.random(in: 0..<bytes.count, using: &generator)
            switch Int.random(in: 0..<6, using: &generator) {
            case 0: bytes[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &generator)
            case 1: bytes.insert(UInt8.random(in: 0...255, using: &generator), at: index)
            case 2: bytes.remove(at: index)
            case 3: bytes.removeSubrange(index...)
            case 4: bytes[index] = [0, 1, 0xFF, 0x7F, 11][Int.random(in: 0..<5, using: &generator)]
            default:
                let count = Int.random(in: 1...8, using: &generator)
                bytes.insert(contentsOf: generator.bytes(count), at: index)
            }
        }
    }

    @Test func randomDamageNeverTrapsAndWhatDecodesIsExact() {
        var generator = SplitMix64(seed: 0x5EED_F4A3)
        var decodedAny = 0
        var failed = 0
        for iteration in 0..<20_000 {
            let frames = (0..<Int.random(in: 1...4, using: &generator)).map { _ in Self.randomFrame(&generator) }
            var bytes = encodeAll(frames)
            if iteration % 10 != 0 { Self.mutate(&bytes, &generator) }
            var decoder = ReplicationFrameDecoder()
            var decoded: [ReplicationFrame] = []
            var failure: ReplicationFrameError?
            var index = 0
            feeding: while index < bytes.count {
                let end = index + min(Int.random(in: 1...40, using: &generator), bytes.count - index)
                bytes[index..<end].withUnsafeBytes { decoder.append($0) }
                index = end
                do {
                    while let frame = try decoder.nextFrame() { decoded.append(frame) }
                } catch {
                    failure = error
                    break feeding
                }
            }
            if failure != nil { failed += 1 }
            if !decoded.isEmpty { decodedAny += 1 }
            // Whatever decoded is exactly the bytes it came from: one encoding per value.
            let reencoded = encodeAll(decoded)
            let consumed = failure == nil ? bytes.count - decoder.bufferedByteCount : reencoded.count
            #expect(Array(bytes.prefix(consumed)) == reencoded, "seed iteration \(iteration)")
            if iteration % 10 == 0 {
                #expect(failure == nil && decoded == frames, "undamaged stream, iteration \(iteration)")
            }
            if failure != nil || iteration % 10 == 0 { continue }
        }
        #expect(failed > 5_000)
        #expect(decodedAny > 5_000)
    }

    @Test func randomBytesNeverTrap() {
        var generator = SplitMix64(seed: 77)
        for _ in 0..<5_000 {
            var decoder = ReplicationFrameDecoder()
            decoder.append(generator.bytes(Int.random(in: 0...64, using: &generator)))
            var steps = 0
            while steps < 100, (try? decoder.nextFrame()) != nil { steps += 1 }
        }
    }
}
