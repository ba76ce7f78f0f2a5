-- wrk: small-db compare-and-put on a random existing key: PUT /v1/kv/<key> with If-Match: *
-- (RFC 9110: the put happens only if the key exists; 412 otherwise) and the 100-byte value.
-- CHECK=1: a good answer is 200 (a 412 would mean the key was missing or If-Match misread).
dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
local headers = { ["Content-Type"] = "application/json", ["If-Match"] = "*" }
local body = '{"value":"' .. VALUE_B64 .. '","encoding":"base64"}'
request = function()
    return wrk.format("PUT", "/v1/kv/" .. key(randomIndex()), headers, body)
end
expect = function(status, body) return status == 200 end
installCheck()
