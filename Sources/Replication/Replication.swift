// The Replication layer: built in its own issue (see README.md).
