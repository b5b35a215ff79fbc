-- wrk script: GET /order/{id} for ids picked at random from $IDS_FILE (one per line).
-- The requests are formatted once, in init, so the load generator spends its CPU on
-- sending, not on building strings (it shares the machine with the service).
local requests = {}

function init(args)
  local path = os.getenv("IDS_FILE")
  for line in io.lines(path) do
    local id = line:match("^([^\t]+)")
    if id then requests[#requests + 1] = wrk.format("GET", "/order/" .. id) end
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  return requests[math.random(#requests)]
end
