-- wrk: load etcd with key:0000000 … key:<N-1> in order, 100-byte values, BATCH keys per
-- POST /v3/kv/txn (no compare, BATCH request_put ops; default 128, etcd's default --max-txn-ops),
-- then stop (etcd-common.lua's installLoader). Idle connections GET /version, told apart by its
-- answer. Prints LOAD good=G bad=B batches=NB [first bad: …] (good: 200 with "succeeded":true).
dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
local batch = tonumber(os.getenv("BATCH") or "128")
local headers = { ["Content-Type"] = "application/json" }

installLoader {
    total = math.ceil(N / batch),
    label = "batches",
    request = function(index)
        local ops, from = {}, index * batch
        for i = from, math.min(from + batch, N) - 1 do
            ops[#ops + 1] = '{"request_put":{"key":"' .. base64(key(i)) .. '","value":"' .. VALUE_B64 .. '"}}'
        end
        return wrk.format("POST", "/v3/kv/txn", headers, '{"success":[' .. table.concat(ops, ",") .. ']}')
    end,
    filler = function() return wrk.format("GET", "/version") end,
    good = function(status, body) return status == 200 and body:find('"succeeded":true', 1, true) ~= nil end,
    isFiller = function(status, body) return status == 200 and body:find('"etcdserver"', 1, true) ~= nil end,
}
