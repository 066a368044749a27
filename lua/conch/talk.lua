-- lua/conch/talk.lua
-- luatalk-style IPC over Unix (or TCP) stream sockets, on conch channels.
--
--   local talk = require "conch.talk"
--   local server = talk.SocketServer()
--   server:on_recv(function(client, msg) server:broadcast(msg) end)
--   assert(server:listen("/tmp/talkie"))
--
--   local client = talk.Client()
--   client:on_recv(function(msg) print("received: " .. msg) end)
--   assert(client:connect("/tmp/talkie"))
--   client:send("hello")
--   talk.run()                  -- or talk.Poller():poll(), or talk.poll(ms)
--
-- Differences from luatalk: listen() returns at once (true, or nil, err,
-- code) instead of entering the poll loop; run the loop with talk.run() (until
-- every server and client is closed), talk.poll(ms) (for ms milliseconds), or
-- Poller():poll(). Callbacks run in go blocks, so they may block on channels
-- and call send/broadcast; an error in a callback is reported and the
-- connection keeps going. A client whose peer hangs up leaves `connections`
-- (and on_close(fn) hears of it). Messages are raw bytes by default, as in
-- luatalk (one callback per chunk received); pass {framing = "lines"} (or any
-- conch socket option) to listen/connect for framed messages.
local conch = require "conch"

local talk = {}

local function report(err)
  io.stderr:write("conch.talk: callback failed: ", tostring(err), "\n")
end

-- Calls fn(...) if set, reporting (not raising) its errors.
local function call(fn, ...)
  if fn then
    local ok, err = xpcall(fn, debug.traceback, ...)
    if not ok then report(err) end
  end
end

-- ---- server ----

local Server = {}
Server.__index = Server

--- A server; `connections` maps client ids (integers, in accept order) to
--- connection objects {id = n, socket = conch socket}.
function talk.SocketServer()
  return setmetatable({ connections = {}, next_id = 0 }, Server)
end

function Server:on_recv(fn) self.recv_cb = fn end
function Server:on_connect(fn) self.connect_cb = fn end
function Server:on_close(fn) self.close_cb = fn end

-- Reads one client until it hangs up, calling on_recv for every message.
function Server:serve(conn)
  for msg in conn.socket.input:iter() do call(self.recv_cb, conn.id, msg) end
  conn.socket:close()
  if self.connections[conn.id] == conn then
    self.connections[conn.id] = nil
    call(self.close_cb, conn.id)
  end
end

--- Starts listening on `path` (a Unix path, "@name", or "host:port").
--- Returns true, or nil, message, code.
function Server:listen(path, opts)
  local srv, err, code = conch.listen(path, opts)
  if not srv then return nil, err, code end
  self.srv = srv
  conch.go(function()
    for sock in srv.connections:iter() do
      self.next_id = self.next_id + 1
      local conn = { id = self.next_id, socket = sock }
      self.connections[conn.id] = conn
      call(self.connect_cb, conn.id)
      conch.go(self.serve, self, conn)
    end
  end)
  return true
end

--- The address the server listens on.
function Server:address() return self.srv and self.srv:address() end

--- Sends msg to one client (an id or a connection). False if it is gone.
function Server:send(client, msg)
  local conn = type(client) == "table" and client or self.connections[client]
  if not conn then return false end
  return conn.socket.output:send(msg)
end

--- Sends msg to every connected client; returns how many it reached.
function Server:broadcast(msg)
  local n = 0
  for _, conn in pairs(self.connections) do
    if conn.socket.output:send(msg) then n = n + 1 end
  end
  return n
end

--- Closes the listener and every client connection.
function Server:close()
  if self.srv then self.srv:close() end
  for id, conn in pairs(self.connections) do
    conn.socket:close()
    self.connections[id] = nil
  end
end

-- ---- client ----

local Client = {}
Client.__index = Client

function talk.Client() return setmetatable({}, Client) end

function Client:on_recv(fn) self.recv_cb = fn end
function Client:on_close(fn) self.close_cb = fn end

--- Connects to `path`; returns true, or nil, message, code.
function Client:connect(path, opts)
  local sock, err, code = conch.connect(path, opts)
  if not sock then return nil, err, code end
  self.socket = sock
  conch.go(function()
    for msg in sock.input:iter() do call(self.recv_cb, msg) end
    sock:close()
    call(self.close_cb)
  end)
  return true
end

--- Sends msg to the server; false once the connection is gone.
function Client:send(msg)
  return self.socket ~= nil and self.socket.output:send(msg)
end

function Client:close()
  if self.socket then self.socket:close() end
end

-- ---- the loop ----

--- Runs the event loop until every server and client is closed.
function talk.run() conch.run() end

--- Runs the event loop for `ms` milliseconds (default: until all is closed).
function talk.poll(ms)
  if ms then conch.sleep(ms) else conch.run() end
end

local Poller = {}
Poller.__index = Poller

--- luatalk's poller: add/remove are kept for compatibility (conch watches
--- every socket already); poll() runs the loop.
function talk.Poller() return setmetatable({}, Poller) end
function Poller:add() end
function Poller:remove() end
function Poller:poll(ms) talk.poll(ms) end

return talk
