/// A bounded window onto a file that is read in chunks, front to back: what the chunked WAL and
/// checkpoint readers decode from, instead of the whole file in one buffer.
///
/// What stays true: `bytes` holds the file's bytes [start, start + bytes.count), and `atEnd` says
/// that they reach the end of the file. After `ensure(offset, count)` the window holds
/// [offset, offset + count), or everything from `offset` to the end of the file if it ends first,
/// so a decoder that treats the window's end as the end of its input decides exactly as it would
/// on the whole file. The window only grows past `chunkSize` to hold one item larger than that (a
/// record, an entry), and `read` never asks for bytes past the end: an allocation is bounded by
/// the bytes the file really has, whatever a length field claims.
public struct ByteWindow<E: Error> {
    /// Reads up to `maxBytes` from `offset`: fewer only at the end of the file, none past it.
    public typealias Read = (_ offset: Int, _ maxBytes: Int) throws(E) -> [UInt8]

    public private(set) var bytes: [UInt8] = []
    /// The file offset of `bytes[0]`.
    public private(set) var start = 0
    /// `bytes` reaches the end of the file.
    public private(set) var atEnd = false
    public let chunkSize: Int
    public let read: Read

    public init(chunkSize: Int, read: @escaping Read) {
        precondition(chunkSize > 0)
        self.chunkSize = chunkSize
        self.read = read
    }

    /// The file offset just past the window.
    public var end: Int { start + bytes.count }

    /// Makes the window hold [offset, offset + count), or up to the end of the file (see the type).
    /// Offsets only move forward: bytes before `offset` are dropped.
    public mutating func ensure(_ offset: Int, _ count: Int) throws(E) {
        assert(offset >= start, "the window only moves forward")
        if offset <= end && (offset + count <= end || atEnd) {
            if offset - start >= chunkSize { slide(to: offset) }  // keep the buffer bounded
            return
        }
        if offset <= end {
            slide(to: offset)
        } else {
            assert(!atEnd, "no offset past the end of the file is asked for")
            bytes.removeAll(keepingCapacity: true)
            start = offset
        }
        while bytes.count < count && !atEnd {
            let wanted = max(chunkSize, count - bytes.count)
            let more = try read(end, wanted)
            bytes.append(contentsOf: more)
            if more.count < wanted { atEnd = true }
        }
    }

    /// Whether the window holds [offset, offset + count) or reaches the end of the file.
    public func holds(_ offset: Int, _ count: Int) -> Bool {
        offset >= start && (offset + count <= end || atEnd)
    }

    /// The window's bytes, for a decoder (the standard `withUnsafeBytes` is `rethrows`, which
    /// would widen `E` to `any Error`).
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        let result: Result<R, E> = bytes.withUnsafeBytes { raw in
            do throws(E) { return .success(try body(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    private mutating func slide(to offset: Int) {
        bytes.removeFirst(offset - start)
        start = offset
    }
}
