-- wrk: etcd compare-and-put on a random existing key: POST /v3/kv/txn, compare
-- create_revision > 0 (the key exists: always true once loaded), success: put the 100-byte value.
-- CHECK=1: a good answer is 200 with "succeeded":true (a failed compare is also 200, with the
-- field left out: the gateway omits false).
dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
local headers = { ["Content-Type"] = "application/json" }
request = function()
    local k = base64(key(randomIndex()))
    local body = '{"compare":[{"key":"' .. k .. '","target":"CREATE","result":"GREATER","create_revision":"0"}],'
        .. '"success":[{"request_put":{"key":"' .. k .. '","value":"' .. VALUE_B64 .. '"}}]}'
    return wrk.format("POST", "/v3/kv/txn", headers, body)
end
expect = function(status, body)
    return status == 200 and body:find('"succeeded":true', 1, true) ~= nil
end
installCheck()
