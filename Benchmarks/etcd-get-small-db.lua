-- wrk: small-db single-key read, the counterpart of etcd-get.lua: GET /v1/kv/<random existing key>.
-- CHECK=1: a good answer is 200 carrying the 100-byte value.
dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
request = function()
    return wrk.format("GET", "/v1/kv/" .. key(randomIndex()))
end
expect = function(status, body) return status == 200 and body:find(VALUE_B64, 1, true) ~= nil end
installCheck()
