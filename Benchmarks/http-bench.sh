#!/usr/bin/env bash
# HTTP load benchmark: small_db_server against Redis 7 with every write fsync'd, in one run.
#
#   Benchmarks/http-bench.sh [seconds per case, default 10] [rounds, default 3]
#   PIN=0 Benchmarks/http-bench.sh ...                      (no CPU pinning, see below)
#   SERVER_FLAGS="-event-loops 2" Benchmarks/http-bench.sh ...   (extra small_db_server flags)
#
# Pinning (the default on a machine with 2 or more cores): both servers run on CPU 0 and both load
# generators on CPU 1 (taskset), so each server has one core to itself, as the anchors intend
# ("fewer client threads than cores, so the server keeps a core"), and neither competes with its
# client for it. small_db_server's default of one event loop per core it may use is then one.
# With PIN=0 everything floats over every core, as in the earlier runs of this script.
# Needs Debian's wrk, redis-server and redis-tools (apt-get install -y wrk redis-server redis-tools).
# Each round measures, back to back: our PUT at 1, 16, 64 connections and GET at 64 (wrk -t1, so
# the server keeps a core), then Redis SET at 1, 16, 64 clients and GET at 64 (redis-benchmark,
# appendonly yes, appendfsync always). Values are 24 bytes, keys random among 100,000, as in the
# anchors (../shared/reference/anchors.md). Prints every round and the medians with ratios.
# Never run in CI: the figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-3}
for tool in wrk redis-server redis-benchmark; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk redis-server redis-tools" >&2; exit 2; }
done

swift build -c release --product small_db_server >/dev/null
server_cpu=() client_cpu=()
if [[ ${PIN:-1} != 0 ]] && (($(nproc) >= 2)); then
    command -v taskset >/dev/null || { echo "missing taskset (util-linux), or run with PIN=0" >&2; exit 2; }
    server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi
work=$(mktemp -d)
server_port=18080
redis_port=16379
cleanup() {
    [[ -n ${server_pid:-} ]] && kill -INT "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    [[ -n ${redis_pid:-} ]] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# shellcheck disable=SC2086 # SERVER_FLAGS is a list of flags
"${server_cpu[@]}" .build/release/small_db_server -dir "$work/data" -create -addr "127.0.0.1:$server_port" -repl-addr 127.0.0.1:0 ${SERVER_FLAGS:-} 2>"$work/server.log" &
server_pid=$!
"${server_cpu[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --dir "$work" --appendonly yes --appendfsync always --save '' >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$server_port/v1/health" >/dev/null && redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break
    sleep 0.1
done

cp Benchmarks/put.lua "$work/put.lua"
cat >"$work/get.lua" <<'LUA'
-- GET a random key among 100,000 (all loaded first).
request = function()
    return wrk.format("GET", "/v1/kv/key:" .. math.random(0, 99999))
end
LUA

ours() { # connections script
    "${client_cpu[@]}" wrk -t1 -c"$1" -d"${seconds}s" -s "$work/$2" "http://127.0.0.1:$server_port" | awk '/Requests\/sec/ {print $2}'
}
theirs() { # clients test
    "${client_cpu[@]}" redis-benchmark -p "$redis_port" -t "$2" -n $((seconds * 20000)) -c "$1" -d 24 -r 100000 -q 2>/dev/null \
        | tr '\r' '\n' | awk -F'[: ]+' '/requests per second/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) {print $i; exit}}'
}

# Load every key once so GETs hit (both stores).
wrk -t1 -c16 -d3s -s "$work/put.lua" "http://127.0.0.1:$server_port" >/dev/null
redis-benchmark -p "$redis_port" -t set -n 300000 -c 16 -d 24 -r 100000 -q >/dev/null 2>&1

declare -A results
for round in $(seq "$rounds"); do
    for c in 1 16 64; do results[put$c]+="$(ours "$c" put.lua) "; done
    results[get64]+="$(ours 64 get.lua) "
    for c in 1 16 64; do results[set$c]+="$(theirs "$c" set) "; done
    results[rget64]+="$(theirs 64 get) "
    echo "round $round done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
echo "servers on: ${server_cpu[*]:-any CPU}; load generators on: ${client_cpu[*]:-any CPU}; small_db_server flags: ${SERVER_FLAGS:-(defaults)}; $(grep -o 'starting:.*' "$work/server.log" | head -1)"
printf '%-28s %12s %12s %8s   %s\n' case small-db redis ratio "rounds (small-db | redis)"
for pair in "PUT 1 conn:put1:set1" "PUT 16 conn:put16:set16" "PUT 64 conn:put64:set64" "GET 64 conn:get64:rget64"; do
    IFS=: read -r name ourKey theirKey <<<"$pair"
    ourMedian=$(echo "${results[$ourKey]}" | median)
    theirMedian=$(echo "${results[$theirKey]}" | median)
    ratio=$(awk -v a="$ourMedian" -v b="$theirMedian" 'BEGIN {printf "%.2f", a / b}')
    printf '%-28s %12.0f %12.0f %8s   %s| %s\n' "$name" "$ourMedian" "$theirMedian" "$ratio" "${results[$ourKey]}" "${results[$theirKey]}"
done
