-- examples/lua/producer_consumer.lua
-- Producers and consumers in go blocks over a buffered channel, with a reply
-- channel for the totals and a timeout guarding the wait.
--
--   LUA_CPATH='build/lua/?.so' lua5.4 examples/lua/producer_consumer.lua
local conch = require "conch"

local jobs = conch.chan(16)        -- a fixed buffer of 16: producers park when it is full
local results = conch.chan()       -- unbuffered: each send meets a receive

-- Three producers, each sending five jobs; the last one to finish closes `jobs`.
local producers_left = 3
for p = 1, 3 do
  conch.go(function()
    for i = 1, 5 do jobs:send({ producer = p, n = i }) end   -- tables are copied
    producers_left = producers_left - 1
    if producers_left == 0 then jobs:close() end
  end)
end

-- Two consumers: work until `jobs` is closed and drained, then report a total.
for c = 1, 2 do
  conch.go(function()
    local done = 0
    for job in function() return jobs:recv() end do
      conch.sleep(1)                                          -- pretend to work
      done = done + job.n
    end
    results:send({ consumer = c, total = done })
  end)
end

-- The main thread is outside any go block: recv blocks it and runs the loop.
local grand = 0
for _ = 1, 2 do
  local r, ch = conch.select { results, conch.timeout(5000) }
  assert(ch == results, "timed out")
  print(("consumer %d handled jobs worth %d"):format(r.consumer, r.total))
  grand = grand + r.total
end
print("grand total", grand)   -- 3 producers x (1 + ... + 5) = 45
assert(grand == 45)
