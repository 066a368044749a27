-- bench/lua/ops.lua
-- Lua combinators against the go loops a user would write by hand: ns per value moved.
--
--   LUA_CPATH='build/lua/?.so' lua5.4 bench/lua/ops.lua [n]     (default n = 200000)
-- Each case moves n integers producer -> [middle] -> consumer, all go blocks
-- of one state on one loop thread, channels buffered 1024:
--   loop_pipe   middle = a Lua go block: for v in a:iter() do b:send(v) end
--   conch_pipe  middle = conch.pipe(a, b)  (C++'s conch::pipe for two Lua channels)
--   loop_map    middle = a Lua go block sending v + 1
--   conch_map   middle = conch.map(function(v) return v + 1 end, a, 1024)
--   direct      no middle: producer -> consumer (the floor)
-- Prints: bench=lua_ops case=<case> param=n:<n> value=<ns> unit=ns/value cpu=<ns>
-- Cases run interleaved, RUNS times each (default 3); the median is printed.
local conch = require "conch"

local n = math.tointeger(tonumber(arg and arg[1] or "200000"))
local runs = math.tointeger(tonumber(os.getenv("RUNS") or "3"))

local middles = {
  direct = function(a) return a end,
  loop_pipe = function(a)
    local b = conch.chan(1024)
    conch.go(function()
      for v in a:iter() do b:send(v) end
      b:close()
    end)
    return b
  end,
  conch_pipe = function(a) return conch.pipe(a, conch.chan(1024)) end,
  loop_map = function(a)
    local b = conch.chan(1024)
    conch.go(function()
      for v in a:iter() do b:send(v + 1) end
      b:close()
    end)
    return b
  end,
  conch_map = function(a) return conch.map(function(v) return v + 1 end, a, 1024) end,
}
local order = { "direct", "loop_pipe", "conch_pipe", "loop_map", "conch_map" }

local function run(name, count)
  return conch.go(function()
    local a = conch.chan(1024)
    local t0, c0 = conch.now(), os.clock()
    local b = middles[name](a)
    local consumer = conch.go(function()
      local k = 0
      for _ in b:iter() do k = k + 1 end
      return k
    end)
    conch.go(function()
      for i = 1, count do a:send(i) end
      a:close()
    end)
    local k = consumer:recv()
    local dt, dc = conch.now() - t0, os.clock() - c0
    assert(k == count, name .. ": values lost")
    return { dt * 1e6 / count, dc * 1e9 / count }
  end):recv()
end

local results = {}
for _, name in ipairs(order) do
  run(name, n // 10)  -- warm-up
  results[name] = {}
end
for _ = 1, runs do
  for _, name in ipairs(order) do
    collectgarbage()
    table.insert(results[name], run(name, n))
  end
end
for _, name in ipairs(order) do
  local r = results[name]
  table.sort(r, function(x, y) return x[1] < y[1] end)
  local m = r[(#r + 1) // 2]
  print(("bench=lua_ops case=%s param=n:%d value=%.1f unit=ns/value cpu=%.1f"):format(name, n, m[1], m[2]))
end
