import Platform
import StorageEngine
import Synchronization

extension ServerMetrics {
    /// The whole /metrics page: the HTTP front's series, the engine's, then the role and (with
    /// replication) the replication figures.
    func render(engine stats: DatabaseStats, role: any ServerRole) -> String {
        var out = PrometheusText()
        out.help("smalldb_http_requests_total", "counter", "HTTP requests answered, by route, method and status.")
        var totals: [LoopMetrics.RequestKey: Int] = [:]
        for loop in loops {
            for (key, count) in loop.requests { totals[key, default: 0] += count }
        }
        for (key, count) in totals.sorted(by: { ($0.key.route.rawValue, $0.key.method, $0.key.status) < ($1.key.route.rawValue, $1.key.method, $1.key.status) }) {
            out.sample("smalldb_http_requests_total", [("route", key.route.rawValue), ("method", key.method), ("status", String(key.status))], Double(count))
        }
        out.help("smalldb_http_request_duration_seconds", "histogram", "Time from a complete request to its response being queued, by route.")
        for route in RouteName.allCases {
            var merged: HistogramSnapshot?
            for loop in loops {
                let snapshot = loop.latency(of: route)
                if var total = merged {
                    total.counts = zip(total.counts, snapshot.counts).map(+)
                    total.sum += snapshot.sum
                    total.count += snapshot.count
                    merged = total
                } else {
                    merged = snapshot
                }
            }
            if let merged, merged.count > 0 { out.histogram("smalldb_http_request_duration_seconds", [("route", route.rawValue)], merged) }
        }
        out.gauge("smalldb_http_open_connections", "Client connections open now.", Double(connections.open.load(ordering: .relaxed)))
        out.help("smalldb_http_loop_connections", "gauge", "Client connections owned by each event loop (accepted connections go to the loop that owns the fewest).")
        for (index, count) in connections.perLoop.enumerated() {
            out.sample("smalldb_http_loop_connections", [("loop", String(index))], Double(count.value.load(ordering: .relaxed)))
        }
        out.counter("smalldb_http_connections_accepted_total", "Client connections accepted.", Double(connections.accepted.load(ordering: .relaxed)))
        out.counter("smalldb_http_connections_rejected_total", "Client connections refused because the connection limit was reached.", Double(connections.rejected.load(ordering: .relaxed)))
        out.counter("smalldb_http_connections_timed_out_total", "Client connections closed by the request-read or idle timeout.", Double(connections.timedOut.load(ordering: .relaxed)))
        out.counter("smalldb_http_connections_write_timed_out_total", "Client connections closed because their client took no answer bytes within the write timeout.", Double(connections.writeTimedOut.load(ordering: .relaxed)))
        out.counter("smalldb_http_listener_watch_failures_total", "Failed registrations of the listening socket with an event loop (retried every 250 ms; while failing, that loop accepts nothing).", Double(connections.listenerWatchFailures.load(ordering: .relaxed)))
        out.counter("smalldb_http_connection_watch_failures_total", "Client connections closed because epoll refused to watch them or to change the events watched on them (epoll_ctl EPOLL_CTL_ADD or EPOLL_CTL_MOD failed).", Double(connections.connectionWatchFailures.load(ordering: .relaxed)))

        out.counter("smalldb_puts_total", "Committed puts (batch entries included).", Double(stats.puts))
        out.counter("smalldb_deletes_total", "Committed deletes (batch entries included).", Double(stats.deletes))
        out.counter("smalldb_gets_total", "Reads served.", Double(stats.gets))
        out.counter("smalldb_listings_total", "Listing pages and counts served.", Double(stats.listings))
        out.counter("smalldb_write_requests_total", "Committed write requests (each put, delete or batch).", Double(stats.writes))
        out.counter("smalldb_batches_total", "Committed requests that were batches of several changes.", Double(stats.batches))
        out.counter("smalldb_syncs_total", "Group commits: one log write and one fdatasync each.", Double(stats.syncs))
        out.help("smalldb_commit_size", "histogram", "Write requests per group commit.")
        out.histogram("smalldb_commit_size", [], stats.commitSizes)
        out.help("smalldb_sync_duration_seconds", "histogram", "Duration of each group commit's log write and fdatasync.")
        out.histogram("smalldb_sync_duration_seconds", [], stats.syncLatency)
        out.gauge("smalldb_wal_bytes", "Bytes in the live log segments (what recovery would replay).", Double(stats.walBytes))
        out.gauge("smalldb_generation", "The active checkpoint generation (the version file).", Double(stats.generation))
        out.counter("smalldb_checkpoints_total", "Checkpoints completed since start.", Double(stats.checkpoints))
        out.counter("smalldb_checkpoint_failures_total", "Checkpoints that failed since start.", Double(stats.failedCheckpoints))
        let lastCheckpoint = stats.lastCheckpointDuration?.secondsValue ?? 0
        out.gauge("smalldb_last_checkpoint_duration_seconds", "Duration of the last completed checkpoint (0: none yet).", lastCheckpoint)
        out.gauge("smalldb_keys", "Keys held.", Double(stats.keys))
        out.gauge("smalldb_data_bytes", "Bytes of keys and values held (payload, not memory overhead).", Double(stats.bytes))
        out.gauge("smalldb_resident_memory_bytes", "Resident memory of the server process (VmRSS).", Double(residentMemoryBytes()))
        out.gauge("smalldb_writes_disabled", "1 if an I/O failure has disabled writes until restart.", stats.writesDisabledReason == nil ? 0 : 1)

        out.help("smalldb_role", "gauge", "The server's role (primary or backup), as GET /v1/role reports it: 1 for the current one.")
        out.sample("smalldb_role", [("role", role.role.rawValue)], 1)
        out.gauge("smalldb_writes_refused", "1 while the role refuses writes (a backup, a fenced primary, or no backup in sync with -repl-sync=required).", role.writeRefusal == nil ? 0 : 1)
        if let replication = role.replicationStatus {
            out.gauge("smalldb_replication_epoch", "The fencing epoch: incremented by each promotion.", Double(replication.epoch))
            out.gauge("smalldb_replication_connected", "1 while a replication connection to the peer is up.", replication.connected ? 1 : 0)
            out.gauge("smalldb_replication_in_sync", "Primary: 1 while a backup acknowledges every batch. Backup: 1 while streaming live.", replication.inSync ? 1 : 0)
            out.gauge("smalldb_replication_lag_bytes", "Primary: log bytes not yet acknowledged by the backup. Backup: log bytes behind the primary.", Double(replication.lagBytes))
            if let seconds = replication.lastContactSecondsAgo, seconds.isFinite {
                out.gauge("smalldb_replication_last_contact_seconds", "Backup: seconds since the last frame from the primary. Primary: since the last acknowledgement.", max(0, seconds))
            }
            out.counter("smalldb_replication_detaches_total", "Backups detached: no acknowledgement within -repl-ack-timeout, or their connection failed.", Double(replication.detaches))
            out.counter("smalldb_replication_resyncs_total", "Snapshots sent (primary) or installed (backup).", Double(replication.resyncs))
            out.counter("smalldb_replication_promotions_total", "Promotions of this server to primary.", Double(replication.promotions))
        }
        return out.text
    }
}
