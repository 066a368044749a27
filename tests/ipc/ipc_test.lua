-- tests/ipc/ipc_test.lua
-- require "conch.ipc" (node-ipc peers from Lua): options, conch <-> conch, and real node-ipc 9.2.1 both ways.
-- check.lua lives in tests/lua/, beside this folder.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "../lua/?.lua;" .. here .. "../../lua/?.lua;" .. package.path
local conch = require "conch"
local ipc = require "conch.ipc"
local T = require "check"

local NODE = os.getenv("CONCH_NODE") or "/usr/bin/node"
local MODULES = os.getenv("CONCH_NODE_IPC_MODULES")
local PEER = os.getenv("CONCH_NODE_PEER_JS")
local N = 10000

T.test("conch.ipc offers the ipcIO peers under API.md's names", function()
  local ipcio = require "conch.ipcio"
  T.eq(ipc.ipcio_server, ipcio.server, "ipc.ipcio_server")
  T.eq(ipc.ipcio_client, ipcio.client, "ipc.ipcio_client")
end)

local function tmp_path(tag)
  local p = os.tmpname()
  os.remove(p)
  return p .. "-" .. tag
end

local function have_node_ipc()
  if not (MODULES and PEER) then return false, "CONCH_NODE_IPC_MODULES/CONCH_NODE_PEER_JS are not set" end
  local f = io.open(NODE, "r")
  if not f then return false, "node is not installed (" .. NODE .. ")" end
  f:close()
  f = io.open(MODULES .. "/node-ipc/package.json", "r")
  if not f then return false, "node-ipc is not installed in " .. MODULES .. " (the configure step runs npm ci)" end
  local text = f:read("a")
  f:close()
  if not text:find('"version": "9.2.1"', 1, true) then return false, "the installed node-ipc is not 9.2.1" end
  return true
end

-- Starts `node peer.js args...` in the background; returns a handle whose
-- :exit_code() waits (running the loop) for its exit status and :kill() ends it.
local function node_peer(...)
  local args = { ... }
  for i, a in ipairs(args) do args[i] = "'" .. tostring(a) .. "'" end
  local rc, pidf = tmp_path("rc"), tmp_path("pid")
  local cmd = ("(%s %s %s; echo $? > %s.tmp; mv %s.tmp %s) >&2 & echo $! > %s"):format(
    NODE, PEER, table.concat(args, " "), rc, rc, rc, pidf)
  assert(os.execute(cmd))
  local f = assert(io.open(pidf))
  local pid = f:read("n")
  f:close()
  os.remove(pidf)
  local peer = {}
  function peer.exit_code()
    local code
    T.poll(function()
      local r = io.open(rc)
      if r then code = r:read("n"); r:close() end
      return code ~= nil
    end, 120000, 20)
    os.remove(rc)
    return code
  end
  function peer.kill()
    -- the subshell's child is node: kill the whole group of that subshell's children
    -- The subshell dies with node and writes no status: wait until node is gone.
    os.execute(("pkill -9 -P %d; kill -9 %d 2>/dev/null"):format(pid, pid))
    T.poll(function() return not os.execute(("kill -0 %d 2>/dev/null"):format(pid)) end, 10000, 10)
    os.remove(rc)
  end
  return peer
end

local function recv_within(ch, ms)
  local v, got = conch.select{ ch, conch.timeout(ms or 30000) }
  if got ~= ch then error("nothing arrived within " .. (ms or 30000) .. " ms", 2) end
  return v
end

T.test("options are checked strictly, naming the function and the key", function()
  T.raises(function() ipc.server{ id = "x", bogus = 1 } end, "ipc.server: unknown option 'bogus'")
  T.raises(function() ipc.server{ id = 7 } end, "ipc.server: option 'id' must be a string")
  T.raises(function() ipc.server{} end, "ipc.server: give id")
  T.raises(function() ipc.client{ id = "me" } end, "ipc.client: give server")
  T.raises(function() ipc.client{ server = "s", retry = "soon" } end, "option 'retry' must be a number")
  T.raises(function() ipc.client{ server = "s", max_retries = -1 } end, "max_retries")
  T.raises(function() ipc.client{ server = "s", max_depth = 0 } end, "max_depth")
end)

T.test("conch server and client: handlers, emit, broadcast, data.id, order, malformed input", function()
  local id = "conch-lua-" .. tostring(conch.now()):gsub("%.", "")
  local srv = assert(ipc.server{ id = id })
  T.eq(srv:address(), "/tmp/app." .. id, "default path")
  srv:on("ask", function(data, client) srv:emit(client, "answer", { n = data.n, by = client.id }) end)
  local cli = ipc.client{ id = "me", server = id, retry = 20 }
  local answers = conch.chan(2000)
  cli:on("answer", function(data) answers:send(data) end)
  for i = 1, 1000 do assert(cli:emit("ask", { id = "me", n = i })) end
  for i = 1, 1000 do
    local a = recv_within(answers)
    T.eq(a.n, i, "answer order")
    T.eq(a.by, "me", "data.id")
  end
  T.eq(srv:broadcast("news", { to = "all" }), 1, "broadcast reached")
  local ev
  repeat ev = recv_within(cli.events) until ev.type ~= "connect"
  T.eq(ev.type, "news")
  T.eq(ev.data.to, "all")
  -- A malformed message (raw bytes on a plain socket) is an error event; the connection goes on.
  local sock = assert(conch.connect("/tmp/app." .. id))
  sock.output:send('not json\f{"type":"ok","data":{"id":"plain"}}\f')
  local seen = {}
  while seen[#seen] ~= "ok" do
    local e = recv_within(srv.events)
    seen[#seen + 1] = e.type
    if e.type == "error" then T.ok(e.data.message:find("Invalid JSON"), "error names the problem") end
    if e.type == "ok" then T.eq(e.client.id, "plain") end
  end
  T.eq(table.concat(seen, ","), "connect,connect,error,ok", "the ipc client's and the plain socket's connects, then")
  T.eq(srv:malformed(), 1)
  sock:close()
  local gone = recv_within(srv.events)
  T.eq(gone.type, "socket.disconnected")
  T.eq(gone.data, "plain")
  cli:close()
  srv:close()
end)

T.test("raw mode carries bytes", function()
  local srv = assert(ipc.server{ address = "127.0.0.1:0", raw = true })
  local cli = ipc.client{ address = srv:address(), raw = true }
  local sent = ("x"):rep(3000) .. "\f{nope"
  assert(cli:emit(sent))
  local got, from = "", nil
  while #got < #sent do
    local e = recv_within(srv.events)
    if e.type == "data" then got, from = got .. e.data, e.client end
  end
  T.eq(got, sent)
  srv:emit(from, "back")
  local back = ""
  while #back < 4 do
    local e = recv_within(cli.events)
    if e.type == "data" then back = back .. e.data end
  end
  T.eq(back, "back")
  cli:close()
  srv:close()
end)

local ok, why = have_node_ipc()
if not ok then
  T.done("ipc (conch only)")
  T.skip("ipc node-ipc part", why)
end

-- peer.js's server side of the exchange, with two node-ipc clients.
local function lua_server_with_node_clients(opts)
  local srv = assert(ipc.server(opts))
  local where = srv:address()
  local next_seq, disorder = {}, 0
  srv:on("seq", function(data, client)
    local want = next_seq[data.id] or 0
    if data.seq ~= want then disorder = disorder + 1 end
    next_seq[data.id] = want + 1
    srv:emit(client, "seq", data)
  end)
  local c1 = node_peer("client", MODULES, where, N, "c1")
  local c2 = node_peer("client", MODULES, where, N, "c2")
  local done, named = 0, {}
  while done < 2 do
    local ev = recv_within(srv.events, 60000)
    if ev.type == "done" then
      done = done + 1
      named[#named + 1] = ev.client.id
      T.eq(ev.client.id, ev.data.id, "named from data.id")
      srv:emit(ev.client, "whoami", ev.client.id)
      for i = 0, N - 1 do assert(srv:emit(ev.client, "down", { seq = i })) end
      T.ok(srv:broadcast("bcast", { clients = done }) >= 1, "broadcast")
      srv:emit(ev.client, "end", {})
    end
  end
  T.eq(c1.exit_code(), 0, "node client c1")
  T.eq(c2.exit_code(), 0, "node client c2")
  T.eq(disorder, 0, "events out of order")
  T.eq(next_seq.c1, N)
  T.eq(next_seq.c2, N)
  table.sort(named)
  T.eq(table.concat(named, ","), "c1,c2")
  srv:close()
end

T.test("node-ipc clients exchange 10,000 events each way with a Lua server (Unix)", function()
  lua_server_with_node_clients{ path = tmp_path("srv") }
end)

T.test("node-ipc clients exchange 10,000 events each way with a Lua server (TCP)", function()
  lua_server_with_node_clients{ address = "127.0.0.1:0" }
end)

local function free_port()
  local l = assert(conch.listen("127.0.0.1:0"))
  local port = l:address():match(":(%d+)$")
  l:close()
  return "127.0.0.1:" .. port
end

local function lua_client_with_node_server(where, opts)
  local server = node_peer("server", MODULES, where, N)
  local cli = ipc.client(opts)
  for i = 0, N - 1 do assert(cli:emit("seq", { id = "lua", seq = i })) end
  assert(cli:emit("done", { id = "lua" }))
  local up, down, bcasts, disorder, whoami = 0, 0, 0, 0, nil
  while true do
    local ev = recv_within(cli.events, 60000)
    if ev.type == "seq" then
      if ev.data.seq ~= up then disorder = disorder + 1 end
      up = up + 1
    elseif ev.type == "down" then
      if ev.data.seq ~= down then disorder = disorder + 1 end
      down = down + 1
    elseif ev.type == "whoami" then whoami = ev.data
    elseif ev.type == "bcast" then bcasts = bcasts + 1
    elseif ev.type == "end" then break end
  end
  T.eq(up, N)
  T.eq(down, N)
  T.eq(disorder, 0)
  T.eq(whoami, "lua", "the node server's name for us")
  T.eq(bcasts, 1)
  cli:close()
  server.kill()
end

T.test("a Lua client exchanges 10,000 events each way with a node-ipc server (Unix)", function()
  local p = tmp_path("node")
  lua_client_with_node_server(p, { id = "lua", path = p, retry = 50 })
end)

T.test("a Lua client exchanges 10,000 events each way with a node-ipc server (TCP)", function()
  local a = free_port()
  lua_client_with_node_server(a, { id = "lua", address = a, retry = 50 })
end)

T.test("a Lua client reconnects after the node-ipc server restarts", function()
  local p = tmp_path("restart")
  local server = node_peer("echo-server", MODULES, p)
  local cli = ipc.client{ id = "lua", path = p, retry = 50 }
  local function next_of(t)
    while true do
      local ev = recv_within(cli.events)
      if ev.type == t then return ev end
    end
  end
  for round = 1, 2 do
    next_of("connect")
    assert(cli:emit("ping", { id = "lua", round = round }))
    T.eq(next_of("pong").data.round, round)
    if round == 1 then
      server.kill()
      next_of("disconnect")
      T.eq(cli.connected, false)
      server = node_peer("echo-server", MODULES, p)
    end
  end
  cli:close()
  server.kill()
end)

T.test("a node-ipc client reconnects after the Lua server restarts", function()
  local p = tmp_path("restart-lua")
  local peer = node_peer("echo-client", MODULES, p, "", "n1", 2)
  for round = 1, 2 do
    local srv = assert(ipc.server{ path = p })
    while true do
      local ev = recv_within(srv.events)
      if ev.type == "hello" then
        T.eq(ev.data.connects, round)
        T.eq(ev.client.id, "n1")
        srv:emit(ev.client, "bye", {})
        break
      end
    end
    if round == 2 then T.eq(peer.exit_code(), 0, "node echo-client") end
    srv:close()
  end
end)

T.done("ipc")
