-- wrk: PUT a 24-byte value (base64: 32 characters) under a random key among 100,000.
-- Used by http-bench.sh and repl-bench.sh.
local body = '{"value":"YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh","encoding":"base64"}'
local headers = { ["Content-Type"] = "application/json" }
request = function()
    return wrk.format("PUT", "/v1/kv/key:" .. math.random(0, 99999), headers, body)
end
