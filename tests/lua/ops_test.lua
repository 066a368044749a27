-- tests/lua/ops_test.lua
-- core.async's combinators from Lua (pipe ... into) and conch.thread: order, closing, mix modes, topics, errors.
local conch = require "conch"
local T = require "check"

local drain = T.drain

-- Waits (running the loop) until cond() is true; false after a generous bound.
local function eventually(cond) return T.poll(cond, 5000, 1) end

local function list(t) return table.concat(t, ",") end

-- Collects the errors go blocks report while fn runs.
local function with_reports(fn)
  local reports = conch.chan(64)
  conch.on_error(function(msg) reports:try_send(msg) end)
  local ok, err = pcall(fn, reports)
  conch.on_error(nil)
  if not ok then error(err, 0) end
end

-- ---- pipe ----

T.test("pipe moves every value in order and closes `to` when `from` closes", function()
  local from, to = conch.to_chan { 1, 2, 3, 4, 5 }, conch.chan()
  T.ok(rawequal(conch.pipe(from, to), to), "returns to")
  T.eq(list(drain(to)), "1,2,3,4,5")
end)

T.test("pipe with close=false leaves `to` open; it stops once `to` is closed", function()
  local from, to = conch.to_chan { "a", "b" }, conch.chan(4)
  conch.pipe(from, to, false)
  T.eq(to:recv(), "a")
  T.eq(to:recv(), "b")
  T.eq(to:closed(), false, "still open")
  local src = conch.chan(4)
  local dst = conch.chan()
  conch.pipe(src, dst)
  dst:close()
  src:send(1)  -- taken by the pipe, refused by dst
  src:send(2)
  src:send(3)
  T.ok(eventually(function() return src:size() == 2 end), "pipe stopped reading after the refused value")
  src:close()
end)

-- ---- map, filter, remove, mapcat, take, partition, unique ----

T.test("map applies f in order and closes with its source", function()
  local out = conch.map(function(v) return v * v end, conch.to_chan { 1, 2, 3 })
  T.eq(list(drain(out)), "1,4,9")
end)

T.test("map over several channels zips them and closes when the first closes", function()
  local a, b = conch.to_chan { 1, 2, 3 }, conch.to_chan { 10, 20 }
  local out = conch.map(function(x, y) return x + y end, { a, b })
  T.eq(list(drain(out)), "11,22")
end)

T.test("map: an error in f is reported, skips that value, and the output still closes", function()
  with_reports(function(reports)
    local out = conch.map(function(v)
      if v == 2 then error("bad two") end
      return v
    end, conch.to_chan { 1, 2, 3 })
    T.eq(list(drain(out)), "1,3")
    local msg = reports:recv()
    T.ok(msg:find("conch.map", 1, true) and msg:find("bad two", 1, true), msg)
    out = conch.map(function() return nil end, conch.to_chan { 1 })
    T.eq(#drain(out), 0, "a nil result is not sent")
    T.ok(reports:recv():find("nil", 1, true), "and is reported")
  end)
end)

T.test("filter, remove, mapcat, partition and unique follow core.async", function()
  local even = function(v) return v % 2 == 0 end
  T.eq(list(drain(conch.filter(even, conch.to_chan { 1, 2, 3, 4, 5, 6 }))), "2,4,6")
  T.eq(list(drain(conch.remove(even, conch.to_chan { 1, 2, 3, 4, 5, 6 }))), "1,3,5")
  T.eq(list(drain(conch.mapcat(function(v) return { v, v } end, conch.to_chan { 1, 2 }))), "1,1,2,2")
  local parts = drain(conch.partition(2, conch.to_chan { 1, 2, 3, 4, 5 }))
  T.eq(#parts, 3)
  T.eq(list(parts[1]) .. "|" .. list(parts[2]) .. "|" .. list(parts[3]), "1,2|3,4|5")
  T.eq(list(drain(conch.unique(conch.to_chan { 1, 1, 2, 2, 2, 1, 3, 3 }))), "1,2,1,3")
end)

T.test("take gives at most n values, closes, and leaves the rest in the source", function()
  local src = conch.chan(10)
  for i = 1, 5 do src:send(i) end
  T.eq(list(drain(conch.take(3, src))), "1,2,3")
  T.eq(src:closed(), false, "the source is not closed")
  T.eq(src:recv(), 4, "the rest stays")
  T.eq(#drain(conch.take(0, src)), 0, "take(0) is closed at once")
  src:close()
  T.eq(list(drain(conch.take(10, src))), "5", "fewer than n: closes with the source")
end)

-- ---- merge, split ----

T.test("merge takes every value of every source and closes after the last one", function()
  local a, b, c = conch.to_chan { 1, 2, 3 }, conch.to_chan { 10, 20 }, conch.to_chan {}
  local got = drain(conch.merge { a, b, c })
  table.sort(got)
  T.eq(list(got), "1,2,3,10,20")
  -- Each source's own order is kept.
  local x, y = conch.to_chan { 1, 2, 3, 4 }, conch.to_chan { "a", "b", "c" }
  local nums, strs = {}, {}
  for _, v in ipairs(drain(conch.merge { x, y })) do
    if type(v) == "number" then nums[#nums + 1] = v else strs[#strs + 1] = v end
  end
  T.eq(list(nums) .. "|" .. list(strs), "1,2,3,4|a,b,c")
  T.eq(conch.merge({}):recv(), nil, "no sources: closed at once")
end)

T.test("split sends matching values to the first channel, the rest to the second", function()
  local t, f = conch.split(function(v) return v > 2 end, conch.to_chan { 1, 5, 2, 4, 3 }, 10, 10)
  T.eq(list(drain(t)), "5,4,3")
  T.eq(list(drain(f)), "1,2")
end)

-- ---- mult ----

T.test("mult copies every value to every tap, in order, and closes the close=true taps", function()
  local src = conch.chan()
  local m = conch.mult(src)
  local a, b, c = conch.chan(10), conch.chan(10), conch.chan(10)
  T.ok(rawequal(m:tap(a), a), "tap returns its channel")
  m:tap(b)
  m:tap(c, false)
  conch.onto_chan(src, { 1, 2, 3 })
  T.eq(list(drain(a)), "1,2,3")
  T.eq(list(drain(b)), "1,2,3")
  T.eq(m:done():recv(), nil, "done closes after distribution")
  T.eq(c:closed(), false, "close=false tap stays open")
  T.eq(list({ c:recv(), c:recv(), c:recv() }), "1,2,3")
  local late = conch.chan(1)
  m:tap(late)
  T.eq(late:closed(), true, "tapping after the source closed closes the tap")
end)

T.test("mult waits for every tap (a slow tap holds the next value), and untap releases it", function()
  local src = conch.chan()
  local m = conch.mult(src)
  local fast, slow = conch.chan(10), conch.chan()  -- slow: unbuffered, nobody reads it
  m:tap(fast)
  m:tap(slow)
  src:send("v1")
  T.eq(fast:recv(), "v1")
  T.eq(fast:try_recv(), nil)
  local sent = conch.go(function() return src:send("v2") end)
  m:untap(slow)  -- else the mult would wait for slow forever
  T.eq(sent:recv(), true)
  T.eq(fast:recv(), "v2")
  T.eq(slow:closed(), false, "untap does not close")
  src:close()
  T.eq(fast:recv(), nil)
end)

T.test("a tap found closed is untapped; untap_all closes none", function()
  local src = conch.chan()
  local m = conch.mult(src)
  local a, b = conch.chan(10), conch.chan(10)
  m:tap(a)
  m:tap(b)
  b:close()
  src:send(1)
  src:send(2)
  T.eq(list({ a:recv(), a:recv() }), "1,2")
  m:untap_all()
  src:send(3)  -- no tap: dropped
  src:close()
  T.eq(m:done():recv(), nil, "distribution over")
  T.eq(a:try_recv(), nil, "untapped: 3 not delivered")
  T.eq(a:closed(), false)
end)

-- ---- pub/sub ----

T.test("pub delivers each value to its topic's subscribers only", function()
  local src = conch.chan()
  local p = conch.pub(src, function(v) return v.kind end)
  local news, sports, all_news = conch.chan(10), conch.chan(10), conch.chan(10)
  p:sub("news", news)
  p:sub("sports", sports)
  p:sub("news", all_news)
  conch.onto_chan(src, { { kind = "news", n = 1 }, { kind = "sports", n = 2 }, { kind = "weather", n = 3 },
                         { kind = "news", n = 4 } })
  local function ns(ch)
    local r = {}
    for _, v in ipairs(drain(ch)) do r[#r + 1] = v.n end
    return list(r)
  end
  T.eq(ns(news), "1,4")
  T.eq(ns(all_news), "1,4")
  T.eq(ns(sports), "2", "closed when the source closed")
end)

T.test("unsub and unsub_all stop delivery without closing; topic_fn errors skip the value", function()
  with_reports(function(reports)
    local src = conch.chan()
    local p = conch.pub(src, function(v)
      if v == "boom" then error("no topic") end
      return v:sub(1, 1)
    end)
    local a1, a2, b = conch.chan(10), conch.chan(10), conch.chan(10)
    p:sub("a", a1)
    p:sub("a", a2)
    p:sub("b", b, false)
    src:send("apple")
    T.eq(a1:recv(), "apple")
    T.eq(a2:recv(), "apple")
    src:send("boom")
    T.ok(reports:recv():find("no topic", 1, true), "topic_fn's error reported")
    p:unsub("a", a2)
    src:send("avocado")
    T.eq(a1:recv(), "avocado")
    p:unsub_all("a")
    src:send("apricot")  -- no subscriber left for "a": dropped
    src:send("banana")
    T.eq(b:recv(), "banana")
    src:close()
    T.eq(a1:try_recv(), nil, "apricot was not delivered")
    T.eq(a1:closed(), false, "unsub_all closes none")
    T.eq(a2:try_recv(), nil, "a2 got nothing after unsub")
    T.eq(a2:closed(), false)
    T.ok(eventually(function() return p.ended end), "the pub saw the source close")
    T.eq(b:closed(), false, "close=false subscriber stays open")
    local late = conch.chan(1)
    p:sub("a", late)
    T.eq(late:closed(), true, "subscribing after the source closed closes it")
  end)
end)

T.test("a subscriber of two topics is closed only after both delivered their last value", function()
  local src = conch.chan()
  local p = conch.pub(src, function(v) return v.t end, function() return 4 end)
  local both = conch.chan()  -- unbuffered: topic deliveries wait for the reader
  p:sub("x", both)
  p:sub("y", both)
  conch.onto_chan(src, { { t = "x", n = 1 }, { t = "y", n = 2 }, { t = "x", n = 3 }, { t = "y", n = 4 } })
  local got = {}
  for _, v in ipairs(drain(both)) do got[#got + 1] = v.n end
  table.sort(got)
  T.eq(list(got), "1,2,3,4", "nothing lost to an early close")
end)

T.test("pub's buf_fn buffers a topic: a slow subscriber does not stall others at once", function()
  local src = conch.chan()
  local p = conch.pub(src, function(v) return v % 2 end, function(topic) return topic == 0 and 4 or nil end)
  local even, odd = conch.chan(), conch.chan(10)
  p:sub(0, even)
  p:sub(1, odd)
  src:send(2)  -- the topic-0 mult holds it waiting for `even`
  src:send(4)  -- buffered in topic 0's channel
  src:send(1)
  T.eq(odd:recv(), 1, "odd flows while even is not read")
  T.eq(list({ even:recv(), even:recv() }), "2,4")
  src:close()
  T.eq(odd:recv(), nil)
end)

-- ---- mix ----

local function filled(...)
  local ch = conch.chan(10)
  for _, v in ipairs { ... } do ch:send(v) end
  return ch
end

T.test("mix merges its inputs onto out; unmix removes one, not closing it", function()
  local out = conch.chan()
  local m = conch.mix(out)
  local a, b = filled("a1", "a2"), filled("b1")
  m:admix(a)
  m:admix(b)
  local got = { out:recv(), out:recv(), out:recv() }
  table.sort(got)
  T.eq(list(got), "a1,a2,b1")
  m:unmix(a)
  a:send("a3")
  b:send("b2")
  T.eq(out:recv(), "b2")
  T.eq(a:size(), 1, "an unmixed input is not read")
  T.eq(a:closed(), false)
  out:close()
  m:unmix_all()  -- a change: the mix notices out is closed and ends
end)

T.test("mix: a paused input is not read, a muted input is read and dropped", function()
  local out = conch.chan()
  local m = conch.mix(out)
  local a, b, c = filled("a1", "a2", "a3"), conch.chan(), filled("c1", "c2")
  m:toggle(a, { pause = true })
  m:toggle(c, { mute = true })
  m:admix(b)
  b:send("b1")
  T.eq(out:recv(), "b1")
  T.ok(eventually(function() return c:size() == 0 end), "muted input drained")
  b:send("b2")
  T.eq(out:recv(), "b2", "muted values never reach out")
  T.eq(a:size(), 3, "paused input untouched")
  m:toggle(a, { pause = false })
  local got = { out:recv(), out:recv(), out:recv() }
  T.eq(list(got), "a1,a2,a3", "unpaused: read in order")
  out:close()
  m:unmix_all()
end)

T.test("mix: solo (solo_mode mute drops the others, pause leaves them unread)", function()
  local out = conch.chan()
  local m = conch.mix(out)
  local a, b = filled("a1", "a2"), filled("b1", "b2")
  m:toggle(a, { solo = true })
  m:admix(b)
  T.eq(list({ out:recv(), out:recv() }), "a1,a2")
  T.ok(eventually(function() return b:size() == 0 end), "mute mode: b read and dropped")
  m:solo_mode("pause")
  b:send("b3")
  b:send("b4")
  a:send("a3")
  T.eq(out:recv(), "a3")
  T.eq(b:size(), 2, "pause mode: b not read")
  m:toggle(a, { solo = false })
  T.eq(list({ out:recv(), out:recv() }), "b3,b4", "no solo left: b flows again")
  out:close()
  m:unmix_all()
end)

T.test("mix: an input that closes is removed; options are checked", function()
  local out = conch.chan()
  local m = conch.mix(out)
  local a = filled("a1")
  a:close()
  m:admix(a)
  T.eq(out:recv(), "a1", "buffered values of a closed input still flow")
  T.raises(function() m:toggle(a, { mute = true, loud = true }) end, "unknown option 'loud'")
  T.raises(function() m:toggle(a, { mute = 1 }) end, "'mute' must be a boolean")
  T.raises(function() m:solo_mode("loud") end, "mix:solo_mode")
  T.raises(function() m:admix(42) end, "must be a channel")
  T.raises(function() m.admix({}, a) end, "call it as m:admix")
  out:close()
  m:unmix_all()
end)

-- ---- pipelines ----

T.test("pipeline with n = 4 keeps input order though results finish out of order", function()
  local to = conch.chan(100)
  local done = conch.pipeline(4, to, function(v)
    conch.sleep((7 * v) % 5)  -- the work: parks for 0..4 ms
    return v * 10
  end, conch.to_chan { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 })
  T.eq(list(drain(to)), "10,20,30,40,50,60,70,80,90,100")
  T.eq(done:recv(), true)
  T.eq(done:recv(), nil)
end)

T.test("pipeline: every non-nil result is sent; errors cost one value; close=false", function()
  with_reports(function(reports)
    local to = conch.chan(100)
    local done = conch.pipeline(3, to, function(v)
      if v == 3 then error("three") end
      if v == 4 then return end
      return v, nil, -v
    end, conch.to_chan { 1, 2, 3, 4, 5 }, false)
    T.eq(done:recv(), true)
    T.eq(to:closed(), false, "close=false")
    to:close()
    T.eq(list(drain(to)), "1,-1,2,-2,5,-5")
    T.ok(reports:recv():find("three", 1, true))
  end)
end)

T.test("pipeline stops reading `from` once `to` is closed", function()
  local from, to = conch.chan(100), conch.chan()
  for i = 1, 50 do from:send(i) end
  local done = conch.pipeline(2, to, function(v) return v end, from)
  T.eq(to:recv(), 1)
  to:close()
  T.eq(done:recv(), true, "the pipeline finishes")
  T.ok(from:size() > 0, "not everything was read")
  from:close()
end)

T.test("pipeline_async waits for each result channel, in input order", function()
  local to = conch.chan(100)
  conch.pipeline_async(3, to, function(v, res)
    conch.go(function()
      conch.sleep((3 * v) % 4)
      res:send(v)
      res:send(v .. "!")
      res:close()
    end)
  end, conch.to_chan { 1, 2, 3, 4 })
  T.eq(list(drain(to)), "1,1!,2,2!,3,3!,4,4!")
end)

T.test("pipeline_blocking runs f in threads and keeps order", function()
  local to = conch.chan(100)
  local done = conch.pipeline_blocking(3, to, function(v) return v * 2, v * 2 + 1 end,
                                       conch.to_chan { 1, 2, 3, 4, 5 })
  T.eq(list(drain(to)), "2,3,4,5,6,7,8,9,10,11")
  T.eq(done:recv(), true)
  local square = function(x) return x * x end
  T.raises(function()
    conch.pipeline_blocking(1, conch.chan(), function(v) return square(v) end, conch.chan())
  end, "conch.pipeline_blocking: f captures the local 'square' (a function)")
end)

-- ---- collections ----

T.test("onto_chan sends a snapshot in order and closes (or not); done closes after", function()
  local ch = conch.chan(10)
  local items = { "x", "y", "z" }
  local done = conch.onto_chan(ch, items)
  items[1] = "changed"
  T.eq(done:recv(), true)
  T.eq(list(drain(ch)), "x,y,z")
  local open = conch.chan(10)
  conch.onto_chan(open, { 1 }, false):recv()
  T.eq(open:closed(), false)
  T.eq(open:recv(), 1)
  T.raises(function() conch.onto_chan(open, { 1, nil, 3, n = 3 }) end, "list[2] is nil")
  T.eq(conch.to_chan({}):recv(), nil, "an empty list: closed at once")
end)

T.test("reduce and into on open and closed channels", function()
  T.eq(conch.reduce(function(acc, v) return acc + v end, 0, conch.to_chan { 1, 2, 3, 4 }), 10)
  local closed = conch.chan()
  closed:close()
  T.eq(conch.reduce(function() error("not called") end, "init", closed), "init")
  local t = conch.into({ "start" }, conch.to_chan { 1, 2 })
  T.eq(list(t), "start,1,2")
  T.eq(#conch.into({}, closed), 0)
  T.raises(function()
    conch.reduce(function() error("reducer failed") end, 0, conch.to_chan { 1 })
  end, "reducer failed")
  -- In a go block they park.
  local r = conch.go(function() return conch.reduce(function(a, v) return a .. v end, "", conch.to_chan { "a", "b" }) end)
  T.eq(r:recv(), "ab")
end)

-- ---- argument checks ----

T.test("every combinator checks its arguments and names itself", function()
  local ch = conch.chan()
  T.raises(function() conch.pipe(ch, 5) end, "conch.pipe: to must be a channel")
  T.raises(function() conch.pipe(ch, ch, "yes") end, "conch.pipe: close must be a boolean")
  T.raises(function() conch.pipe(ch, ch, true, 1) end, "conch.pipe: too many arguments")
  T.raises(function() conch.map(nil, ch) end, "conch.map: f must be a function")
  T.raises(function() conch.map(print, { ch, 3 }) end, "conch.map: ch[2] must be a channel")
  T.raises(function() conch.map(print, ch, "big") end, "conch.map: output buffer")
  T.raises(function() conch.take(-1, ch) end, "conch.take: n must be an integer >= 0")
  T.raises(function() conch.take(1.5, ch) end, "conch.take")
  T.raises(function() conch.merge(ch) end, "conch.merge: chs must be a table of channels")
  T.raises(function() conch.merge { ch, x = ch } end, "found key x")
  T.raises(function() conch.mult(nil) end, "conch.mult: src must be a channel")
  T.raises(function() conch.pub(ch, "kind") end, "conch.pub: topic_fn must be a function")
  T.raises(function() conch.pipeline(0, ch, print, ch) end, "conch.pipeline: n must be an integer >= 1")
  T.raises(function() conch.pipeline_async(1, ch, 3, ch) end, "conch.pipeline_async: af must be a function")
  T.raises(function() conch.to_chan "abc" end, "conch.to_chan: list must be a table")
  T.raises(function() conch.into(ch, ch) end, "conch.into: tbl must be a table")
  T.raises(function() conch.reduce(print, 0, {}) end, "conch.reduce: ch must be a channel")
end)

-- ---- thread ----

T.test("thread runs f on another thread and delivers its result once, then closes", function()
  local gate = conch.chan(1)
  -- f spins (a truly blocking wait) until the main thread opens the gate:
  -- run on this state's loop, it would never let the main thread run.
  local r = conch.thread(function(g)
    local deadline = os.time() + 30
    while g:try_recv() == nil do
      if os.time() > deadline then return "gave up" end
    end
    return "opened", "second result dropped"
  end, gate)
  gate:send(true)
  T.eq(r:recv(), "opened")
  T.eq(r:recv(), nil, "closed after the result")
end)

T.test("thread copies arguments and upvalues; `conch` is the thread state's module", function()
  local factor = 3
  local config = { name = "job", list = { 1, 2 } }
  local replies = conch.chan(4)
  local r = conch.thread(function(t)
    replies:send(config.name)  -- a channel upvalue: the same channel
    local ch = conch.chan(1)   -- the upvalue `conch` is rebound
    ch:send(t.x * factor)
    conch.sleep(1)
    return ch:recv() + #config.list
  end, { x = 7 })
  T.eq(r:recv(), 23)
  T.eq(replies:recv(), "job")
  factor = 4  -- only the snapshot crossed
  T.eq(conch.thread(function() return factor end):recv(), 4, "captured when called")
  T.eq(conch.thread(function() return nil end):recv(), nil, "nil: closes empty")
end)

T.test("thread says clearly what cannot cross", function()
  local function helper() return 1 end
  T.raises(function() conch.thread(function() return helper() end) end,
           "conch.thread: f captures the local 'helper' (a function)")
  T.raises(function() conch.thread(print) end, "conch.thread: f must be a Lua function")
  T.raises(function() conch.thread(function() end, print) end, "conch.thread: argument 1 (a function)")
  local co = coroutine.create(function() end)
  T.raises(function() conch.thread(function() return co end) end, "'co' (a thread)")
  with_reports(function(reports)
    T.eq(conch.thread(function() return print end):recv(), nil)
    T.ok(reports:recv():find("f returned a function", 1, true), "an unsendable result is reported")
    T.eq(conch.thread(function() error("thread boom") end):recv(), nil, "an error: closes empty")
    local msg = reports:recv()
    T.ok(msg:find("conch.thread", 1, true) and msg:find("thread boom", 1, true), msg)
  end)
end)

T.test("thread: a global `conch` that is the module is the thread state's module", function()
  local f = load("return type(conch) == 'table' and type(conch.chan) == 'function'")
  local saved = rawget(_G, "conch")
  rawset(_G, "conch", nil)
  local without = conch.thread(f):recv()
  rawset(_G, "conch", conch)
  local with = conch.thread(f):recv()
  rawset(_G, "conch", saved)
  T.eq(without, false, "no global conch here: none there")
  T.eq(with, true)
end)

T.test("several threads run at once", function()
  local n = 4
  local arrived = conch.chan(n)
  local release = conch.chan()
  local rs = {}
  for i = 1, n do
    rs[i] = conch.thread(function(k)
      arrived:send(k)
      release:recv()  -- parks the thread's own state until closed
      return k
    end, i)
  end
  for _ = 1, n do T.ok(arrived:recv(), "arrived") end
  release:close()
  local sum = 0
  for i = 1, n do sum = sum + rs[i]:recv() end
  T.eq(sum, 10)
end)

-- ---- the end ----

T.test("every combinator's go block ended once its sources closed", function()
  T.ok(eventually(function() return conch.tasks() == 0 end), "go blocks left: " .. conch.tasks())
end)

T.done("ops")
