-- wrk: one page of etcd's listing: POST /v3/kv/range from a random existing key to "key;",
-- limit 100 (LIMIT). The start is drawn among the first N-100 keys so every page is a full one.
-- CHECK=1: a good answer is 200 with exactly LIMIT kvs.
dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
local limit = tonumber(os.getenv("LIMIT") or "100")
local headers = { ["Content-Type"] = "application/json" }
request = function()
    local body = '{"key":"' .. base64(key(randomIndex(N - limit + 1))) .. '","range_end":"' .. RANGE_END_B64
        .. '","limit":' .. limit .. '}'
    return wrk.format("POST", "/v3/kv/range", headers, body)
end
expect = function(status, body)
    -- every kv carries "create_revision"; the header does not
    return status == 200 and occurrences(body, '"create_revision"') == limit
end
installCheck()
