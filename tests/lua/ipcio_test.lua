-- tests/lua/ipcio_test.lua
-- require "conch.ipcio": Lua ipcIO server and clients, against each other and against the node test peer.
local conch = require "conch"
local T = require "check"
local ipcio = require "conch.ipcio"
local util = require "conch.util"

local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local peer = here .. "/../ipcio/ipcio_peer.js"
local seq = 0
local function domain()
  seq = seq + 1
  return ("conch-lua-%d-%d-%d"):format(os.time(), math.random(1, 1e9), seq)
end

-- The next event of `kind` (and `command`) within 10 s, others skipped.
local function next_event(ch, kind, command)
  local deadline = conch.timeout(10000)
  while true do
    local e, c = conch.select { ch, deadline }
    if c == deadline or e == nil then return nil end
    if e.kind == kind and (command == nil or e.command == command) then return e end
  end
end

T.test("strict options and reserved commands", function()
  T.raises(function() ipcio.server { domian = "x" } end, "unknown option 'domian'")
  T.raises(function() ipcio.client { name = 3 } end, "option 'name' must be a string")
  T.raises(function() ipcio.server { domain = "a/b" } end, "without '/'")
  local s = assert(ipcio.server { domain = domain() })
  T.raises(function() s:handle("deliver", function() end) end, "reserved")
  s:close()
end)

T.test("Lua server and clients: send, deliver, emit, deliver_to, broadcast, discover, data as sent", function()
  local d = domain()
  local s = assert(ipcio.server { domain = d })
  s:handle("ping", function(data, name) s:emit(name, "pong", data); return data end)
  s:handle("kind", function(data) return type(data) .. ":" .. tostring(data) end)
  local a = assert(ipcio.client { domain = d, name = "a" })
  local b = assert(ipcio.client { domain = d, name = "b" })
  local dup, err = ipcio.client { domain = d, name = "a" }
  T.eq(dup, nil, "second 'a'")
  T.ok(tostring(err):find("201", 1, true), "error 201: " .. tostring(err))
  T.ok(a:send("ping", { seq = 1, text = "}{" }), "send")
  local pong = next_event(a.events, "command", "pong")
  T.eq(pong and pong.data.text, "}{", "pong carries }{")
  T.eq(a:deliver("ping", { seq = 2 }).seq, 2, "deliver returns the handler's result")
  T.eq(a:deliver("kind", 0), "number:0", "0 as sent")
  T.eq(a:deliver("kind", false), "boolean:false", "false as sent")
  T.eq(a:deliver("kind", ""), "string:", '"" as sent')
  b:handle("double", function(n) return n * 2 end)
  T.eq(a:deliver_to("b", "double", 21), 42, "client-to-client delivery")
  T.ok(a:emit("b", "hello", { from = "a" }), "emit")
  T.eq(next_event(b.events, "command", "hello").data.from, "a", "client-to-client emit")
  a:broadcast("news", { 1, 2, 3 })
  T.eq(#next_event(a.events, "command", "news").data, 3, "broadcast reaches the sender")
  T.eq(#next_event(b.events, "command", "news").data, 3, "broadcast reaches b")
  T.eq(s:broadcast("all", "x"), 2, "server broadcast")
  local found = a:discover()
  T.eq(table.concat(found.clients, ","), "a,b", "discover clients")
  T.eq(table.concat(found.command_handlers, ","), "kind,ping", "discover handlers")
  T.eq(table.concat(s:clients(), ","), "a,b", "clients()")
  a:close()
  T.eq(next_event(s.events, "disconnect").name, "a", "disconnect event")
  b:close()
  s:close()
end)

T.test("a Lua client reconnects when the server restarts and sends what was queued", function()
  local d = domain()
  local s = assert(ipcio.server { domain = d })
  local c = assert(ipcio.client { domain = d, name = "r", reconnect = 200 })
  s:close()
  T.ok(next_event(c.events, "disconnect"), "disconnect seen")
  for i = 1, 3 do T.ok(c:send("queued", i), "queued " .. i) end
  local s2 = assert(ipcio.server { domain = d })
  for i = 1, 3 do
    local e = next_event(s2.events, "command", "queued")
    T.eq(e and e.data, i, "queued message " .. i)
  end
  c:close()
  s2:close()
end)

-- node peers: skipped without node.
local have_node = os.execute("command -v node >/dev/null 2>&1")

T.test("Lua clients with the node peer's server", function()
  if not have_node then return T.ok(true, "no node") end
  local d = domain()
  local p = io.popen(("node %q server /tmp/IPC.io %q >/dev/null 2>&1"):format(peer, d), "w")
  T.eventually(function()  -- the file appears at bind, before listen: try a connection
    local probe = util.stat("/tmp/IPC.io." .. d) and conch.connect("/tmp/IPC.io." .. d)
    if probe then probe:close() end
    return probe
  end, "peer listening", 20000)
  local a = assert(ipcio.client { domain = d, name = "alpha" })
  local b = assert(ipcio.client { domain = d, name = "beta" })
  local dup, err = ipcio.client { domain = d, name = "alpha" }
  T.ok(dup == nil and tostring(err):find("201", 1, true), "name conflict")
  a:send("ping", { seq = 1 })
  T.eq(next_event(a.events, "command", "pong").data.seq, 1, "pong")
  T.eq(a:deliver("add", { a = 2, b = 3 }), 5, "deliver")
  b:send("ping", { seq = 0 })
  T.ok(next_event(b.events, "command", "pong"), "beta is in")
  b:handle("double", function(n) return n * 2 end)
  a:emit("beta", "hello", "hi")
  T.eq(next_event(b.events, "command", "hello").data, "hi", "emit through the peer")
  T.eq(a:deliver_to("beta", "double", 4), 8, "deliver_to through the peer")
  a:broadcast("news", "n")
  T.ok(next_event(b.events, "command", "news"), "broadcast")
  local found = a:discover()
  table.sort(found.clients)
  T.eq(table.concat(found.clients, ","), "alpha,beta", "discover")
  a:send("quit")
  T.ok(next_event(a.events, "disconnect"), "the peer quit")
  a:close()
  b:close()
  p:close()
end)

T.test("the node peer's clients with a Lua server", function()
  if not have_node then return T.ok(true, "no node") end
  local d = domain()
  local s = assert(ipcio.server { domain = d })
  s:handle("ping", function(data, name) s:emit(name, "pong", data); return data end)
  s:handle("add", function(data) return data.a + data.b end)
  s:handle("ask_broadcast", function(data) s:broadcast("from_server", data) end)
  s:handle("kinds", function(data)
    if data == nil then return "null" end
    if data == false then return "false" end
    if type(data) == "number" then return "number:" .. tostring(data) end
    return type(data) .. ":" .. tostring(data)
  end)
  local rc = os.tmpname()
  os.execute(("(node %q clients /tmp/IPC.io %q; echo $? > %q) &"):format(peer, d, rc))
  local code
  T.eventually(function()
    local f = io.open(rc)
    code = f and f:read("n")
    if f then f:close() end
    return code ~= nil
  end, "the node clients ended", 60000)
  os.remove(rc)
  T.eq(code, 0, "node clients' checks")
  s:close()
end)

T.done("ipcio")
