#!/usr/bin/env bash
# The replication stream through stunnel (TLS), as docs/OPERATIONS.md §13 sets it up, checked end
# to end: a primary, a backup, both with the same -repl-token-file; the backup dials a local
# stunnel client, which dials the stunnel server in front of the primary's replication port over
# TLS (the server's certificate verified against a CA file). A write on the primary must reach the
# backup, and stunnel must have carried the connection.
#
#   scripts/repl-stunnel-check.sh [small_db_server binary]   (default: builds the debug one)
#
# Needs stunnel (Debian: apt-get install -y stunnel4), openssl, curl. Exit 0: the write arrived;
# 1: it did not; 2: something needed is missing. Everything on 127.0.0.1, in a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in stunnel openssl curl; do
    command -v "$tool" >/dev/null || { echo "repl-stunnel-check: missing $tool (Debian: apt-get install -y stunnel4 openssl curl)" >&2; exit 2; }
done
if [[ $# -ge 1 ]]; then
    server=$1
else
    swift build --product small_db_server >/dev/null
    server="$(swift build --show-bin-path)/small_db_server"
fi
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
        echo $((20000 + RANDOM % 30000))
}
primary_http=$(free_port); backup_http=$(free_port); primary_repl=$(free_port); tls_port=$(free_port); client_port=$(free_port)

# The shared token (mode 600) and a self-signed certificate for the stunnel server.
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
chmod 600 "$work/token"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=small-db-replication \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
chmod 600 "$work/key.pem"

# In front of the primary: TLS in, plain out to its replication port (bound to loopback only).
cat >"$work/server.conf" <<CONF
foreground = yes
pid =
output = $work/stunnel-server.log
[replication]
accept = 127.0.0.1:$tls_port
connect = 127.0.0.1:$primary_repl
cert = $work/cert.pem
key = $work/key.pem
CONF
# Beside the backup: plain in from the backup, TLS out, the server's certificate verified.
cat >"$work/client.conf" <<CONF
foreground = yes
pid =
output = $work/stunnel-client.log
[replication]
client = yes
accept = 127.0.0.1:$client_port
connect = 127.0.0.1:$tls_port
verifyPeer = yes
CAfile = $work/cert.pem
CONF
stunnel "$work/server.conf" 2>>"$work/stunnel-server.log" & pids+=($!)
stunnel "$work/client.conf" 2>>"$work/stunnel-client.log" & pids+=($!)

"$server" -dir "$work/primary" -create -addr "127.0.0.1:$primary_http" -repl-addr "127.0.0.1:$primary_repl" \
    -repl-token-file "$work/token" 2>"$work/primary.log" & pids+=($!)
"$server" -dir "$work/backup" -create -addr "127.0.0.1:$backup_http" -repl-addr= -backup-of "127.0.0.1:$client_port" \
    -repl-token-file "$work/token" 2>"$work/backup.log" & pids+=($!)

show_logs() {
    for log in primary backup stunnel-server stunnel-client; do echo "--- $log"; cat "$work/$log.log" 2>/dev/null || true; done
}
wait_for() { # url expected-body
    for _ in $(seq 200); do
        [[ "$(curl -s "$1" 2>/dev/null)" == "$2" ]] && return 0
        sleep 0.1
    done
    return 1
}
wait_for "http://127.0.0.1:$primary_http/v1/health" '{"ok":true}' || { show_logs; exit 1; }
wait_for "http://127.0.0.1:$backup_http/v1/health" '{"ok":true}' || { show_logs; exit 1; }
curl -sf -X PUT "http://127.0.0.1:$primary_http/v1/kv/through-tls" -d '{"value":"dHVubmVsbGVk","encoding":"base64"}' >/dev/null
if ! wait_for "http://127.0.0.1:$backup_http/v1/kv/through-tls" '{"key":"through-tls","value":"dHVubmVsbGVk","encoding":"base64"}'; then
    echo "repl-stunnel-check: the write did not reach the backup" >&2
    show_logs
    exit 1
fi
if ! grep -q "accepted connection" "$work/stunnel-server.log"; then
    echo "repl-stunnel-check: the write arrived, but not through stunnel" >&2
    show_logs
    exit 1
fi
echo "repl-stunnel-check: a write reached the backup through stunnel (TLS) with -repl-token-file"
