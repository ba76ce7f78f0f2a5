// The replication state file: round trips, and every damage (truncation, bit flip, extra byte, a
// history that breaks its rules behind a valid checksum) gives a typed error, never a state.
import Testing
import WireProtocol

private let lineage = Lineage(high: 0xA1A2_A3A4_A5A6_A7A8, low: 0xB1B2_B3B4_B5B6_B7B8)

private let states: [ReplicationState] = [
    ReplicationState(lineage: lineage, epoch: 0, history: []),
    ReplicationState(lineage: lineage, epoch: 1, history: [EpochStart(epoch: 1, start: .init(generation: 1, offset: 0))], role: .backup),
    ReplicationState(
        lineage: Lineage(high: .max, low: 0), epoch: 12,
        history: [
            EpochStart(epoch: 1, start: .init(generation: 1, offset: 0)),
            EpochStart(epoch: 3, start: .init(generation: 4, offset: 8192)),
            EpochStart(epoch: 12, start: .init(generation: .max, offset: .max)),
        ]),
]

/// A state file by hand, with a correct CRC unless given.
private func handFile(
    version: UInt32 = 1, epoch: UInt64, role: UInt8 = 0, count: UInt32? = nil, entries: [(UInt64, UInt64, UInt64)], crc: UInt32? = nil
) -> [UInt8] {
    var body = Array("SDBREPL\0".utf8) + le32(version) + lineage.bytes + le64(epoch) + [role] + le32(count ?? UInt32(entries.count))
    for (epoch, generation, offset) in entries { body += le64(epoch) + le64(generation) + le64(offset) }
    return body + le32(crc ?? referenceCRC32(body))
}

@Suite struct ReplicationStateFileTests {
    @Test(arguments: states)
    func roundTrip(_ state: ReplicationState) throws {
        let bytes = ReplicationStateCodec.encode(state)
        #expect(bytes.count == 41 + 24 * state.history.count + 4)
        #expect(try ReplicationStateCodec.decode(bytes) == state)
        #expect(readLE32(bytes, at: bytes.count - 4) == referenceCRC32(bytes.dropLast(4)))
    }

    @Test func handBuiltFileDecodes() throws {
        let state = try ReplicationStateCodec.decode(handFile(epoch: 4, entries: [(2, 1, 0), (4, 3, 99)]))
        #expect(state == ReplicationState(lineage: lineage, epoch: 4, history: [
            EpochStart(epoch: 2, start: .init(generation: 1, offset: 0)), EpochStart(epoch: 4, start: .init(generation: 3, offset: 99)),
        ]))
    }

    @Test(arguments: states)
    func everyTruncationIsRefused(_ state: ReplicationState) {
        let bytes = ReplicationStateCodec.encode(state)
        for length in 0..<bytes.count {
            #expect(throws: ReplicationStateError.self, "truncated to \(length)") {
                try ReplicationStateCodec.decode(Array(bytes.prefix(length)))
            }
        }
        #expect(throws: ReplicationStateError.tooShort(10)) { try ReplicationStateCodec.decode(Array(bytes.prefix(10))) }
    }

    @Test(arguments: states)
    func everyBitFlipIsRefused(_ state: ReplicationState) {
        let bytes = ReplicationStateCodec.encode(state)
        for index in 0..<bytes.count {
            for bit in 0..<8 {
                var damaged = bytes
                damaged[index] ^= UInt8(1) << UInt8(bit)
                #expect(throws: ReplicationStateError.self, "bit \(bit) of byte \(index)") {
                    try ReplicationStateCodec.decode(damaged)
                }
            }
        }
    }

    @Test func specificErrors() throws {
        let good = ReplicationStateCodec.encode(states[2])
        #expect(throws: ReplicationStateError.lengthMismatch(expected: good.count, actual: good.count + 1)) {
            try ReplicationStateCodec.decode(good + [0])
        }
        var magic = good
        magic[0] = UInt8(ascii: "X")
        #expect(throws: ReplicationStateError.badMagic) { try ReplicationStateCodec.decode(magic) }
        #expect(throws: ReplicationStateError.unsupportedVersion(2)) {
            try ReplicationStateCodec.decode(handFile(version: 2, epoch: 1, entries: []))
        }
        #expect(throws: ReplicationStateError.lengthMismatch(expected: 41 + 24 * Int(UInt32.max) + 4, actual: 45)) {
            try ReplicationStateCodec.decode(handFile(epoch: 1, count: .max, entries: []))
        }
        #expect(throws: ReplicationStateError.unknownRole(2)) {
            try ReplicationStateCodec.decode(handFile(epoch: 1, role: 2, entries: []))
        }
        #expect(try ReplicationStateCodec.decode(handFile(epoch: 0, role: 1, entries: [])).role == .backup)
        #expect(throws: ReplicationStateError.checksumMismatch(stored: 7, computed: referenceCRC32(handFile(epoch: 1, entries: []).dropLast(4)))) {
            try ReplicationStateCodec.decode(handFile(epoch: 1, entries: [], crc: 7))
        }
    }

    @Test func historyRulesAreCheckedBehindAValidChecksum() {
        let cases: [(UInt64, [(UInt64, UInt64, UInt64)], Int)] = [
            (5, [(3, 1, 0), (3, 2, 0)], 1),  // repeated epoch
            (5, [(4, 1, 0), (2, 2, 0)], 1),  // descending
            (5, [(6, 1, 0)], 0),  // after the current epoch
            (5, [(1, 1, 0), (5, 2, 0), (7, 3, 0)], 2),
        ]
        for (epoch, entries, index) in cases {
            #expect {
                try ReplicationStateCodec.decode(handFile(epoch: epoch, entries: entries))
            } throws: { error in
                guard case .invalidHistory(let at, _) = error as? ReplicationStateError else { return false }
                return at == index
            }
        }
        #expect(throws: ReplicationStateError.self) {
            try ReplicationState(lineage: lineage, epoch: 1, history: [EpochStart(epoch: 2, start: .init(generation: 1, offset: 0))]).validate()
        }
    }

    @Test func theFileName() {
        #expect(ReplicationStateFormat.fileName == "replication")
    }
}
