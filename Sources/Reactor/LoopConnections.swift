import Platform

/// A `ConnectionServer`'s part on one event loop: its watch on the shared listening socket and
/// the connections it owns.
///
/// Accepting, step by step (on the loop's thread, when the listener is readable):
/// 1. Accept every pending connection (`ListeningSocket.accept`). On a lasting failure (EMFILE:
///    out of descriptors) stop watching the listener until the next tick, or level-triggered
///    epoll would spin on it; the connection stays queued in the kernel.
/// 2. Over `maxConnections`: send the front's rejection, close, count it.
/// 3. Placement: give the connection to the loop that owns the fewest (`ownedConnections`),
///    this one on a tie, counting it there before it crosses, so a burst of accepts spreads
///    evenly. (Keeping every connection would let one loop own most of a benchmark's 64 that
///    connect at once: that loop then reads and answers most of every round alone.)
/// 4. The owner registers it and makes its handler (`adopt`). An owner that has stopped
///    accepting (shutting down) closes it instead: the client sees the connection end before
///    anything was read, as if it had waited in the backlog.
///
/// If epoll refuses the listener's registration (ENOMEM, ENOSPC: the user's epoll watch
/// limit), this loop would never accept again, silently: the failure is logged, counted
/// (`ConnectionCounters.listenerWatchFailures`) and retried on every tick until it succeeds.
///
/// Confined to its loop's thread (hence `@unchecked Sendable`: the reference crosses threads
/// only inside tasks given to `EventLoop.execute`).
final class LoopConnections: EventLoopHandler, @unchecked Sendable {
    let loop: EventLoop
    let policy: ConnectionPolicy
    let counters: ConnectionCounters
    private let front: any ConnectionFront
    private let listener: ListeningSocket
    private var listening = true
    private var listenerRegistration: Registration?
    /// Set by `beginShutdown`: connections then close without lingering when nothing is unread.
    private(set) var isShuttingDown = false
    private(set) var connections: [ObjectIdentifier: Connection] = [:]
    /// Every loop's part, this one included: set before the loops run, emptied after they end.
    var siblings: [LoopConnections] = []
    /// One read buffer for all of this loop's connections: reads happen one at a time on the
    /// loop's thread, and each handler copies what it is given at once.
    let readBuffer: UnsafeMutableRawBufferPointer
    /// Set by `beginShutdown`; called (on the loop) once the last connection has closed.
    private var whenEmpty: (@Sendable () -> Void)?
    private let log: RateLimitedLog

    init(loop: EventLoop, listener: ListeningSocket, policy: ConnectionPolicy, counters: ConnectionCounters, front: any ConnectionFront) {
        self.loop = loop
        self.listener = listener
        self.policy = policy
        self.counters = counters
        self.front = front
        self.log = RateLimitedLog(policy.log)
        readBuffer = .allocate(byteCount: policy.readChunk, alignment: 16)
    }

    deinit { readBuffer.deallocate() }

    /// On the loop's thread, before anything else: the front attaches, the listener is watched,
    /// and the tick checks timeouts (and retries a refused listener registration).
    func attach() {
        front.attach(to: loop)
        watchListener()
        loop.addTickHook { [unowned self] in
            if listening && listenerRegistration == nil { watchListener() }
            let now = ContinuousClock.now
            for connection in connections.values { connection.checkTimeouts(now: now) }
        }
    }

    /// (EPOLLEXCLUSIVE cannot be changed by EPOLL_CTL_MOD, so resuming after a pause registers
    /// the listener anew.)
    private func watchListener() {
        do throws(IOError) {
            if let code = policy.listenerWatchFaults?.take() { throw IOError("epoll_ctl", code: code) }
            listenerRegistration = try loop.register(listener.descriptor, events: [.readable, .exclusive], handler: self)
        } catch {
            listenerRegistration = nil
            counters.listenerWatchFailures.add(1, ordering: .relaxed)
            logError("event loop \(loop.index) cannot watch the listening socket: \(error); retrying in \(EventLoop.tickInterval)")
        }
    }

    private func unwatchListener() {
        if let listenerRegistration { loop.deregister(listenerRegistration) }
        listenerRegistration = nil
    }

    /// The listening socket is readable: steps 1–3.
    func handleEvents(_ events: EpollEvents) {
        while listening {
            let descriptor: Int32
            switch listener.accept() {
            case .accepted(let accepted): descriptor = accepted
            case .noneWaiting: return
            case .failed(let error):
                logError("\(error); retrying in \(EventLoop.tickInterval)")
                unwatchListener()
                return
            }
            let total = counters.open.add(1, ordering: .relaxed).newValue
            guard total <= policy.maxConnections else {
                counters.open.subtract(1, ordering: .relaxed)
                counters.rejected.add(1, ordering: .relaxed)
                let rejection = front.rejection(limit: policy.maxConnections)
                _ = rejection.withUnsafeBytes { SocketIO.write(descriptor, $0) }
                SocketIO.close(descriptor)
                continue
            }
            counters.accepted.add(1, ordering: .relaxed)
            let owner = leastLoaded()
            owner.countConnection(+1)
            if owner === self {
                adopt(descriptor)
            } else {
                owner.loop.execute { owner.adopt(descriptor) }
            }
        }
    }

    private func leastLoaded() -> LoopConnections {
        var best = self
        var fewest = ownedConnections
        for sibling in siblings where sibling !== self {
            let count = sibling.ownedConnections
            if count < fewest {
                best = sibling
                fewest = count
            }
        }
        return best
    }

    /// The connections this loop owns, and those handed to it and not yet adopted.
    var ownedConnections: Int { counters.perLoop[loop.index].value.load(ordering: .relaxed) }

    private func countConnection(_ change: Int) {
        counters.perLoop[loop.index].value.add(change, ordering: .relaxed)
    }

    /// Step 4 (on this loop's thread; `ownedConnections` already counts it).
    private func adopt(_ descriptor: Int32) {
        guard listening else { return refuse(descriptor) }
        let connection = Connection(descriptor: descriptor, owner: self)
        do throws(IOError) {
            connection.registration = try loop.register(descriptor, events: .input, handler: connection)
        } catch {
            counters.connectionWatchFailures.add(1, ordering: .relaxed)
            logError("cannot watch an accepted connection: \(error); closed it")
            return refuse(descriptor)
        }
        connection.attachHandler(front.makeHandler(for: connection))
        connections[ObjectIdentifier(connection)] = connection
    }

    private func refuse(_ descriptor: Int32) {
        countConnection(-1)
        counters.open.subtract(1, ordering: .relaxed)
        SocketIO.close(descriptor)
    }

    /// Logs a failure, at most one line per second per loop (`RateLimitedLog`).
    func logError(_ message: String) { log.log(message) }

    /// A connection closed itself (on the loop's thread).
    func connectionClosed(_ connection: Connection) {
        guard connections.removeValue(forKey: ObjectIdentifier(connection)) != nil else { return }
        countConnection(-1)
        counters.open.subtract(1, ordering: .relaxed)
        if connections.isEmpty, let whenEmpty {
            self.whenEmpty = nil
            whenEmpty()
        }
    }

    /// Graceful shutdown, step 1 (on the loop's thread): stop watching the listening socket.
    func stopAccepting() {
        guard listening else { return }
        listening = false
        unwatchListener()
    }

    /// Graceful shutdown, step 2: every connection answers what it has read and closes.
    /// `whenEmpty` runs once no connection is left.
    func beginShutdown(whenEmpty: @escaping @Sendable () -> Void) {
        isShuttingDown = true
        self.whenEmpty = whenEmpty
        for connection in Array(connections.values) { connection.finishAndClose() }
        if connections.isEmpty, let pending = self.whenEmpty {
            self.whenEmpty = nil
            pending()
        }
    }

    /// Graceful shutdown, last step: close whatever is still open.
    func closeAll() {
        for connection in Array(connections.values) { connection.close() }
    }
}
