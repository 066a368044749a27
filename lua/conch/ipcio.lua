-- lua/conch/ipcio.lua
-- ipcIO server and client for Lua (API.md §8; wire: PROTOCOLS.md §3): the C++ peers of sockets/ipc/ipcio.cpp.
--
--   local ipcio = require "conch.ipcio"
--   local s = assert(ipcio.server{domain = "d"})
--   s:handle("ping", function(data, name) s:emit(name, "pong", data); return data end)
--   local c = assert(ipcio.client{domain = "d", name = "alpha"})
--   c:send("ping", {seq = 1})                       -- the server's handler emits "pong" back
--   print(c:deliver("ping", {seq = 2}).seq)         -- 2: the handler's return value
--   c:close(); s:close()
--
-- The protocol, the brace-depth splitter, the sessions and reconnects are the
-- C++ peers' (include/conch/net/ipcio.hpp), reached through conch._ipcio
-- (lua/ipciolib.cpp); this file checks options and arguments, turns Lua data
-- into JSON text (conch.util's json.encode) and runs the Lua handlers.
--
-- Model. Handlers run as go blocks: the C++ peer hands each call of a
-- command that has a Lua handler to the object's `calls` channel; one
-- dispatcher go block per object starts a go block per call, whose result
-- (JSON text) answers a `deliver` (a handler that raised is reported as an
-- "error" event and answers nil). `events` is a channel of tables {kind=,
-- command=, data=, name=, delivery=}: commands no handler took (kind
-- "command"; a delivery of one is answered with nil), "connect"/"disconnect",
-- "error". A client keeps reconnecting every `reconnect` ms after its first
-- handshake; what it sends meanwhile is queued. JSON null arrives as nil.
local conch = require "conch"
local json = require("conch.util").json
local C = conch._ipcio

local M = {}

local RESERVED = { handshake = true, discover = true, broadcast = true, emit = true, deliver = true, error = true }

-- ---- options, data ----

-- Strict options: an unknown key or a wrong type is an error naming it.
local function options(fname, opts, spec)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error(fname .. ": options must be a table", 3) end
  for k, v in pairs(opts) do
    local want = spec[k]
    if want == nil then error(("%s: unknown option '%s'"):format(fname, tostring(k)), 3) end
    if type(v) ~= want then error(("%s: option '%s' must be a %s"):format(fname, k, want), 3) end
  end
  return opts
end

local function positive(fname, opts, key, default, max)
  local v = opts[key] or default
  if math.type(v) ~= "integer" or v < 1 or v > max then
    error(("%s: option '%s' must be an integer in 1..%d"):format(fname, key, max), 3)
  end
  return v
end

-- The common options, in the order C.listen / C.connect take them.
local function common(fname, opts)
  local domain = opts.domain or "default"
  if domain == "" or domain:find("/", 1, true) then
    error(fname .. ": the domain must be a non-empty name without '/'", 3)
  end
  return domain, opts.prefix or "/tmp/IPC.io",
      positive(fname, opts, "max_message", 1 << 20, 1 << 30),
      positive(fname, opts, "max_depth", 64, 512),
      positive(fname, opts, "events", 1024, 1 << 20),
      positive(fname, opts, "timeout", 10000, 1 << 30)
end

-- data as JSON text (nil is null); what json.encode refuses is an error of the caller.
local function encode(fname, data)
  if data == nil then return "null" end
  local ok, text, err = pcall(json.encode, data)
  if not ok or not text then error(fname .. ": " .. tostring(ok and err or text), 3) end
  return text
end

local function check_command(fname, command)
  if type(command) ~= "string" or command == "" or RESERVED[command] then
    error(("%s: '%s' is reserved or not a command name"):format(fname, tostring(command)), 3)
  end
end

local function need(fname, ...)
  for i = 1, select("#", ...) do
    if type((select(i, ...))) ~= "string" then error(fname .. ": the target and command must be strings", 3) end
  end
end

-- Runs the Lua handlers of one object: each call {command=, data=, name=, reply=} as a go block.
local function dispatch(handlers, events, calls)
  conch.go(function()
    for call in calls:iter() do
      conch.go(function()
        local fn, text = handlers[call.command], nil
        if fn then
          local ok, res = xpcall(fn, debug.traceback, call.data, call.name)
          if not ok then
            events:try_send { kind = "error", data = "a handler raised: " .. tostring(res), name = call.name }
          elseif res ~= nil then
            local eok, t = pcall(json.encode, res)
            if eok and t then
              text = t
            else
              events:try_send { kind = "error", data = "a handler's result is not JSON: " .. tostring(t), name = call.name }
            end
          end
        end
        if text then call.reply:send(text) else call.reply:close() end  -- closed empty: null
      end)
    end
  end)
end

-- Shared by both kinds of object: handle, the live counters, close, __gc.
local function base(kind)
  local cls = {}
  local methods = {}
  cls.__name = "conch.ipcio." .. kind
  cls.__index = function(self, k)
    if k == "malformed" or k == "connected" then
      local malformed, connected = C.status(rawget(self, "id") or 0)
      if k == "malformed" then return malformed end
      return connected
    end
    return methods[k]
  end
  function methods:handle(command, fn)
    check_command("ipcio " .. kind .. ":handle", command)
    if fn ~= nil and type(fn) ~= "function" then
      error("ipcio " .. kind .. ":handle: the handler must be a function", 2)
    end
    if self.closed then error("ipcio " .. kind .. ":handle: the " .. kind .. " is closed", 2) end
    self.handlers[command] = fn
    C.handle(self.id, command, fn ~= nil)
  end
  function methods:close()
    if self.closed then return end
    self.closed = true
    C.close(self.id)
  end
  cls.__gc = function(self) if not self.closed then C.close(self.id) end end
  cls.__close = cls.__gc
  return cls, methods
end

local function make(cls, o)
  local self = setmetatable({ id = o.id, events = o.events, handlers = {}, closed = false }, cls)
  dispatch(self.handlers, o.events, o.calls)
  return self
end

-- ---- server ----

local Server, server = base("server")

local SERVER_OPTS = { domain = "string", prefix = "string", max_message = "number", max_depth = "number",
  events = "number", timeout = "number" }

--- ipcio.server{domain=, prefix=, max_message=, max_depth=, events=, timeout=} -> server | nil, err, code
function M.server(opts)
  opts = options("ipcio.server", opts, SERVER_OPTS)
  local domain, prefix, max_message, max_depth, events, timeout = common("ipcio.server", opts)
  local o, err, code = C.listen(domain, prefix, max_message, max_depth, events, timeout)
  if not o then return nil, err, code end
  local self = make(Server, o)
  self.domain, self.path = domain, o.path
  return self
end

--- s:emit(name, command, data) -> true | false (no such client, or its socket ended)
function server:emit(name, command, data)
  if type(name) ~= "string" or type(command) ~= "string" then
    error("ipcio server:emit: expects (name, command, data)", 2)
  end
  if self.closed then return false end
  return (C.emit(self.id, name, command, encode("ipcio server:emit", data))) == true
end

--- s:broadcast(command, data) -> how many clients it reached
function server:broadcast(command, data)
  if type(command) ~= "string" then error("ipcio server:broadcast: expects (command, data)", 2) end
  if self.closed then return 0 end
  return C.broadcast(self.id, nil, command, encode("ipcio server:broadcast", data)) or 0
end

--- s:clients() -> sorted names of the connected clients
function server:clients() return C.clients(self.id) end

-- ---- client ----

local Client, client = base("client")

local CLIENT_OPTS = { domain = "string", name = "string", prefix = "string", max_message = "number",
  max_depth = "number", events = "number", timeout = "number", reconnect = "number" }

--- ipcio.client{domain=, name=, prefix=, reconnect=ms, timeout=ms, ...} -> client | nil, err, code
function M.client(opts)
  opts = options("ipcio.client", opts, CLIENT_OPTS)
  local domain, prefix, max_message, max_depth, events, timeout = common("ipcio.client", opts)
  local reconnect = positive("ipcio.client", opts, "reconnect", 2000, 1 << 30)
  local name = opts.name or ""  -- "": the C++ client picks a random 32-hex name
  if opts.name and (name == "" or #name > 255) then error("ipcio.client: a name is 1..255 bytes", 2) end
  local o, err, code = C.connect(name, domain, prefix, max_message, max_depth, events, timeout, reconnect)
  if not o then return nil, err, code end
  local self = make(Client, o)
  self.domain, self.name = domain, o.name
  return self
end

local function closed() return nil, "ipcio: the client was closed", "CANCELLED" end

-- A waited answer: the result (nil for null) | nil, err, code.
local function answer(r, err, code)
  if not r then return nil, err, code end
  return r.v
end

--- c:send(command, data) -> bool (queued; false once closed)
function client:send(command, data)
  need("ipcio client:send", command)
  if self.closed then return false end
  return (C.send(self.id, nil, command, encode("ipcio client:send", data))) == true
end

--- c:deliver(command, data) -> result | nil, err (the server handler's return value)
function client:deliver(command, data)
  need("ipcio client:deliver", command)
  if self.closed then return closed() end
  return answer(C.deliver(self.id, nil, command, encode("ipcio client:deliver", data)))
end

--- c:emit(target, command, data) -> bool: to another client, through the server
function client:emit(target, command, data)
  need("ipcio client:emit", target, command)
  if self.closed then return false end
  return (C.client_emit(self.id, target, command, encode("ipcio client:emit", data))) == true
end

--- c:deliver_to(target, command, data) -> result | nil, err: another client's handler's return value
function client:deliver_to(target, command, data)
  need("ipcio client:deliver_to", target, command)
  if target == "" then error("ipcio client:deliver_to: the target must be a client name", 2) end
  if self.closed then return closed() end
  return answer(C.deliver(self.id, target, command, encode("ipcio client:deliver_to", data)))
end

--- c:broadcast(command, data) -> bool: every client (this one too, as the real server does)
function client:broadcast(command, data)
  need("ipcio client:broadcast", command)
  if self.closed then return false end
  return (C.client_broadcast(self.id, nil, command, encode("ipcio client:broadcast", data))) == true
end

--- c:discover() -> {clients=, command_handlers=} | nil, err
function client:discover()
  if self.closed then return closed() end
  return C.discover(self.id)
end

return M
