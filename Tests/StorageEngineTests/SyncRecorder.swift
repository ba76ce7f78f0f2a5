import Foundation
import Glibc
import Platform
@testable import StorageEngine
import StorageEngineTesting

/// Power loss on the real files, the LevelDB way (its FaultInjectionTestEnv): the real `FileStore`
/// runs on real files under `root`, and this observer (`FileStoreObserver`) records what each sync
/// made durable; `losePower` then rewrites `root` as a power loss at the cut could have left it.
///
/// The model, and why each choice is the conservative one:
/// - A file's content is durable as of its last fsync or fdatasync: its size then, and the bytes
///   of every range written before it. Bytes written since (`wrote`) are lost: overwrites inside
///   the synced length (a log's records over the zeros written ahead) go back to what was synced,
///   writes past it are cut. `Tear` optionally keeps some of them (a prefix, in offset order, as
///   the page cache's writeback may have) and garbles a few bytes (a torn sector).
/// - A directory's entries (name → inode) are durable as of its last fsync, listed just before
///   the fsync starts: an entry created, renamed or removed since (or during it, by another
///   thread) is as it was at that listing. So a file created since is gone, a rename since is
///   undone (the old name comes back, pointing to the same durable content), an unlink since is
///   undone (the file comes back with its durable content). A directory never synced has no
///   durable entries; `root` itself is durable, with what it held when the recorder started.
/// - What it does not model: metadata that a real file system may make durable *earlier* than
///   asked (ext4 commits every rename and ftruncate in its journal within seconds, and an fsync
///   of one file commits the other files' pending metadata too); so "more survived than was
///   synced" is modelled only for file data (`Tear`), not for directory entries or truncations.
///   Nor I/O errors, nor reordering within one synced range (a synced range is all there).
///
/// File identity is the inode: the recorder keeps a read descriptor on every file it has seen,
/// so an inode number cannot be reused while it runs (and the read descriptor reads a file even
/// after it was renamed or unlinked).
///
/// The cut (`cut`, or `cutAtSync`): under the lock, mark the recorder frozen and read the real
/// bytes of every unsynced range (what a torn tail may keep). From then on nothing counts: later
/// writes and syncs are ignored, whatever the store does next. The protocol of a test:
/// 1. Writers count an acknowledgement only if the recorder was not frozen when they observed it
///    (`isFrozen` after the call returned): an acknowledgement after the cut is "in flight".
/// 2. Cut (from a writer after its n-th acknowledgement, or inside the n-th sync's `willSync`,
///    before that sync, which then does not count).
/// 3. Close the database and the store (their I/O after the cut is ignored: a clean close after a
///    power loss changes nothing on the "disk").
/// 4. `losePower`: delete everything under `root` and write back the durable image.
/// 5. Reopen with a plain `FileStore` and check.
final class SyncRecorder: FileStoreObserver, Sendable {
    let root: String

    /// Which unsynced bytes survive the power loss.
    enum Tear: Sendable, CustomStringConvertible {
        /// None.
        case drop
        /// A random prefix (in offset order) of each file's unsynced bytes, the real ones.
        case keepPrefix(seed: UInt64)
        /// As `keepPrefix`, then 1–8 random bytes overwritten inside or just after what was kept.
        case garble(seed: UInt64)

        var description: String {
            switch self {
            case .drop: "drop unsynced"
            case .keepPrefix: "keep an unsynced prefix"
            case .garble: "garble the unsynced bytes"
            }
        }
    }

    /// Which syncs `cutAtSync` counts.
    enum SyncKind: Sendable { case any, log, notLog }

    /// What `losePower` did: per file (path relative to `root`), the first byte not synced, for
    /// files where unsynced bytes were kept or garbled.
    struct Report: Sendable {
        var firstUnsyncedOffset: [String: Int] = [:]
        var files: [String] = []
    }

    private enum Entry { case file(UInt64), directory }
    private struct TrackedFile {
        let reader: Int32
        var durable: [UInt8]
        var dirty: [Range<Int>]
    }
    private enum Pending {
        case file(UInt64, size: Int, patches: [(Int, [UInt8])])
        case directory(String, [String: Entry])
    }
    private struct State {
        var frozen = false
        var cut: (kind: SyncKind, index: Int)?
        var syncs: [SyncKind: Int] = [:]
        var files: [UInt64: TrackedFile] = [:]
        var directories: [String: [String: Entry]] = [:]
        var pending: [Int: Pending] = [:]
        var nextToken = 0
        /// At the cut: each file's unsynced ranges with their real bytes then.
        var unsyncedAtCut: [UInt64: [(offset: Int, bytes: [UInt8])]] = [:]
    }
    private let state = Lock(State())

    /// Starts recording under `root` (an existing directory): everything in it now is durable.
    /// Directories are named by their resolved path (`FileStore` resolves the ancestors it syncs).
    init(root: String) throws {
        let root = resolved(root)
        self.root = root
        try state.withLock { state in try scanInitial(root, into: &state) }
    }

    deinit {
        state.withLock { state in
            for file in state.files.values { Glibc.close(file.reader) }
            state.files = [:]
        }
    }

    // MARK: The cut

    var isFrozen: Bool { state.withLock { $0.frozen } }

    /// The power goes now.
    func cut() {
        state.withLock { state in freeze(&state) }
    }

    /// The power goes as the `index`-th sync of `kind` from now starts (0: the next one).
    func cutAtSync(_ index: Int, of kind: SyncKind = .any) {
        state.withLock { state in state.cut = (kind, (state.syncs[kind] ?? 0) + index) }
    }

    /// Syncs of `kind` seen so far (before the cut).
    func syncCount(_ kind: SyncKind = .any) -> Int { state.withLock { $0.syncs[kind] ?? 0 } }

    private func freeze(_ state: inout State) {
        guard !state.frozen else { return }
        state.frozen = true
        for (inode, file) in state.files where !file.dirty.isEmpty {
            var info = stat()
            guard fstat(file.reader, &info) == 0 else { continue }
            let size = Int(info.st_size)
            state.unsyncedAtCut[inode] = merged(file.dirty).compactMap { range in
                let clipped = range.clamped(to: 0..<max(0, size))
                guard !clipped.isEmpty else { return nil }
                return (clipped.lowerBound, readBytes(file.reader, clipped))
            }
        }
    }

    // MARK: FileStoreObserver

    func wrote(_ descriptor: Int32, offset: Int, count: Int) {
        state.withLock { state in
            guard !state.frozen, count > 0, let inode = track(descriptor, &state) else { return }
            let range = offset..<(offset + count)
            if let last = state.files[inode]!.dirty.last, last.upperBound == range.lowerBound {
                state.files[inode]!.dirty[state.files[inode]!.dirty.count - 1] = last.lowerBound..<range.upperBound
            } else {
                state.files[inode]!.dirty.append(range)
            }
        }
    }

    func willSync(_ descriptor: Int32, path: String) -> Int {
        state.withLock { state in
            let kind: SyncKind = path.contains("/logfile.") ? .log : .notLog
            let path = resolved(path)
            // Directories above `root` are durable by assumption (not ours to list).
            guard !state.frozen, path == root || path.hasPrefix(root + "/") else { return -1 }
            for counted in [SyncKind.any, kind] {
                let index = state.syncs[counted] ?? 0
                state.syncs[counted] = index + 1
                if let cut = state.cut, cut.kind == counted, cut.index == index {
                    freeze(&state)
                    return -1
                }
            }
            var info = stat()
            guard fstat(descriptor, &info) == 0 else { return -1 }
            let token = state.nextToken
            state.nextToken += 1
            if info.st_mode & S_IFMT == S_IFDIR {
                state.pending[token] = .directory(path, list(path, &state))
            } else {
                guard let inode = track(descriptor, &state) else { return -1 }
                let file = state.files[inode]!
                let size = Int(info.st_size)
                let patches = merged(file.dirty).compactMap { range -> (Int, [UInt8])? in
                    let clipped = range.clamped(to: 0..<max(0, size))
                    return clipped.isEmpty ? nil : (clipped.lowerBound, readBytes(file.reader, clipped))
                }
                state.pending[token] = .file(inode, size: size, patches: patches)
            }
            return token
        }
    }

    func didSync(_ token: Int) {
        state.withLock { state in
            guard let pending = state.pending.removeValue(forKey: token), !state.frozen else { return }
            switch pending {
            case .directory(let path, let entries):
                state.directories[path] = entries
            case .file(let inode, let size, let patches):
                var file = state.files[inode]!
                if file.durable.count > size {
                    file.durable.removeLast(file.durable.count - size)
                } else {
                    file.durable += [UInt8](repeating: 0, count: size - file.durable.count)
                }
                for (offset, bytes) in patches { file.durable.replaceSubrange(offset..<(offset + bytes.count), with: bytes) }
                file.dirty = []
                state.files[inode] = file
            }
        }
    }

    // MARK: Losing power

    /// Deletes everything under `root` and writes back what the cut left durable, with `tear`
    /// applied to the unsynced bytes. Call after the cut, once nothing uses the files any more.
    @discardableResult
    func losePower(_ tear: Tear = .drop) throws -> Report {
        try state.withLock { (state) throws -> Report in
            precondition(state.frozen, "losePower before the cut")
            var random = SeededRandom(seed: {
                switch tear {
                case .drop: 0
                case .keepPrefix(let seed), .garble(let seed): seed
                }
            }())
            var report = Report()
            // The image first (from the records alone), then the wipe, then the writes.
            var directories: [String] = []
            var files: [(String, [UInt8])] = []
            func collect(_ directory: String, _ relative: String) {
                for (name, entry) in (state.directories[directory] ?? [:]).sorted(by: { $0.key < $1.key }) {
                    let path = relative.isEmpty ? name : relative + "/" + name
                    switch entry {
                    case .directory:
                        directories.append(path)
                        collect(directory + "/" + name, path)
                    case .file(let inode):
                        var content = state.files[inode]?.durable ?? []
                        if case .drop = tear {} else if let unsynced = state.unsyncedAtCut[inode], !unsynced.isEmpty {
                            report.firstUnsyncedOffset[path] = unsynced[0].offset
                            applyTear(tear, unsynced, to: &content, &random)
                        }
                        files.append((path, content))
                    }
                }
            }
            collect(root, "")
            for name in try FileManager.default.contentsOfDirectory(atPath: root) {
                try FileManager.default.removeItem(atPath: root + "/" + name)
            }
            for directory in directories {
                try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            }
            for (path, content) in files { try TestSupport.writeFile(root + "/" + path, content) }
            report.files = files.map(\.0)
            for file in state.files.values { Glibc.close(file.reader) }
            state.files = [:]
            return report
        }
    }

    private func applyTear(
        _ tear: Tear, _ unsynced: [(offset: Int, bytes: [UInt8])], to content: inout [UInt8], _ random: inout SeededRandom
    ) {
        let total = unsynced.reduce(0) { $0 + $1.bytes.count }
        var keep = Int(random.next() % UInt64(total + 1))
        var garbleAt: Int?
        for (offset, bytes) in unsynced {
            let kept = min(keep, bytes.count)
            if kept > 0 { write(Array(bytes[..<kept]), at: offset, into: &content) }
            keep -= kept
            if garbleAt == nil, kept < bytes.count { garbleAt = offset + kept }
        }
        guard case .garble = tear else { return }
        // A few garbage bytes inside the kept unsynced bytes or just after them.
        let first = unsynced[0].offset
        let end = garbleAt ?? (unsynced.last!.offset + unsynced.last!.bytes.count)
        let at = first + Int(random.next() % UInt64(end - first + 1))
        let garbage = (0..<(1 + Int(random.next() % 8))).map { _ in UInt8(truncatingIfNeeded: random.next()) }
        write(garbage, at: at, into: &content)
    }

    private func write(_ bytes: [UInt8], at offset: Int, into content: inout [UInt8]) {
        if content.count < offset + bytes.count {
            content += [UInt8](repeating: 0, count: offset + bytes.count - content.count)
        }
        content.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
    }

    // MARK: Files and directories

    /// The inode of `descriptor`, tracked from now on (with a read descriptor of its own).
    private func track(_ descriptor: Int32, _ state: inout State) -> UInt64? {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return nil }
        let inode = UInt64(info.st_ino)
        if state.files[inode] == nil {
            let reader = Glibc.open("/proc/self/fd/\(descriptor)", O_RDONLY | O_CLOEXEC)
            guard reader >= 0 else { return nil }
            state.files[inode] = TrackedFile(reader: reader, durable: [], dirty: [])
        }
        return inode
    }

    /// The entries of directory `path` now. Files not seen before are tracked, with nothing durable.
    private func list(_ path: String, _ state: inout State) -> [String: Entry] {
        var entries: [String: Entry] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? [] {
            let descriptor = Glibc.open(path + "/" + name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
            guard descriptor >= 0 else { continue }  // removed meanwhile
            defer { Glibc.close(descriptor) }
            var info = stat()
            guard fstat(descriptor, &info) == 0 else { continue }
            if info.st_mode & S_IFMT == S_IFDIR {
                entries[name] = .directory
            } else if info.st_mode & S_IFMT == S_IFREG, let inode = track(descriptor, &state) {
                entries[name] = .file(inode)
            }
        }
        return entries
    }

    private func scanInitial(_ path: String, into state: inout State) throws {
        let entries = list(path, &state)
        state.directories[path] = entries
        for (name, entry) in entries {
            switch entry {
            case .directory: try scanInitial(path + "/" + name, into: &state)
            case .file(let inode):
                let reader = state.files[inode]!.reader
                var info = stat()
                guard fstat(reader, &info) == 0 else { throw POSIXError(.EIO) }
                state.files[inode]!.durable = readBytes(reader, 0..<Int(info.st_size))
            }
        }
    }
}

/// `path` with symbolic links, `.` and `..` resolved (realpath), or as it is if that fails.
private func resolved(_ path: String) -> String {
    guard let result = realpath(path, nil) else { return path }
    defer { free(result) }
    return String(cString: result)
}

/// Sorted, overlapping and adjacent ranges joined.
private func merged(_ ranges: [Range<Int>]) -> [Range<Int>] {
    var result: [Range<Int>] = []
    for range in ranges.sorted(by: { $0.lowerBound < $1.lowerBound }) {
        if let last = result.last, range.lowerBound <= last.upperBound {
            result[result.count - 1] = last.lowerBound..<max(last.upperBound, range.upperBound)
        } else {
            result.append(range)
        }
    }
    return result
}

private func readBytes(_ descriptor: Int32, _ range: Range<Int>) -> [UInt8] {
    // Not with capacity 0: that writes the shared empty array's count (see `readDescriptor`).
    guard !range.isEmpty else { return [] }
    return [UInt8](unsafeUninitializedCapacity: range.count) { buffer, initialized in
        while initialized < range.count {
            let result = pread(descriptor, buffer.baseAddress! + initialized, range.count - initialized, off_t(range.lowerBound + initialized))
            guard result > 0 else { break }
            initialized += result
        }
    }
}
