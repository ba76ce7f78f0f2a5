-- wrk: load small-db with key:0000000 … key:<N-1> in order (the keys etcd-load.lua gives etcd),
-- one PUT /v1/kv/<key> each, 100-byte values as base64, then stop. Once every key is sent, idle
-- connections GET key:0000000 (told apart by its answer) until the last PUT is answered. Prints
--   LOAD good=G bad=B keys=N [first bad: …]
-- (good: 200 {"ok":true}). Run with wrk -t1 (one thread counts every answer).
dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
local headers = { ["Content-Type"] = "application/json" }
local body = '{"value":"' .. VALUE_B64 .. '","encoding":"base64"}'
local filler = "/v1/kv/" .. key(0)
local sent = 0
local verified = false -- see request
good, bad, firstBad = 0, 0, nil

request = function()
    -- wrk calls request() once before any connection opens, to check the request it returns
    -- (script_verify_request); that first call gets a filler, or key 0 would never be sent.
    if sent >= N or not verified then
        verified = true
        return wrk.format("GET", filler)
    end
    local path = "/v1/kv/" .. key(sent)
    sent = sent + 1
    return wrk.format("PUT", path, headers, body)
end

response = function(status, headers, body)
    if status == 200 and body:find('"ok":true', 1, true) then
        good = good + 1
    elseif status == 200 and body:find('"value"', 1, true) then
        return -- a filler's answer
    else
        bad = bad + 1
        if not firstBad then firstBad = status .. " " .. body:sub(1, 300) end
    end
    if good + bad >= N then
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
    io.write(string.format("LOAD good=%d bad=%d keys=%d%s\n", g, b, N, first and (" first bad: " .. first:gsub("\n", " ")) or ""))
end
threads_ = {}
setup = function(thread) threads_[#threads_ + 1] = thread end
