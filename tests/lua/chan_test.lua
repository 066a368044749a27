-- tests/lua/chan_test.lua
-- Channel kinds, close semantics, try operations and the values that travel.
local conch = require "conch"
local T = require "check"

-- ---- kinds ----

T.test("an unbuffered channel hands a value from a go block to the main thread", function()
  local ch = conch.chan()
  conch.go(function() T.eq(ch:send("hi"), true, "send") end)
  T.eq(ch:recv(), "hi")
end)

T.test("an unbuffered channel never buffers: try_send without a receiver fails", function()
  local ch = conch.chan()
  T.eq(ch:try_send(1), false)
  T.eq(ch:try_recv(), nil)
  T.eq(ch:size(), 0)
end)

T.test("a fixed buffer holds n values; the next try_send fails", function()
  local ch = conch.chan(3)
  for i = 1, 3 do T.eq(ch:try_send(i), true, "try_send " .. i) end
  T.eq(ch:try_send(4), false, "full")
  T.eq(ch:size(), 3)
  for i = 1, 3 do T.eq(ch:recv(), i) end
end)

T.test("a send on a full fixed buffer parks until a receiver makes room", function()
  local ch = conch.chan(1)
  ch:send(1)
  local done = conch.go(function() return ch:send(2) end)  -- parks
  T.eq(ch:recv(), 1)
  T.eq(done:recv(), true, "parked send completed")
  T.eq(ch:recv(), 2)
end)

T.test("conch.chan{fixed=n} is a fixed buffer", function()
  local ch = conch.chan { fixed = 2 }
  T.eq(ch:try_send(1), true)
  T.eq(ch:try_send(2), true)
  T.eq(ch:try_send(3), false)
end)

T.test("a dropping buffer keeps the oldest values; sends never park", function()
  local ch = conch.chan { dropping = 2 }
  for i = 1, 5 do T.eq(ch:send(i), true, "send " .. i) end
  T.eq(ch:size(), 2)
  T.eq(ch:recv(), 1)
  T.eq(ch:recv(), 2)
  T.eq(ch:try_recv(), nil)
end)

T.test("a sliding buffer keeps the newest values; sends never park", function()
  local ch = conch.chan { sliding = 2 }
  for i = 1, 5 do T.eq(ch:send(i), true, "send " .. i) end
  T.eq(ch:recv(), 4)
  T.eq(ch:recv(), 5)
  T.eq(ch:try_recv(), nil)
end)

T.test("a promise channel: the first value sticks for every receiver", function()
  local p = conch.promise()
  local waiters = {}
  for i = 1, 3 do waiters[i] = conch.go(function() return p:recv() end) end
  T.eq(p:send("first"), true)
  T.eq(p:send("second"), true, "later sends succeed")
  for i = 1, 3 do T.eq(waiters[i]:recv(), "first", "waiter " .. i) end
  T.eq(p:recv(), "first")
  T.eq(p:try_recv(), "first")
end)

T.test("bad channel arguments are errors", function()
  T.raises(function() conch.chan(-1) end, "capacity")
  T.raises(function() conch.chan { dropping = 0 } end, "must be between 1")
  T.raises(function() conch.chan { dropping = 1, sliding = 1 } end, "one of")
  T.raises(function() conch.chan("x") end)
end)

-- ---- close ----

T.test("close is idempotent and closed() reports it", function()
  local ch = conch.chan(1)
  T.eq(ch:closed(), false)
  ch:close()
  ch:close()
  T.eq(ch:closed(), true)
end)

T.test("values buffered before close are still received, then nil", function()
  local ch = conch.chan(3)
  ch:send(1)
  ch:send(2)
  ch:close()
  T.eq(ch:send(3), false, "send after close")
  T.eq(ch:recv(), 1)
  T.eq(ch:recv(), 2)
  T.eq(ch:recv(), nil)
  T.eq(ch:try_recv(), nil)
end)

T.test("close wakes every parked receiver with nil", function()
  for _, mk in ipairs { function() return conch.chan() end, function() return conch.chan(4) end,
                        function() return conch.chan { dropping = 1 } end,
                        function() return conch.chan { sliding = 1 } end, conch.promise } do
    local ch = mk()
    local rs, parked = {}, 0
    for i = 1, 3 do rs[i] = conch.go(function() parked = parked + 1; return ch:recv() == nil end) end
    -- One Lua state: a go block that counted itself ran on until it parked.
    T.eventually(function() return parked == 3 end, "three receivers parked")
    ch:close()
    for i = 1, 3 do T.eq(rs[i]:recv(), true, "receiver " .. i) end
  end
end)

T.test("close wakes every parked sender with false", function()
  for _, ch in ipairs { conch.chan(), conch.chan(1) } do
    if ch:size() == 0 and ch:try_send(0) then end  -- fill a buffer of 1
    local ss, parked = {}, 0
    for i = 1, 3 do ss[i] = conch.go(function() parked = parked + 1; return ch:send(i) end) end
    T.eventually(function() return parked == 3 end, "three senders parked")
    ch:close()
    for i = 1, 3 do T.eq(ss[i]:recv(), false, "sender " .. i) end
  end
end)

T.test("a promise closed before its value makes receivers get nil", function()
  local p = conch.promise()
  local r = conch.go(function() return p:recv() == nil end)
  p:close()
  T.eq(r:recv(), true)
  T.eq(p:send(1), false)
end)

-- ---- values ----

T.test("booleans, integers, floats and strings keep their Lua types", function()
  local ch = conch.chan(16)
  local vals = { true, false, 42, -7, 2 ^ 53, 1.5, 0.0, "", "bytes\0inside", math.maxinteger, math.mininteger }
  for _, v in ipairs(vals) do ch:send(v) end
  for _, v in ipairs(vals) do
    local got = ch:recv()
    T.eq(got, v)
    T.eq(math.type(got), math.type(v), "number subtype of " .. tostring(v))
  end
end)

T.test("numbers keep subtype, sign and NaN through a parked send in a go block", function()
  -- Unbuffered: each send parks in the go block until the receiver takes it.
  local ch = conch.chan()
  local vals = { 0, -0.0, 2.0, -1, 1 / 0, -1 / 0, 0 / 0, math.maxinteger, math.mininteger, 2 ^ 63, false }
  local sender = conch.go(function()
    for _, v in ipairs(vals) do ch:send(v) end
    return true
  end)
  for _, v in ipairs(vals) do
    local got = ch:recv()
    if v ~= v then
      T.ok(got ~= got and math.type(got) == "float", "NaN arrives as a float NaN")
    else
      T.eq(got, v)
      T.eq(math.type(got), math.type(v), "number subtype of " .. tostring(v))
      if v == 0 and math.type(v) == "float" then T.eq(1 / got, 1 / v, "the sign of " .. tostring(v)) end
    end
  end
  T.eq(sender:recv(), true)
end)

T.test("sending nil is an error", function()
  local ch = conch.chan(1)
  T.raises(function() ch:send(nil) end, "nil")
  T.raises(function() ch:send() end, "nil")
  T.raises(function() ch:try_send(nil) end, "nil")
end)

T.test("functions, coroutines and foreign userdata cannot be sent", function()
  local ch = conch.chan(1)
  T.raises(function() ch:send(print) end, "function")
  T.raises(function() ch:send(coroutine.create(print)) end, "thread")
  T.raises(function() ch:send(io.stdout) end, "userdata")
  T.raises(function() ch:send({ f = print }) end, "function")
  T.eq(ch:size(), 0, "nothing was sent")
end)

T.test("tables are deep-copied when sent", function()
  local ch = conch.chan(1)
  local t = { 1, 2, 3, name = "x", nested = { deep = { true } }, [10] = 1.5 }
  ch:send(t)
  t.name = "changed"  -- after the send: the copy does not see it
  local got = ch:recv()
  T.ok(got ~= t, "a new table")
  T.eq(#got, 3)
  T.eq(got[3], 3)
  T.eq(got.name, "x")
  T.eq(got.nested.deep[1], true)
  T.eq(got[10], 1.5)
  T.eq(math.type(got[1]), "integer")
end)

T.test("a table that contains itself arrives as a copy that contains itself (values_test.lua has more)", function()
  local ch = conch.chan(1)
  local t = {}
  t.self = t
  ch:send(t)
  local got = ch:recv()
  T.ok(not rawequal(got, t) and rawequal(got.self, got), "the cycle, copied")
end)

T.test("channels travel over channels and stay the same channel", function()
  local ch = conch.chan(1)
  local inner = conch.chan(1)
  ch:send(inner)
  local got = ch:recv()
  T.ok(got == inner, "== compares channel identity")
  got:send("through the copy")
  T.eq(inner:recv(), "through the copy")
  ch:send({ reply = inner })
  T.ok(ch:recv().reply == inner, "inside a table")
end)

T.test("for v in ch:iter() receives until the channel is closed and drained", function()
  local ch = conch.chan(4)
  conch.go(function() for i = 1, 10 do ch:send(i) end ch:close() end)
  local got = {}
  for v in ch:iter() do got[#got + 1] = v end   -- main thread: blocks between values
  T.eq(table.concat(got, ","), "1,2,3,4,5,6,7,8,9,10")
  local sum = conch.go(function()
    local src = conch.chan(2)
    conch.go(function() for i = 1, 100 do src:send(i) end src:close() end)
    local s = 0
    for v in src:iter() do s = s + v end         -- in a go block: parks between values
    return s
  end)
  T.eq(sum:recv(), 5050)
end)

T.test("methods check their receiver", function()
  local ch = conch.chan()
  T.raises(function() ch.send({}, 1) end, "conch.chan")
  T.ok(tostring(ch):find("conch.chan", 1, true), "tostring")
end)

T.done("chan")
