-- bench/ipc_lua_bench.lua
-- conch.ipc (Lua) sides of the node-ipc benchmark (bench/run_ipc.sh): an echo server, and clients that time round trips.
--
--   LUA_PATH='lua/?.lua;;' LUA_CPATH='build/lua/?.so' lua5.4 bench/ipc_lua_bench.lua server PATH EXPECT
--       echo "ping" to its sender; after EXPECT echoes print cpu_us_per_event and exit
--   ... lua5.4 bench/ipc_lua_bench.lua client PATH CLIENTS BYTES N
--       CLIENTS connections in this process, N round trips each, 16 in flight; prints a bench= line
-- The same shapes as bench/ipc_node_bench.js (so any client meets any server). Exits 1 on a lost or
-- reordered echo, or after 300 s.
io.stdout:setvbuf("line")
local conch = require "conch"
local ipc = require "conch.ipc"
local mode, where = arg[1], arg[2]

local function fail(why)
  io.stderr:write("ipc_lua_bench: ", why, "\n")
  os.exit(1)
end

if mode == "server" then
  local expect = assert(tonumber(arg[3]), "server PATH EXPECT")
  local srv = assert(ipc.server { path = where })
  local n, enough = 0, conch.chan(1)
  srv:on("ping", function(data, client)
    srv:emit(client, "ping", data)
    n = n + 1
    if n == expect then enough:try_send(true) end
  end)
  print("ready")
  local _, ch = conch.select { enough, conch.timeout(300000) }
  if ch ~= enough then fail("timed out after 300 s") end
  print(("cpu_us_per_event=%.2f"):format(os.clock() * 1e6 / expect))
  conch.sleep(200)  -- the last echoes leave before the sockets close
  srv:close()
elseif mode == "client" then
  local clients, bytes, n = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
  if not (clients and bytes and n) then fail("client PATH CLIENTS BYTES N") end
  local pad = ("x"):rep(bytes)
  local lat, done, connected = {}, conch.chan(clients), conch.chan(clients)
  local cs = {}
  for i = 1, clients do
    local c = ipc.client { id = "c" .. i, path = where, retry = 20 }
    local started = false
    c:on("connect", function()
      if started then fail("reconnected mid-run") end
      started = true
      connected:send(true)
    end)
    cs[i] = c
  end
  for _ = 1, clients do
    local _, ch = conch.select { connected, conch.timeout(30000) }
    if ch ~= connected then fail("could not connect") end
  end
  local t0 = conch.now()
  for i = 1, clients do
    local c = cs[i]
    conch.go(function()
      local sent = 0
      local function ping()
        c:emit("ping", { seq = sent, t = conch.now(), pad = pad })
        sent = sent + 1
      end
      for _ = 1, math.min(16, n) do ping() end
      for got = 0, n - 1 do
        local e
        repeat e = c.events:recv() until e == nil or e.type == "ping"
        if e == nil then fail("the connection ended") end
        if e.data.seq ~= got then fail(("echo %s when %d was due"):format(tostring(e.data.seq), got)) end
        lat[#lat + 1] = conch.now() - e.data.t
        if sent < n then ping() end
      end
      done:send(true)
    end)
  end
  for _ = 1, clients do
    local _, ch = conch.select { done, conch.timeout(300000) }
    if ch ~= done then fail("timed out after 300 s") end
  end
  local secs = (conch.now() - t0) / 1e3
  table.sort(lat)
  local function pct(p) return lat[math.floor(p * (#lat - 1)) + 1] * 1e3 end
  print(("bench=ipc_lua_clients param=clients:%d,payload:%d value=%.0f unit=msg/s p50_us=%.1f p99_us=%.1f"):format(
    clients, bytes, #lat / secs, pct(0.5), pct(0.99)))
  for _, c in ipairs(cs) do c:close() end
else
  fail("unknown mode " .. tostring(mode))
end
