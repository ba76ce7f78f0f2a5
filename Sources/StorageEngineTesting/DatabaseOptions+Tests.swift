public import StorageEngine

extension DatabaseOptions {
    /// The defaults, without the timed checkpoint. The 60 s interval starts at open, and a test
    /// starved on a loaded machine (or under a sanitizer) can outlive it: a checkpoint the test did
    /// not ask for moves the log to a new generation under its file checks. Tests of the interval
    /// trigger set it themselves.
    public static var forTests: DatabaseOptions {
        var options = DatabaseOptions()
        options.checkpoints.interval = .seconds(365 * 24 * 3600)
        return options
    }
}
