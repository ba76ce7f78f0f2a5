import StorageEngine

extension DatabaseOptions {
    /// The defaults, without the timed checkpoint: a test starved on a loaded machine (or under a
    /// sanitizer) can outlive the 60 s interval, and a checkpoint it did not ask for changes the
    /// generation it checks. (StorageEngineTests' TestSupport has the same for its tests.)
    static var forTests: DatabaseOptions {
        var options = DatabaseOptions()
        options.checkpoints.interval = .seconds(365 * 24 * 3600)
        return options
    }
}
