-- bench/lua/run.lua
-- Lua channel workloads, the same as workloads A and B of bench/go/main.go
-- and bench/chan_workloads.cpp, on one loop thread:
--   A  ping-pong over two unbuffered channels (ns per round trip)
--   B  SPSC over a channel with a 1024 buffer (ns per message)
--
--   LUA_CPATH='build/lua/?.so' lua5.4 bench/lua/run.lua A 1000000 [impl-name]
-- (conch_bench_lua runs this same file through the embedding API.)
-- Prints: bench=<name> impl=<impl> param=threads:1/n:<n> value=<ns> unit=ns/op cpu=<ns>
-- (cpu: the process's CPU time per op, os.clock(), as the Go and C++ programs report it)
-- Both sides run in go blocks (as Go's goroutines do); warm-up n/10 first.
local conch = require "conch"

local which, n, impl = arg[1] or "A", math.tointeger(tonumber(arg[2] or "1000000")), arg[3] or "lua"

local function pingpong(count)
  local ping, pong = conch.chan(), conch.chan()
  conch.go(function()
    for v in ping:iter() do pong:send(v) end
  end)
  return conch.go(function()
    local sum = 0
    local t0, c0 = conch.now(), os.clock()
    for i = 0, count - 1 do
      ping:send(i)
      sum = sum + pong:recv()
    end
    local dt, dc = conch.now() - t0, os.clock() - c0
    ping:close()
    assert(sum == count * (count - 1) // 2, "checksum")
    return { dt * 1e6 / count, dc * 1e9 / count }
  end):recv()
end

local function spsc(count)
  return conch.go(function()
    local c = conch.chan(1024)
    local t0, c0 = conch.now(), os.clock()
    local consumer = conch.go(function()
      local s = 0
      for v in c:iter() do s = s + v end
      return s
    end)
    conch.go(function()
      for i = 0, count - 1 do c:send(i) end
      c:close()
    end)
    local s = consumer:recv()
    local dt, dc = conch.now() - t0, os.clock() - c0
    assert(s == count * (count - 1) // 2, "checksum")
    return { dt * 1e6 / count, dc * 1e9 / count }
  end):recv()
end

local workloads = { A = { "A_pingpong", pingpong }, B = { "B_spsc", spsc } }
local w = assert(workloads[which], "workload A or B")
w[2](n // 10)  -- warm-up
collectgarbage()
local r = w[2](n)
print(("bench=%s impl=%s param=threads:1/n:%d value=%.1f unit=ns/op cpu=%.1f"):format(w[1], impl, n, r[1], r[2]))
