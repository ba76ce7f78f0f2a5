#!/usr/bin/env bash
# Listing, compare-and-put and single-key reads: small_db_server against etcd 3.4's JSON gateway,
# both holding the same 1,000,000 keys, in one run with alternated rounds.
#
#   Benchmarks/etcd-bench.sh [seconds per case, default 10] [rounds, default 5]
#   ONLY=etcd Benchmarks/etcd-bench.sh ...      (etcd alone; nothing is built; ONLY=ours: ours alone)
#   SMALL_DB_SERVER=path/to/small_db_server ... (use this binary instead of swift build's)
#   KEYS=100000 ... (a smaller key space), PIN=0 ... (no pinning), SERVER_FLAGS="..." (ours)
#
# Pinned as http-bench.sh: both servers on CPU 0, wrk (-t1) on CPU 1 (etcd's Go runtime and our
# event loops then size themselves to the one core). Needs Debian's wrk and etcd-server
# (apt-get install -y wrk etcd-server) and curl.
#
# 1. Load: key:0000000 … key:0999999 (11 bytes), 100-byte values ("v" × 100), in key order.
#    etcd: POST /v3/kv/txn with 128 puts per txn (etcd's default --max-txn-ops), etcd-load.lua;
#    ours: PUT /v1/kv/<key> one by one, etcd-fill-small-db.lua. Both count every answer and stop.
# 2. The cases of every round (all at wrk -t1):
#      list 1 / list 16   one page of 100 keys from a random key to "key;", 1 and 16 connections:
#                         etcd POST /v3/kv/range {"key","range_end","limit":100} (etcd-list.lua),
#                         ours GET /v1/kv?start=key%3A…&end=key%3B&limit=100 (list-small-db.lua)
#      cas 64             compare-and-put on a random existing key, 64 connections, every one a
#                         durable write: etcd POST /v3/kv/txn compare create_revision > 0
#                         (etcd-cas.lua), ours PUT /v1/kv/<key> with If-Match: * (cas-small-db.lua)
#      get 64             one key, 64 connections: etcd POST /v3/kv/range {"key"} (etcd-get.lua),
#                         ours GET /v1/kv/<key> (etcd-get-small-db.lua)
#    Odd rounds run ours first, even rounds etcd first. Before every run the script waits until
#    the server is idle (wrk leaves requests in flight when it stops, and etcd finishes them).
#    Each case's table row also gives the median share of its core each server used (CPU% o/e).
# etcd 3.4 pages cost in proportion to the keys between the start and range_end, not to the
# limit: its index walk collects every revision in the range before cutting to the limit (the
# answer's "count" is that total). From key:0000000 to "key;" a page took 1.4 s of etcd's core,
# from key:0999900 3 ms (curl, 1M keys); so a random start is about 500,000 keys' walk a page.
# What is checked, so that errors never count as throughput:
# - before loading ours: the listing route answers 200 and a PUT with If-Match: * on a missing key
#   answers 412 (a 404/400/405 means the build lacks the route; a 200 means If-Match is ignored);
# - after loading: etcd counts exactly KEYS keys; both sides' first page, CAS and GET, by curl;
# - before the rounds: a 2-second run of every case with CHECK=1, which looks at every answer's
#   status and body (a full page of 100, "succeeded":true, the value) and must find no bad one;
# - every timed run: wrk's "Non-2xx or 3xx responses" and "Socket errors" lines, and for etcd's
#   txn that the store's revision grew by at least the number of answers wrk counted (each
#   succeeded txn that writes is one revision).
# A check before the rounds stops the script at once (exit 1, saying what answered what); a
# timed run's problem is printed after the figures and makes the script exit 1.
# Never run in CI: the figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
rounds=${2:-5}
only=${ONLY:-both}
export WRK_KEYS=${KEYS:-1000000}
export BENCH_LUA_DIR=$PWD/Benchmarks
case $only in both | etcd | ours) ;; *) echo "ONLY must be etcd, ours or unset (both)" >&2; exit 2 ;; esac
sides=()
[[ $only != etcd ]] && sides+=(ours)
[[ $only != ours ]] && sides+=(etcd)
has() { [[ " ${sides[*]} " == *" $1 "* ]]; }

for tool in wrk curl base64; do
    command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y wrk curl" >&2; exit 2; }
done
if has etcd; then
    command -v etcd >/dev/null || { echo "missing etcd: apt-get install -y etcd-server" >&2; exit 2; }
fi
server=${SMALL_DB_SERVER:-.build/release/small_db_server}
if has ours && [[ -z ${SMALL_DB_SERVER:-} ]]; then
    swift build -c release --product small_db_server >/dev/null
fi
server_cpu=() client_cpu=()
if [[ ${PIN:-1} != 0 ]] && (($(nproc) >= 2)); then
    command -v taskset >/dev/null || { echo "missing taskset (util-linux), or run with PIN=0" >&2; exit 2; }
    server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
work=$(mktemp -d)
ours_url=http://127.0.0.1:18080
etcd_port=22379 etcd_peer=22380
etcd_url=http://127.0.0.1:$etcd_port
stop() { # pid signal: sends it, waits up to 10 s, then SIGKILL; never fails
    kill "-$2" "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() { # keeps the script's exit status
    local status=$?
    if [[ -n ${server_pid:-} ]]; then stop "$server_pid" INT; fi
    if [[ -n ${etcd_pid:-} ]]; then stop "$etcd_pid" TERM; fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT
die() { echo "etcd-bench: $*" >&2; exit 1; }
problem() { echo "$*" | tee -a "$work/problems" >&2; } # recorded, reported at the end, exit 1
b64() { printf '%s' "$1" | base64 -w0; }
key() { printf 'key:%07d' "$1"; }
value_b64=$(b64 "$(printf 'v%.0s' $(seq 100))")
last=$((WRK_KEYS - 1))

# --- start the servers ------------------------------------------------------------------------
if has ours; then
    [[ -x $server ]] || die "no small_db_server at $server"
    # shellcheck disable=SC2086 # SERVER_FLAGS is a list of flags
    "${server_cpu[@]}" "$server" -dir "$work/data" -create -addr "${ours_url#http://}" -repl-addr 127.0.0.1:0 ${SERVER_FLAGS:-} 2>"$work/server.log" &
    server_pid=$!
fi
if has etcd; then
    "${server_cpu[@]}" etcd --name bench --data-dir "$work/etcd" \
        --listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-cluster "bench=http://127.0.0.1:$etcd_peer" >"$work/etcd.log" 2>&1 &
    etcd_pid=$!
fi
for _ in $(seq 100); do
    up=1
    has ours && { curl -sf "$ours_url/v1/health" >/dev/null || up=0; }
    has etcd && { curl -sf "$etcd_url/health" 2>/dev/null | grep -q '"health":"true"' || up=0; }
    ((up)) && break
    sleep 0.1
done
((up)) || die "a server did not come up: $(tail -5 "$work/server.log" "$work/etcd.log" 2>/dev/null)"

# curl_code METHOD URL [curl args...]: prints the status; the body is left in $work/body.
curl_code() { curl -s -o "$work/body" -w '%{http_code}' -X "$1" "$2" "${@:3}"; }
body() { head -c 400 "$work/body"; }
list_url() { echo "$ours_url/v1/kv?start=$(key "$1" | sed 's/:/%3A/')&end=key%3B&limit=100"; }
ours_put_if_match() { curl_code PUT "$ours_url/v1/kv/$(key "$1")" -H 'If-Match: *' -H 'Content-Type: application/json' -d "{\"value\":\"$value_b64\",\"encoding\":\"base64\"}"; }
etcd_txn() {
    local k; k=$(b64 "$(key "$1")")
    curl_code POST "$etcd_url/v3/kv/txn" -d "{\"compare\":[{\"key\":\"$k\",\"target\":\"CREATE\",\"result\":\"GREATER\",\"create_revision\":\"0\"}],\"success\":[{\"request_put\":{\"key\":\"$k\",\"value\":\"$value_b64\"}}]}"
}
etcd_revision() { curl -s -X POST "$etcd_url/v3/kv/range" -d "{\"key\":\"$(b64 key:)\",\"count_only\":true}" | grep -o '"revision":"[0-9]*"' | head -1 | tr -dc 0-9; }
etcd_count() { curl -s -X POST "$etcd_url/v3/kv/range" -d "{\"key\":\"$(b64 key:)\",\"range_end\":\"$(b64 'key;')\",\"count_only\":true}" | grep -o '"count":"[0-9]*"' | tr -dc 0-9; }

# --- before loading ours: do the new routes exist? --------------------------------------------
if has ours; then
    code=$(curl_code GET "$(list_url 0)")
    [[ $code == 200 ]] || die "small_db_server answered $code to GET $(list_url 0): this build has no listing route (GET /v1/kv?start=&end=&limit=). Body: $(body)"
    code=$(ours_put_if_match 0)
    case $code in
    412) ;;
    200) die "small_db_server answered 200 to PUT /v1/kv/$(key 0) with If-Match: * on an empty store: it ignores If-Match (must be 412 when the key does not exist)" ;;
    *) die "small_db_server answered $code to PUT /v1/kv/$(key 0) with If-Match: * on an empty store (412 expected): this build does not support If-Match. Body: $(body)" ;;
    esac
fi

# --- load -------------------------------------------------------------------------------------
load() { # side script url -> "LOAD ..." line; dies unless every answer was good
    local start out line
    start=$(date +%s.%N)
    out=$("${client_cpu[@]}" wrk -t1 -c"$2" -d3600s --timeout 30s -s "Benchmarks/$3" "$4")
    line=$(grep '^LOAD ' <<<"$out") || die "$1: wrk printed no LOAD line: $out"
    [[ $line == *" bad=0 "* || $line == *" bad=0" ]] || die "$1 load: $line"
    echo "$1: loaded $WRK_KEYS keys in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN {printf "%.1f", e - s}') s ($line)" | tee -a "$work/loads" >&2
}
has etcd && load etcd 8 etcd-load.lua "$etcd_url"
has ours && load ours 64 etcd-fill-small-db.lua "$ours_url"

# --- after loading: spot checks with curl -----------------------------------------------------
if has etcd; then
    count=$(etcd_count)
    [[ $count == "$WRK_KEYS" ]] || die "etcd holds $count keys in [key:, key;), not $WRK_KEYS"
    code=$(etcd_txn "$last")
    [[ $code == 200 ]] && grep -q '"succeeded":true' "$work/body" || die "etcd txn on $(key "$last"): $code $(body)"
    code=$(curl_code POST "$etcd_url/v3/kv/range" -d "{\"key\":\"$(b64 "$(key 0)")\",\"range_end\":\"$(b64 'key;')\",\"limit\":100}")
    n=$(grep -o '"create_revision"' "$work/body" | wc -l)
    [[ $code == 200 && $n == 100 ]] || die "etcd's first page: $code with $n kvs: $(body)"
    code=$(curl_code POST "$etcd_url/v3/kv/range" -d "{\"key\":\"$(b64 "$(key "$last")")\"}")
    [[ $code == 200 ]] && grep -q "\"value\":\"$value_b64\"" "$work/body" || die "etcd range of $(key "$last"): $code $(body)"
fi
if has ours; then
    for i in 0 "$last"; do
        code=$(curl_code GET "$ours_url/v1/kv/$(key "$i")")
        [[ $code == 200 ]] && grep -q "$value_b64" "$work/body" || die "ours GET $(key "$i") after the load: $code $(body)"
    done
    code=$(ours_put_if_match "$last")
    [[ $code == 200 ]] || die "ours PUT $(key "$last") with If-Match: * on an existing key: $code (200 expected) $(body)"
    code=$(curl_code GET "$(list_url 0)")
    n=$(grep -o 'key:0' "$work/body" | wc -l)
    [[ $code == 200 ]] && ((n == 100 || n == 101)) || die "ours' first page: $code naming $n keys (100 expected): $(body)"
fi

# --- the cases --------------------------------------------------------------------------------
cases=(list1 list16 cas64 get64)
declare -A script=([ours:list]=list-small-db.lua [ours:cas]=cas-small-db.lua [ours:get]=etcd-get-small-db.lua
    [etcd:list]=etcd-list.lua [etcd:cas]=etcd-cas.lua [etcd:get]=etcd-get.lua)
url_of() { if [[ $1 == ours ]]; then echo "$ours_url"; else echo "$etcd_url"; fi; }

# quiesce pid: waits until the server has used at most 2 CPU ticks (2% of a core at 100 Hz) over
# half a second. wrk leaves requests in flight when it stops, and etcd goes on serving them (an
# etcd 3.4 page can take a second of CPU), which would otherwise eat into the next case.
quiesce() {
    local pid=$1 a b
    for _ in $(seq 240); do
        a=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        sleep 0.5
        b=$(awk '{print $14 + $15}' "/proc/$pid/stat")
        ((b - a <= 2)) && return 0
    done
    problem "pid $pid was still busy 2 minutes after its last run"
}
pid_of() { if [[ $1 == ours ]]; then echo "$server_pid"; else echo "$etcd_pid"; fi; }

# Every case once with CHECK=1: every answer's status and body looked at.
for side in "${sides[@]}"; do
    for c in "${cases[@]}"; do
        kind=${c%%[0-9]*} conns=${c##*[a-z]}
        quiesce "$(pid_of "$side")"
        out=$("${client_cpu[@]}" env CHECK=1 wrk -t1 -c"$conns" -d2s --timeout 60s -s "Benchmarks/${script[$side:$kind]}" "$(url_of "$side")")
        line=$(grep '^CHECK ' <<<"$out") || die "$side $c: wrk printed no CHECK line: $out"
        echo "$side $c: $line" >&2
        [[ $line == *" bad=0"* && $line != *"good=0 "* ]] || die "$side $c: answers that are not what the case measures: $line"
    done
done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

run() { # side case round -> requests/s; problems recorded; the server's CPU use to $work/cpu.side.case
    local side=$1 c=$2 round=$3 kind conns out rps before after answers pid t0
    kind=${c%%[0-9]*} conns=${c##*[a-z]} pid=$(pid_of "$side")
    quiesce "$pid"
    [[ $side:$kind == etcd:cas ]] && before=$(etcd_revision)
    t0=$(ticks "$pid")
    out=$("${client_cpu[@]}" wrk -t1 -c"$conns" -d"${seconds}s" --timeout 60s -s "Benchmarks/${script[$side:$kind]}" "$(url_of "$side")")
    echo "$(($(ticks "$pid") - t0)) $hz $seconds" | awk '{printf "%.0f ", 100 * $1 / $2 / $3}' >>"$work/cpu.$side.$c"
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    answers=$(awk '/ requests in / {print $1}' <<<"$out")
    grep -q 'Non-2xx or 3xx' <<<"$out" && problem "round $round $side $c: $(grep 'Non-2xx or 3xx' <<<"$out" | xargs) of $answers"
    grep -q 'Socket errors' <<<"$out" && problem "round $round $side $c: $(grep 'Socket errors' <<<"$out" | xargs)"
    if [[ $side:$kind == etcd:cas ]]; then
        after=$(etcd_revision)
        ((after - before >= answers)) || problem "round $round etcd cas64: the revision grew by $((after - before)), wrk counted $answers answers"
    fi
    echo "${rps:-0}"
}

declare -A results
for round in $(seq "$rounds"); do
    order=("${sides[@]}")
    ((round % 2 == 0)) && order=($(printf '%s\n' "${sides[@]}" | tac))
    for side in "${order[@]}"; do
        for c in "${cases[@]}"; do results[$side:$c]+="$(run "$side" "$c" "$round") "; done
    done
    echo "round $round done (${order[*]})" >&2
done

# --- report -----------------------------------------------------------------------------------
median() { tr ' ' '\n' | { grep -v '^$' || true; } | sort -g | awk '{v[NR]=$1} END {print v[int((NR + 1) / 2)]}'; }
median_of() { if [[ -f $1 ]]; then median <"$1"; fi; }
echo "servers on: ${server_cpu[*]:-any CPU}; wrk -t1 on: ${client_cpu[*]:-any CPU}; $seconds s per case, $rounds rounds, $WRK_KEYS keys"
has ours && echo "small_db_server flags: ${SERVER_FLAGS:-(defaults)}; $(grep -o 'starting:.*' "$work/server.log" | head -1)"
has etcd && echo "etcd $(etcd --version | awk '/etcd Version/ {print $3}'), $(etcd --version | awk '/Go Version/ {print $3}')"
cat "$work/loads"
declare -A names=([list1]="list page, 1 conn (pages/s)" [list16]="list page, 16 conn (pages/s)" [cas64]="CAS put, 64 conn (txns/s)" [get64]="GET one key, 64 conn")
printf '%-30s %10s %10s %7s %9s   %s\n' case small-db etcd ratio "CPU% o/e" "rounds (small-db | etcd)"
for c in "${cases[@]}"; do
    ourMedian=$(echo "${results[ours:$c]:-}" | median) theirMedian=$(echo "${results[etcd:$c]:-}" | median)
    ourCPU=$(median_of "$work/cpu.ours.$c") theirCPU=$(median_of "$work/cpu.etcd.$c")
    ratio=-
    [[ -n $ourMedian && -n $theirMedian ]] && ratio=$(awk -v a="$ourMedian" -v b="$theirMedian" 'BEGIN {printf "%.2f", a / b}')
    printf '%-30s %10s %10s %7s %9s   %s| %s\n' "${names[$c]}" "${ourMedian:--}" "${theirMedian:--}" "$ratio" "${ourCPU:--}/${theirCPU:--}" "${results[ours:$c]:-}" "${results[etcd:$c]:-}"
done
echo "CPU% o/e: the median share of one core each server used during its timed runs (100: its core was"
echo "saturated by it; well under 100 on a read case: something else held the core, or the client is the limit)."
echo "load average at the start: $load_start, at the end: $(cut -d' ' -f1-3 /proc/loadavg) (on a quiet machine well under 1)"
if [[ -s $work/problems ]]; then
    echo "PROBLEMS (the figures above count these answers too):"
    cat "$work/problems"
    exit 1
fi
echo "every answer of every timed run was 2xx, no socket errors$(has etcd && echo ", etcd's revision grew by at least every txn wrk counted")"
