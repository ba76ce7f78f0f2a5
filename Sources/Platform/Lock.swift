// Public: the inlinable lock calls reach pthread_mutex_t and its functions in the caller's module.
public import Glibc

/// A value guarded by a `pthread_mutex_t`: the project's one lock type.
///
/// It has `Synchronization.Mutex`'s shape (`withLock` lends the value `inout` while the lock is
/// held), and exists for one reason: ThreadSanitizer intercepts `pthread_mutex_lock`/`unlock` and
/// so sees the happens-before edge each unlock→lock pair creates, whereas on Linux `Mutex` waits
/// on a futex TSan knows nothing about, so every access it guards is reported as a race and a real
/// race would drown among them (docs/OPERATIONS.md "How we test"). Uncontended, a pthread mutex is
/// one atomic exchange each way, like `Mutex`; docs/PERFORMANCE.md has the A/B.
///
/// What must stay true:
/// - The mutex and the value live in one heap block that never moves (a `pthread_mutex_t` must not
///   be copied or moved once initialised); the struct is `~Copyable` and only holds its address.
/// - The value is touched only between `pthread_mutex_lock` and `pthread_mutex_unlock`.
/// - Debug builds use an error-checking mutex, so taking the lock again on the thread that holds it
///   (a deadlock in release) traps with a message instead, as `Mutex` does.
///
/// Everything is `@inlinable`: the engine takes a shard's lock on every get, and an opaque generic
/// call from another module (value witnesses, an unspecialised closure) cost more than the lookup.
public struct Lock<Value: ~Copyable>: ~Copyable {
    @usableFromInline let block: UnsafeMutableRawPointer

    @inlinable
    public init(_ initialValue: consuming sending Value) {
        block = .allocate(byteCount: Self.valueOffset + MemoryLayout<Value>.size, alignment: Self.blockAlignment)
        let mutex = block.bindMemory(to: pthread_mutex_t.self, capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        var attributes = pthread_mutexattr_t()
        pthread_mutexattr_init(&attributes)
        #if DEBUG
        pthread_mutexattr_settype(&attributes, Int32(PTHREAD_MUTEX_ERRORCHECK))
        #endif
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

/// Like `Mutex`: the lock makes any value safe to share, since it is only reached under the lock and
/// `sending` keeps callers from keeping a reference to it outside.
extension Lock: @unchecked Sendable where Value: ~Copyable {}
