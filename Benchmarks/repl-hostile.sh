#!/usr/bin/env bash
# What hostile peers that never say hello cost a primary: its resident memory and thread count
# with N connections that each send the 5-byte header of a 64 MiB snapshotChunk frame and then
# 60 MiB of its payload (the bytes a decoder without a pre-hello limit buffers), and with M
# connections that send nothing at all (one session thread each, without a cap).
#
#   Benchmarks/repl-hostile.sh [server binary, default .build/debug/small_db_server] [N, default 5] [M, default 109] [runs, default 5]
#
# Each run starts a fresh primary, reads VmRSS and Threads from /proc/<pid>/status when idle, then
# with the N payload connections open (2 s after the last byte is sent), then with the M silent
# ones (2 s after the last connect); prints each run and the medians. Needs python3.
set -euo pipefail
cd "$(dirname "$0")/.."
server=${1:-.build/debug/small_db_server}
payloads=${2:-5}
silent=${3:-109}
runs=${4:-5}
work=$(mktemp -d)
pid=""
cleanup() {
    [[ -n "$pid" ]] && kill -INT "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

status() { # field
    awk -v field="$1:" '$1 == field { print $2 }' "/proc/$pid/status"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

for run in $(seq "$runs"); do
    rm -rf "$work/data"
    "$server" -dir "$work/data" -create -addr 127.0.0.1:0 -repl-addr 127.0.0.1:0 2>"$work/log" &
    pid=$!
    port=""
    for _ in $(seq 200); do
        port=$(sed -n 's/.*listening for backups on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/log" | head -1)
        [[ -n "$port" ]] && break
        sleep 0.05
    done
    [[ -n "$port" ]] || { cat "$work/log"; exit 1; }
    idle_rss=$(status VmRSS); idle_threads=$(status Threads)
    python3 - "$port" "$payloads" "$silent" "$pid" >"$work/run" <<'PY'
import socket, struct, sys, time
port, payloads, silent, pid = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def status(field):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"): return line.split()[1]
held = []
chunk = b"\0" * (1 << 20)
for _ in range(payloads):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(struct.pack("<BI", 5, 64 << 20))  # a snapshotChunk header: 64 MiB to come
    try:
        for _ in range(60): s.sendall(chunk)
    except OSError:
        pass  # the primary closed it: what a pre-hello limit does
    held.append(s)
time.sleep(2)
print(status("VmRSS"), status("Threads"))
for s in held: s.close()
held = []
for _ in range(silent):
    try: held.append(socket.create_connection(("127.0.0.1", port)))
    except OSError: pass
time.sleep(2)
print(status("VmRSS"), status("Threads"))
PY
    read -r payload_rss payload_threads < <(sed -n 1p "$work/run")
    read -r silent_rss silent_threads < <(sed -n 2p "$work/run")
    echo "run $run: idle ${idle_rss} kB ${idle_threads} threads; $payloads payload peers ${payload_rss} kB ${payload_threads} threads; $silent silent peers ${silent_rss} kB ${silent_threads} threads"
    echo "$idle_rss $idle_threads $payload_rss $payload_threads $silent_rss $silent_threads" >>"$work/all"
    kill -INT "$pid"; wait "$pid" 2>/dev/null || true; pid=""
done
for column in 1 2 3 4 5 6; do awk -v c=$column '{ print $c }' "$work/all" | median; done | paste -sd' ' |
    awk -v n="$payloads" -v m="$silent" '{ printf "medians: idle %d kB %d threads; %d payload peers %d kB %d threads; %d silent peers %d kB %d threads\n", $1, $2, n, $3, $4, m, $5, $6 }'
