#!/usr/bin/env bash
# Replication benchmarks, in one run:
#   1. durable PUT at 64 connections on a primary with a backup attached (in sync: every batch
#      waits for the backup's fdatasync) against a primary alone, alternated round by round;
#   2. failover: SIGKILL of the primary to the first PUT the backup accepts, with
#      -repl-heartbeat-timeout 2s and the default 1 s heartbeat interval.
#
#   Benchmarks/repl-bench.sh [seconds per PUT case, default 8] [rounds, default 3]
#
# Needs Debian's wrk (apt-get install -y wrk). Everything on 127.0.0.1, one machine: the backup
# shares the disk and the two cores with the primary and the load generator. Prints every round
# and the medians. Never run in CI: the figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
rounds=${2:-3}
command -v wrk >/dev/null || { echo "missing wrk: apt-get install -y wrk" >&2; exit 2; }

swift build -c release --product small_db_server >/dev/null
server=.build/release/small_db_server
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
    "$server" -dir "$work/$name" -create "$@" 2>"$work/$name.log" &
    pids+=($!)
    last_pid=$!
}
wait_for() { # url pattern
    for _ in $(seq 300); do
        curl -sf "$1" 2>/dev/null | grep -q "$2" && return 0
        sleep 0.05
    done
    echo "timed out waiting for $2 at $1" >&2
    exit 1
}

cp Benchmarks/put.lua "$work/put.lua"
put64() { # port
    wrk -t1 -c64 -d"${seconds}s" -s "$work/put.lua" "http://127.0.0.1:$1" | awk '/Requests\/sec/ {print $2}'
}

# 1. PUT with and without a backup.
start alone -addr 127.0.0.1:18280 -repl-addr 127.0.0.1:19280
start primary -addr 127.0.0.1:18281 -repl-addr 127.0.0.1:19281
start backup -addr 127.0.0.1:18282 -repl-addr 127.0.0.1:19282 -backup-of 127.0.0.1:19281
wait_for http://127.0.0.1:18280/v1/health ok
wait_for http://127.0.0.1:18282/v1/replication '"in_sync":true'
declare -a alone with
for round in $(seq "$rounds"); do
    alone+=("$(put64 18280)")
    with+=("$(put64 18281)")
    echo "round $round: alone ${alone[-1]}/s, with a backup ${with[-1]}/s" >&2
done
curl -sf http://127.0.0.1:18281/v1/replication | grep -q '"in_sync":true' \
    || echo "warning: the backup was not in sync at the end (detached during the run?)" >&2
detaches=$(curl -sf http://127.0.0.1:18281/metrics | awk '/^smalldb_replication_detaches_total/ {print $2}')
for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

# 2. Failover.
declare -a failovers
for round in $(seq "$rounds"); do
    rm -rf "$work/fp" "$work/fb"
    start fp -addr 127.0.0.1:18290 -repl-addr 127.0.0.1:19290
    primary_pid=$last_pid
    start fb -addr 127.0.0.1:18291 -repl-addr 127.0.0.1:19291 -backup-of 127.0.0.1:19290 -repl-heartbeat-timeout 2s
    wait_for http://127.0.0.1:18291/v1/replication '"in_sync":true'
    curl -sf -XPUT http://127.0.0.1:18290/v1/kv/before -d '{"value":"eA=="}' >/dev/null
    sleep 0.$((RANDOM % 10))  # kill at a random point of the heartbeat period
    start_ns=$(date +%s%N)
    kill -9 "$primary_pid"
    until [[ $(curl -s -o /dev/null -w '%{http_code}' -XPUT http://127.0.0.1:18291/v1/kv/after -d '{"value":"eA=="}') == 200 ]]; do
        sleep 0.01
    done
    end_ns=$(date +%s%N)
    failovers+=("$(( (end_ns - start_ns) / 1000000 ))")
    echo "failover round $round: ${failovers[-1]} ms" >&2
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
done

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
alone_median=$(median "${alone[@]}")
with_median=$(median "${with[@]}")
printf 'PUT 64 conn, primary alone:      %10s/s   (rounds: %s)\n' "$alone_median" "${alone[*]}"
printf 'PUT 64 conn, with a backup:      %10s/s   (rounds: %s)\n' "$with_median" "${with[*]}"
printf 'ratio with/alone:                %10s      (target >= 0.7; detaches during the run: %s)\n' \
    "$(awk -v a="$alone_median" -v w="$with_median" 'BEGIN {printf "%.2f", w / a}')" "${detaches:-?}"
printf 'failover, kill -9 to first PUT:  %10s ms  (rounds: %s; target <= 2500)\n' "$(median "${failovers[@]}")" "${failovers[*]}"
