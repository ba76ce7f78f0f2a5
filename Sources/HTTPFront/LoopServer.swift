import Platform
import CLinuxShims
import StorageEngine
import Synchronization
import WireProtocol
#if canImport(Glibc)
import Glibc
#endif

/// The server's part on one event loop: its watch on the shared listening socket and the
/// connections it owns.
///
/// Placement: whichever loop the kernel wakes accepts every pending connection, then gives each
/// to the loop that owns the fewest (`ownedConnections`), itself on a tie. Keeping all of them would let one
/// loop own most connections when clients connect in a burst (a benchmark's 64 at once): that
/// loop then reads and answers most of every commit round alone while the other core idles.
///
/// Confined to its loop's thread like `HTTPConnection` (hence `@unchecked Sendable`: the reference
/// crosses threads only inside tasks given to `EventLoop.execute`).
final class LoopServer: EventLoopHandler, @unchecked Sendable {
    let loop: EventLoop
    let configuration: HTTPServerConfiguration
    let metrics: ServerMetrics
    let router: Router
    private let listener: ListeningSocket
    private var listening = true
    /// Whether the listening socket is registered with this loop: false after a failed accept
    /// (paused until the next tick) or a failed registration (retried on every tick).
    private var listenerWatched = false
    /// Set by `beginShutdown`: connections then close without lingering when nothing is unread.
    private(set) var isShuttingDown = false
    private var connections: [Int32: HTTPConnection] = [:]
    /// Every loop's server, this one included: set by `HTTPServer.start` before the loops run,
    /// emptied by `HTTPServer.shutdown` after they end (the servers refer to one another).
    var siblings: [LoopServer] = []
    /// One read buffer for all of this loop's connections: reads happen one at a time on the
    /// loop's thread, and each connection copies what it reads into its decoder at once.
    let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: HTTPConnection.readChunk, alignment: 16)
    /// Set by `beginShutdown`; called (on the loop) once the last connection has closed.
    private var whenEmpty: (@Sendable () -> Void)?

    init(loop: EventLoop, listener: ListeningSocket, configuration: HTTPServerConfiguration, metrics: ServerMetrics, router: Router) {
        self.loop = loop
        self.listener = listener
        self.configuration = configuration
        self.metrics = metrics
        self.router = router
    }

    deinit { readBuffer.deallocate() }

    /// Writes read during this loop iteration, in the order they were read; handed to the engine
    /// together at its end (`submitQueuedWrites`).
    var queuedWrites: [Database.Submission] = []

    /// End of a loop iteration: hands the writes read in it to the engine as one group. If the
    /// committer is idle, the engine commits them right here, as one round (one write, one
    /// fdatasync), and their answers are queued before this returns; that is Redis's loop, with
    /// no thread hand-off. Answering may release requests that waited behind those writes
    /// (`HTTPConnection`'s ordering rule), and their writes form the next group.
    func submitQueuedWrites() {
        while !queuedWrites.isEmpty {
            let group = queuedWrites
            queuedWrites.removeAll(keepingCapacity: true)
            router.database.submit(group, mayCommitOnCallingThread: true)
        }
    }

    /// Registers the listening socket (on the loop's thread).
    func attach() {
        loop.onIterationEnd = { [unowned self] in submitQueuedWrites() }
        watchListener()
        loop.onTick = { [unowned self] in
            // After a failed accept (EMFILE) or a failed registration: watch the listener again.
            if listening && !listenerWatched { watchListener() }
            let now = ContinuousClock.now
            for connection in connections.values { connection.checkTimeouts(now: now) }
        }
    }

    /// Registers the listening socket with this loop. (EPOLLEXCLUSIVE cannot be changed by
    /// EPOLL_CTL_MOD, so resuming after a pause registers it anew.) If epoll_ctl fails (ENOMEM,
    /// ENOSPC: the user's epoll watch limit), this loop would never accept again, silently: the
    /// failure is logged, counted (`smalldb_http_listener_watch_failures_total`) and retried on
    /// every tick until it succeeds.
    private func watchListener() {
        let failure = configuration.listenerWatchFaults?.take()
            ?? loop.register(listener.descriptor, events: EPOLLIN.rawValue | EPOLLEXCLUSIVE.rawValue, handler: self)
        guard let code = failure else {
            listenerWatched = true
            return
        }
        listenerWatched = false
        metrics.listenerWatchFailures.add(1, ordering: .relaxed)
        logServerError("event loop \(loop.index) cannot watch the listening socket: epoll_ctl: \(errnoDescription(code)) (errno \(code)); retrying in \(EventLoop.tickInterval)")
    }

    /// The listening socket is readable: accept every pending connection.
    func handleEvents(_ events: UInt32) {
        while listening {
            let descriptor: Int32
            switch listener.accept() {
            case .accepted(let accepted): descriptor = accepted
            case .noneWaiting: return
            case .failed(let code):
                // Out of descriptors (EMFILE) and the like: the connection stays queued in the
                // kernel. Stop watching the listener until the next tick, or level-triggered
                // epoll would spin on it.
                logServerError("accept failed: \(errnoDescription(code)) (errno \(code)); retrying in \(EventLoop.tickInterval)")
                listenerWatched = false
                loop.deregister(listener.descriptor)
                return
            }
            let total = metrics.openConnections.add(1, ordering: .relaxed).newValue
            guard total <= configuration.maxConnections else {
                metrics.openConnections.subtract(1, ordering: .relaxed)
                metrics.rejectedConnections.add(1, ordering: .relaxed)
                var bytes: [UInt8] = []
                HTTPResponseEncoder.encode(
                    .json(status: 503, error: "too many connections (limit \(configuration.maxConnections))"),
                    headOnly: false, closeConnection: true, to: &bytes)
                _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
                close(descriptor)
                continue
            }
            metrics.acceptedConnections.add(1, ordering: .relaxed)
            let owner = leastLoaded()
            owner.countConnection(+1)
            if owner === self {
                adopt(descriptor)
            } else {
                owner.loop.execute { owner.adopt(descriptor) }
            }
        }
    }

    /// The loop that owns the fewest connections; this one on a tie.
    private func leastLoaded() -> LoopServer {
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

    /// The connections this loop owns, and those handed to it and not yet adopted (the hand-off
    /// counts a connection before it crosses, so a burst of accepts spreads evenly).
    var ownedConnections: Int { metrics.loops[loop.index].connections.load(ordering: .relaxed) }

    private func countConnection(_ change: Int) {
        metrics.loops[loop.index].connections.add(change, ordering: .relaxed)
    }

    /// Takes ownership of an accepted connection (on this loop's thread; `ownedConnections`
    /// already counts it). A loop that has stopped accepting (shutting down) closes it instead: the client sees
    /// the connection end before any request was read, as if it had waited in the backlog.
    private func adopt(_ descriptor: Int32) {
        guard listening else {
            countConnection(-1)
            metrics.openConnections.subtract(1, ordering: .relaxed)
            close(descriptor)
            return
        }
        let connection = HTTPConnection(descriptor: descriptor, server: self)
        if let code = loop.register(descriptor, events: EPOLLIN.rawValue | EPOLLRDHUP.rawValue, handler: connection) {
            logServerError("cannot watch an accepted connection: epoll_ctl: \(errnoDescription(code)) (errno \(code)); closed it")
            countConnection(-1)
            metrics.openConnections.subtract(1, ordering: .relaxed)
            close(descriptor)
            return
        }
        connections[descriptor] = connection
    }

    /// Logs a server-side failure (a 5xx answer, a failed accept), at most one line per second per
    /// loop: a failing disk must not flood the log; the line says how many were folded into it.
    func logServerError(_ message: String) {
        guard let log = configuration.log else { return }
        let now = ContinuousClock.now
        if let last = lastErrorLog, now - last < .seconds(1) {
            suppressedErrors += 1
            return
        }
        let folded = suppressedErrors > 0 ? " (and \(suppressedErrors) more since the last such line)" : ""
        log(.error, message + folded)
        lastErrorLog = now
        suppressedErrors = 0
    }

    private var lastErrorLog: ContinuousClock.Instant?
    private var suppressedErrors = 0

    /// Tests only, on the loop's thread: `HTTPConnection.builtAnswerBytes` of every connection.
    var builtAnswerBytesForTesting: Int {
        loop.assertOnLoop()
        return connections.values.reduce(0) { $0 + $1.builtAnswerBytes }
    }

    /// A connection closed itself (on the loop's thread).
    func connectionClosed(_ connection: HTTPConnection) {
        connections[connection.descriptor] = nil
        countConnection(-1)
        metrics.openConnections.subtract(1, ordering: .relaxed)
        if connections.isEmpty, let whenEmpty {
            self.whenEmpty = nil
            whenEmpty()
        }
    }

    /// Graceful shutdown, step 1 (on the loop's thread): stop watching the listening socket (the
    /// server closes it once every loop has let go of it).
    func stopAccepting() {
        guard listening else { return }
        listening = false
        if listenerWatched { loop.deregister(listener.descriptor) }
        listenerWatched = false
    }

    /// Graceful shutdown, step 2 (on the loop's thread): let every connection answer what it has
    /// read and close. `whenEmpty` runs once no connection is left.
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
