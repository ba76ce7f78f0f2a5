#!/usr/bin/env bash
# GET at 64 connections against nginx's `return 200`, in short alternated runs: on this shared
# machine throughput moves by ±30% from minute to minute, and http-ceiling.sh's rounds put 20-60 s
# between nginx's run and a server's; here every server and nginx are up at once (an idle one
# costs nothing) and take turns of a few seconds, so each ratio compares neighbouring seconds.
#
#   Benchmarks/http-ceiling-get.sh [seconds per turn, default 3] [rounds, default 11] server-binary ...
#
# Two request streams, each against nginx under the same one: random keys through get.lua (as
# http-ceiling.sh; nginx answers every path) and one fixed request with no script (nginx's "/",
# the servers' GET of one key whose answer body is nginx's, byte for byte). Pinning as
# http-ceiling.sh: the servers and nginx on CPU 0, wrk -t1 on CPU 1. nginx goes first in every
# round and the servers follow in an order that rotates from round to round. Prints each round's figures
# and, per server and stream, the median of the per-round ratios to nginx.
# Needs Debian's nginx-light and wrk. Never run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
source Benchmarks/ceiling-nginx.sh
seconds=${1:-3}
rounds=${2:-11}
shift $(($# < 2 ? $# : 2))
binaries=("$@")
((${#binaries[@]} > 0)) || { echo "usage: $0 [seconds] [rounds] server-binary ..." >&2; exit 2; }
for tool in wrk nginx taskset curl; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y nginx-light wrk util-linux curl" >&2; exit 2; }
done
work=$(mktemp -d)
nginx_port=18195
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    [[ -n ${nginx_pid:-} ]] && kill -QUIT "$nginx_pid" 2>/dev/null
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
cp Benchmarks/put.lua "$work/put.lua"
cp Benchmarks/get.lua "$work/get.lua"
start_ceiling_nginx "$work/nginx" "$nginx_port"
ports=()
for index in "${!binaries[@]}"; do
    port=$((18196 + index))
    taskset -c 0 "${binaries[$index]}" -dir "$work/data$index" -create -addr "127.0.0.1:$port" -repl-addr 127.0.0.1:0 \
        2>"$work/server$index.log" &
    pids+=($!) ports+=("$port")
done
for port in "$nginx_port" "${ports[@]}"; do
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break; curl -s "http://127.0.0.1:$port/v1/health" >/dev/null 2>&1 && break; sleep 0.1; done
done
for port in "${ports[@]}"; do
    taskset -c 1 wrk -t1 -c16 -d2s -s "$work/put.lua" "http://127.0.0.1:$port" >/dev/null  # the keys
    curl -sf -X PUT -d '{"value":"d29ybGQ="}' "http://127.0.0.1:$port/v1/kv/hello" >/dev/null
done
rate() { # url [script]
    if [[ -n ${2:-} ]]; then
        taskset -c 1 wrk -t1 -c64 -d"${seconds}s" -s "$work/$2" "$1" | awk '/Requests\/sec/ {print $2}'
    else
        taskset -c 1 wrk -t1 -c64 -d"${seconds}s" "$1" | awk '/Requests\/sec/ {print $2}'
    fi
}
declare -A ratios
for round in $(seq "$rounds"); do
    for stream in random fixed; do
        if [[ $stream == random ]]; then ceiling=$(rate "http://127.0.0.1:$nginx_port/" get.lua)
        else ceiling=$(rate "http://127.0.0.1:$nginx_port/"); fi
        line="round $round $stream: nginx $ceiling"
        count=${#binaries[@]}
        for turn in $(seq 0 $((count - 1))); do
            index=$(((turn + round) % count))  # each round starts with the next server: no fixed places
            if [[ $stream == random ]]; then got=$(rate "http://127.0.0.1:${ports[$index]}/" get.lua)
            else got=$(rate "http://127.0.0.1:${ports[$index]}/v1/kv/hello"); fi
            ratio=$(awk -v a="$got" -v b="$ceiling" 'BEGIN {printf "%.3f", a / b}')
            ratios[$index.$stream]+="$ratio "
            line+="  [$index] $got ($ratio)"
        done
        echo "$line" >&2
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
for index in "${!binaries[@]}"; do
    echo "[$index] ${binaries[$index]}"
    for stream in random fixed; do
        echo "    GET 64 $stream: median ratio to nginx $(echo "${ratios[$index.$stream]}" | median)   (${ratios[$index.$stream]})"
    done
done
