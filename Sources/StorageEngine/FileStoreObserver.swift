#if canImport(Glibc)
import Glibc
#endif

/// A test seam in `FileStore`: told of every byte written and every sync, at the system calls
/// themselves, so that a test can run the real store on real files and know what a power loss
/// would keep (Tests/StorageEngineTests/SyncRecorder.swift: the LevelDB way, FaultInjectionTestEnv).
///
/// Internal, not API: only `FileStore(directory:create:observer:checkpointSyncInterval:)` takes
/// one, and production stores have none (each call site costs one nil check).
///
/// What is reported, and when (what must stay true when `FileStore` changes):
/// - `wrote`: after every successful write(2) or pwrite(2) to a file the store opened, with the
///   descriptor and the exact byte range it wrote (a short write reports what it wrote). Every
///   byte that reaches a file through `FileStore` is reported; size changes by ftruncate(2) are
///   not (the next sync's size tells them).
/// - `willSync` / `didSync`: around every fsync(2) and fdatasync(2), of a file or a directory
///   (the data directory's, and each one `syncDirectoryAndAncestors` syncs on open). `willSync` comes first, with
///   the descriptor being synced and its path (a directory's path is what to list), and returns a
///   token; `didSync` follows with that token only if the sync succeeded. What `willSync` sees is
///   what the sync makes durable: a file's content and size, a directory's entries. Whatever
///   changes during the sync (another thread's rename) is not counted: the conservative choice.
/// - Creates, renames and unlinks are not reported: a directory's entries are durable as of its
///   last sync, which `willSync` lets the observer list.
/// Calls come from whichever thread does the I/O (the committer, the checkpoint queue, a
/// replica's follower), possibly at the same time: an observer locks.
protocol FileStoreObserver: AnyObject, Sendable {
    func wrote(_ descriptor: Int32, offset: Int, count: Int)
    func willSync(_ descriptor: Int32, path: String) -> Int
    func didSync(_ token: Int)
}

/// fsync(2) `descriptor` (fdatasync(2) if `dataOnly`), telling `observer` around it. Throws
/// `.io` naming `path`.
func syncDescriptor(
    _ descriptor: Int32, dataOnly: Bool = false, path: String, observer: (any FileStoreObserver)?
) throws(DatabaseError) {
    let token = observer?.willSync(descriptor, path: path)
    guard (dataOnly ? fdatasync(descriptor) : fsync(descriptor)) == 0 else {
        throw .io(operation: dataOnly ? "fdatasync" : "fsync", path: path, errno: errno)
    }
    if let token { observer?.didSync(token) }
}
