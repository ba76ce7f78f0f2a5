/// Scans a WAL segment read in bounded chunks (`ByteWindow`), with exactly the outcome of
/// `WALSegmentReader.scan` over the whole file: the same records, the same `WALScanResult`. The
/// file is never held whole: the window holds one chunk, or one record if a record is larger
/// (a record's length is checked against the 64 MiB limit, and the window never reads past the
/// file's end). LevelDB reads its log in 32 KiB blocks for the same reason.
///
/// How it keeps the outcome: every decision the buffer reader makes at an offset depends only on
/// the bytes from that offset to the end of what it decodes there (a record, a header, a
/// candidate record in the search after damage), so the window is filled to cover that extent, or
/// to the end of the file, before the buffer reader's own functions run on it.
public struct WALChunkedScan: Sendable, Equatable {
    public var result: WALScanResult
    /// The segment's size in bytes.
    public var fileSize: Int
    /// For a torn tail: every dropped byte is zero (space written ahead, never a record).
    public var tailIsZeros: Bool

    /// Calls `body` with each valid record in order, as `WALSegmentReader.scan` does. A record's
    /// view is valid only during the call. `read(offset, maxBytes)` returns up to `maxBytes` from
    /// `offset`, fewer only at the end of the segment.
    public static func scan<E: Error>(
        chunkSize: Int = 1 << 20,
        read: @escaping ByteWindow<E>.Read,
        _ body: (WALRecordView) throws(E) -> Void
    ) throws(E) -> WALChunkedScan {
        var window = ByteWindow<E>(chunkSize: chunkSize, read: read)
        var offset = 0
        while true {
            try window.ensure(offset, WALFormat.headerSize)
            if window.atEnd && offset == window.end {
                return WALChunkedScan(result: .clean(endOffset: offset), fileSize: offset, tailIsZeros: false)
            }
            try window.ensure(offset, recordExtent(in: window, at: offset))
            // Decode every record the window holds whole, in one pass over its buffer.
            var damage: WALDamage?
            try window.withBytes { (raw) throws(E) in
                while offset < window.end {
                    let local = offset - window.start
                    guard window.holds(offset, recordExtent(in: window, at: offset)) else { return }
                    switch WALSegmentReader.decodeRecord(in: raw, at: local) {
                    case .record(let record):
                        try body(WALRecordView(offset: offset, payload: record.payload))
                        offset += record.encodedSize
                    case .damaged(let found):
                        damage = found
                        return
                    }
                }
            }
            guard let damage else { continue }
            return try afterDamage(damage, at: offset, window: &window)
        }
    }

    /// The bytes a decision at `offset` depends on: the whole record if its length field is
    /// within the limit, else its header (the window covers the header already).
    private static func recordExtent<E>(in window: ByteWindow<E>, at offset: Int) -> Int {
        guard window.holds(offset, WALFormat.headerSize), window.end - offset >= WALFormat.headerSize else {
            return WALFormat.headerSize
        }
        let length = window.bytes.withUnsafeBytes { Int($0.loadLittleEndianUInt32(at: offset - window.start)) }
        guard length > 0, length <= WALFormat.maxPayloadSize else { return WALFormat.headerSize }
        return WALFormat.headerSize + length + WALFormat.trailerSize
    }

    /// Damage at `offset`: corruption if a valid record follows anywhere, else a torn tail.
    private static func afterDamage<E: Error>(
        _ damage: WALDamage, at offset: Int, window: inout ByteWindow<E>
    ) throws(E) -> WALChunkedScan {
        // `searchStart` reads at most a header, an opcode and one entry header: 18 bytes.
        let lookahead = 64
        try window.ensure(offset, lookahead)
        var candidate = window.bytes.withUnsafeBytes { raw in
            WALSegmentReader.searchStart(in: raw, damagedAt: offset - window.start) + window.start
        }
        let minimumRecord = WALFormat.headerSize + WALFormat.batchHeaderSize + WALFormat.trailerSize
        var nextValid: Int?
        while !(window.atEnd && candidate >= window.end) {
            try window.ensure(candidate, lookahead)
            // Short of `lookahead` bytes only at the end of the file.
            guard window.end - candidate >= minimumRecord else { break }
            try window.ensure(candidate, recordExtent(in: window, at: candidate))
            let found = window.bytes.withUnsafeBytes { raw in
                let local = candidate - window.start
                guard WALSegmentReader.plausibleRecordStart(in: raw, at: local) else { return false }
                if case .record = WALSegmentReader.decodeRecord(in: raw, at: local) { return true }
                return false
            }
            if found {
                nextValid = candidate
                break
            }
            candidate += 1
        }
        let (size, tailIsZeros) = try measureTail(from: offset, chunkSize: window.chunkSize, read: window.read)
        if let nextValid {
            return WALChunkedScan(
                result: .corrupted(offset: offset, damage: damage, nextValidOffset: nextValid), fileSize: size,
                tailIsZeros: false)
        }
        return WALChunkedScan(
            result: .tornTail(offset: offset, droppedBytes: size - offset, damage: damage), fileSize: size,
            tailIsZeros: tailIsZeros)
    }

    /// Reads from `offset` to the end of the file in chunks: the file's size, and whether every
    /// byte from `offset` on is zero.
    private static func measureTail<E: Error>(
        from offset: Int, chunkSize: Int, read: ByteWindow<E>.Read
    ) throws(E) -> (size: Int, allZeros: Bool) {
        var position = offset
        var allZeros = true
        while true {
            let chunk = try read(position, chunkSize)
            if allZeros { allZeros = chunk.allSatisfy { $0 == 0 } }
            position += chunk.count
            if chunk.count < chunkSize { return (position, allZeros) }
        }
    }
}
