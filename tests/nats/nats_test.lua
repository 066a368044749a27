-- tests/nats/nats_test.lua
-- conch.nats from Lua against the nats-server in CONCH_NATS_URL (conch_nats_with_server starts it).
local conch = require "conch"
local T = require "check"
local url = os.getenv("CONCH_NATS_URL")
if not url then T.skip("nats", "CONCH_NATS_URL is not set (run through conch_nats_with_server)") end
local nats = conch.nats

T.test("publish reaches a subscriber as {subject=, data=, reply=}", function()
  local a = assert(nats.connect(url, {name = "lua-a"}))
  local b = assert(nats.connect(url, {name = "lua-b"}))
  local sub = assert(b:subscribe("lua.greet.*"))
  assert(b:flush())
  assert(a:publish("lua.greet.en", "hello", "lua.answers"))
  assert(a:publish("lua.greet.fr", "bonjour"))
  local m = sub.messages:recv()
  T.eq(m.subject, "lua.greet.en")
  T.eq(m.data, "hello")
  T.eq(m.reply, "lua.answers")
  m = sub.messages:recv()
  T.eq(m.data, "bonjour")
  T.eq(m.reply, nil)
  assert(sub:unsubscribe())
  T.eq(sub.messages:recv(), nil)  -- closed after unsubscribe
  a:close()
  b:close()
  local ok, err, code = a:publish("x", "y")
  T.eq(ok, nil)
  T.eq(code, "FAILED_PRECONDITION")
end)

T.test("request/reply with a responder in a go block; no responders; timeouts", function()
  local srv = assert(nats.connect(url))
  local cli = assert(nats.connect(url))
  local svc = assert(srv:subscribe("lua.svc", {queue = "q"}))
  local mute = assert(srv:subscribe("lua.mute"))
  assert(srv:flush())
  conch.go(function()
    for m in svc.messages:iter() do srv:publish(m.reply, "re:" .. m.data) end
  end)
  for i = 1, 20 do
    local r = assert(cli:request("lua.svc", tostring(i), 5000))
    T.eq(r.data, "re:" .. i)
  end
  local r, err, code = cli:request("lua.nobody", "x", 5000)
  T.eq(r, nil)
  T.eq(code, "UNAVAILABLE")
  r, err, code = cli:request("lua.mute", "x", 100)
  T.eq(r, nil)
  T.eq(code, "DEADLINE_EXCEEDED")
  svc:unsubscribe()
  srv:close()
  cli:close()
end)

T.test("queue groups split the work between two subscribers", function()
  local pub = assert(nats.connect(url))
  local w1 = assert(nats.connect(url))
  local w2 = assert(nats.connect(url))
  local s1 = assert(w1:subscribe("lua.jobs", {queue = "workers"}))
  local s2 = assert(w2:subscribe("lua.jobs", {queue = "workers"}))
  assert(w1:flush()); assert(w2:flush())
  for i = 1, 100 do assert(pub:publish("lua.jobs", tostring(i))) end
  assert(pub:flush())
  local seen, n1, n2 = {}, 0, 0
  for _ = 1, 100 do
    local v, ch = conch.select{s1.messages, s2.messages, conch.timeout(5000)}
    assert(v, "a job did not arrive")
    assert(not seen[v.data], "a job came twice")
    seen[v.data] = true
    if ch == s1.messages then n1 = n1 + 1 else n2 = n2 + 1 end
  end
  T.eq(n1 + n2, 100)
  assert(n1 > 0 and n2 > 0, "one member got everything")
  pub:close(); w1:close(); w2:close()
end)

T.test("a slow subscriber with when_full='drop' counts what it dropped", function()
  local pub = assert(nats.connect(url))
  local c = assert(nats.connect(url))
  local s = assert(c:subscribe("lua.slow", {capacity = 2}))
  assert(c:flush())
  for i = 1, 50 do assert(pub:publish("lua.slow", tostring(i))) end
  assert(pub:flush())
  assert(c:flush())
  T.eventually(function() local st = s:stats(); return st.delivered + st.dropped == 50 end, "all counted")
  local st = s:stats()
  assert(st.dropped > 0)
  -- The subscription holds its capacity (2), plus the one message the pump
  -- has in hand: not a second buffer of the same size on the Lua side.
  assert(st.delivered <= 3, "held " .. st.delivered .. " messages with capacity 2")
  for i = 1, st.delivered do T.eq(s.messages:recv().data, tostring(i)) end
  c:close()
  T.eq(s.messages:recv(), nil)
  pub:close()
end)

T.test("drain delivers what was sent, then closes the channel", function()
  local pub = assert(nats.connect(url))
  local c = assert(nats.connect(url))
  local s = assert(c:subscribe("lua.drain"))
  assert(c:flush())
  for i = 1, 10 do assert(pub:publish("lua.drain", tostring(i))) end
  assert(pub:flush())
  assert(c:drain())
  local got = 0
  for m in s.messages:iter() do got = got + 1; T.eq(m.data, tostring(got)) end
  T.eq(got, 10)
  pub:close()
end)

T.test("options are strict; bad arguments are errors that name them", function()
  local ok, err = pcall(nats.connect, url, {nmae = "x"})
  T.eq(ok, false)
  assert(err:find("unknown option 'nmae'", 1, true), err)
  ok, err = pcall(nats.connect, url, {reconnect = "yes"})
  T.eq(ok, false)
  assert(err:find("reconnect", 1, true), err)
  local c = assert(nats.connect(url))
  ok, err = pcall(c.subscribe, c, "x", {when_full = "explode"})
  T.eq(ok, false)
  assert(err:find("when_full", 1, true), err)
  ok, err = pcall(c.request, c, "x", "y", -1)
  T.eq(ok, false)
  local r, msg, code = c:publish("bad subject", "x")
  T.eq(r, nil)
  T.eq(code, "INVALID_ARGUMENT")
  local none, e2, code2 = nats.connect("nats://127.0.0.1:1", {reconnect = false, connect_timeout = 500})
  T.eq(none, nil)
  assert(code2 ~= nil and e2 ~= nil)
  c:close()
end)

T.done("nats")
