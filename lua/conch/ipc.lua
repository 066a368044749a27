-- lua/conch/ipc.lua
-- node-ipc peers for Lua (API.md §8): ipc.server{...} and ipc.client{...} over conch sockets and conch.util's json.
--
--   local ipc = require "conch.ipc"
--   local srv = ipc.server{id = "world"}                       -- /tmp/app.world
--   srv:on("message", function(data, client) srv:emit(client, "message", data) end)
--   local cli = ipc.client{id = "hello", server = "world"}     -- or path= / address=
--   cli:emit("message", {id = "hello", text = "hi"})
--   local ev = cli.events:recv()   -- {type=, data=}: events of types without handlers
--
-- Wire (PROTOCOLS.md §1): {"type":T,"data":D} then "\f"; raw = true sends and
-- delivers bytes as they are ("data" events). The C++ side is conch::ipc
-- (include/conch/net/ipc.hpp); both speak the same protocol to node-ipc 9.2.1.
--
-- Invariants:
--  - One reader go block per connection decodes frames in order and
--    dispatches each completely (every handler called in turn, or the
--    `events` send done) before the next: one sender's events are never
--    reordered, and a slow consumer stops reading that sender only.
--  - A malformed frame is one "error" event ({message=, response=}) and a
--    count (`malformed`); the connection goes on. A frame over max_message
--    ends its connection (the socket's max_frame).
--  - `clients` holds exactly the connections whose reader runs; a client's
--    `id` is the last truthy data.id it sent (node-ipc's socket.id).
--  - A client emits only through its queue; the pump of the live connection
--    sends in emit order, so emitting while disconnected waits, not fails.
local conch = require "conch"
local json = require("conch.util").json

local ipc = {}

local NULL = json.null

-- ---- options ----

local function check_options(fn, opts, spec)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error(fn .. ": expects an option table (got " .. type(opts) .. ")", 3) end
  local names = {}
  for k in pairs(spec) do names[#names + 1] = k end
  table.sort(names)
  for k, v in pairs(opts) do
    local want = spec[k]
    if type(k) ~= "string" then
      error(fn .. ": option key of type " .. type(k) .. " is not a name (an option table has only named keys)", 3)
    end
    if not want then
      error(fn .. ": unknown option '" .. k .. "' (it takes " .. table.concat(names, ", ") .. ")", 3)
    end
    if type(v) ~= want then
      error(fn .. ": option '" .. k .. "' must be a " .. want .. " (got " .. type(v) .. ")", 3)
    end
  end
  return opts
end

local function positive(fn, opts, key, default)
  local v = opts[key]
  if v == nil then return default end
  if math.type(v) ~= "integer" or v < 1 then
    error(fn .. ": option '" .. key .. "' must be a positive integer (got " .. tostring(v) .. ")", 3)
  end
  return v
end

-- path, else address, else socket_root .. appspace .. name.
local function where(fn, opts, name)
  if opts.path then return opts.path end
  if opts.address then return opts.address end
  if not name then
    error(fn .. ": give " .. (fn == "ipc.server" and "id" or "server") ..
      " (default path /tmp/app.<id>), path or address", 3)
  end
  local p = (opts.socket_root or "/tmp/") .. (opts.appspace or "app.") .. name
  if not p:find("/", 1, true) then p = "./" .. p end
  return p
end

-- ---- codec ----

local function encode(type_, data)
  if data == nil then data = {} end  -- node-ipc sends {} for missing data
  return '{"type":' .. json.encode(type_) .. ',"data":' .. json.encode(data) .. "}"  -- the socket adds the '\f'
end

-- Whether text nests [ / { at most max deep outside strings.
local function depth_within(text, max)
  local depth, i, in_string = 0, 1, false
  while true do
    local s = text:find(in_string and '[\\"]' or '[%[%]{}"]', i)
    if not s then return true end
    local c = text:byte(s)
    if in_string then
      if c == 92 then i = s + 2 else in_string = false; i = s + 1 end  -- backslash skips a byte
    else
      if c == 34 then in_string = true
      elseif c == 91 or c == 123 then
        depth = depth + 1
        if depth > max then return false end
      elseif depth > 0 then depth = depth - 1 end
      i = s + 1
    end
  end
end

-- Decodes one frame: type, data; or nil, why.
local function decode(frame, max_depth)
  if max_depth < 1000 and not depth_within(frame, max_depth) then
    return nil, "message nests deeper than " .. max_depth
  end
  local msg, err = json.decode(frame)
  if msg == nil then return nil, "Invalid JSON: " .. tostring(err) end
  if type(msg) ~= "table" or type(msg.type) ~= "string" then return nil, 'message has no string "type"' end
  local data = msg.data
  if data == nil then data = NULL end
  return msg.type, data
end

-- node-ipc's data.id: truthy in JavaScript terms (not null/false/0/"").
local function data_id(data)
  if type(data) ~= "table" then return nil end
  local id = data.id
  if id == nil or id == NULL or id == false or id == 0 or id == "" then return nil end
  return id
end

-- ---- shared: handlers, dispatch ----

local function report(what, err)
  io.stderr:write("conch.ipc: ", what, " handler failed: ", tostring(err), "\n")
end

local base = {}
base.__index = base

--- Adds a handler for events of `type` (any time; several run in the order
--- added). Events of that type no longer go to `events`.
function base:on(type_, fn)
  if type(type_) ~= "string" then error("on: the event type must be a string (got " .. type(type_) .. ")", 2) end
  if type(fn) ~= "function" then error("on: the handler must be a function (got " .. type(fn) .. ")", 2) end
  local list = self._handlers[type_]
  if not list then list = {}; self._handlers[type_] = list end
  list[#list + 1] = fn
  return self
end

--- How many malformed messages arrived (each also an "error" event).
function base:malformed() return self._malformed end

-- json.null cannot travel on a channel (a light userdata): on `events` it
-- becomes nil (handlers see it as it is).
local function strip_null(v)
  if v == NULL then return nil end
  if type(v) == "table" then
    for k, x in pairs(v) do
      if x == NULL then v[k] = nil elseif type(x) == "table" then strip_null(x) end
    end
  end
  return v
end

-- Delivers one event to its handlers, or else to `events`. `nulls`: the
-- data may hold json.null.
local function dispatch(obj, type_, data, client, nulls)
  local list = obj._handlers[type_]
  if not list then
    if nulls or data == NULL then data = strip_null(data) end
    obj.events:send({ type = type_, data = data, client = client })
    return
  end
  for i = 1, #list do
    local ok, err = xpcall(list[i], debug.traceback, data, client)
    if not ok then report(type_, err) end
  end
end

-- Reads frames from sock until it ends, dispatching each.
local function read_loop(obj, sock, client)
  local input = sock.input
  local raw, max_depth = obj._raw, obj._max_depth
  while true do
    local frame = input:recv()
    if frame == nil then return end
    if raw then
      dispatch(obj, "data", frame, client)
    else
      local t, data = decode(frame, max_depth)
      if t == nil then
        obj._malformed = obj._malformed + 1
        dispatch(obj, "error", { message = data, response = frame }, client)
      else
        if client then
          local id = data_id(data)
          if id then client.id = id end
        end
        dispatch(obj, t, data, client, frame:find("null", 1, true))
      end
    end
  end
end

local function socket_options(raw, max_message, capacity)
  return {
    framing = raw and "raw" or "delimited", delimiter = (not raw) and "\f" or nil,
    max_frame = max_message, in_capacity = capacity, out_capacity = capacity,
  }
end

local common = {
  id = "string", path = "string", address = "string", socket_root = "string", appspace = "string",
  raw = "boolean", max_message = "number", max_depth = "number", capacity = "number",
}

-- ---- server ----

local server = setmetatable({}, { __index = base })
server.__index = server

--- ipc.server{id=, path= | address=, raw=false, socket_root="/tmp/", appspace="app.",
--- max_message=16 MiB, max_depth=64, capacity=256} -> server (raises on bad options,
--- returns nil, message when it cannot listen).
function ipc.server(opts)
  local spec = {}
  for k, v in pairs(common) do spec[k] = v end
  opts = check_options("ipc.server", opts, spec)
  local at = where("ipc.server", opts, opts.id)
  local max_message = positive("ipc.server", opts, "max_message", 16 * 1024 * 1024)
  local capacity = positive("ipc.server", opts, "capacity", 256)
  local listener, err = conch.listen(at, socket_options(opts.raw, max_message, capacity))
  if not listener then return nil, err end
  local self = setmetatable({
    events = conch.chan(capacity),
    clients = {},  -- client -> true
    _listener = listener, _handlers = {}, _raw = opts.raw or false, _malformed = 0,
    _max_depth = positive("ipc.server", opts, "max_depth", 64),
  }, server)
  conch.go(function()
    while true do
      local sock = listener.connections:recv()
      if sock == nil then return end
      local client = { socket = sock, id = false }
      self.clients[client] = true
      conch.go(function()
        dispatch(self, "connect", NULL, client)
        read_loop(self, sock, client)
        sock.output:close()  -- the peer has gone: finish our side too
        self.clients[client] = nil
        dispatch(self, "socket.disconnected", client.id, client)
      end)
    end
  end)
  return self
end

--- The address the server listens on (the path, or host:port with the real port).
function server:address() return self._listener:address() end

--- Sends one event to `client`; parks while its socket is full. false if it has gone.
function server:emit(client, type_, data)
  if type(client) ~= "table" or not client.socket then error("emit: the first argument must be a client", 2) end
  if self._raw then return client.socket.output:send(type_) end  -- node-ipc raw: emit(socket, bytes)
  if type(type_) ~= "string" then error("emit: the event type must be a string (got " .. type(type_) .. ")", 2) end
  return client.socket.output:send(encode(type_, data))
end

--- Sends one event to every client connected now; returns how many took it.
function server:broadcast(type_, data)
  local frame
  if self._raw then frame = type_ else
    if type(type_) ~= "string" then error("broadcast: the event type must be a string (got " .. type(type_) .. ")", 2) end
    frame = encode(type_, data)
  end
  local targets = {}
  for c in pairs(self.clients) do targets[#targets + 1] = c end
  local n = 0
  for i = 1, #targets do
    if targets[i].socket.output:send(frame) then n = n + 1 end
  end
  return n
end

--- Stops listening, ends every connection (after writing what is queued) and closes `events`.
function server:close()
  self._listener:close()
  for c in pairs(self.clients) do c.socket.output:close() end
  self.events:close()
end

-- ---- client ----

local client = setmetatable({}, { __index = base })
client.__index = client

--- ipc.client{id=, server= | path= | address=, retry=500, max_retries=nil (forever),
--- stop_retrying=false, raw=false, ...} -> client; connects in the background and
--- reconnects after retry ms, as node-ipc's client does.
function ipc.client(opts)
  local spec = { server = "string", retry = "number", max_retries = "number", stop_retrying = "boolean", queue = "number" }
  for k, v in pairs(common) do spec[k] = v end
  opts = check_options("ipc.client", opts, spec)
  local at = where("ipc.client", opts, opts.server)
  local max_message = positive("ipc.client", opts, "max_message", 16 * 1024 * 1024)
  local capacity = positive("ipc.client", opts, "capacity", 256)
  local retry = opts.retry or 500
  if retry < 0 then error("ipc.client: option 'retry' must be at least 0 (got " .. retry .. ")", 2) end
  local max_retries = opts.max_retries
  if max_retries ~= nil and (math.type(max_retries) ~= "integer" or max_retries < 0) then
    error("ipc.client: option 'max_retries' must be a non-negative integer (got " .. tostring(max_retries) .. ")", 2)
  end
  local self = setmetatable({
    id = opts.id, events = conch.chan(capacity), connected = false,
    _queue = conch.chan(positive("ipc.client", opts, "queue", 1024)), _stop = conch.chan(),
    _handlers = {}, _raw = opts.raw or false, _malformed = 0,
    _max_depth = positive("ipc.client", opts, "max_depth", 64),
  }, client)
  local sopts = socket_options(opts.raw, max_message, capacity)
  conch.go(function()
    local left = max_retries or math.huge
    while not self._stop:closed() do
      local sock, err = conch.connect(at, sopts)
      if sock then
        left = max_retries or math.huge
        self.connected, self.status = true, nil
        local ended = conch.chan()
        local pumped = conch.go(function()
          while true do
            local frame, ch = conch.select({ ended, self._queue }, { priority = true })
            if ch == ended then return end
            if frame == nil then sock.output:close(); return end  -- close(): flush, half-close
            if not sock.output:send(frame) then return end
          end
        end)
        dispatch(self, "connect", NULL)
        read_loop(self, sock, nil)
        ended:close()
        pumped:recv()
        sock.output:close()
        self.connected = false
        self.status = "the server closed the connection"
        dispatch(self, "disconnect", NULL)
      else
        self.status = err
        if self._stop:closed() then break end
        local ev = { message = err }
        if self._handlers.error then dispatch(self, "error", ev) else
          self.events:try_send({ type = "error", data = ev })  -- unread events must not stop the retries
        end
      end
      if self._stop:closed() then break end
      if opts.stop_retrying or left < 1 then dispatch(self, "destroy", NULL); break end
      local _, ch = conch.select{ self._stop, conch.timeout(retry) }
      if ch == self._stop then break end
      left = left - 1
    end
    self._queue:close()
    self.events:close()
  end)
  return self
end

--- Queues one event for the server (sent in order once connected); parks while
--- the queue is full; false once the client is closed or gave up.
function client:emit(type_, data)
  if self._raw then return self._queue:send(type_) end  -- raw: emit(bytes)
  if type(type_) ~= "string" then error("emit: the event type must be a string (got " .. type(type_) .. ")", 2) end
  return self._queue:send(encode(type_, data))
end

--- Stops reconnecting; the live connection writes what is queued, then ends.
function client:close()
  self._stop:close()
  self._queue:close()
end

-- The ipcIO peers (conch/ipcio.lua) under API.md §8's names.
local ipcio = require "conch.ipcio"
ipc.ipcio_server, ipc.ipcio_client = ipcio.server, ipcio.client

return ipc
