#!/usr/bin/env bash
# The HTTP front against this machine's HTTP ceiling: nginx answering `return 200` with a
# GET-sized JSON body, in the same run, rounds alternated (nginx, then each server in turn).
#
#   Benchmarks/http-ceiling.sh [seconds per case, default 5] [rounds, default 5] [server binary ...]
#
# With no binary, builds and measures this checkout's release small_db_server; with several
# (e.g. an old and a new build), measures each in every round, so an A/B shares the run.
# Pinning as http-bench.sh: nginx (one worker, no master) and each server on CPU 0, wrk -t1 on
# CPU 1. Cases: nginx GET at 64 connections; each server's GET at 64, durable PUT at 64 and at 1
# (24-byte values, keys random among 100,000, as put.lua). Prints every round and, per server,
# the median requests/s and the median of the per-round ratios to nginx's GET in that round.
# It also prints the server's CPU time per request (user + system, from /proc/PID/stat, over
# the case's requests): on this shared machine the steal and the other tenants move
# throughput by ±30% between minutes, but a request's CPU cost much less, so it is the figure
# that tells a CPU-side change from noise.
# The data directory is made under $TMPDIR (mktemp): TMPDIR=/dev/shm measures the CPU path
# alone (tmpfs syncs cost nothing), which separates a change's CPU cost from the disk's noise.
# Needs Debian's nginx-light and wrk (apt-get install -y nginx-light wrk). Never run in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
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
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
master_process off;
daemon off;
error_log $work/nginx/error.log;
pid $work/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$nginx_port;
        location / {
            default_type application/json;
            return 200 '{"key":"hello","value":"d29ybGQ=","encoding":"base64"}\n';
        }
    }
}
NGINX
cp Benchmarks/put.lua "$work/put.lua"
cat >"$work/get.lua" <<'LUA'
request = function()
    return wrk.format("GET", "/v1/kv/key:" .. math.random(0, 99999))
end
LUA
taskset -c 0 nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>"$work/nginx/stderr" &
nginx_pid=$!
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
load() { # port connections script: prints requests/s and the server's CPU µs per request
    local before after output
    before=$(ticks "$server_pid")
    output=$(taskset -c 1 wrk -t1 -c"$2" -d"${seconds}s" -s "$work/$3" "http://127.0.0.1:$1")
    after=$(ticks "$server_pid")
    echo "$output" | awk -v t=$((after - before)) -v hz="$hertz" '/requests in/ {cpu = t / hz * 1e6 / $1} /Requests\/sec/ {rps = $2} END {printf "%s %.2f\n", rps, cpu}'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }

declare -A results
for round in $(seq "$rounds"); do
    before=$(ticks "$nginx_pid")
    output=$(taskset -c 1 wrk -t1 -c64 -d"${seconds}s" "http://127.0.0.1:$nginx_port/")
    after=$(ticks "$nginx_pid")
    ceiling=$(echo "$output" | awk '/Requests\/sec/ {print $2}')
    nginx_cpu=$(echo "$output" | awk -v t=$((after - before)) -v hz="$hertz" '/requests in/ {printf "%.2f", t / hz * 1e6 / $1}')
    results[nginx]+="$ceiling " results[nginx.cpu]+="$nginx_cpu "
    line="round $round: nginx $ceiling (${nginx_cpu} µs)"
    for index in "${!binaries[@]}"; do
        start "${binaries[$index]}"
        taskset -c 1 wrk -t1 -c16 -d2s -s "$work/put.lua" "http://127.0.0.1:$server_port" >/dev/null  # the keys
        read -r get get_cpu < <(load $server_port 64 get.lua)
        read -r put64 put64_cpu < <(load $server_port 64 put.lua)
        read -r put1 put1_cpu < <(load $server_port 1 put.lua)
        stop
        results[$index.get64]+="$get " results[$index.put64]+="$put64 " results[$index.put1]+="$put1 "
        results[$index.get64.cpu]+="$get_cpu " results[$index.put64.cpu]+="$put64_cpu " results[$index.put1.cpu]+="$put1_cpu "
        results[$index.get64.ratio]+="$(ratio "$get" "$ceiling") " results[$index.put64.ratio]+="$(ratio "$put64" "$ceiling") "
        line+="  |  [$index] GET64 $get ($get_cpu µs) PUT64 $put64 ($put64_cpu µs) PUT1 $put1"
    done
    echo "$line" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
echo "nginx GET 64: median $(echo "${results[nginx]}" | median)/s  (${results[nginx]}), CPU per request median $(echo "${results[nginx.cpu]}" | median) µs"
for index in "${!binaries[@]}"; do
    echo "[$index] ${binaries[$index]}"
    for case in get64 put64 put1; do
        extra=""
        [[ $case != put1 ]] && extra="  ratio to nginx (median of rounds) $(echo "${results[$index.$case.ratio]}" | median)"
        printf '    %-6s median %8.0f/s%s   (%s)\n' "$case" "$(echo "${results[$index.$case]}" | median)" "$extra" "${results[$index.$case]}"
        printf '           CPU per request median %s µs   (%s)\n' "$(echo "${results[$index.$case.cpu]}" | median)" "${results[$index.$case.cpu]}"
    done
done
