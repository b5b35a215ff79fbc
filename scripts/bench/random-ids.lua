-- wrk script: GET /order/{id} for ids picked at random from $IDS_FILE (one per line).
local ids = {}

function init(args)
  local path = os.getenv("IDS_FILE")
  for line in io.lines(path) do
    local id = line:match("^([^\t]+)")
    if id then ids[#ids + 1] = id end
  end
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  return wrk.format("GET", "/order/" .. ids[math.random(#ids)])
end
