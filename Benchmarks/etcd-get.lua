-- wrk: etcd single-key read: POST /v3/kv/range {"key": <random existing key>}.
-- CHECK=1: a good answer is 200 with one kv and "count":"1".
dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
local headers = { ["Content-Type"] = "application/json" }
request = function()
    return wrk.format("POST", "/v3/kv/range", headers, '{"key":"' .. base64(key(randomIndex())) .. '"}')
end
expect = function(status, body)
    return status == 200 and body:find('"count":"1"', 1, true) ~= nil and occurrences(body, '"create_revision"') == 1
end
installCheck()
