#!/usr/bin/env bash
# What clients that never read can make small_db_server hold: the server's resident memory
# (VmRSS) growth in three scenarios of issue 9, each run ROUNDS times on a fresh server, medians
# printed.
#
#   Benchmarks/backpressure-memory.sh                       (builds and measures the release server)
#   SERVER=/path/to/small_db_server ROUNDS=5 Benchmarks/backpressure-memory.sh
#   ONLY=many,pipeline Benchmarks/backpressure-memory.sh     (some scenarios only, by name)
#
# 1. pipeline: one connection pipelines 550 GETs of a 256 KiB value and reads nothing (a 4 KiB
#    receive buffer); growth 3 s later.
# 2. large: ten connections each GET one 16 MiB value and read nothing, with -idle-timeout 2s and
#    -write-timeout 5s (if the server has the flag); growth 3 s later, 9 s later (after the
#    write timeout; a server without one holds it for good), and 12 s later, after ten more such
#    clients came at 9 s (what the first ten held is reused, or added to).
# 3. metrics: one connection pipelines 20,000 GET /metrics and reads nothing; growth 3 s later.
# 4. many: 10, then 100 connections each GET one 16 MiB value and read nothing (default timeouts:
#    the write timeout, 30 s, has not fired yet); growth 5 s later.
# 5. fairness (not memory): with -event-loops 1, one connection pipelines 10,000 GET /metrics
#    and reads every answer, while another sends GET /v1/health one at a time; the slowest health
#    answer during the flood (median of the rounds' worst).
# The baseline is the RSS after the values are stored, before the scenario's clients connect.
# Needs python3. Never run in CI: the figures depend on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
if [[ -z ${SERVER:-} ]]; then
    swift build -c release --product small_db_server >/dev/null
    SERVER=.build/release/small_db_server
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

python3 - "$SERVER" "$work" "$rounds" "${ONLY:-}" <<'PY'
import base64, json, os, signal, socket, statistics, subprocess, sys, threading, time

server, work, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
only = set(filter(None, sys.argv[4].split(",")))

def wanted(name):
    return not only or name in only

def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

def request(port, method, path, body=b""):
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
        data = b""
        while chunk := s.recv(1 << 20):
            data += chunk
        return data

def start(extra):
    port = free_port()
    directory = os.path.join(work, f"data-{time.monotonic_ns()}")
    process = subprocess.Popen([server, "-dir", directory, "-create", "-addr", f"127.0.0.1:{port}", "-repl-addr", "127.0.0.1:0"] + extra,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            if b"200 OK" in request(port, "GET", "/v1/health"):
                return process, port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("server did not start")

def put(port, key, size):
    body = json.dumps({"value": base64.b64encode(b"v" * size).decode()}).encode()
    assert b"200 OK" in request(port, "PUT", f"/v1/kv/{key}", body)

def silent_client(port, payload):
    """Connects with a 4 KiB receive buffer, sends payload from a thread (it may block once the
    server stops reading) and never reads."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    threading.Thread(target=lambda: _send_quietly(s, payload), daemon=True).start()
    return s

def _send_quietly(s, payload):
    try:
        s.sendall(payload)
    except OSError:
        pass

def get(path):
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()

def scenario(name, extra, setup, payloads, samples, again_at=None):
    """Samples (label, seconds) after the clients connect; with again_at, as many clients again
    connect at that time (the first ones still open)."""
    results = {label: [] for label, _ in samples}
    for _ in range(rounds):
        process, port = start(extra)
        try:
            setup(port)
            time.sleep(0.5)
            base = rss(process.pid)
            clients = [silent_client(port, p) for p in payloads]
            started = time.monotonic()
            for label, at in samples:
                if again_at is not None and at > again_at and len(clients) == len(payloads):
                    time.sleep(max(0, started + again_at - time.monotonic()))
                    clients += [silent_client(port, p) for p in payloads]
                time.sleep(max(0, started + at - time.monotonic()))
                results[label].append((rss(process.pid) - base) / 1e6)
            for c in clients:
                c.close()
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:  # still busy with what it buffered
                process.kill()
                process.wait()
    for label, values in results.items():
        print(f"{name:9} {label:24} median {statistics.median(values):8.1f} MB   (runs: {', '.join(f'{v:.1f}' for v in values)})")

if wanted("pipeline"):
    scenario("pipeline", [], lambda port: put(port, "v256k", 256 << 10), [get("/v1/kv/v256k") * 550], [("growth after 3 s", 3)])
# A server from before the write timeout does not know the flag (it would exit 2).
has_write_timeout = b"-write-timeout" in subprocess.run([server, "-h"], capture_output=True).stderr
if wanted("large"):
    scenario("large", ["-idle-timeout", "2s"] + (["-write-timeout", "5s"] if has_write_timeout else []), lambda port: put(port, "v16m", 16 << 20),
             [get("/v1/kv/v16m")] * 10, [("growth after 3 s", 3), ("growth after 9 s", 9), ("10 more at 9 s, after 12 s", 12)], again_at=9)
if wanted("metrics"):
    scenario("metrics", [], lambda port: None, [get("/metrics") * 20000], [("growth after 3 s", 3)])
if wanted("many"):
    for count in (10, 100):
        scenario(f"many{count}", [], lambda port: put(port, "v16m", 16 << 20), [get("/v1/kv/v16m")] * count, [("growth after 5 s", 5)])

def drain(s, count):
    """Reads `count` responses (each with Content-Length) from s."""
    data = b""
    for _ in range(count):
        while b"\r\n\r\n" not in data:
            data += s.recv(1 << 20)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
        while len(rest) < length:
            rest += s.recv(1 << 20)
        data = rest[length:]

worst = []
for _ in range(rounds if wanted("fairness") else 0):
    process, port = start(["-event-loops", "1"])
    try:
        checker = socket.create_connection(("127.0.0.1", port))
        flooder = socket.create_connection(("127.0.0.1", port))
        reader = threading.Thread(target=drain, args=(flooder, 10000))
        reader.start()
        threading.Thread(target=lambda: flooder.sendall(get("/metrics") * 10000), daemon=True).start()
        slowest = 0.0
        while reader.is_alive():
            began = time.monotonic()
            checker.sendall(get("/v1/health"))
            drain(checker, 1)
            slowest = max(slowest, time.monotonic() - began)
            time.sleep(0.02)
        worst.append(slowest * 1000)
        checker.close()
        flooder.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
if worst:
    print(f"fairness  slowest health answer    median {statistics.median(worst):8.1f} ms   (runs: {', '.join(f'{v:.1f}' for v in worst)})")
PY
