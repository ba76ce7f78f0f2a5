#!/usr/bin/env bash
# A/B of two small_db_server binaries over HTTP, in one run, rounds alternated (A, B, A, B, …):
# PUT at 1 and 64 connections and GET at 64, each server on CPU 0 and wrk on CPU 1 (as
# http-bench.sh). Prints every round and the medians with the ratio B/A. For "does this change
# regress the HTTP front?": A is the old binary, B the new one.
#
#   Benchmarks/http-ab.sh A/small_db_server B/small_db_server [seconds per case, default 5] [rounds, default 5]
# Needs Debian's wrk. Never run in CI: the figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
binary_a=$1 binary_b=$2
seconds=${3:-5}
rounds=${4:-5}
command -v wrk >/dev/null || { echo "missing wrk: apt-get install -y wrk" >&2; exit 2; }
server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
work=$(mktemp -d)
port=18090
cleanup() {
    [[ -n ${server_pid:-} ]] && kill -INT "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cp Benchmarks/put.lua "$work/put.lua"
cp Benchmarks/get.lua "$work/get.lua"

start() { # binary
    rm -rf "$work/data"
    "${server_cpu[@]}" "$1" -dir "$work/data" -create -addr "127.0.0.1:$port" 2>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null && return; sleep 0.1; done
    echo "server $1 did not start" >&2; cat "$work/server.log" >&2; exit 1
}
stop() { kill -INT "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=; }
load() { # connections script
    "${client_cpu[@]}" wrk -t1 -c"$1" -d"${seconds}s" -s "$work/$2" "http://127.0.0.1:$port" | awk '/Requests\/sec/ {print $2}'
}

declare -A results
for round in $(seq "$rounds"); do
    for side in a b; do
        binary=$binary_a; [[ $side == b ]] && binary=$binary_b
        start "$binary"
        wrk -t1 -c16 -d2s -s "$work/put.lua" "http://127.0.0.1:$port" >/dev/null  # load the keys
        results[${side}put1]+="$(load 1 put.lua) "
        results[${side}put64]+="$(load 64 put.lua) "
        results[${side}get64]+="$(load 64 get.lua) "
        stop
    done
    latest_a=${results[aput64]% }; latest_b=${results[bput64]% }
    echo "round $round: PUT 64 A ${latest_a##* } B ${latest_b##* }" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
printf '%-16s %10s %10s %7s   %s\n' case A B "B/A" "rounds (A | B)"
for pair in "PUT 1 conn:put1" "PUT 64 conn:put64" "GET 64 conn:get64"; do
    IFS=: read -r name key <<<"$pair"
    a=$(echo "${results[a$key]}" | median)
    b=$(echo "${results[b$key]}" | median)
    printf '%-16s %10.0f %10.0f %7s   %s| %s\n' "$name" "$a" "$b" "$(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.3f", b / a}')" "${results[a$key]}" "${results[b$key]}"
done
