-- wrk: load small-db with key:0000000 … key:<N-1> in order (the keys etcd-load.lua gives etcd),
-- one PUT /v1/kv/<key> each, 100-byte values as base64, then stop (etcd-common.lua's
-- installLoader). Idle connections GET key:0000000, told apart by its answer. Prints
-- LOAD good=G bad=B keys=N [first bad: …] (good: 200 {"ok":true}).
dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
local headers = { ["Content-Type"] = "application/json" }
local body = '{"value":"' .. VALUE_B64 .. '","encoding":"base64"}'

installLoader {
    total = N,
    label = "keys",
    request = function(index) return wrk.format("PUT", "/v1/kv/" .. key(index), headers, body) end,
    filler = function() return wrk.format("GET", "/v1/kv/" .. key(0)) end,
    good = function(status, body) return status == 200 and body:find('"ok":true', 1, true) ~= nil end,
    isFiller = function(status, body) return status == 200 and body:find('"value"', 1, true) ~= nil end,
}
