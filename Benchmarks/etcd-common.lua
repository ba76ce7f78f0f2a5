-- Shared by etcd-bench.sh's wrk scripts (etcd-*.lua, list-*.lua, cas-*.lua); each loads it with
--   dofile((os.getenv("BENCH_LUA_DIR") or "Benchmarks") .. "/etcd-common.lua")
-- The key space: key:0000000 … key:<N-1> (11 bytes each for N = 1,000,000, or WRK_KEYS), values
-- 100 bytes ("v" × 100). With CHECK=1 in the environment a script also looks at every response
-- (status and body, see expect) and done() prints one line:
--   CHECK good=G bad=B [first bad: <status> <body>]
-- which etcd-bench.sh reads. Without CHECK no response callback is installed at all, so the timed
-- runs cost wrk nothing per response beyond its own parsing.
N = tonumber(os.getenv("WRK_KEYS") or "1000000")
VALUE = string.rep("v", 100)

local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local b64 = {}
for i = 1, 64 do b64[i - 1] = b64chars:sub(i, i) end

function base64(s)
    local out, n = {}, #s
    for i = 1, n, 3 do
        local a, b, c = s:byte(i, i + 2)
        local v = a * 65536 + (b or 0) * 256 + (c or 0)
        out[#out + 1] = b64[math.floor(v / 262144) % 64] .. b64[math.floor(v / 4096) % 64]
            .. (b and b64[math.floor(v / 64) % 64] or "=") .. (c and b64[v % 64] or "=")
    end
    return table.concat(out)
end

VALUE_B64 = base64(VALUE)
RANGE_END = "key;"                 -- the byte after ':' : every key:… sorts below it
RANGE_END_B64 = base64(RANGE_END)  -- "a2V5Ow=="

function key(i) return string.format("key:%07d", i) end
function randomIndex(top) return math.random(0, (top or N) - 1) end

-- Counting occurrences of a plain substring.
function occurrences(body, needle)
    local count, from = 0, 1
    while true do
        local at = body:find(needle, from, true)
        if not at then return count end
        count, from = count + 1, at + #needle
    end
end

-- The checking half: a script sets expect = function(status, body) return true/false end.
local threads = {}
function setup(thread) threads[#threads + 1] = thread end

-- Every thread's good and bad counts, summed, and " first bad: …" (or "") for done() to print.
function tally()
    local g, b, first = 0, 0, nil
    for _, t in ipairs(threads) do
        g, b = g + (t:get("good") or 0), b + (t:get("bad") or 0)
        first = first or t:get("firstBad")
    end
    return g, b, first and (" first bad: " .. first:gsub("\n", " ")) or ""
end

function installCheck()
    if os.getenv("CHECK") ~= "1" then return end
    good, bad, firstBad = 0, 0, nil
    response = function(status, headers, body)
        if expect(status, body) then
            good = good + 1
        else
            bad = bad + 1
            if not firstBad then firstBad = status .. " " .. (body or ""):sub(1, 300) end
        end
    end
    done = function(summary, latency, requests)
        local g, b, first = tally()
        io.write(string.format("CHECK good=%d bad=%d%s\n", g, b, first))
    end
end

math.randomseed(os.time())

-- The loading half (etcd-load.lua, etcd-fill-small-db.lua): sends spec.total requests in order,
-- spec.request(i) for i = 0 … total-1, then, once every one is sent, spec.filler() on idle
-- connections until the last is answered, and stops wrk. An answer counts as good if
-- spec.good(status, body), is a filler's if spec.isFiller(status, body), else bad. Prints
--   LOAD good=G bad=B <spec.label>=<total> [first bad: …]
-- Run with wrk -t1 (one thread counts every answer).
function installLoader(spec)
    local sent = 0
    local verified = false
    good, bad, firstBad = 0, 0, nil
    request = function()
        -- wrk calls request() once before any connection opens, to check the request it returns
        -- (script_verify_request); that first call gets a filler, or request 0 would never be sent.
        if sent >= spec.total or not verified then
            verified = true
            return spec.filler()
        end
        sent = sent + 1
        return spec.request(sent - 1)
    end
    response = function(status, headers, body)
        if spec.good(status, body) then
            good = good + 1
        elseif spec.isFiller(status, body) then
            return
        else
            bad = bad + 1
            if not firstBad then firstBad = status .. " " .. body:sub(1, 300) end
        end
        if good + bad >= spec.total then
            -- wrk's main thread sleeps for all of -d whatever its threads do; SIGINT ends that sleep.
            -- The shell os.execute starts is wrk's child ($PPID is wrk), and the kill waits in the
            -- background because system() ignores SIGINT in wrk until that shell returns.
            wrk.thread:stop()
            os.execute("(sleep 0.2; kill -INT $PPID) &")
        end
    end
    done = function(summary, latency, requests)
        local g, b, first = tally()
        io.write(string.format("LOAD good=%d bad=%d %s=%d%s\n", g, b, spec.label, spec.total, first))
    end
end
