-- wrk: load etcd with key:0000000 … key:<N-1> in order, 100-byte values, BATCH keys per
-- POST /v3/kv/txn (no compare, BATCH request_put ops; default 128, etcd's default --max-txn-ops),
-- then stop. Once every batch is sent, idle connections GET /version (told apart by its answer) until the last batch is answered. Prints
--   LOAD good=G bad=B batches=NB [first bad: …]
-- (good: 200 with "succeeded":true). Run with wrk -t1 (one thread counts every answer).
dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
local batch = tonumber(os.getenv("BATCH") or "128")
local batches = math.ceil(N / batch)
local headers = { ["Content-Type"] = "application/json" }
local filler = '{"key":"' .. base64(key(0)) .. '","count_only":true}'
local sent = 0
local verified = false -- see request
good, bad, firstBad = 0, 0, nil

request = function()
    -- wrk calls request() once before any connection opens, to check the request it returns
    -- (script_verify_request); that first call gets a filler, or batch 0 would never be sent.
    if sent >= batches or not verified then
        verified = true
        return wrk.format("GET", "/version")
    end
    local ops, from = {}, sent * batch
    for i = from, math.min(from + batch, N) - 1 do
        ops[#ops + 1] = '{"request_put":{"key":"' .. base64(key(i)) .. '","value":"' .. VALUE_B64 .. '"}}'
    end
    sent = sent + 1
    return wrk.format("POST", "/v3/kv/txn", headers, '{"success":[' .. table.concat(ops, ",") .. ']}')
end

response = function(status, headers, body)
    if status == 200 and body:find('"succeeded":true', 1, true) then
        good = good + 1
    elseif status == 200 and body:find('"etcdserver"', 1, true) then
        return -- a filler's answer
    else
        bad = bad + 1
        if not firstBad then firstBad = status .. " " .. body:sub(1, 300) end
    end
    if good + bad >= batches then
        -- wrk's main thread sleeps for all of -d whatever its threads do; SIGINT ends that sleep.
        -- The shell os.execute starts is wrk's child ($PPID is wrk), and the kill waits in the
        -- background because system() ignores SIGINT in wrk until that shell returns.
        wrk.thread:stop()
        os.execute("(sleep 0.2; kill -INT $PPID) &")
    end
end

done = function(summary, latency, requests)
    local g, b, first = 0, 0, nil
    for _, t in ipairs(threads_) do
        g, b = g + t:get("good"), b + t:get("bad")
        first = first or t:get("firstBad")
    end
    io.write(string.format("LOAD good=%d bad=%d batches=%d%s\n", g, b, batches, first and (" first bad: " .. first:gsub("\n", " ")) or ""))
end
threads_ = {}
setup = function(thread) threads_[#threads_ + 1] = thread end
