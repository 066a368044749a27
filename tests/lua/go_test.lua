-- tests/lua/go_test.lua
-- Go blocks: results, many blocks, errors, reply channels, sleep, and how
-- parks pass through the user's own coroutines.
local conch = require "conch"
local T = require "check"

T.test("go passes its arguments and delivers the first result once, then closes", function()
  local r = conch.go(function(a, b, c) return a .. b .. c, "ignored" end, "x", "y", "z")
  T.eq(r:recv(), "xyz")
  T.eq(r:recv(), nil, "closed after the result")
  T.eq(r:closed(), true)
end)

T.test("a go block that returns nothing closes its channel empty", function()
  local r = conch.go(function() end)
  T.eq(r:recv(), nil)
end)

T.test("go blocks started from the main thread run while it waits", function()
  local ch = conch.chan()
  local order = {}
  conch.go(function() order[#order + 1] = "go"; ch:send(1) end)
  order[#order + 1] = "main"
  ch:recv()
  T.eq(table.concat(order, ","), "main,go")
end)

T.test("10,000 go blocks each send one value", function()
  local n = 10000
  local ch = conch.chan(64)
  for i = 1, n do conch.go(function() ch:send(i) end) end
  local sum = 0
  for _ = 1, n do sum = sum + ch:recv() end
  T.eq(sum, n * (n + 1) // 2)
  T.eventually(function() return conch.tasks() == 0 end, "all go blocks ended")
end)

T.test("10,000 go blocks parked at once, then released by close", function()
  local n = 10000
  local gate = conch.chan()
  local done = conch.chan(n)
  for i = 1, n do conch.go(function() gate:recv(); done:send(i) end) end
  T.eventually(function() return conch.tasks() == n end, "all parked")
  gate:close()
  local count = 0
  for _ = 1, n do count = count + (done:recv() and 1 or 0) end
  T.eq(count, n)
end)

T.test("go blocks spawning go blocks (a chain of 1,000)", function()
  local function chain(k, out)
    if k == 0 then out:send("bottom"); return end
    conch.go(chain, k - 1, out)
  end
  local out = conch.chan()
  conch.go(chain, 1000, out)
  T.eq(out:recv(), "bottom")
end)

T.test("an error in a go block closes its result channel and is reported", function()
  local reports = conch.chan(4)
  conch.on_error(function(msg) reports:send(msg) end)
  local r = conch.go(function() error("boom") end)
  T.eq(r:recv(), nil, "result channel closed empty")
  local msg = reports:recv()
  T.ok(msg:find("boom", 1, true), "message: " .. msg)
  T.ok(msg:find("traceback", 1, true), "with a traceback: " .. msg)
  -- Errors after a park, with non-string error objects, too.
  r = conch.go(function() conch.sleep(1); error({ code = 7 }) end)
  T.eq(r:recv(), nil)
  T.ok(reports:recv():find("table", 1, true), "a table error object")
  -- Returning something that cannot travel is reported as well.
  r = conch.go(function() return print end)
  T.eq(r:recv(), nil)
  T.ok(reports:recv():find("function", 1, true), "unsendable result")
  conch.on_error(nil)
end)

T.test("an error in an error handler does not crash the process", function()
  local called = false
  conch.on_error(function() called = true; error("handler fails too") end)
  local r = conch.go(function() error("first") end)
  T.eq(r:recv(), nil)
  T.eventually(function() return called end, "the handler ran")
  T.eq(conch.go(function() return "alive" end):recv(), "alive", "go blocks still run")
  conch.on_error(nil)
end)

T.test("to-be-closed variables of a failing go block are closed", function()
  local closed = conch.chan(1)
  local r = conch.go(function()
    local guard <close> = setmetatable({}, { __close = function() closed:try_send("closed") end })
    conch.sleep(1)
    error("fail")
  end)
  T.eq(r:recv(), nil)
  T.eq(closed:recv(), "closed")
end)

T.test("reply channels: a server answers each request on the channel it carries", function()
  local requests = conch.chan()
  conch.go(function()
    for req in function() return requests:recv() end do
      req.reply:send(req.a + req.b)
    end
  end)
  local clients = {}
  for i = 1, 20 do
    clients[i] = conch.go(function()
      local reply = conch.chan()
      requests:send({ a = i, b = 100, reply = reply })
      return reply:recv()
    end)
  end
  for i = 1, 20 do T.eq(clients[i]:recv(), i + 100, "client " .. i) end
  requests:close()
end)

T.test("sleep in a go block lets others run; sleep(0) yields", function()
  local order = {}
  local a = conch.go(function() conch.sleep(20); order[#order + 1] = "slow" end)
  local b = conch.go(function() conch.sleep(0); order[#order + 1] = "fast" end)
  a:recv()
  b:recv()
  T.eq(table.concat(order, ","), "fast,slow")
  local t0 = conch.now()
  conch.go(function() conch.sleep(15) end):recv()
  T.ok(conch.now() - t0 >= 14, "slept")
end)

T.test("plain coroutine.yield inside the user's own coroutines passes through", function()
  local r = conch.go(function()
    local gen = coroutine.wrap(function()
      for i = 1, 3 do coroutine.yield(i) end
    end)
    return gen() + gen() + gen()
  end)
  T.eq(r:recv(), 6)
end)

T.test("a channel park inside a user coroutine is passed up to the go block", function()
  local ch = conch.chan()
  local parked = false
  local r = conch.go(function()
    local co = coroutine.create(function(x)
      parked = true
      local v = ch:recv()            -- parks the whole go block
      local y = coroutine.yield(x + v)  -- a plain yield reaches our resume
      return y * 2
    end)
    local ok1, a = coroutine.resume(co, 1)
    local ok2, b = coroutine.resume(co, 21)
    return (ok1 and ok2) and (a .. ":" .. b) or "failed"
  end)
  T.eventually(function() return parked end, "the go block parked")  -- one state: counted, then parked
  ch:send(10)
  T.eq(r:recv(), "11:42")
end)

T.test("parks pass through two levels of coroutine.wrap, and pcall", function()
  local ch = conch.chan()
  local r = conch.go(function()
    local outer = coroutine.wrap(function()
      local inner = coroutine.wrap(function()
        local ok, v = pcall(function() return ch:recv() end)
        coroutine.yield(ok and v)
      end)
      coroutine.yield(inner() + 1)
    end)
    return outer()
  end)
  -- try_send on the unbuffered ch succeeds only once the inner recv is parked.
  conch.go(function() T.poll(function() return ch:try_send(41) end, 5000) end)
  T.eq(r:recv(), 42)
end)

T.test("a generator coroutine that receives from a channel, driven by a go block", function()
  local src = conch.chan(10)
  for i = 1, 5 do src:send(i) end
  src:close()
  local r = conch.go(function()
    local function values()
      return coroutine.wrap(function()
        for v in function() return src:recv() end do coroutine.yield(v) end
      end)
    end
    local sum = 0
    for v in values() do sum = sum + v end
    return sum
  end)
  T.eq(r:recv(), 15)
end)

T.test("parking where a go block cannot yield is a clear error", function()
  local ch = conch.chan()
  local r = conch.go(function()
    local ok, err = pcall(table.sort, { 2, 1 }, function(a, b) ch:recv(); return a < b end)
    return not ok and tostring(err) or "no error"
  end)
  local msg = r:recv()
  T.ok(msg:find("cannot wait on a channel here", 1, true), msg)
end)

T.test("a go block's coroutine cannot be resumed by user code", function()
  local gate = conch.chan()
  local box = {}
  local r = conch.go(function() box.co = coroutine.running(); gate:recv(); return "ok" end)
  -- Set in the same step that parks it on gate.
  T.eventually(function() return box.co ~= nil end, "the go block ran")
  T.eq(type(box.co), "thread")
  local ok, err = coroutine.resume(box.co)
  T.eq(ok, false)
  T.ok(tostring(err):find("go block", 1, true), tostring(err))
  gate:send(1)
  T.eq(r:recv(), "ok")
end)

T.test("a user coroutine parked on a channel cannot be resumed by other code", function()
  local ch = conch.chan()
  local box = {}
  local r = conch.go(function()
    box.co = coroutine.create(function() return ch:recv() end)
    local ok, v = coroutine.resume(box.co)   -- parks this go block until ch has a value
    return ok and v
  end)
  -- Created in the same step that parks the go block in it.
  T.eventually(function() return box.co ~= nil end, "the go block ran")
  local ok, err = coroutine.resume(box.co)  -- someone else tries to continue it
  T.eq(ok, false)
  T.ok(tostring(err):find("waits on a channel", 1, true), tostring(err))
  ch:send("v")
  T.eq(r:recv(), "v")
end)

T.test("main-thread operations inside user coroutines block as usual", function()
  local ch = conch.chan()
  conch.go(function() ch:send("x") end)
  local co = coroutine.wrap(function() return ch:recv() end)
  T.eq(co(), "x")
end)

T.test("conch.run() waits until every go block has finished", function()
  local done = {}
  for i = 1, 50 do conch.go(function() conch.sleep(i % 5); done[#done + 1] = i end) end
  conch.run()
  T.eq(#done, 50)
  T.eq(conch.tasks(), 0)
  conch.run()  -- nothing left: returns at once
  local r = conch.go(function() return pcall(conch.run) end)
  T.eq(r:recv(), false, "an error inside a go block")
end)

T.done("go")
