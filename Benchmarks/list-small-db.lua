-- wrk: one page of small-db's listing: GET /v1/kv?start=<key>&end=key%3B&limit=100 (LIMIT), the
-- start a random existing key among the first N-100, so every page is a full one (as etcd-list.lua).
-- CHECK=1: a good answer is 200 naming LIMIT keys (or LIMIT+1: a next-page cursor), counted as
-- occurrences of the key prefix, plain ("key:0") or base64 ("a2V5OjAw"), whichever the body uses.
dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
local limit = tonumber(os.getenv("LIMIT") or "100")
request = function()
    local start = key(randomIndex(N - limit + 1)):gsub(":", "%%3A")
    return wrk.format("GET", "/v1/kv?start=" .. start .. "&end=key%3B&limit=" .. limit)
end
expect = function(status, body)
    if status ~= 200 then return false end
    local n = math.max(occurrences(body, "key:0"), occurrences(body, "a2V5OjAw"))
    return n == limit or n == limit + 1
end
installCheck()
