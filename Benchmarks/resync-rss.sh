#!/usr/bin/env bash
# Peak resident memory during a resync: a primary holding KEYS keys (11-byte keys, 100-byte
# values) streams its checkpoint to a new, empty backup. For each side, VmHWM (the peak) over the
# resync against VmRSS once the backup is in sync and the memory has settled (the steady state).
#
#   Benchmarks/resync-rss.sh [rounds, default 5] [server binary, default .build/release/small_db_server]
#
# KEYS=1000000 by default. The primary's data is written once (wrk, Benchmarks/fill.lua) and
# checkpointed; each round restarts the primary on it, resets its VmHWM (echo 5 >
# /proc/PID/clear_refs), starts a backup on an empty directory, waits for "in_sync", waits 2 s, and
# reads both /proc/PID/status. Prints every round and the medians. Needs Debian's wrk. Everything
# on 127.0.0.1. Never run in CI: the figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
server=${2:-.build/release/small_db_server}
keys=${KEYS:-1000000}
command -v wrk >/dev/null || { echo "missing wrk: apt-get install -y wrk" >&2; exit 2; }
[ -x "$server" ] || swift build -c release --product small_db_server >/dev/null
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

start() { # name args...
    local name=$1
    shift
    "$server" -dir "$work/$name" -create "$@" 2>>"$work/$name.log" &
    pids+=($!)
    last_pid=$!
}
stop() { # pid
    kill -INT "$1"
    wait "$1" 2>/dev/null || true
}
wait_for() { # url pattern [tries]
    for _ in $(seq "${3:-1200}"); do
        curl -sf "$1" 2>/dev/null | grep -q "$2" && return 0
        sleep 0.05
    done
    echo "timed out waiting for $2 at $1" >&2
    exit 1
}
kb() { # pid field
    awk -v field="$2:" '$1 == field {print $2}' "/proc/$1/status"
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# The primary's data: every key written, then a checkpoint (so that a new backup needs a snapshot).
start primary -addr 127.0.0.1:18480 -repl-addr 127.0.0.1:19480
primary=$last_pid
wait_for http://127.0.0.1:18480/v1/health ok
WRK_KEYS=$keys wrk -t1 -c64 -d"$(( keys / 15000 + 10 ))s" -s Benchmarks/fill.lua http://127.0.0.1:18480 >/dev/null
held=$(curl -sf http://127.0.0.1:18480/metrics | awk '$1 == "smalldb_keys" {print $2}')
[ "$held" = "$keys" ] || { echo "the primary holds $held keys, not $keys: fill longer" >&2; exit 1; }
curl -sf -X POST http://127.0.0.1:18480/v1/checkpoint >/dev/null
stop "$primary"

printf '%-6s %14s %14s %8s %14s %14s %8s\n' round primary_peak primary_after ratio backup_peak backup_after ratio
declare -a pr br
for round in $(seq "$rounds"); do
    rm -rf "$work/backup" "$work/backup.log"
    start primary -addr 127.0.0.1:18480 -repl-addr 127.0.0.1:19480
    primary=$last_pid
    wait_for http://127.0.0.1:18480/v1/health ok
    sleep 2  # let the open settle
    echo 5 > "/proc/$primary/clear_refs"  # VmHWM := VmRSS: the peak from here on is the resync's
    start backup -addr 127.0.0.1:18481 -repl-addr 127.0.0.1:19481 -backup-of 127.0.0.1:19480
    backup=$last_pid
    wait_for http://127.0.0.1:18481/v1/replication '"in_sync":true'
    grep -q "installed the primary's snapshot" "$work/backup.log" || { echo "round $round: the backup got no snapshot" >&2; exit 1; }
    sleep 2
    p_peak=$(kb "$primary" VmHWM); p_rss=$(kb "$primary" VmRSS)
    b_peak=$(kb "$backup" VmHWM); b_rss=$(kb "$backup" VmRSS)
    p_ratio=$(awk -v a="$p_peak" -v b="$p_rss" 'BEGIN {printf "%.3f", a / b}')
    b_ratio=$(awk -v a="$b_peak" -v b="$b_rss" 'BEGIN {printf "%.3f", a / b}')
    printf '%-6s %11s kB %11s kB %8s %11s kB %11s kB %8s\n' "$round" "$p_peak" "$p_rss" "$p_ratio" "$b_peak" "$b_rss" "$b_ratio"
    pr+=("$p_ratio"); br+=("$b_ratio")
    stop "$backup"
    stop "$primary"
done
echo "median peak/steady: primary $(printf '%s\n' "${pr[@]}" | median), backup $(printf '%s\n' "${br[@]}" | median)"
