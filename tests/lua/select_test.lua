-- tests/lua/select_test.lua
-- conch.select: recv and send cases, fairness, priority, default, timeouts.
local conch = require "conch"
local T = require "check"

T.test("select returns the value and the channel of the ready case", function()
  local a, b = conch.chan(1), conch.chan(1)
  b:send("from b")
  local v, ch = conch.select { a, b }
  T.eq(v, "from b")
  T.ok(ch == b, "channel b fired")
end)

T.test("select parks until a case is ready", function()
  local a, b = conch.chan(), conch.chan()
  -- try_send on the unbuffered a succeeds only once the select is parked on it.
  conch.go(function() T.poll(function() return a:try_send(7) end, 5000) end)
  local v, ch = conch.select { a, b, conch.timeout(10000) }
  T.eq(v, 7)
  T.ok(ch == a, "channel a fired")
end)

T.test("a send case {ch, v} delivers v and returns true, ch", function()
  local a = conch.chan()
  local r = conch.go(function() return a:recv() end)
  local ok, ch = conch.select { { a, "sent" } }
  T.eq(ok, true)
  T.ok(ch == a, "channel")
  T.eq(r:recv(), "sent")
end)

T.test("a send case on a closed channel returns false", function()
  local a = conch.chan()
  a:close()
  local ok, ch = conch.select { { a, 1 } }
  T.eq(ok, false)
  T.ok(ch == a, "channel")
end)

T.test("a recv case on a closed channel returns nil, ch", function()
  local a, b = conch.chan(), conch.chan()
  b:close()
  local v, ch = conch.select { a, b }
  T.eq(v, nil)
  T.ok(ch == b, "channel")
end)

T.test("select is fair among ready cases", function()
  local a, b = conch.chan(1), conch.chan(1)
  local count = { 0, 0 }
  for _ = 1, 2000 do
    a:try_send(1)
    b:try_send(2)
    local v = conch.select { a, b }
    count[v] = count[v] + 1
  end
  T.ok(count[1] > 800 and count[2] > 800, ("fair split, got %d/%d"):format(count[1], count[2]))
end)

T.test("priority=true: the earliest ready case always wins", function()
  local a, b = conch.chan(1), conch.chan(1)
  for _ = 1, 500 do
    a:try_send(1)
    b:try_send(2)
    local v, ch = conch.select { a, b, priority = true }
    T.eq(v, 1)
    T.ok(ch == a, "a wins")
    b:try_recv()
  end
end)

T.test("default=x: returns x, nil when no case is ready, and never parks", function()
  local a = conch.chan()
  local v, ch = conch.select { a, default = "none" }
  T.eq(v, "none")
  T.eq(ch, nil)
  local b = conch.chan(1)
  b:send(5)
  v, ch = conch.select { a, b, default = "none" }
  T.eq(v, 5)
  T.ok(ch == b, "a ready case beats default")
  v, ch = conch.select { default = false }
  T.eq(v, false)
end)

T.test("a timeout case fires after its time", function()
  local t0 = conch.now()
  local a = conch.chan()
  local to = conch.timeout(30)
  local v, ch = conch.select { a, to }
  local dt = conch.now() - t0
  T.eq(v, nil)
  T.ok(ch == to, "the timeout fired")
  T.ok(dt >= 29, "waited at least 30 ms, got " .. dt)
  T.ok(dt < 1000, "not much longer, got " .. dt)
end)

T.test("timeouts fire in order and close their channels", function()
  local order = {}
  local out = conch.chan(3)
  for _, ms in ipairs { 30, 10, 20 } do
    conch.go(function() conch.timeout(ms):recv(); out:send(ms) end)
  end
  for i = 1, 3 do order[i] = out:recv() end
  T.eq(table.concat(order, ","), "10,20,30")
  local to = conch.timeout(1)
  T.eventually(function() return to:closed() end, "closed after its time")
end)

T.test("a timeout made on the main thread fires while the main thread is busy", function()
  local to = conch.timeout(10)
  local t0 = conch.now()
  while not to:closed() and conch.now() - t0 < 10000 do end  -- busy, never parks
  T.eq(to:closed(), true)
end)

T.test("select inside go blocks: a pipeline with a quit channel", function()
  local data, quit, out = conch.chan(), conch.chan(), conch.chan(10)
  local worker = conch.go(function()
    local n = 0
    while true do
      local v, ch = conch.select { data, quit }
      if ch == quit then return n end
      n = n + v
      out:send(v)
    end
  end)
  for i = 1, 5 do data:send(i) end
  quit:close()
  T.eq(worker:recv(), 15)
end)

T.test("exactly one case commits when several go blocks race", function()
  local a, b = conch.chan(), conch.chan()
  local results = conch.chan(100)
  for _ = 1, 50 do
    conch.go(function() local v = conch.select { a, b }; results:send(v) end)
  end
  for i = 1, 25 do a:send(i) end
  for i = 26, 50 do b:send(i) end
  local seen, sum = 0, 0
  for _ = 1, 50 do
    sum = sum + results:recv()
    seen = seen + 1
  end
  T.eq(seen, 50)
  T.eq(sum, 50 * 51 // 2)
  T.eq(results:try_recv(), nil, "no extra commits")
end)

T.test("select argument errors", function()
  T.raises(function() conch.select {} end, "no cases")
  T.raises(function() conch.select { 42 } end, "not a channel")
  T.raises(function() conch.select { { 42, 1 } } end, "{channel, value}")
  T.raises(function() conch.select { { conch.chan(1), nil } } end, "nil")
end)

T.done("select")
