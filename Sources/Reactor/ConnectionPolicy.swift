/// The rules every connection of a `ConnectionServer` lives by, whatever its protocol: how much
/// it may make us buffer, how long it may keep us waiting, and how much work it gets per turn.
/// A protocol front supplies the bytes; these are the rules.
public struct ConnectionPolicy: Sendable {
    /// Connections beyond this are sent the front's rejection and closed at once.
    public var maxConnections = 4096
    /// Messages read and not yet answered and written, per connection: no more are decoded or
    /// read while this many are outstanding (pipelining's bound).
    public var maxPendingMessages = 64
    /// Answer bytes held for one client, built or not (the connection's unsent output plus what
    /// the front holds: `ConnectionHandler.heldOutputBytes`): nothing more is read while this
    /// many wait to be sent. Reading resumes under half of both limits, so it does not flap.
    public var maxBufferedOutput = 4 << 20
    /// One read's size: the loop's shared read buffer.
    public var readChunk = 64 << 10
    /// Fairness: in one loop iteration (a turn) a connection handles at most this many messages
    /// and reads at most `maxReadBytesPerTurn`; then it continues in the next iteration, after
    /// every other ready connection.
    public var maxMessagesPerTurn = 64
    public var maxReadBytesPerTurn = 256 << 10
    /// A client must send a whole message within this time of its first byte (`.zero`: never).
    public var messageReadTimeout: Duration = .seconds(10)
    /// A connection with nothing in flight is closed after this long (`.zero`: never).
    public var idleTimeout: Duration = .seconds(120)
    /// A connection with answers waiting is closed when the client has taken none of their
    /// bytes for this long (`.zero`: never): a client that sends but never reads would
    /// otherwise hold its answers forever.
    public var writeTimeout: Duration = .seconds(30)
    /// After its last answer, a closing connection reads and discards the client's input for at
    /// most this long before closing (`Connection`'s lingering close).
    public var lingerTime: Duration = .seconds(2)
    /// Receives one line per failure worth an operator's attention (rate-limited per loop).
    public var log: (@Sendable (String) -> Void)?

    /// Tests only: makes the listener's epoll registrations fail.
    package var listenerWatchFaults: RegistrationFaults?
    /// Tests only: makes changes of a connection's watched events fail.
    package var connectionWatchFaults: RegistrationFaults?

    public init() {}
}
