-- lua/conch/ipcio.lua
-- ipcIO server and client for Lua (API.md §8; wire: PROTOCOLS.md §3), over conch sockets and conch.util's JSON.
--
--   local ipcio = require "conch.ipcio"
--   local s = assert(ipcio.server{domain = "d"})
--   s:handle("ping", function(data, name) s:emit(name, "pong", data); return data end)
--   local c = assert(ipcio.client{domain = "d", name = "alpha"})
--   c:send("ping", {seq = 1})                       -- the server's handler emits "pong" back
--   print(c:deliver("ping", {seq = 2}).seq)         -- 2: the handler's return value
--   c:close(); s:close()
--
-- The same protocol as the C++ peers (include/conch/net/ipcio.hpp): a domain
-- socket <prefix>.<domain> (prefix /tmp/IPC.io) for the handshake, discover,
-- broadcast and client-to-client emit, then one socket per client for its
-- commands. Messages are written one per write, keys in ipcio's order, and
-- read by brace depth outside strings (split reads reassembled, "}{" inside
-- strings kept, 0/false/"" as sent); a malformed one is counted
-- (`malformed`) and reported as an "error" event, and ends nothing else.
--
-- Model. Handlers run as go blocks (their errors are reported as "error"
-- events; a delivery whose handler raised is answered with nil). `events` is
-- a channel of tables {kind=, command=, data=, name=, delivery=}: commands no
-- handler took (kind "command"; a delivery of one is answered with nil),
-- "connect"/"disconnect", "error". A client keeps reconnecting every
-- `reconnect` ms after its first handshake; what it sends meanwhile is queued.
-- JSON null arrives as nil. Invariants as in sockets/ipc/ipcio.cpp.
local conch = require "conch"
local json = require("conch.util").json

local M = {}

local RESERVED = { handshake = true, discover = true, broadcast = true, emit = true, deliver = true, error = true }
local null = json.null

-- ---- options, messages ----

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

local function str_or_null(s) return s and json.encode(s) or "null" end

-- One message, keys in ipcio's order; nil data is null.
local function encode(id, command, data, delivery)
  if data == nil then data = null end
  return '{"id":' .. str_or_null(id) .. ',"command":' .. str_or_null(command) .. ',"data":' ..
      json.encode(data) .. ',"delivery":' .. str_or_null(delivery) .. "}"
end

local function hex32()
  return ("%08x%08x%08x%08x"):format(math.random(0, 0xffffffff), math.random(0, 0xffffffff),
    math.random(0, 0xffffffff), math.random(0, 0xffffffff))
end

local function denull(v) if v == null then return nil end return v end

-- A copy of v with every JSON null (a light userdata, which channels do not
-- carry) made nil: what handlers, events and answers get.
local function strip(v)
  if v == null then return nil end
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = strip(x) end
  return setmetatable(out, getmetatable(v))  -- keeps json.array on an empty array
end

-- Decodes a message: a table with string-or-nil id/command/delivery, or nil, why.
local function decode(text)
  local ok, m = pcall(json.decode, text)
  if not ok or type(m) ~= "table" then return nil, "a malformed message skipped: " .. text:sub(1, 80) end
  local msg = { id = denull(m.id), command = denull(m.command), data = strip(m.data), delivery = denull(m.delivery) }
  for _, k in ipairs { "id", "command", "delivery" } do
    if msg[k] ~= nil and type(msg[k]) ~= "string" then
      return nil, "id, command and delivery must be strings or null: " .. text:sub(1, 80)
    end
  end
  return msg
end

-- The brace-depth splitter (Lua twin of sockets/ipc/json_stream.hpp): feed(chunk)
-- gives the whole objects completed and how many pieces were skipped.
local function splitter(max_message, max_depth)
  local pend, pos, start, depth = "", 1, 1, 0
  local instr, garbage, discard, deep = false, false, false, false
  local sp = {}
  function sp.feed(chunk)
    local out, errs = {}, 0
    local p = pend .. chunk
    local i = pos
    while i <= #p do
      if depth == 0 then
        local b = p:find("{", i, true)
        local gap_end = (b or #p + 1) - 1
        if not garbage and p:find("%S", i) and p:find("%S", i) <= gap_end then
          garbage = true  -- once per run of garbage
          errs = errs + 1
        end
        if not b then i = #p + 1; break end
        garbage, discard, deep = false, false, false
        start, depth, i = b, 1, b + 1
      elseif instr then
        local q = p:find('["\\]', i)
        if not q then i = #p + 1; break end
        if p:byte(q) == 92 then
          if q == #p then i = q; break end  -- what it escapes is still to come
          i = q + 2
        else
          instr, i = false, q + 1
        end
      else
        local q = p:find('[{}%[%]"]', i)
        if not q then i = #p + 1; break end
        local c = p:byte(q)
        i = q + 1
        if c == 34 then
          instr = true
        elseif c == 123 or c == 91 then
          depth = depth + 1
          if depth > max_depth then deep = true end
        else
          depth = depth - 1
          if depth == 0 then
            if discard or deep or q - start + 1 > max_message then
              errs = errs + 1
            else
              out[#out + 1] = p:sub(start, q)
            end
          end
        end
      end
    end
    if depth > 0 and not discard and #p - start + 1 <= max_message then
      pend, pos, start = p:sub(start), i - start + 1, 1  -- keep the object begun
    else
      if depth > 0 then discard = true end  -- too long: keep scanning, drop the text
      pend, pos, start = "", 1, 1
    end
    return out, errs
  end
  return sp
end

local function report(self, why, name)
  self.malformed = self.malformed + 1
  self.events:try_send { kind = "error", data = why, name = name }
end

-- Reads `sock`'s messages until it ends: on_msg(m) for each.
local function read_messages(self, sock, sp, on_msg, name)
  for chunk in sock.input:iter() do
    local texts, errs = sp.feed(chunk)
    for _ = 1, errs do report(self, "a malformed message skipped", name) end
    for _, text in ipairs(texts) do
      local m, why = decode(text)
      if m then on_msg(m) else report(self, why, name) end
    end
  end
end

-- Runs handler fn as a go block; answers its delivery on `out` through send(text).
local function run_handler(self, fn, data, name, delivery, send)
  conch.go(function()
    local ok, res = xpcall(fn, debug.traceback, data, name)
    if not ok then
      report(self, "a handler raised: " .. tostring(res), name)
      res = nil
    end
    if delivery then send(encode(nil, "deliver", res, delivery)) end
  end)
end

local function sorted_keys(t, pred)
  local out = {}
  for k, v in pairs(t) do if not pred or pred(v) then out[#out + 1] = k end end
  table.sort(out)
  return out
end

local function check_command(fname, command)
  if type(command) ~= "string" or command == "" or RESERVED[command] then
    error(("%s: '%s' is reserved or not a command name"):format(fname, tostring(command)), 3)
  end
end

-- ---- server ----

local Server = {}
Server.__index = Server

local SERVER_OPTS = { domain = "string", prefix = "string", max_message = "number", max_depth = "number",
  events = "number", timeout = "number" }

--- ipcio.server{domain=, prefix=, max_message=, max_depth=, events=, timeout=} -> server | nil, err
function M.server(opts)
  opts = options("ipcio.server", opts, SERVER_OPTS)
  local self = setmetatable({
    domain = opts.domain or "default",
    handlers = {}, entries = {}, deliveries = {}, malformed = 0,
    max_message = positive("ipcio.server", opts, "max_message", 1 << 20, 1 << 30),
    max_depth = positive("ipcio.server", opts, "max_depth", 64, 512),
    timeout = positive("ipcio.server", opts, "timeout", 10000, 1 << 30),
  }, Server)
  if self.domain == "" or self.domain:find("/", 1, true) then
    error("ipcio.server: the domain must be a non-empty name without '/'", 2)
  end
  self.events = conch.chan(positive("ipcio.server", opts, "events", 1024, 1 << 20))
  self.path = (opts.prefix or "/tmp/IPC.io") .. "." .. self.domain
  local srv, err = conch.listen(self.path)
  if not srv then return nil, err end
  self.srv = srv
  conch.go(function()
    for sock in srv.connections:iter() do conch.go(Server._serve_domain, self, sock) end
  end)
  return self
end

function Server:_drop(e)
  if self.entries[e.name] == e then
    self.entries[e.name] = nil
    if e.own then self.events:try_send { kind = "disconnect", name = e.name } end
  end
  e.settled:close()
  e.dom:close()
  if e.own then e.own:close() end
end

-- The entry of `name` once its handshake settled, or nil.
function Server:_settled(name)
  local e = self.entries[name]
  if e and not e.own then
    e.settled:recv()
    e = self.entries[name]
  end
  return e and e.own and e or nil
end

function Server:_serve_client(e)
  local send = function(text) e.own.output:send(text) end
  read_messages(self, e.own, splitter(self.max_message, self.max_depth), function(m)
    local cmd = m.command
    if cmd == "deliver" then
      local sender = m.delivery and self.deliveries[m.delivery]
      if sender then
        self.deliveries[m.delivery] = nil
        local to = self:_settled(sender)
        if to then to.own.output:send(encode(nil, "deliver", m.data, m.delivery)) end
      end
    elseif not cmd or RESERVED[cmd] then
      report(self, ("command '%s' is not for a client socket"):format(tostring(cmd)), e.name)
    elseif self.handlers[cmd] then
      run_handler(self, self.handlers[cmd], m.data, e.name, m.delivery, send)
    else
      self.events:send { kind = "command", command = cmd, data = m.data, name = e.name, delivery = m.delivery }
      if m.delivery then send(encode(nil, "deliver", nil, m.delivery)) end
    end
  end, e.name)
  self:_drop(e)
end

function Server:_handshake(sock, m, mine)
  if mine or type(m.data) ~= "string" or m.data == "" then
    report(self, "a bad or second handshake ignored")
    return mine
  end
  local name = m.data
  if self.entries[name] then
    sock.output:send(encode(name, "error", 201, nil))
    return nil
  end
  local e = { name = name, dom = sock, settled = conch.chan() }
  self.entries[name] = e
  local channel = hex32()
  local l, err = conch.listen(self.path .. "." .. channel)
  if not l then
    self:_drop(e)
    report(self, err, name)
    return nil
  end
  sock.output:send(encode(name, "handshake", channel, nil))
  local own = conch.select { l.connections, conch.timeout(self.timeout) }
  l:close()  -- one connection per handshake
  if not own then
    self:_drop(e)
    report(self, ("client '%s' never connected its own socket"):format(name), name)
    return nil
  end
  e.own = own
  e.settled:close()
  if self.closed then own:close() end
  self.events:try_send { kind = "connect", name = name }
  conch.go(Server._serve_client, self, e)
  return e
end

function Server:_serve_domain(sock)
  local mine
  read_messages(self, sock, splitter(self.max_message, self.max_depth), function(m)
    local cmd = m.command
    if cmd == "handshake" then
      mine = self:_handshake(sock, m, mine)
    elseif cmd == "discover" then
      local clients = sorted_keys(self.entries, function(e) return e.own ~= nil end)
      local cmds = sorted_keys(self.handlers)
      setmetatable(clients, json.array)
      setmetatable(cmds, json.array)
      sock.output:send(encode(m.id, "discover", { clients = clients, command_handlers = cmds }, nil))
    elseif cmd == "broadcast" or cmd == "emit" then
      local inner, why
      if type(m.data) == "string" then inner, why = decode(m.data)
      elseif type(m.data) == "table" then inner, why = decode(json.encode(m.data)) end
      if not inner or not inner.command then
        report(self, why or ("a %s without a valid inner message"):format(cmd), m.id)
        return
      end
      local text = encode(nil, inner.command, inner.data, inner.delivery)
      if cmd == "broadcast" then
        for _, e in pairs(self.entries) do if e.own then e.own.output:send(text) end end
      else
        local to = inner.id and self:_settled(inner.id)
        if not to then
          report(self, ("emit to unknown client '%s'"):format(tostring(inner.id)), m.id)
          return
        end
        if m.delivery and m.id then self.deliveries[m.delivery] = m.id end
        to.own.output:send(text)
      end
    else
      report(self, ("command '%s' is not for the domain socket"):format(tostring(cmd)))
    end
  end, mine and mine.name)
  if mine then self:_drop(mine) end
  sock:close()
end

--- s:handle(command, fn): fn(data, client_name) runs as a go block; its return answers a deliver.
function Server:handle(command, fn)
  check_command("ipcio server:handle", command)
  if fn ~= nil and type(fn) ~= "function" then error("ipcio server:handle: the handler must be a function", 2) end
  self.handlers[command] = fn
end

--- s:emit(name, command, data) -> true | false (no such client, or its socket ended)
function Server:emit(name, command, data)
  if type(name) ~= "string" or type(command) ~= "string" then
    error("ipcio server:emit: expects (name, command, data)", 2)
  end
  local text = encode(nil, command, data, nil)
  local e = self:_settled(name)
  return e ~= nil and e.own.output:send(text)
end

--- s:broadcast(command, data) -> how many clients it reached
function Server:broadcast(command, data)
  if type(command) ~= "string" then error("ipcio server:broadcast: expects (command, data)", 2) end
  local text, n = encode(nil, command, data, nil), 0
  for _, e in pairs(self.entries) do
    if e.own and e.own.output:send(text) then n = n + 1 end
  end
  return n
end

--- s:clients() -> sorted names of the connected clients
function Server:clients() return sorted_keys(self.entries, function(e) return e.own ~= nil end) end

function Server:close()
  if self.closed then return end
  self.closed = true
  self.srv:close()
  for _, e in pairs(self.entries) do
    e.dom:close()
    if e.own then e.own:close() end
  end
  self.events:close()
end

-- ---- client ----

local Client = {}
Client.__index = Client

local CLIENT_OPTS = { domain = "string", name = "string", prefix = "string", max_message = "number",
  max_depth = "number", events = "number", timeout = "number", reconnect = "number" }

-- Connects and handshakes: dom, own, the domain splitter | nil, err, code.
local function handshake(self)
  local dom, err = conch.connect(self.path)
  if not dom then return nil, err end
  dom.output:send(encode(nil, "handshake", self.name, nil))
  local sp = splitter(self.max_message, self.max_depth)
  local deadline = conch.timeout(self.timeout)
  while true do
    local chunk, ch = conch.select { dom.input, deadline }
    if ch == deadline then dom:close(); return nil, "ipcio: no handshake answer from " .. self.path, "DeadlineExceeded" end
    if chunk == nil then dom:close(); return nil, "ipcio: " .. self.path .. " closed during the handshake", "Unavailable" end
    for _, text in ipairs((sp.feed(chunk))) do
      local m = decode(text)
      if m and m.command == "handshake" and m.id == self.name and type(m.data) == "string" then
        local own, err2 = conch.connect(self.path .. "." .. m.data)
        if not own then dom:close(); return nil, err2 end
        return dom, own, sp
      elseif m and m.command == "error" and m.data == 201 then
        dom:close()
        return nil, ("ipcio: the name '%s' is taken in domain '%s' (error 201)"):format(self.name, self.domain),
            "AlreadyExists"
      end
    end
  end
end

function Client:_dispatch(m)
  local cmd = m.command
  if cmd == "deliver" then
    local w = m.delivery and self.pending[m.delivery]
    if w then w:try_send { v = m.data } end
  elseif cmd == "discover" then
    local w = table.remove(self.discovers, 1)
    if w then w:try_send { v = m.data } end
  elseif cmd == "handshake" then
    -- a late answer of an earlier attempt
  elseif cmd == nil or cmd == "error" then
    report(self, "the server sent error " .. tostring(m.data))
  elseif self.handlers[cmd] then
    run_handler(self, self.handlers[cmd], m.data, nil, m.delivery,
      function(text) self.outbox:send { own = true, text = text } end)
  else
    self.events:send { kind = "command", command = cmd, data = m.data, delivery = m.delivery }
    if m.delivery then self.outbox:send { own = true, text = encode(nil, "deliver", nil, m.delivery) } end
  end
end

-- The sessions: forward `outbox`; after a session ends, retry the handshake every `reconnect` ms.
function Client:_manage(dom, own, sp)
  local carry
  while true do
    self.connected, self.dom, self.own = true, dom, own
    self.events:try_send { kind = "connect", name = self.name }
    local ended = conch.chan()
    local function reader(sock, s)
      conch.go(function()
        read_messages(self, sock, s, function(m) self:_dispatch(m) end)
        ended:close()
      end)
    end
    reader(dom, sp)
    reader(own, splitter(self.max_message, self.max_depth))
    local drained = false
    while true do
      if carry then
        local out = carry.own and own.output or dom.output
        local ok, ch = conch.select { { out, carry.text }, ended }
        if ch == ended or not ok then break end
        carry = nil
      end
      local v, ch = conch.select { self.outbox, ended }
      if ch == ended then break end
      if v == nil then drained = true; break end
      carry = v
    end
    self.connected, self.dom, self.own = false, nil, nil
    local lost = self.discovers
    self.discovers = {}
    for _, w in ipairs(lost) do w:close() end
    if drained then
      dom.output:close()  -- flush, then half-close: the server sees us leave
      own.output:close()
      break
    end
    dom:close()
    own:close()
    self.events:try_send { kind = "disconnect", name = self.name }
    if self.closed then break end
    local again
    while not again do
      local _, ch = conch.select { conch.timeout(self.reconnect), self.closing }
      if ch == self.closing then break end
      local d2, o2, s2 = handshake(self)
      if d2 then dom, own, sp, again = d2, o2, s2, true end
    end
    if not again then break end
  end
  self.events:close()
end

--- ipcio.client{domain=, name=, prefix=, reconnect=ms, timeout=ms, ...} -> client | nil, err, code
function M.client(opts)
  opts = options("ipcio.client", opts, CLIENT_OPTS)
  local self = setmetatable({
    domain = opts.domain or "default",
    name = opts.name or hex32(),
    handlers = {}, pending = {}, discovers = {}, malformed = 0, connected = false,
    max_message = positive("ipcio.client", opts, "max_message", 1 << 20, 1 << 30),
    max_depth = positive("ipcio.client", opts, "max_depth", 64, 512),
    timeout = positive("ipcio.client", opts, "timeout", 10000, 1 << 30),
    reconnect = positive("ipcio.client", opts, "reconnect", 2000, 1 << 30),
    outbox = conch.chan(4096), closing = conch.chan(),
  }, Client)
  if self.domain == "" or self.domain:find("/", 1, true) then
    error("ipcio.client: the domain must be a non-empty name without '/'", 2)
  end
  if self.name == "" or #self.name > 255 then error("ipcio.client: a name is 1..255 bytes", 2) end
  self.events = conch.chan(positive("ipcio.client", opts, "events", 1024, 1 << 20))
  self.path = (opts.prefix or "/tmp/IPC.io") .. "." .. self.domain
  local dom, own, sp = handshake(self)
  if not dom then return nil, own, sp end
  conch.go(Client._manage, self, dom, own, sp)
  return self
end

--- c:handle(command, fn): fn(data) runs as a go block; its return answers a deliver.
function Client:handle(command, fn)
  check_command("ipcio client:handle", command)
  if fn ~= nil and type(fn) ~= "function" then error("ipcio client:handle: the handler must be a function", 2) end
  self.handlers[command] = fn
end

local function queue(self, own, text) return self.outbox:send { own = own, text = text } end

-- Waits for the answer on `w`: value | nil, err.
local function answer(self, w, delivery)
  local v, ch = conch.select { w, conch.timeout(self.timeout) }
  if delivery then self.pending[delivery] = nil end
  if ch ~= w then return nil, "ipcio: no answer within the timeout" end
  if v == nil then return nil, self.closed and "ipcio: the client was closed" or "ipcio: the session ended" end
  return v.v
end

local function need(fname, ...)
  for i = 1, select("#", ...) do
    if type((select(i, ...))) ~= "string" then error(fname .. ": the target and command must be strings", 3) end
  end
end

--- c:send(command, data) -> bool (queued; false once closed)
function Client:send(command, data)
  need("ipcio client:send", command)
  return queue(self, true, encode(nil, command, data, nil))
end

--- c:deliver(command, data) -> result | nil, err (the server handler's return value)
function Client:deliver(command, data)
  need("ipcio client:deliver", command)
  local d, w = hex32(), conch.chan(1)
  self.pending[d] = w
  if not queue(self, true, encode(nil, command, data, d)) then return nil, "ipcio: the client was closed" end
  return answer(self, w, d)
end

--- c:emit(target, command, data) -> bool: to another client, through the server
function Client:emit(target, command, data)
  need("ipcio client:emit", target, command)
  return queue(self, false, encode(self.name, "emit", encode(target, command, data, nil), nil))
end

--- c:deliver_to(target, command, data) -> result | nil, err: another client's handler's return value
function Client:deliver_to(target, command, data)
  need("ipcio client:deliver_to", target, command)
  local d, w = hex32(), conch.chan(1)
  self.pending[d] = w
  if not queue(self, false, encode(self.name, "emit", encode(target, command, data, d), d)) then
    return nil, "ipcio: the client was closed"
  end
  return answer(self, w, d)
end

--- c:broadcast(command, data) -> bool: every client (this one too, as the real server does)
function Client:broadcast(command, data)
  need("ipcio client:broadcast", command)
  return queue(self, false, encode(self.name, "broadcast", encode(nil, command, data, nil), nil))
end

--- c:discover() -> {clients=, command_handlers=} | nil, err
function Client:discover()
  local w = conch.chan(1)
  self.discovers[#self.discovers + 1] = w
  if not queue(self, false, encode(self.name, "discover", nil, nil)) then return nil, "ipcio: the client was closed" end
  return answer(self, w, nil)
end

function Client:close()
  if self.closed then return end
  self.closed = true
  self.outbox:close()   -- what is queued still goes out
  self.closing:close()  -- no more reconnecting
  for _, w in pairs(self.pending) do w:close() end
  for _, w in ipairs(self.discovers) do w:close() end
end

return M
