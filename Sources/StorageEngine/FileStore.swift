#if canImport(Glibc)
import Glibc
#endif
import Platform
import Synchronization

/// The real `LogStore` and `SnapshotStore`: files in one data directory, with the Go small-db's
/// names (version, newVersion, checkpoint.N, logfile.N) plus LOCK, which this project adds.
///
/// Opening takes an exclusive `flock` on LOCK. flock locks belong to an open file description, so a
/// second open of the same directory fails whether it comes from another process or from this one;
/// the lock dies with the process, so a crash never leaves a stale lock behind. `close` unlocks
/// before it closes, so a copy of the descriptor held by a child process cannot keep it.
///
/// Every mutating call is durable when it returns: data is fsync'd (fdatasync for log appends)
/// and every create, rename and delete is followed by an fsync of the directory.
public final class FileStore: LogStore, SnapshotStore {
    public let path: String
    /// The directory itself, kept open to fsync it after creates, renames and deletes.
    private let directoryDescriptor: Int32
    /// The open LOCK file whose flock marks the directory as ours. Released by `close()`.
    private let lockDescriptor: Int32
    /// Checkpoint writes sync every this many bytes (8 MiB), so a large checkpoint never builds a
    /// mass of dirty pages that the next WAL fdatasync would have to wait behind. (Tests make it
    /// small, to cut a power between the staged syncs of a small checkpoint.)
    private let checkpointSyncInterval: Int
    /// Told of every write and sync (`FileStoreObserver`: a test seam); nil in production.
    let observer: (any FileStoreObserver)?
    /// How far log segments write zeros ahead (`FileLogSegment.writeAheadStep`; tests make it small).
    private let writeAheadStep: Int
    /// How much `shrinkGradually` frees per step.
    private let shrinkStep = 4 << 20
    /// Checkpoint files with an open `FileCheckpointFile`, by name, and how many: these are
    /// unlinked without being shrunk first, so that the handles keep reading them whole.
    private let openCheckpoints = Lock<[String: Int]>([:])

    /// Opens (and with `create`, makes) the data directory and locks it.
    public convenience init(directory: String, create: Bool) throws(DatabaseError) {
        try self.init(directory: directory, create: create, observer: nil)
    }

    /// As `init(directory:create:)`, reporting to `observer` (the directories it creates too),
    /// syncing checkpoint writes every `checkpointSyncInterval` bytes and writing zeros
    /// `writeAheadStep` bytes ahead of the log's records: for tests.
    init(
        directory: String, create: Bool, observer: (any FileStoreObserver)?, checkpointSyncInterval: Int = 8 << 20,
        writeAheadStep: Int = FileLogSegment.writeAheadStep
    ) throws(DatabaseError) {
        precondition(checkpointSyncInterval > 0 && writeAheadStep > 0)
        path = directory
        self.observer = observer
        self.checkpointSyncInterval = checkpointSyncInterval
        self.writeAheadStep = writeAheadStep
        var info = stat()
        if stat(directory, &info) != 0 {
            guard errno == ENOENT, create else {
                throw errno == ENOENT ? .directoryMissing(path: directory) : .io(operation: "stat", path: directory, errno: errno)
            }
            try FileStore.makeDirectories(directory)
        }
        // Whoever made it (this open, one that crashed before syncing, another process, an
        // operator's mkdir a moment ago), its entry is durable only once its parent is synced.
        try FileStore.syncDirectoryAndAncestors(directory, observer: observer)
        let directoryDescriptor = Glibc.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directoryDescriptor >= 0 else { throw .io(operation: "open", path: directory, errno: errno) }
        let lockPath = directory + "/LOCK"
        let lockDescriptor = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard lockDescriptor >= 0 else {
            let code = errno
            Glibc.close(directoryDescriptor)
            throw .io(operation: "open", path: lockPath, errno: code)
        }
        guard flock(lockDescriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            Glibc.close(lockDescriptor)
            Glibc.close(directoryDescriptor)
            if code == EWOULDBLOCK { throw .directoryLocked(path: directory) }
            throw .io(operation: "flock", path: lockPath, errno: code)
        }
        self.directoryDescriptor = directoryDescriptor
        self.lockDescriptor = lockDescriptor
    }

    /// Releases the lock. The store must not be used afterwards.
    ///
    /// Unlocks explicitly before closing: a child process spawned by this one holds a copy of every
    /// descriptor until it executes its program (posix_spawn copies the descriptor table; O_CLOEXEC
    /// acts only at exec), and while any copy is open, closing ours would leave the directory locked
    /// (an immediate reopen failed with `.directoryLocked`). LOCK_UN releases it for every copy.
    public func close() {
        flock(lockDescriptor, LOCK_UN)
        Glibc.close(lockDescriptor)
        Glibc.close(directoryDescriptor)
    }

    // MARK: LogStore

    public func logGenerations() throws(DatabaseError) -> [UInt64] {
        try generations(withPrefix: "logfile.")
    }

    public func readLog(_ generation: UInt64) throws(DatabaseError) -> [UInt8] {
        try readFile(logName(generation))
    }

    public func readLog(_ generation: UInt64, from offset: Int, maxBytes: Int) throws(DatabaseError) -> [UInt8] {
        try readFile(logName(generation), from: offset, maxBytes: maxBytes)
    }

    public func truncateLog(_ generation: UInt64, to length: Int) throws(DatabaseError) {
        let file = filePath(logName(generation))
        let descriptor = try openFile(file, O_WRONLY | O_CLOEXEC)
        defer { Glibc.close(descriptor) }
        guard ftruncate(descriptor, off_t(length)) == 0 else { throw .io(operation: "ftruncate", path: file, errno: errno) }
        try syncDescriptor(descriptor, path: file, observer: observer)
    }

    public func createLog(_ generation: UInt64) throws(DatabaseError) -> any LogSegmentWriter {
        let file = filePath(logName(generation))
        let descriptor = try openFile(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC)
        do throws(DatabaseError) {
            try syncDescriptor(descriptor, path: file, observer: observer)
            try syncDirectory()
        } catch {
            Glibc.close(descriptor)
            throw error
        }
        return FileLogSegment(generation: generation, path: file, descriptor: descriptor, size: 0, fileSize: 0,
            writeAheadStep: writeAheadStep, observer: observer)
    }

    public func openLogForAppend(_ generation: UInt64) throws(DatabaseError) -> any LogSegmentWriter {
        let file = filePath(logName(generation))
        let descriptor = try openFile(file, O_WRONLY | O_CLOEXEC)
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw .io(operation: "fstat", path: file, errno: code)
        }
        // Recovery cuts the last segment to its records before opening it, so the file's size is
        // the records' end (zeros written ahead before a crash are gone).
        let size = Int(info.st_size)
        return FileLogSegment(generation: generation, path: file, descriptor: descriptor, size: size, fileSize: size,
            writeAheadStep: writeAheadStep, observer: observer)
    }

    public func removeLog(_ generation: UInt64) throws(DatabaseError) {
        try shrinkGradually(logName(generation))
        try removeFile(logName(generation))
    }

    // MARK: SnapshotStore

    public func checkpointGenerations() throws(DatabaseError) -> [UInt64] {
        try generations(withPrefix: "checkpoint.")
    }

    public func readCheckpoint(_ generation: UInt64) throws(DatabaseError) -> [UInt8] {
        try readFile(checkpointName(generation))
    }

    public func openCheckpoint(_ generation: UInt64) throws(DatabaseError) -> any CheckpointFile {
        let name = checkpointName(generation)
        let file = filePath(name)
        let descriptor = try openFile(file, O_RDONLY | O_CLOEXEC)
        var info = stat()
        guard fstat(descriptor, &info) == 0 else {
            let code = errno
            Glibc.close(descriptor)
            throw .io(operation: "fstat", path: file, errno: code)
        }
        openCheckpoints.withLock { $0[name, default: 0] += 1 }
        return FileCheckpointFile(path: file, descriptor: descriptor, size: Int(info.st_size)) { [self] in
            openCheckpoints.withLock { open in
                open[name, default: 1] -= 1
                if open[name] == 0 { open[name] = nil }
            }
        }
    }

    public func writeCheckpoint(
        _ generation: UInt64,
        _ produce: (_ write: ([UInt8]) throws(DatabaseError) -> Void) throws(DatabaseError) -> Void
    ) throws(DatabaseError) {
        let temporary = filePath(checkpointName(generation) + ".tmp")
        let descriptor = try openFile(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC)
        var isOpen = true
        defer { if isOpen { Glibc.close(descriptor) } }
        do throws(DatabaseError) {
            var unsynced = 0
            try produce { (bytes) throws(DatabaseError) in
                try bytes.withBytes { (raw) throws(DatabaseError) in
                    try writeAll(descriptor, raw, path: temporary, observer: observer)
                }
                unsynced += bytes.count
                if unsynced >= checkpointSyncInterval {
                    try syncDescriptor(descriptor, dataOnly: true, path: temporary, observer: observer)
                    unsynced = 0
                }
            }
            try syncDescriptor(descriptor, path: temporary, observer: observer)
            Glibc.close(descriptor)
            isOpen = false
            try renameFile(checkpointName(generation) + ".tmp", to: checkpointName(generation))
        } catch {
            unlink(temporary)
            throw error
        }
    }

    public func createCheckpointTemporary(_ generation: UInt64) throws(DatabaseError) -> any CheckpointTemporary {
        let name = checkpointName(generation) + ".tmp"
        let descriptor = try openFile(filePath(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC)
        return FileCheckpointTemporary(store: self, generation: generation, name: name, descriptor: descriptor)
    }

    /// `FileCheckpointTemporary.commit`: rename, then fsync the directory.
    fileprivate func commitTemporary(_ name: String, generation: UInt64) throws(DatabaseError) {
        try renameFile(name, to: checkpointName(generation))
    }

    public func availableBytes() throws(DatabaseError) -> UInt64? {
        var info = statvfs()
        guard fstatvfs(directoryDescriptor, &info) == 0 else { throw .io(operation: "fstatvfs", path: path, errno: errno) }
        let (bytes, overflow) = UInt64(info.f_bavail).multipliedReportingOverflow(by: UInt64(info.f_frsize))
        return overflow ? .max : bytes
    }

    public func removeCheckpoint(_ generation: UInt64) throws(DatabaseError) {
        // A file still being read (a snapshot streaming to a replica) is only unlinked: its blocks
        // are freed when the last handle closes.
        if openCheckpoints.withLock({ $0[checkpointName(generation)] == nil }) {
            try shrinkGradually(checkpointName(generation))
        }
        try removeFile(checkpointName(generation))
    }

    public func readVersion() throws(DatabaseError) -> UInt64? {
        guard fileExists("version") else { return nil }
        let text = try readFile("version")
        guard let generation = FileStore.parseGeneration(text) else {
            throw .inconsistentDirectory("\(filePath("version")) does not hold a generation number")
        }
        return generation
    }

    public func readNewVersion() throws(DatabaseError) -> UInt64? {
        guard fileExists("newVersion") else { return nil }
        return FileStore.parseGeneration(try readFile("newVersion"))
    }

    public func writeVersion(_ generation: UInt64) throws(DatabaseError) {
        try writeMarker("version", generation)
    }

    public func writeNewVersion(_ generation: UInt64) throws(DatabaseError) {
        try writeMarker("newVersion", generation)
    }

    public func promoteNewVersion() throws(DatabaseError) {
        try renameFile("newVersion", to: "version")
    }

    public func removeVersion() throws(DatabaseError) { try removeFile("version") }
    public func removeNewVersion() throws(DatabaseError) { try removeFile("newVersion") }

    public func readMetadata(_ file: MetadataFile) throws(DatabaseError) -> [UInt8]? {
        guard fileExists(file.rawValue) else { return nil }
        return try readFile(file.rawValue)
    }

    public func writeMetadata(_ file: MetadataFile, _ bytes: [UInt8]) throws(DatabaseError) {
        try writeAtomically(file.rawValue, bytes)
    }

    public func removeMetadata(_ file: MetadataFile) throws(DatabaseError) { try removeFile(file.rawValue) }

    public func metadataLocation(_ file: MetadataFile) -> String { filePath(file.rawValue) }

    public func removeTemporaries() throws(DatabaseError) {
        var removed = false
        for name in try listDirectory() where FileStore.isTemporary(name) {
            guard unlink(filePath(name)) == 0 || errno == ENOENT else {
                throw .io(operation: "unlink", path: filePath(name), errno: errno)
            }
            removed = true
        }
        if removed { try syncDirectory() }
    }

    public func logLocation(_ generation: UInt64) -> String { filePath(logName(generation)) }
    public func checkpointLocation(_ generation: UInt64) -> String { filePath(checkpointName(generation)) }

    // MARK: Files

    func logName(_ generation: UInt64) -> String { "logfile.\(generation)" }
    func checkpointName(_ generation: UInt64) -> String { "checkpoint.\(generation)" }
    func filePath(_ name: String) -> String { path + "/" + name }

    /// A marker's content: the decimal generation and a newline, as the Go version writes it.
    /// Surrounding whitespace is accepted on reading. (`package`, as `isTemporary`: the
    /// simulated disk of StorageEngineTesting follows the same rules.)
    package static func parseGeneration(_ bytes: [UInt8]) -> UInt64? {
        let isSpace = { (byte: UInt8) in byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 }
        let trimmed = bytes.drop(while: isSpace).reversed().drop(while: isSpace).reversed()
        return UInt64(String(decoding: trimmed, as: UTF8.self))
    }

    /// The temporaries that are never a commit point (`removeTemporaries`).
    package static func isTemporary(_ name: String) -> Bool {
        guard name.hasSuffix(".tmp") else { return false }
        let base = name.dropLast(4)
        return base == "newVersion" || base == "version" || name.hasPrefix("checkpoint.")
            || MetadataFile.allCases.contains { $0.rawValue == base }
    }

    private func writeMarker(_ name: String, _ generation: UInt64) throws(DatabaseError) {
        try writeAtomically(name, Array("\(generation)\n".utf8))
    }

    /// Writes `name` whole through name.tmp: write, fsync, rename, fsync the directory.
    private func writeAtomically(_ name: String, _ content: [UInt8]) throws(DatabaseError) {
        let temporary = filePath(name + ".tmp")
        let descriptor = try openFile(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC)
        var isOpen = true
        defer { if isOpen { Glibc.close(descriptor) } }
        do throws(DatabaseError) {
            try content.withBytes { (raw) throws(DatabaseError) in
                try writeAll(descriptor, raw, path: temporary, observer: observer)
            }
            try syncDescriptor(descriptor, path: temporary, observer: observer)
            Glibc.close(descriptor)
            isOpen = false
            try renameFile(name + ".tmp", to: name)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    private func generations(withPrefix prefix: String) throws(DatabaseError) -> [UInt64] {
        try listDirectory().compactMap { name -> UInt64? in
            guard name.hasPrefix(prefix) else { return nil }
            let suffix = name.dropFirst(prefix.count)
            guard !suffix.isEmpty, suffix.allSatisfy({ $0 >= "0" && $0 <= "9" }) else { return nil }
            return UInt64(suffix)
        }.sorted()
    }

    private func listDirectory() throws(DatabaseError) -> [String] {
        guard let stream = opendir(path) else { throw .io(operation: "opendir", path: path, errno: errno) }
        defer { closedir(stream) }
        var names: [String] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    private func fileExists(_ name: String) -> Bool {
        access(filePath(name), F_OK) == 0
    }

    private func openFile(_ file: String, _ flags: Int32) throws(DatabaseError) -> Int32 {
        let descriptor = Glibc.open(file, flags, 0o644)
        guard descriptor >= 0 else { throw .io(operation: "open", path: file, errno: errno) }
        return descriptor
    }

    /// Up to `maxBytes` of the file from `offset` (all of it by default); fewer if it ends first.
    private func readFile(_ name: String, from offset: Int = 0, maxBytes: Int = .max) throws(DatabaseError) -> [UInt8] {
        let file = filePath(name)
        let descriptor = try openFile(file, O_RDONLY | O_CLOEXEC)
        defer { Glibc.close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .io(operation: "fstat", path: file, errno: errno) }
        return try readDescriptor(descriptor, size: Int(info.st_size), from: offset, maxBytes: maxBytes, path: file)
    }

    /// Truncates a large file a few megabytes at a time before it is deleted. Freeing a hundred
    /// megabytes of extents in one unlink holds the file system long enough to stall a concurrent
    /// WAL fdatasync for 15 ms (measured: docs/PERFORMANCE.md); freeing them in steps keeps each
    /// stall short. Only called on files that nothing will read again.
    ///
    /// The truncations are not synced, and need not be: no open will read the file as part of
    /// the state by then. It is superseded by a durable `version`, or follows a log damage being
    /// truncated away (which stays in place until every later segment is gone: `Recovery`, step
    /// 4), or lies under a `resync` marker, or is a segment just created and still empty. A crash
    /// before the unlink reaches the disk leaves it whole, cut short or gone, and recovery treats
    /// the three alike: step 5 removes superseded files without reading them, and the one
    /// fallback that reads an older checkpoint (step 3) checks its checksum, so a cut one refuses
    /// the open with its name instead of loading less.
    private func shrinkGradually(_ name: String) throws(DatabaseError) {
        let file = filePath(name)
        let descriptor = Glibc.open(file, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            if errno == ENOENT { return }
            throw .io(operation: "open", path: file, errno: errno)
        }
        defer { Glibc.close(descriptor) }
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { throw .io(operation: "fstat", path: file, errno: errno) }
        var size = Int(info.st_size)
        while size > shrinkStep {
            size -= shrinkStep
            guard ftruncate(descriptor, off_t(size)) == 0 else { throw .io(operation: "ftruncate", path: file, errno: errno) }
        }
    }

    private func removeFile(_ name: String) throws(DatabaseError) {
        let file = filePath(name)
        if unlink(file) != 0 {
            guard errno == ENOENT else { throw .io(operation: "unlink", path: file, errno: errno) }
            return
        }
        try syncDirectory()
    }

    private func renameFile(_ from: String, to: String) throws(DatabaseError) {
        guard rename(filePath(from), filePath(to)) == 0 else {
            throw .io(operation: "rename to \(to)", path: filePath(from), errno: errno)
        }
        try syncDirectory()
    }

    private func syncDirectory() throws(DatabaseError) {
        try syncDescriptor(directoryDescriptor, path: path, observer: observer)
    }

    /// Creates `directory` and each missing directory above it (not durable yet:
    /// `syncDirectoryAndAncestors` makes them so).
    static func makeDirectories(_ directory: String) throws(DatabaseError) {
        var prefix = directory.hasPrefix("/") ? "/" : ""
        for component in directory.split(separator: "/") {
            prefix += component
            guard mkdir(prefix, 0o755) == 0 || errno == EEXIST else { throw .io(operation: "mkdir", path: prefix, errno: errno) }
            prefix += "/"
        }
    }

    /// Makes the path to `directory` durable: fsyncs it and each directory above it, deepest
    /// first, up to the root of its file system. A directory's entry lives in its parent and is
    /// lost on power loss, with everything in it, until the parent is fsync'd (etcd's wal.Create
    /// syncs the parent too). Done on every open, not only after this open's own mkdirs: a
    /// directory that exists may not be durable (an open that crashed between its mkdirs and their
    /// syncs, another process's, an operator's `mkdir -p` just before), and writes acknowledged
    /// in it would vanish with it (found by Tests/StorageEngineTests/PowerLossOnFilesTests). The
    /// path is resolved first (realpath: the directories that really hold the entries). Syncing a
    /// clean directory costs a cache flush, about 1–4 ms each here, once per open. A directory
    /// above the data directory that this process may not read (EACCES, EPERM: a home directory
    /// of mode 0711) ends the walk: its entries are its owner's to make durable. `synced` is told
    /// each directory fsync'd, in order, and `observer` sees each sync (test seams).
    static func syncDirectoryAndAncestors(
        _ directory: String, observer: (any FileStoreObserver)? = nil, synced: (String) -> Void = { _ in }
    ) throws(DatabaseError) {
        guard let resolved = realpath(directory, nil) else { throw .io(operation: "realpath", path: directory, errno: errno) }
        var current = String(cString: resolved)
        free(resolved)
        var isDataDirectory = true
        while true {
            do throws(DatabaseError) {
                try fsyncDirectory(current, observer: observer)
            } catch .io(_, _, let code) where !isDataDirectory && (code == EACCES || code == EPERM) {
                return
            }
            synced(current)
            isDataDirectory = false
            guard current != "/" else { return }
            let parent = current.lastIndex(of: "/").map { $0 == current.startIndex ? "/" : String(current[..<$0]) } ?? "/"
            var here = stat()
            var above = stat()
            guard stat(current, &here) == 0 else { throw .io(operation: "stat", path: current, errno: errno) }
            guard stat(parent, &above) == 0 else { throw .io(operation: "stat", path: parent, errno: errno) }
            // A mount point's entry belongs to the file system below it, which we do not write.
            guard here.st_dev == above.st_dev else { return }
            current = parent
        }
    }

    /// Opens the directory at `path`, fsyncs it and closes it.
    private static func fsyncDirectory(_ path: String, observer: (any FileStoreObserver)?) throws(DatabaseError) {
        let descriptor = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        defer { Glibc.close(descriptor) }
        try syncDescriptor(descriptor, path: path, observer: observer)
    }
}

/// An open logfile.N, appended to by the group committer.
///
/// Space written ahead: the file is extended with zero bytes a megabyte at a time, ahead of the
/// records, and records are written over those zeros. An fdatasync after an append that grows
/// the file must also write the inode (its new size): a second synchronous write on every
/// commit. Over space already written it flushes the data alone (measured on this machine:
/// 10,200 synced 128-byte writes/s over written space, 7,800/s appending). So a segment may end
/// with zero bytes past its last record while it is open, or after a crash; closing cuts them,
/// and recovery knows them for what they are (`Recovery`, step 6) and cuts them from the last
/// segment.
///
/// `@unchecked Sendable`: the descriptor is immutable and `size` is only read and written by the
/// thread that appends (the committer owns the writer once the database is open; before that,
/// recovery owns it). No two threads ever touch one segment at the same time.
final class FileLogSegment: LogSegmentWriter, @unchecked Sendable {
    /// How far ahead of the records the file is extended with zeros, at a time (by default).
    static let writeAheadStep = 1 << 20

    let generation: UInt64
    let path: String
    private let descriptor: Int32
    /// Where the next record goes (the end of the last one): the segment's size as the log sees it.
    private(set) var size: Int
    /// The file's size: `size` plus zeros written ahead.
    private var allocated: Int
    private var isClosed = false
    /// This segment's step of zeros written ahead (`FileLogSegment.writeAheadStep` but in tests).
    private let writeAheadStep: Int
    private let observer: (any FileStoreObserver)?

    /// `size`: the end of the records; the file may be longer (zeros written ahead).
    init(
        generation: UInt64, path: String, descriptor: Int32, size: Int, fileSize: Int,
        writeAheadStep: Int = FileLogSegment.writeAheadStep, observer: (any FileStoreObserver)? = nil
    ) {
        self.generation = generation
        self.writeAheadStep = writeAheadStep
        self.path = path
        self.descriptor = descriptor
        self.size = size
        self.allocated = max(size, fileSize)
        self.observer = observer
    }

    deinit { close() }

    func append(_ bytes: UnsafeRawBufferPointer) throws(DatabaseError) {
        if size + bytes.count > allocated {
            // Extend with zeros first; the records' own sync makes both durable.
            let target = (size + bytes.count + writeAheadStep) / writeAheadStep * writeAheadStep
            try writeZeros(from: allocated, to: target)
            allocated = target
        }
        try writeAll(descriptor, bytes, at: size, path: path, observer: observer)
        size += bytes.count
    }

    private func writeZeros(from start: Int, to end: Int) throws(DatabaseError) {
        let zeros = [UInt8](repeating: 0, count: min(end - start, 64 << 10))
        var offset = start
        while offset < end {
            let count = min(zeros.count, end - offset)
            try zeros.withBytes { (raw) throws(DatabaseError) in
                try writeAll(descriptor, UnsafeRawBufferPointer(rebasing: raw[0..<count]), at: offset, path: path, observer: observer)
            }
            offset += count
        }
    }

    func sync() throws(DatabaseError) {
        try syncDescriptor(descriptor, dataOnly: true, path: path, observer: observer)
    }

    /// Closes the segment, first cutting the zeros written ahead (a clean shutdown leaves the file
    /// ending at its last record, as the Go version's do). Not synced: if the cut is lost in a
    /// crash, recovery cuts the zeros again.
    func close() {
        guard !isClosed else { return }
        isClosed = true
        if allocated > size { _ = ftruncate(descriptor, off_t(size)) }
        Glibc.close(descriptor)
    }
}

/// Writes every byte of `bytes` at `offset` (pwrite), retrying short writes and EINTR; tells
/// `observer` each range written.
func writeAll(
    _ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int, path: String, observer: (any FileStoreObserver)? = nil
) throws(DatabaseError) {
    var written = 0
    while written < bytes.count {
        let result = pwrite(descriptor, bytes.baseAddress! + written, bytes.count - written, off_t(offset + written))
        if result >= 0 {
            observer?.wrote(descriptor, offset: offset + written, count: result)
            written += result
        } else if errno != EINTR {
            throw .io(operation: "pwrite", path: path, errno: errno)
        }
    }
}

/// Writes every byte of `bytes` at the file position, retrying short writes and EINTR; tells
/// `observer` each range written (where: the position after it, less its length).
func writeAll(
    _ descriptor: Int32, _ bytes: UnsafeRawBufferPointer, path: String, observer: (any FileStoreObserver)? = nil
) throws(DatabaseError) {
    var offset = 0
    while offset < bytes.count {
        let result = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
        if result >= 0 {
            if let observer { observer.wrote(descriptor, offset: Int(lseek(descriptor, 0, SEEK_CUR)) - result, count: result) }
            offset += result
        } else if errno != EINTR {
            throw .io(operation: "write", path: path, errno: errno)
        }
    }
}

/// Up to `maxBytes` from `offset` of the open file `descriptor` whose size is `size` (pread: safe
/// from several threads at once); fewer if it ends first.
func readDescriptor(_ descriptor: Int32, size: Int, from offset: Int, maxBytes: Int, path: String) throws(DatabaseError) -> [UInt8] {
    let count = max(0, min(maxBytes, size - offset))
    // Never `Array(unsafeUninitializedCapacity: 0)`: it stores the count into the shared empty
    // array singleton, a write of 0 over 0 that TSan rightly reports when two threads do it
    // (swiftlang/swift#27808 kept the other array paths from writing it; this one still does).
    guard count > 0 else { return [] }
    var failure: Int32 = 0
    let bytes = [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
        while initialized < count {
            let result = pread(descriptor, buffer.baseAddress! + initialized, count - initialized, off_t(offset + initialized))
            if result > 0 {
                initialized += result
            } else if result == 0 {
                break  // the file shrank while we read it; take what is there
            } else if errno != EINTR {
                failure = errno
                break
            }
        }
    }
    guard failure == 0 else { throw .io(operation: "pread", path: path, errno: failure) }
    return bytes
}

/// An open checkpoint.N (`FileStore.openCheckpoint`). The descriptor keeps the file readable after
/// an unlink; `FileStore` does not shrink a file while one of these is open on it.
///
/// `@unchecked Sendable`: the descriptor is only used, and closed, under `closed`'s lock.
final class FileCheckpointFile: CheckpointFile, @unchecked Sendable {
    let path: String
    let size: Int
    private let descriptor: Int32
    private let closed = Lock(false)
    private let released: @Sendable () -> Void

    init(path: String, descriptor: Int32, size: Int, released: @escaping @Sendable () -> Void) {
        self.path = path
        self.descriptor = descriptor
        self.size = size
        self.released = released
    }

    deinit { close() }

    func read(from offset: Int, maxBytes: Int) throws(DatabaseError) -> [UInt8] {
        // Under the lock, so that `close` cannot close (and the process reuse) the descriptor
        // during a read.
        try closed.withLock { (closed) throws(DatabaseError) in
            guard !closed else { throw .io(operation: "pread", path: path, errno: EBADF) }
            return try readDescriptor(descriptor, size: size, from: offset, maxBytes: maxBytes, path: path)
        }
    }

    func close() {
        let wasOpen = closed.withLock { closed in
            guard !closed else { return false }
            closed = true
            Glibc.close(descriptor)
            return true
        }
        if wasOpen { released() }
    }
}

/// checkpoint.N.tmp written piece by piece (`FileStore.createCheckpointTemporary`).
///
/// `@unchecked Sendable`: used by one thread at a time (the protocol's contract); the mutable
/// state is behind a lock anyway, so a misuse cannot tear it.
final class FileCheckpointTemporary: CheckpointTemporary, @unchecked Sendable {
    let generation: UInt64
    private let store: FileStore
    private let name: String
    private let path: String
    private struct State {
        var descriptor: Int32?
        var size = 0
        var committed = false
    }
    private let state: Lock<State>

    init(store: FileStore, generation: UInt64, name: String, descriptor: Int32) {
        self.store = store
        self.generation = generation
        self.name = name
        self.path = store.filePath(name)
        self.state = Lock(State(descriptor: descriptor))
    }

    deinit { discard() }

    var size: Int { state.withLock { $0.size } }

    func write(_ bytes: [UInt8]) throws(DatabaseError) {
        try state.withLock { (state) throws(DatabaseError) in
            guard let descriptor = state.descriptor else { throw .io(operation: "write", path: path, errno: EBADF) }
            try bytes.withBytes { (raw) throws(DatabaseError) in try writeAll(descriptor, raw, path: path, observer: store.observer) }
            state.size += bytes.count
        }
    }

    func sync() throws(DatabaseError) {
        try state.withLock { (state) throws(DatabaseError) in
            guard let descriptor = state.descriptor else { throw .io(operation: "fsync", path: path, errno: EBADF) }
            try syncDescriptor(descriptor, path: path, observer: store.observer)
        }
    }

    func openForReading() throws(DatabaseError) -> any CheckpointFile {
        let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw .io(operation: "open", path: path, errno: errno) }
        return FileCheckpointFile(path: path, descriptor: descriptor, size: size) {}
    }

    func commit() throws(DatabaseError) {
        try state.withLock { (state) throws(DatabaseError) in
            guard let descriptor = state.descriptor else { throw .io(operation: "rename", path: path, errno: EBADF) }
            Glibc.close(descriptor)
            state.descriptor = nil
            try store.commitTemporary(name, generation: generation)
            state.committed = true
        }
    }

    func discard() {
        state.withLock { state in
            if let descriptor = state.descriptor { Glibc.close(descriptor) }
            state.descriptor = nil
            if !state.committed { unlink(path) }
            state.committed = true  // nothing more to delete
        }
    }
}
