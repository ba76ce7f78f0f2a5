#if SMALLDB_PTHREAD_LOCKS
// Public: the inlinable lock calls reach pthread_mutex_t and its functions in the caller's module.
public import Glibc
#else
public import Synchronization
#endif

/// A value guarded by a lock: the project's one lock type, with `Synchronization.Mutex`'s shape
/// (`withLock` lends the value `inout` while the lock is held).
///
/// Two implementations, chosen when Platform is compiled (Package.swift):
/// - **Debug builds** (what `swift test` builds, and so what the sanitizers run: docs/OPERATIONS.md
///   §14) define `SMALLDB_PTHREAD_LOCKS` and use a `pthread_mutex_t`. ThreadSanitizer intercepts
///   `pthread_mutex_lock`/`unlock` and so sees the happens-before edge of each unlock→lock pair;
///   on Linux `Mutex` waits on a futex TSan knows nothing about, so every access it guards was
///   reported as a race (419 reports by issue 10's count) and a real race would drown among them. The mutex is an
///   error-checking one, so taking the lock again on the thread that holds it traps with a message.
/// - **Release builds** use `Synchronization.Mutex`, whose fast path is inlined: a pthread mutex is
///   a call into glibc each way, which cost the engine's gets 5–14% in an A/B (docs/PERFORMANCE.md
///   "Locks"). Both exclude the same way; only the sanitizers' view differs. (A release build
///   under TSan would see Mutex again: build the sanitizers in debug, as the script does.)
///
/// Everything is `@inlinable`: the engine takes a shard's lock on every get, and an opaque generic
/// call from another module (value witnesses, an unspecialised closure) cost more than the lookup.
#if SMALLDB_PTHREAD_LOCKS
/// What must stay true (pthread form):
/// - The mutex and the value live in one heap block that never moves (a `pthread_mutex_t` must not
///   be copied or moved once initialised); the struct is `~Copyable` and only holds its address.
/// - The value is touched only between `pthread_mutex_lock` and `pthread_mutex_unlock`.
public struct Lock<Value: ~Copyable>: ~Copyable {
    @usableFromInline let block: UnsafeMutableRawPointer

    @inlinable
    public init(_ initialValue: consuming sending Value) {
        block = .allocate(byteCount: Self.valueOffset + MemoryLayout<Value>.size, alignment: Self.blockAlignment)
        let mutex = block.bindMemory(to: pthread_mutex_t.self, capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ERRORCHECK))
        let status = pthread_mutex_init(mutex, &attributes)
        pthread_mutexattr_destroy(&attributes)
        precondition(status == 0, "pthread_mutex_init failed: \(status)")
        (block + Self.valueOffset).bindMemory(to: Value.self, capacity: 1).initialize(to: initialValue)
    }

    @inlinable
    deinit {
        value.deinitialize(count: 1)
        pthread_mutex_destroy(mutex)
        mutex.deinitialize(count: 1)
        block.deallocate()
    }

    /// Runs `body` with the value while holding the lock, and returns what it returns.
    /// `body` must not take this lock again (see the type's comment).
    @inlinable @inline(__always)
    public borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        let locked = pthread_mutex_lock(mutex)
        assert(locked != EDEADLK, "Lock.withLock called again on the thread that holds the lock")
        assert(locked == 0, "pthread_mutex_lock failed: \(locked)")
        defer {
            let unlocked = pthread_mutex_unlock(mutex)
            assert(unlocked == 0, "pthread_mutex_unlock failed: \(unlocked)")
        }
        return try body(&value.pointee)
    }

    // MARK: Layout: [pthread_mutex_t][padding to Value's alignment][Value]

    @inlinable
    var mutex: UnsafeMutablePointer<pthread_mutex_t> {
        block.assumingMemoryBound(to: pthread_mutex_t.self)
    }

    @inlinable
    var value: UnsafeMutablePointer<Value> {
        (block + Self.valueOffset).assumingMemoryBound(to: Value.self)
    }

    @inlinable
    static var valueOffset: Int {
        let alignment = MemoryLayout<Value>.alignment
        return (MemoryLayout<pthread_mutex_t>.size + alignment - 1) / alignment * alignment
    }

    @inlinable
    static var blockAlignment: Int {
        max(MemoryLayout<pthread_mutex_t>.alignment, MemoryLayout<Value>.alignment)
    }
}

#else
public struct Lock<Value: ~Copyable>: ~Copyable {
    @usableFromInline let mutex: Mutex<Value>

    @inlinable
    public init(_ initialValue: consuming sending Value) {
        mutex = Mutex(initialValue)
    }

    /// Runs `body` with the value while holding the lock, and returns what it returns.
    /// `body` must not take this lock again.
    @inlinable @inline(__always)
    public borrowing func withLock<Result: ~Copyable, E: Error>(
        _ body: (inout sending Value) throws(E) -> sending Result
    ) throws(E) -> sending Result {
        try mutex.withLock(body)
    }
}
#endif

/// As `Mutex`: the lock makes any value safe to share, since it is only reached under the lock and
/// `sending` keeps callers from keeping a reference to it outside.
extension Lock: @unchecked Sendable where Value: ~Copyable {}
