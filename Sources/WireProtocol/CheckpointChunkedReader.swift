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

    /// Checks a version 2 file's CRC (version 1 has none: it always passes).
    public static func verifyChecksum(
        header: CheckpointHeader, chunkSize: Int = 1 << 20, read: ByteWindow<any Error>.Read
    ) throws {
        guard header.version == CheckpointFormat.currentVersion else { return }
        var crc = CRC32()
        var offset = 0
        while offset < header.entriesLimit {
            let chunk = try read(offset, min(chunkSize, header.entriesLimit - offset))
            guard !chunk.isEmpty else { throw CheckpointError.truncatedEntry(index: 0, offset: offset) }
            crc.update(chunk)
            offset += chunk.count
        }
        let trailer = try read(header.entriesLimit, CheckpointFormat.v2TrailerSize)
        guard trailer.count == CheckpointFormat.v2TrailerSize else {
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
        var window = ByteWindow<any Error>(chunkSize: chunkSize, read: read)
        var offset = header.entriesStart
        let limit = header.entriesLimit
        var index: UInt64 = 0
        while index < header.entryCount {
            guard limit - offset >= CheckpointFormat.entryHeaderSize else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)
            }
            try window.ensure(offset, CheckpointFormat.entryHeaderSize)
            guard window.end - offset >= CheckpointFormat.entryHeaderSize else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)  // the file shrank
            }
            let (keyLength, valueLength) = window.bytes.withUnsafeBytes { raw in
                (Int(raw.loadLittleEndianUInt32(at: offset - window.start)),
                 Int(raw.loadLittleEndianUInt32(at: offset - window.start + 4)))
            }
            let keyStart = offset + CheckpointFormat.entryHeaderSize
            guard keyLength <= limit - keyStart, valueLength <= limit - keyStart - keyLength else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)
            }
            let entrySize = CheckpointFormat.entryHeaderSize + keyLength + valueLength
            try window.ensure(offset, entrySize)
            guard window.end - offset >= entrySize else {
                throw CheckpointError.truncatedEntry(index: index, offset: offset)  // the file shrank
            }
            try window.bytes.withUnsafeBytes { raw in
                let keyAt = keyStart - window.start
                let valueAt = keyAt + keyLength
                try body(
                    UnsafeRawBufferPointer(rebasing: raw[keyAt..<valueAt]),
                    UnsafeRawBufferPointer(rebasing: raw[valueAt..<(valueAt + valueLength)]))
            }
            offset += entrySize
            index += 1
        }
        if header.version == CheckpointFormat.currentVersion && offset != limit {
            throw CheckpointError.trailingBytes(offset: offset)
        }
    }
}
