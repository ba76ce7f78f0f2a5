-- wrk: PUT a 100-byte value under key:0 … key:N-1 in turn (N = 1,000,000, or the WRK_KEYS
-- environment variable), wrapping around: a run long enough writes every key at least once.
-- Used by resync-rss.sh to fill a primary.
local keys = tonumber(os.getenv("WRK_KEYS") or "1000000")
local value = string.rep("v", 100)
local body = '{"value":"' .. value .. '","encoding":"utf-8"}'
local headers = { ["Content-Type"] = "application/json" }
local counter = 0
request = function()
    local key = counter % keys
    counter = counter + 1
    return wrk.format("PUT", "/v1/kv/key:" .. key, headers, body)
end
