-- tests/lua/values_test.lua
-- Values on channels: tables copied as graphs, the max_value limit, identity of channels and net objects.
local conch = require "conch"
local T = require "check"

-- Sends v through a buffered channel and returns what arrives.
local function roundtrip(v, ch)
  ch = ch or conch.chan(1)
  T.eq(ch:try_send(v), true, "try_send")
  return ch:try_recv()
end

-- Counts the distinct tables reachable from t.
local function count_tables(t, seen)
  seen = seen or {}
  if type(t) ~= "table" or seen[t] then return 0 end
  seen[t] = true
  local n = 1
  for k, v in pairs(t) do n = n + count_tables(k, seen) + count_tables(v, seen) end
  return n
end

-- ---- graphs ----

T.test("a table reachable twice arrives as one table reachable twice (a copy)", function()
  local shared = { x = 1 }
  local r = roundtrip { a = shared, b = shared, list = { shared, shared } }
  T.ok(rawequal(r.a, r.b), "a and b are one table")
  T.ok(rawequal(r.a, r.list[1]) and rawequal(r.a, r.list[2]), "so are the list's items")
  T.ok(not rawequal(r.a, shared), "a copy, not the sender's table")
  T.eq(r.a.x, 1)
  r.a.x = 2
  T.eq(shared.x, 1, "the sender's table is untouched")
end)

T.test("cycles round-trip: a table that contains itself, and two that hold each other", function()
  local t = { name = "t" }
  t.self = t
  local r = roundtrip(t)
  T.ok(rawequal(r.self, r), "r.self is r")
  T.eq(r.name, "t")
  local a, b = { name = "a" }, { name = "b" }
  a.other, b.other = b, a
  local ra = roundtrip { a, b }
  T.ok(rawequal(ra[1].other, ra[2]) and rawequal(ra[2].other, ra[1]), "the cycle is kept")
  T.ok(rawequal(ra[1].other.other, ra[1]))
end)

T.test("a table used as a key and as a value stays one table", function()
  local k = { "key" }
  local r = roundtrip { [k] = k }
  local key, val = next(r)
  T.ok(rawequal(key, val), "key and value are one table")
  T.eq(key[1], "key")
end)

T.test("23 tables nested 22 deep, each holding the previous twice, copy as 23 tables", function()
  -- Copied per path this was 8,388,607 tables; as a graph it is 23.
  local t = { leaf = true }
  for i = 1, 22 do t = { t, t, depth = i } end
  local r = roundtrip(t)
  T.eq(count_tables(r), 23, "distinct tables")
  local walk, depth = r, 0
  while walk[1] do
    T.ok(rawequal(walk[1], walk[2]), "both items are one table at depth " .. depth)
    walk, depth = walk[1], depth + 1
  end
  T.eq(depth, 22)
  T.eq(walk.leaf, true)
end)

T.test("a graph comes back from a go block and between go blocks", function()
  local ch = conch.chan()
  local got = conch.go(function()
    local v = ch:recv()
    return v
  end)
  local t = { n = 1 }
  t.me = t
  t.pair = { t, t }
  ch:send(t)
  local r = got:recv()
  T.ok(rawequal(r.me, r) and rawequal(r.pair[1], r) and rawequal(r.pair[2], r), "the cycle and sharing survive")
end)

T.test("a long cyclic list copies whole; nesting past the limit is refused with a clear error", function()
  local head = { i = 1 }
  local node = head
  for i = 2, 150 do
    node.next = { i = i }
    node = node.next
  end
  node.next = head  -- a ring of 150
  local r = roundtrip(head)
  local n, p = 0, r
  repeat
    n = n + 1
    p = p.next
  until rawequal(p, r) or n > 200
  T.eq(n, 150, "ring length")
  local deep = {}
  for _ = 1, 300 do deep = { deep } end
  T.raises(function() conch.chan(1):send(deep) end, "nested more than")
end)

-- ---- the size limit ----

T.test("a value larger than max_value is refused; the channel works on", function()
  local ch = conch.chan { fixed = 4, max_value = 1000 }
  T.raises(function() ch:send(("x"):rep(2000)) end, "max_value of 1000 bytes")
  local big = {}
  for i = 1, 200 do big[i] = i end
  T.raises(function() ch:try_send(big) end, "max_value")
  T.raises(function() conch.select { { ch, big }, default = 0 } end, "max_value")
  T.eq(ch:size(), 0, "nothing was sent")
  T.eq(ch:send({ "small" }), true)
  T.eq(ch:recv()[1], "small")
end)

T.test("the default max_value allows ordinary values, shared strings counted once per use", function()
  local s = ("y"):rep(1 << 20)
  local r = roundtrip { s, s, s }
  T.eq(#r[3], 1 << 20)
end)

T.test("a string used many times counts each time: a value too big once expanded is refused", function()
  -- 4096 entries holding one 512-byte string: over 2 MiB as copied.
  local s = ("z"):rep(512)
  local t = {}
  for i = 1, 4096 do t[i] = s end
  local ch = conch.chan { fixed = 1, max_value = 1 << 20 }
  T.raises(function() ch:send(t) end, "max_value of 1048576 bytes")
  T.eq(ch:try_send({ s }), true, "the channel works on")
end)

-- ---- identity ----

T.test("a channel that comes back is the same Lua object, also as a table key", function()
  local x = conch.chan()
  T.ok(rawequal(roundtrip(x), x), "the same userdata")
  local r = roundtrip { [x] = "found", list = { x } }
  T.eq(r[x], "found", "a channel key keeps its identity")
  T.ok(rawequal(r.list[1], x))
  local done = conch.go(function() return x end)
  T.ok(rawequal(done:recv(), x), "a go block returns the same object")
end)

-- ---- net objects on channels ----

T.test("a socket travels to a go block, which uses it; a go block returns one", function()
  local srv = assert(conch.listen("127.0.0.1:0", { framing = "lines" }))
  local ch = conch.chan()
  local writer = conch.go(function()
    local s = ch:recv()
    s.output:send("from the go block")
    return s
  end)
  local client = assert(conch.connect(srv:address(), { framing = "lines" }))
  ch:send(client)
  local back = writer:recv()
  T.ok(rawequal(back, client), "the returned socket is the same object")
  local peer = srv.connections:recv()
  T.eq(peer.input:recv(), "from the go block")
  local opener = conch.go(function()
    return assert(conch.connect(srv:address(), { framing = "lines" }))
  end)
  local s2 = opener:recv()
  T.eq(getmetatable(s2).__name, "conch.socket")
  local peer2 = srv.connections:recv()
  s2.output:send("second")
  T.eq(peer2.input:recv(), "second")
  for _, s in ipairs { client, peer, s2, peer2 } do s:close() end
  srv:close()
end)

T.test("servers and UDP sockets travel too, inside tables, and keep their identity", function()
  local srv = assert(conch.listen("127.0.0.1:0"))
  local u = assert(conch.udp("127.0.0.1:0"))
  local r = roundtrip { srv = srv, u = u, [u] = "udp key" }
  T.ok(rawequal(r.srv, srv) and rawequal(r.u, u), "the same objects")
  T.eq(r[u], "udp key")
  local accepted = conch.go(function(box)
    local s = box.srv.connections:recv()
    s.output:send("hi")
    return true
  end, r)
  local c = assert(conch.connect(srv:address()))
  T.eq(c.input:recv(), "hi")
  T.eq(accepted:recv(), true)
  c:close()
  srv:close()
  u:close()
end)

T.test("other userdata still cannot be sent", function()
  T.raises(function() conch.chan(1):send(io.stdout) end, "cannot send a userdata")
  T.raises(function() conch.chan(1):send({ f = io.stdout }) end, "userdata")
end)

T.done("values")
