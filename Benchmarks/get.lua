-- wrk: GET a random key among 100,000, the keys put.lua writes (after a short fill, about 60% of
-- them are present). Used by http-ab.sh, http-ceiling.sh and http-ceiling-get.sh.
request = function()
    return wrk.format("GET", "/v1/kv/key:" .. math.random(0, 99999))
end
