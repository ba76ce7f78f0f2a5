#!/usr/bin/env bash
# The HTTP front against this machine's HTTP ceiling: nginx answering `return 200` with a
# GET-sized JSON body, in the same run, rounds alternated (nginx, then each server in turn).
#
#   Benchmarks/http-ceiling.sh [seconds per case, default 5] [rounds, default 5] [server binary ...]
#
# With no binary, builds and measures this checkout's release small_db_server; with several
# (e.g. an old and a new build), measures each in every round, so an A/B shares the run.
# Pinning as http-bench.sh: nginx (one worker, no master) and each server on CPU 0, wrk -t1 on
# CPU 1. Cases: each server's GET at 64 connections of one key with a fixed request (no
# script: the answer is nginx's body, byte for byte), GET at 64 of random keys (about 60%
# present), durable PUT at 64 and at 1 (24-byte values, keys random among 100,000, as put.lua).
#
# The ceiling is nginx under the same request stream: wrk -t1 on its one core is the limit
# (nginx leaves CPU 0 about 10% idle), and a Lua `request` function that builds each request
# (a random key) costs wrk about 13% of its rate, so nginx is measured three ways each round:
# the fixed "/" request (wrk's own top speed, for reference), get.lua's GETs and put.lua's PUTs
# (nginx's `return 200` reads and drops the body). A server's GET is compared with nginx under
# get.lua and its PUT with nginx under put.lua: the same client work per request.
#
# Prints every round and, per server, the median requests/s and the median of the per-round
# ratios. It also prints the server's CPU time per request (user + system, from /proc/PID/stat,
# over the case's requests): on this shared machine the steal and the other tenants move
# throughput by ±30% between minutes, but a request's CPU cost much less, so it is the figure
# that tells a CPU-side change from noise.
# The data directory is made under $TMPDIR (mktemp): TMPDIR=/dev/shm measures the CPU path
# alone (tmpfs syncs cost nothing), which separates a change's CPU cost from the disk's noise.
# Needs Debian's nginx-light and wrk (apt-get install -y nginx-light wrk). Never run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/ceiling-nginx.sh
seconds=${1:-5}
rounds=${2:-5}
shift $(($# < 2 ? $# : 2))
binaries=("$@")
for tool in wrk nginx taskset; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y nginx-light wrk util-linux" >&2; exit 2; }
done
if ((${#binaries[@]} == 0)); then
    swift build -c release --product small_db_server >/dev/null
    binaries=("$(swift build -c release --show-bin-path)/small_db_server")
fi
work=$(mktemp -d)
nginx_port=18095 server_port=18096
cleanup() {
    [[ -n ${server_pid:-} ]] && kill -INT "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    [[ -n ${nginx_pid:-} ]] && kill -QUIT "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT
cp Benchmarks/put.lua "$work/put.lua"
cp Benchmarks/get.lua "$work/get.lua"
start_ceiling_nginx "$work/nginx" "$nginx_port"
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$nginx_port/" >/dev/null && break; sleep 0.1; done

start() { # binary
    rm -rf "$work/data"
    taskset -c 0 "$1" -dir "$work/data" -create -addr "127.0.0.1:$server_port" 2>"$work/server.log" &
    server_pid=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$server_port/v1/health" >/dev/null && return; sleep 0.1; done
    echo "server $1 did not start" >&2; cat "$work/server.log" >&2; exit 1
}
stop() { kill -INT "$server_pid"; wait "$server_pid" 2>/dev/null || true; server_pid=; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }  # user + system CPU, in clock ticks
hertz=$(getconf CLK_TCK)
load() { # port connections script-or-path: prints requests/s and the server's CPU µs per request
    local before after output
    before=$(ticks "$server_pid")
    if [[ $3 == /* ]]; then  # a fixed request, no script: as nginx's fixed "/"
        output=$(taskset -c 1 wrk -t1 -c"$2" -d"${seconds}s" "http://127.0.0.1:$1$3")
    else
        output=$(taskset -c 1 wrk -t1 -c"$2" -d"${seconds}s" -s "$work/$3" "http://127.0.0.1:$1")
    fi
    after=$(ticks "$server_pid")
    echo "$output" | awk -v t=$((after - before)) -v hz="$hertz" '/requests in/ {cpu = t / hz * 1e6 / $1} /Requests\/sec/ {rps = $2} END {printf "%s %.2f\n", rps, cpu}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }

declare -A results
nginx_load() { # script (or "" for the fixed request): prints requests/s and nginx's CPU µs per request
    local before after output
    before=$(ticks "$nginx_pid")
    if [[ -n $1 ]]; then
        output=$(taskset -c 1 wrk -t1 -c64 -d"${seconds}s" -s "$work/$1" "http://127.0.0.1:$nginx_port/")
    else
        output=$(taskset -c 1 wrk -t1 -c64 -d"${seconds}s" "http://127.0.0.1:$nginx_port/")
    fi
    after=$(ticks "$nginx_pid")
    echo "$output" | awk -v t=$((after - before)) -v hz="$hertz" '/requests in/ {cpu = t / hz * 1e6 / $1} /Requests\/sec/ {rps = $2} END {printf "%s %.2f\n", rps, cpu}'
}
for round in $(seq "$rounds"); do
    read -r fixed fixed_cpu < <(nginx_load "")
    read -r ceiling_get ceiling_get_cpu < <(nginx_load get.lua)
    read -r ceiling_put ceiling_put_cpu < <(nginx_load put.lua)
    results[nginx.fixed]+="$fixed " results[nginx.get]+="$ceiling_get " results[nginx.put]+="$ceiling_put "
    results[nginx.get.cpu]+="$ceiling_get_cpu "
    line="round $round: nginx / $fixed, get.lua $ceiling_get (${ceiling_get_cpu} µs), put.lua $ceiling_put"
    for index in "${!binaries[@]}"; do
        start "${binaries[$index]}"
        taskset -c 1 wrk -t1 -c16 -d2s -s "$work/put.lua" "http://127.0.0.1:$server_port" >/dev/null  # the keys
        curl -sf -X PUT -d '{"value":"d29ybGQ="}' "http://127.0.0.1:$server_port/v1/kv/hello" >/dev/null
        read -r fixedget fixedget_cpu < <(load $server_port 64 /v1/kv/hello)
        read -r get get_cpu < <(load $server_port 64 get.lua)
        read -r put64 put64_cpu < <(load $server_port 64 put.lua)
        read -r put1 put1_cpu < <(load $server_port 1 put.lua)
        stop
        results[$index.fixedget64]+="$fixedget " results[$index.fixedget64.cpu]+="$fixedget_cpu "
        results[$index.fixedget64.fixedratio]+="$(ratio "$fixedget" "$fixed") "
        results[$index.get64]+="$get " results[$index.put64]+="$put64 " results[$index.put1]+="$put1 "
        results[$index.get64.cpu]+="$get_cpu " results[$index.put64.cpu]+="$put64_cpu " results[$index.put1.cpu]+="$put1_cpu "
        results[$index.get64.ratio]+="$(ratio "$get" "$ceiling_get") " results[$index.put64.ratio]+="$(ratio "$put64" "$ceiling_put") "
        results[$index.get64.fixedratio]+="$(ratio "$get" "$fixed") " results[$index.put64.fixedratio]+="$(ratio "$put64" "$fixed") "
        line+="  |  [$index] fixed GET64 $fixedget ($fixedget_cpu µs) GET64 $get ($get_cpu µs) PUT64 $put64 ($put64_cpu µs) PUT1 $put1"
    done
    echo "$line" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
echo "nginx at 64 connections: fixed request median $(echo "${results[nginx.fixed]}" | median)/s (${results[nginx.fixed]}); get.lua $(echo "${results[nginx.get]}" | median)/s (${results[nginx.get]}), CPU per request median $(echo "${results[nginx.get.cpu]}" | median) µs; put.lua $(echo "${results[nginx.put]}" | median)/s (${results[nginx.put]})"
for index in "${!binaries[@]}"; do
    echo "[$index] ${binaries[$index]}"
    for case in fixedget64 get64 put64 put1; do
        extra=""
        case $case in
            fixedget64) extra="  ratio to nginx's fixed request $(echo "${results[$index.$case.fixedratio]}" | median)" ;;
            get64 | put64) extra="  ratio to nginx, same requests $(echo "${results[$index.$case.ratio]}" | median), to its fixed request $(echo "${results[$index.$case.fixedratio]}" | median)" ;;
        esac
        printf '    %-6s median %8.0f/s%s   (%s)\n' "$case" "$(echo "${results[$index.$case]}" | median)" "$extra" "${results[$index.$case]}"
        printf '           CPU per request median %s µs   (%s)\n' "$(echo "${results[$index.$case.cpu]}" | median)" "${results[$index.$case.cpu]}"
    done
done
