#!/usr/bin/env python3
"""Writes the seed corpora under Fuzz/corpus/<target>/ (committed; rerun only to change them).

Seeds come from the project's Go fixtures (Tests/StorageEngineTests/Fixtures/go-small-db) and from
small hand-made inputs in each format (docs/FORMAT.md): a few valid ones, so the fuzzer starts
inside each decoder rather than at its first check.
"""
import os, shutil, struct, zlib

here = os.path.dirname(os.path.abspath(__file__))
fixtures = os.path.join(here, "..", "Tests", "StorageEngineTests", "Fixtures", "go-small-db")
corpus = os.path.join(here, "corpus")

def put(target, name, data):
    os.makedirs(os.path.join(corpus, target), exist_ok=True)
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data)

def fixture(*path):
    with open(os.path.join(fixtures, *path), "rb") as f:
        return f.read()

u32 = lambda v: struct.pack("<I", v)
u64 = lambda v: struct.pack("<Q", v)
crc = lambda b: zlib.crc32(b) & 0xFFFFFFFF

def wal_entry(op, key, value=b""):
    return bytes([op]) + u32(len(key)) + u32(len(value)) + key + value

def wal_record(payload):
    return u32(len(payload)) + payload + u32(crc(payload))

if os.path.isdir(corpus):
    shutil.rmtree(corpus)

# WAL segments: the Go fixtures (clean, torn tail, damage in the middle) and small hand-made ones.
small_wal = (wal_record(wal_entry(1, b"k1", b"v1")) + wal_record(wal_entry(2, b"k1"))
             + wal_record(bytes([3]) + u32(2) + wal_entry(1, b"a", b"1") + wal_entry(2, b"b")))
for target in ["fuzz_wal_segment", "fuzz_wal_chunked"]:
    put(target, "basic-logfile.2", fixture("basic", "logfile.2"))
    put(target, "torn-tail-logfile.2", fixture("torn-tail", "logfile.2"))
    put(target, "corrupt-wal-middle-logfile.2", fixture("corrupt-wal-middle", "logfile.2"))
    put(target, "small", small_wal)
    put(target, "small-torn", small_wal + small_wal[:9])
    put(target, "small-zeros", small_wal + bytes(16))
    put(target, "small-damaged", small_wal[:20] + b"\xff" + small_wal[21:])
# fuzz_wal_roundtrip: byte 0 chooses the direction (bit 0: reverse; bit 1: fix the CRCs; the rest:
# the chunk size), then a forward grammar (see the target) or a segment.
put("fuzz_wal_roundtrip", "sets", bytes([0, 6]) + bytes([1, 0, 3, 5]) + b"keyvalue" + bytes([2, 0, 1, 1, 1, 1]) + b"abc")
put("fuzz_wal_roundtrip", "batch", bytes([0, 0]) + bytes([3, 0, 2, 2, 1, 3]) + b"ab" + b"xyz")
put("fuzz_wal_roundtrip", "empty-batch-and-empty-keys", bytes([0, 63]) + bytes([0, 1, 0, 0, 1, 0, 2, 0, 0, 0, 1, 0]))
put("fuzz_wal_roundtrip", "reverse-small", bytes([1 | 6 << 2]) + small_wal)
put("fuzz_wal_roundtrip", "reverse-torn", bytes([1]) + small_wal + small_wal[:9])
put("fuzz_wal_roundtrip", "reverse-damaged", bytes([1 | 2 << 2]) + small_wal[:20] + b"\xff" + small_wal[21:])
batch_of_one = bytes([3]) + u32(1) + wal_entry(1, b"k", b"v")
put("fuzz_wal_roundtrip", "reverse-batch-of-one", bytes([1]) + wal_record(batch_of_one) + wal_record(wal_entry(2, b"k")))
# Bit 1: the target fixes the CRCs, so zeros stand in for them.
put("fuzz_wal_roundtrip", "reverse-fix-crcs", bytes([3])
    + u32(len(batch_of_one)) + batch_of_one + bytes(4)
    + u32(14) + wal_entry(2, b"abcde") + bytes(4)
    + u32(9) + bytes([2]) + u32(0) + u32(1) + bytes(4))

# Checkpoints: the Go fixtures (version 1) and small version 2 files, one empty.
def checkpoint_v2(generation, entries):
    body = b"SMALLDB\0" + u32(2) + u64(generation) + u64(len(entries))
    for key, value in entries:
        body += u32(len(key)) + u32(len(value)) + key + value
    return body + u32(crc(body))
def checkpoint_v1(generation, entries):
    body = b"SMALLDB\0" + u32(1) + u64(generation) + u32(len(entries))
    for key, value in entries:
        body += u32(len(key)) + u32(len(value)) + key + value
    return body
def go_prefix(data, count):
    """A Go fixture cut to its first `count` entries (the fixtures are ~100 KB; seeds stay small)."""
    offset = 24
    for _ in range(count):
        key_length, value_length = struct.unpack_from("<II", data, offset)
        offset += 8 + key_length + value_length
    return data[:20] + u32(count) + data[24:offset]
for target in ["fuzz_checkpoint", "fuzz_checkpoint_chunked"]:
    put(target, "basic-checkpoint.2-first-entries", go_prefix(fixture("basic", "checkpoint.2"), 40))
    put(target, "pending-switch-checkpoint.3-first-entries", go_prefix(fixture("pending-switch", "checkpoint.3"), 40))
    put(target, "v2-small", checkpoint_v2(7, [(b"k1", b"v1"), (b"key2", b""), (b"", b"value3")]))
    put(target, "v2-empty", checkpoint_v2(1, []))
    put(target, "v1-small", checkpoint_v1(3, [(b"a", b"1"), (b"bb", b"22")]))

# fuzz_checkpoint_roundtrip: byte 0 chooses the direction (bit 0: reverse; bit 1: fix the CRC; the
# rest: the chunk size), then a forward grammar (see the target) or a checkpoint file.
def forward_checkpoint(chunk, generation_selector, flush, entries):
    data = bytes([0, chunk, generation_selector, flush])
    for key_length_byte, value_length_byte, content in entries:
        data += bytes([key_length_byte, value_length_byte]) + content
    return data
put("fuzz_checkpoint_roundtrip", "forward-small", forward_checkpoint(6, 7, 0, [(2, 2, b"k1v1"), (0, 3, b"abc"), (4, 0, b"key2")]))
# Length bytes 244 and up are edges (the target's `length`): 253 = 4,096 and 254 = 4,097 bytes.
put("fuzz_checkpoint_roundtrip", "forward-edges", forward_checkpoint(63, 1, 255, [(253, 254, b"big"), (244, 244, b""), (1, 0, b"x")]))
put("fuzz_checkpoint_roundtrip", "forward-generation", bytes([0, 0, 2]) + u64(0x0102030405060708) + bytes([1, 3, 1]) + b"abcd")
put("fuzz_checkpoint_roundtrip", "reverse-v2", bytes([1 | 6 << 2]) + checkpoint_v2(7, [(b"k1", b"v1"), (b"key2", b""), (b"", b"value3")]))
put("fuzz_checkpoint_roundtrip", "reverse-v2-empty", bytes([1]) + checkpoint_v2(0, []))
put("fuzz_checkpoint_roundtrip", "reverse-v2-fix-crc", bytes([3]) + checkpoint_v2(9, [(b"a", b"b"), (b"a", b"c")])[:-4] + bytes(4))
put("fuzz_checkpoint_roundtrip", "reverse-v1", bytes([1]) + checkpoint_v1(3, [(b"a", b"1"), (b"bb", b"22")]))
put("fuzz_checkpoint_roundtrip", "reverse-v1-trailing", bytes([1 | 1 << 2]) + checkpoint_v1(3, [(b"a", b"1")]) + b"trailing")
put("fuzz_checkpoint_roundtrip", "reverse-go-fixture", bytes([1 | 63 << 2]) + go_prefix(fixture("basic", "checkpoint.2"), 10))

# HTTP requests: the API's shapes (docs/OPERATIONS.md), pipelined, chunked, 100-continue.
http = {
    "get": b"GET /v1/keys/a%20b HTTP/1.1\r\nHost: x\r\n\r\n",
    "put-json": b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"value\":\"abc\"}",
    "put-chunked": b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\n{\"val\r\nA\r\nue\":\"abc\"}\r\n0\r\nTrailer: t\r\n\r\n",
    "continue": b"PUT /v1/keys/k HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi",
    "pipelined": b"GET /a HTTP/1.1\r\n\r\nDELETE /v1/keys/b HTTP/1.1\r\nConnection: close\r\n\r\nGET /c HTTP/1.0\r\n\r\n",
    "http10": b"\r\nPOST /v1/batch?x=1 HTTP/1.0\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
}
for name, data in http.items():
    put("fuzz_http_request", name, data)

# JSON bodies of PUT requests.
json_bodies = {
    "plain": b'{"value":"abc"}',
    "base64": b'{"value":"aGVsbG8=","encoding":"base64"}',
    "escapes": b'{"value":"a\\n\\u00e9\\ud83d\\ude00\\"\\\\","extra":[1,2.5e-3,true,false,null,{"x":{}}]}',
    "nested": b'{"a":[[[[{"b":[]}]]]],"value":""}',
}
for name, data in json_bodies.items():
    put("fuzz_json_body", name, data)

for name, data in {"hello": b"aGVsbG8=", "padded": b"YQ==", "long": b"AAECAwQFBgcICQoLDA0ODxAREhM=", "empty": b""}.items():
    put("fuzz_base64", name, data)
for name, data in {"plain": b"abc", "escapes": b"a%20b%2Fc%25", "utf8": b"%E2%82%AC+x"}.items():
    put("fuzz_percent_decoding", name, data)

# Replication frames: u8 type | u32 payload length | payload | u32 crc32(type, length, payload).
def frame(kind, payload):
    head = bytes([kind]) + u32(len(payload)) + payload
    return head + u32(crc(head))
position = lambda generation, offset: u64(generation) + u64(offset)
lineage = bytes(range(1, 17))
magic = u32(0x52444253)
hello = frame(1, magic + bytes([1, 0]) + u64(3) + bytes([1]) + lineage + position(2, 100) + u32(0x1234) + bytes([1]) + position(2, 0))
welcome = frame(2, u64(3) + lineage + bytes([0]) + u32(2) + u64(1) + position(1, 0) + u64(3) + position(2, 40))
refuse = frame(3, bytes([2]) + u32(5) + b"stale")
snapshot = frame(4, u64(2) + u64(5)) + frame(5, b"hello") + frame(6, u32(crc(b"hello")))
records = frame(7, position(2, 0) + small_wal) + frame(8, u64(3)) + frame(9, u64(3) + position(3, 0))
ack = frame(10, position(2, 57))
auth_challenge = frame(11, magic + bytes(range(32)))
auth_response = frame(12, bytes(range(32)) + bytes(range(32, 64)))
auth_proof = frame(13, bytes(range(64, 96)))
put("fuzz_repl_frame_to_primary", "hello", hello)
put("fuzz_repl_frame_to_primary", "auth-then-hello", auth_challenge + auth_proof + hello)
put("fuzz_repl_frame_to_primary", "acks", ack + ack + refuse)
put("fuzz_repl_frame_to_backup", "welcome-stream", welcome + records)
put("fuzz_repl_frame_to_backup", "welcome-snapshot", auth_response + welcome + snapshot + records)
put("fuzz_repl_frame_to_backup", "refuse", refuse)

# Replication state files.
def state(epoch, role, history):
    body = b"SDBREPL\0" + u32(1) + lineage + u64(epoch) + bytes([role]) + u32(len(history))
    for e, generation, offset in history:
        body += u64(e) + u64(generation) + u64(offset)
    return body + u32(crc(body))
put("fuzz_repl_state", "primary", state(2, 0, [(1, 1, 0), (2, 2, 100)]))
put("fuzz_repl_state", "backup", state(5, 1, [(5, 3, 0)]))
put("fuzz_repl_state", "empty-history", state(0, 0, []))
