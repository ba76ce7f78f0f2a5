/// Reads a checkpoint of either version in bounded chunks (`ByteWindow`) instead of as one buffer,
/// with exactly the checks and errors of `CheckpointReader`: the header, the CRC (version 2) and
/// every entry. The window holds one chunk, or one entry if an entry is larger; an entry's lengths
/// are checked against the file's real size before any byte of it is read. As with the buffer
/// reader, a loader may verify on one thread (`verifyChecksum`) while it parses on another
/// (`forEachEntry`): each pass reads the file on its own.
///
/// `read(offset, maxBytes)` returns up to `maxBytes` from `offset`, fewer only at the end of the
/// file; a file shorter than `fileSize` (it shrank while being read) is `truncatedEntry` or a
/// checksum mismatch, never a success.
public enum CheckpointChunkedReader {
    /// Parses and checks the header of a file of `fileSize` bytes.
    public static func header(
        fileSize: Int, expectedGeneration: UInt64?, read: ByteWindow<any Error>.Read
    ) throws -> CheckpointHeader {
        let prefix = try read(0, min(fileSize, CheckpointFormat.maxHeaderSize))
        return try prefix.withUnsafeBytes { raw in
            try CheckpointReader.header(ofPrefix: raw, fileSize: fileSize, expectedGeneration: expectedGeneration)
        }
    }

    /// Checks a version 2 or 3 file's CRC (version 1 has none: it always passes).
    public static func verifyChecksum(
        header: CheckpointHeader, chunkSize: Int = 1 << 20, read: ByteWindow<any Error>.Read
    ) throws {
        guard header.hasChecksum else { return }
        var crc = CRC32()
        var offset = 0
        while offset < header.entriesLimit {
            let chunk = try read(offset, min(chunkSize, header.entriesLimit - offset))
            guard !chunk.isEmpty else { throw CheckpointError.truncatedEntry(index: 0, offset: offset) }
            crc.update(chunk)
            offset += chunk.count
        }
        let trailer = try read(header.entriesLimit, CheckpointFormat.trailerSize)
        guard trailer.count == CheckpointFormat.trailerSize else {
            throw CheckpointError.truncatedEntry(index: 0, offset: header.entriesLimit)
        }
        let stored = trailer.withUnsafeBytes { $0.loadLittleEndianUInt32(at: 0) }
        guard stored == crc.value else { throw CheckpointError.checksumMismatch(expected: stored, computed: crc.value) }
    }

    /// Calls `body` with each entry's key and value, in file order (the views are valid only during
    /// the call). Structure errors throw `CheckpointError`; `read`'s and `body`'s pass through.
    public static func forEachEntry(
        header: CheckpointHeader, chunkSize: Int = 1 << 20, read: @escaping ByteWindow<any Error>.Read,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer) throws -> Void
    ) throws {
        try forEachEntryWithRevisions(header: header, chunkSize: chunkSize, read: read) { key, value, _ in try body(key, value) }
    }

    /// As `forEachEntry`, with each entry's revisions (zeros before version 3), checking version
    /// 3's order and revision rules as `CheckpointReader.forEachEntryWithRevisions` does.
    public static func forEachEntryWithRevisions(
        header: CheckpointHeader, chunkSize: Int = 1 << 20, read: @escaping ByteWindow<any Error>.Read,
        _ body: (UnsafeRawBufferPointer, UnsafeRawBufferPointer, CheckpointRevisions) throws -> Void
    ) throws {
        var window = ByteWindow<any Error>(chunkSize: chunkSize, read: read)
        var offset = header.entriesStart
        let limit = header.entriesLimit
        let entryHeaderSize = header.entryHeaderSize
        var index: UInt64 = 0
        var previousKey: [UInt8] = []
        while index < header.entryCount {
            guard limit - offset >= entryHeaderSize else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)
            }
            try window.ensure(offset, entryHeaderSize)
            guard window.end - offset >= entryHeaderSize else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)  // the file shrank
            }
            let (keyLength, valueLength, revisions) = window.bytes.withUnsafeBytes { raw in
                let at = offset - window.start
                return (Int(raw.loadLittleEndianUInt32(at: at)), Int(raw.loadLittleEndianUInt32(at: at + 4)),
                        header.hasRevisions
                            ? CheckpointRevisions(create: raw.loadLittleEndianUInt64(at: at + 8), mod: raw.loadLittleEndianUInt64(at: at + 16))
                            : CheckpointRevisions(create: 0, mod: 0))
            }
            let keyStart = offset + entryHeaderSize
            guard keyLength <= limit - keyStart, valueLength <= limit - keyStart - keyLength else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)
            }
            // After the bounds, as `CheckpointReader` checks them: both readers give one error.
            if header.hasRevisions { try revisions.check(index: index, header: header) }
            let entrySize = entryHeaderSize + keyLength + valueLength
            try window.ensure(offset, entrySize)
            guard window.end - offset >= entrySize else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)  // the file shrank
            }
            try window.bytes.withUnsafeBytes { raw in
                let keyAt = keyStart - window.start
                let valueAt = keyAt + keyLength
                let key = UnsafeRawBufferPointer(rebasing: raw[keyAt..<valueAt])
                if header.hasRevisions {
                    if index > 0 {
                        let ordered = previousKey.withUnsafeBytes { CheckpointRevisions.ascending($0, key) }
                        guard ordered else { throw CheckpointError.keysOutOfOrder(index: index) }
                    }
                    previousKey.removeAll(keepingCapacity: true)
                    previousKey.append(contentsOf: key)
                }
                try body(key, UnsafeRawBufferPointer(rebasing: raw[valueAt..<(valueAt + valueLength)]), revisions)
            }
            offset += entrySize
            index += 1
        }
        if header.hasChecksum && offset != limit {
            throw CheckpointError.trailingBytes(offset: offset)
        }
    }
}
