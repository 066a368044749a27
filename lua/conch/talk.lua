-- lua/conch/talk.lua
-- luatalk's API (SocketServer, SocketClient/Client, Poller, StdinReader) over conch sockets and channels.
--
-- luatalk scripts run with only their require line changed:
--
--   local server = require('conch.talk').SocketServer()
--   server:on_recv(function(id, msg) print('Received this message: ' .. msg) end)
--   server:listen('/tmp/demo')          -- serves until server:close()
--
--   local client = require('conch.talk').Client()
--   client:connect('/tmp/demo')
--   client:send('Groovy!')              -- delivered even if the script ends here
--
-- Model. Every server connection and client has a reader go block that hands
-- each chunk received to its on_recv callback as soon as the loop runs (any
-- conch operation, Poller:poll(), listen(), talk.run()); so callbacks fire
-- whether or not the object was added to a Poller. A Poller polls real file
-- descriptors (StdinReader, any object with `fd` and `_on_poll`) through
-- conch.fd_watch, and calls their _on_poll from poll(), as luatalk does.
--
-- Invariants:
--  - `connections[id]` holds exactly the connections whose peer has not hung
--    up and that close() has not ended; ids count up from 1, never reused.
--  - An object's `_end` channel closes once its reader go block has finished
--    (the socket's read side ended and every chunk was handed to on_recv).
--  - Ending a socket (close(), the peer hanging up, the script ending) always
--    flushes it: `output` is closed (what is queued is written, then the write
--    side shut) and the socket is closed for good once the peer closes too,
--    or after talk.linger ms at most (shut below).
--  - A client or connection is finalizable only once its socket exists (its
--    metatable with __gc is set after), so Lua finalizes it before its socket
--    and channels: at the script's end its __gc can still flush them.
-- Where this differs from luatalk on purpose: lua/DROPINS.md ("conch.talk").
local conch = require "conch"

local talk = {}

--- How long (ms) closing a socket waits for the peer to close its side
--- before closing it anyway; bounds close() and the script's end.
talk.linger = 2000

local POLLIN, POLLERR, POLLHUP, POLLNVAL = 1, 8, 16, 32

local function report(what, err)
  io.stderr:write("conch.talk: ", what, " failed: ", tostring(err), "\n")
end

-- Calls fn(...) if set, reporting (not raising) its errors. True if it ran clean.
local function call(what, fn, ...)
  if not fn then return true end
  local ok, err = xpcall(fn, debug.traceback, ...)
  if not ok then report(what, err) end
  return ok
end

-- Makes a class table callable like luatalk's: Class(...) == Class.new(...).
local function class()
  local c = {}
  c.__index = c
  return setmetatable(c, { __call = function(self, ...) return self.new(...) end })
end

-- conch addresses from luatalk socket paths: a path, "@name" or host:port is
-- kept; any other name is a Unix path relative to the working directory.
local function address(path)
  if type(path) ~= "string" or path == "" then
    error("conch.talk: a socket path (string) is needed, got " .. type(path), 3)
  end
  if path:find("/", 1, true) or path:sub(1, 1) == "@" or path:match("^[%w%.%-]+:%d+$")
     or path:match("^%[.*%]:%d+$") then
    return path
  end
  return "./" .. path
end

local function check_message(msg)
  if type(msg) == "number" then return tostring(msg) end
  if type(msg) ~= "string" then
    error("conch.talk: send: the message must be a string, got " .. type(msg), 3)
  end
  return msg
end

-- Pseudo descriptors of talk objects (Poller keys): negative, so never an OS
-- descriptor's number.
local last_pseudo_fd = 0
local function pseudo_fd()
  last_pseudo_fd = last_pseudo_fd - 1
  return last_pseudo_fd
end

-- Ends obj's socket gracefully (obj.socket, obj._end): flush and half-close
-- now; close for good once the reader has finished, or after talk.linger ms.
local function shut(obj)
  if obj._shut then return end
  obj._shut = true
  local sock, done, linger = obj.socket, obj._end, talk.linger
  sock.output:close()
  conch.go(function()
    conch.select { done, conch.timeout(linger) }
    sock:close()
  end)
end

-- Waits until every object of list has ended (its reader finished), at most
-- until `deadline` (conch.now() ms). Skips the reader running the caller: a
-- callback that closes its own connection must not wait for itself.
local function await_end(list, deadline)
  local me = coroutine.running()
  for _, obj in ipairs(list) do
    if obj._reader ~= me then
      local left = deadline - conch.now()
      if left <= 0 then return end
      conch.select { obj._end, conch.timeout(left) }
    end
  end
end

-- Every client and connection whose reader has not finished (they are
-- reachable from their reader go block anyway until then).
local open_links = {}

-- The reader go block of a client or connection: each chunk to on_recv, then
-- the end: `on_end` (bookkeeping), then the socket is flushed and closed.
local function read_loop(obj, deliver, on_end)
  open_links[obj] = true
  obj._reader = coroutine.running()
  for msg in obj.socket.input:iter() do deliver(msg) end
  on_end()
  shut(obj)
  open_links[obj] = nil
  obj._end:close()
end

-- Finalizer of clients and connections. A link with a reader still running
-- is reachable (open_links), so one with work to do is finalized only when
-- the state closes: the script has ended. The first such finalizer ends
-- every open link at once, so that they all share one wait of at most
-- talk.linger ms; the others find theirs done.
-- With no go block left the host has stopped (an embedding closes the state
-- after stopping its go blocks): nothing could run, so nothing is waited for.
local function finalize(obj)
  if not obj.socket or obj._shut or conch.tasks() == 0 then return end
  local list = {}
  for o in pairs(open_links) do
    shut(o)
    list[#list + 1] = o
  end
  shut(obj)  -- in case its reader has not started yet
  list[#list + 1] = obj
  await_end(list, conch.now() + talk.linger + 100)
end

-- ---- Poller ----

local Poller = class()
talk.Poller = Poller

--- A poller. `pollables` maps each polled object's fd to the object (as
--- luatalk's does); luatalk's size argument is accepted and not needed.
function Poller.new(num_fds)
  if num_fds ~= nil and math.type(num_fds) ~= "integer" then
    error("conch.talk: Poller(num_fds): num_fds must be an integer", 2)
  end
  return setmetatable({ pollables = {}, _armed = {}, _wake = conch.chan(1) }, Poller)
end

-- Wakes a running poll() so it sees a change.
function Poller:_poke() self._wake:try_send(true) end

--- Adds a pollable: any object with an integer `fd` and an `_on_poll()`
--- method (called once fd polls readable), or a talk object (client, server,
--- StdinReader). Returns the object.
function Poller:add(obj)
  local t = type(obj)
  if (t ~= "table" and t ~= "userdata") or math.type(obj.fd) ~= "integer"
     or type(obj._on_poll) ~= "function" then
    error("conch.talk: Poller:add: a pollable needs an integer fd and an _on_poll method", 2)
  end
  local old = self.pollables[obj.fd]
  if old ~= nil and old ~= obj then self:remove(obj.fd) end
  self.pollables[obj.fd] = obj
  self:_poke()
  return obj
end

--- Removes the pollable with this fd (or this object) from the poller.
function Poller:remove(fd)
  if type(fd) == "table" or type(fd) == "userdata" then fd = fd.fd end
  self.pollables[fd] = nil
  local armed = self._armed[fd]
  if armed then
    armed.cancel()
    self._armed[fd] = nil
  end
  self:_poke()
end

--- Stops a running poll() (it returns at its next step); the pollables stay.
function Poller:stop()
  self._stopping = true
  self:_poke()
end

-- One readiness report for `obj`, as luatalk's poll loop: _on_poll(revents)
-- when readable; then the pollable is dropped if it hung up, failed or was
-- closed (POLLHUP, POLLERR, POLLNVAL), if its _on_poll raised, or if it says
-- it has ended (`_ended`: StdinReader at end of file).
function Poller:_dispatch(fd, obj, revents)
  local ok = true
  if revents & POLLIN ~= 0 then ok = call("_on_poll of fd " .. fd, obj._on_poll, obj, revents) end
  if not ok or obj._ended or revents & (POLLERR | POLLHUP | POLLNVAL) ~= 0 then
    if self.pollables[fd] == obj then self:remove(fd) end
  end
end

--- Runs the poll loop: calls each pollable's _on_poll when its fd polls
--- readable, while the conch loop runs every go block (connections'
--- callbacks included). luatalk's never returns; this one returns when no
--- pollable is left (every one removed, hung up, or a closed talk object),
--- after stop(), or with poll{timeout = ms} after ms milliseconds. A number
--- is ignored, as luatalk ignores it (its README writes poll(fd)).
function Poller:poll(opts)
  local ms
  if type(opts) == "table" then
    for k in pairs(opts) do
      if k ~= "timeout" then error("conch.talk: Poller:poll: unknown option '" .. tostring(k) .. "'", 2) end
    end
    ms = opts.timeout
    if ms ~= nil and type(ms) ~= "number" then
      error("conch.talk: Poller:poll: timeout must be milliseconds (a number)", 2)
    end
  elseif opts ~= nil and type(opts) ~= "number" then
    error("conch.talk: Poller:poll: expected nothing, a number (ignored) or {timeout = ms}", 2)
  end
  if self._polling then error("conch.talk: Poller:poll: already polling", 2) end
  return self:_run(ms)
end

-- The poll loop: until nothing is left, stop(), `ms` ms, or `stop` (a channel)
-- closes. Its watches are cancelled when it returns or raises.
function Poller:_run(ms, stop)
  self._polling, self._stopping = true, false
  local ok, err = pcall(self._loop, self, ms, stop)
  for fd, armed in pairs(self._armed) do
    armed.cancel()
    self._armed[fd] = nil
  end
  self._polling = false
  if not ok then error(err, 0) end
end

function Poller:_loop(ms, stop)
  local timer = ms and conch.timeout(ms)
  while next(self.pollables) ~= nil and not self._stopping do
    -- The cases: every pollable's readiness, a wake-up, the time limit.
    local cases, whose = { self._wake }, { false }
    if stop then cases[#cases + 1], whose[#whose + 1] = stop, false end
    if timer then cases[#cases + 1], whose[#whose + 1] = timer, false end
    for fd, obj in pairs(self.pollables) do
      if obj._end then
        -- A talk object: polled until it ends.
        cases[#cases + 1], whose[#whose + 1] = obj._end, fd
      else
        local armed = self._armed[fd]
        if not armed then
          local ready, cancel = conch.fd_watch(fd)
          if not ready then
            report("polling fd " .. fd, cancel)
            self.pollables[fd] = nil
            goto next_pollable
          end
          armed = { ready = ready, cancel = cancel, obj = obj }
          self._armed[fd] = armed
        end
        cases[#cases + 1], whose[#whose + 1] = armed.ready, fd
      end
      ::next_pollable::
    end
    local v, ch = conch.select(cases)
    if ch == timer or (stop and ch == stop) then break end
    for i = 2, #cases do
      local fd = whose[i]
      if fd and rawequal(ch, cases[i]) then
        local obj = self.pollables[fd]
        if obj and obj._end then
          self:remove(fd)  -- the talk object ended
        elseif obj and self._armed[fd] and rawequal(self._armed[fd].ready, ch) then
          self._armed[fd] = nil  -- one report per watch: re-armed next round
          if v ~= nil then self:_dispatch(fd, obj, v) end
        end
        break
      end
    end
  end
end

-- ---- StdinReader ----

local StdinReader = class()
talk.StdinReader = StdinReader

--- A pollable that reads standard input (fd 0) and calls on_read(line) for
--- each line, without its newline; at end of file it leaves its poller.
function StdinReader.new()
  return setmetatable({ fd = 0, _on_read = function() return nil end, _buf = "" }, StdinReader)
end

function StdinReader:on_read(fn) self._on_read = fn end

-- Hands the complete lines of what was read to on_read; "" is the end of file.
function StdinReader:_take(chunk)
  if chunk == "" then
    -- End of file: the last, unterminated line, then done.
    self._ended = true
    local rest = self._buf
    self._buf = ""
    if rest ~= "" then call("on_read", self._on_read, rest) end
    return
  end
  local buf = self._buf .. chunk
  local start = 1
  for line, stop in buf:gmatch("([^\n]*)\n()") do
    call("on_read", self._on_read, line)
    start = stop
  end
  self._buf = buf:sub(start)
end

-- One read when stdin polls readable; once the writer has hung up
-- (POLLHUP: reads no longer block), everything up to the end of file.
function StdinReader:_on_poll(revents)
  repeat
    local chunk, err = conch.fd_read(self.fd, 4096)
    if chunk == nil then error(err, 0) end
    self:_take(chunk)
  until self._ended or not revents or revents & POLLHUP == 0
end

-- ---- Connection (a server's client) ----

local Connection = class()
talk.Connection = Connection

-- The metatable a connection gets once its socket exists (see invariants).
local LiveConnection = setmetatable({ __gc = finalize }, { __index = Connection })
LiveConnection.__index = Connection

--- A server's connection to one client: `id` (also `fd`, luatalk's key) and
--- its conch `socket`.
function Connection.new(id, socket, server)
  -- The socket exists already: finalizable at once (see invariants).
  return setmetatable({ id = id, fd = id, socket = socket, server = server, _end = conch.chan(),
                        _on_recv = function() return nil end }, LiveConnection)
end

function Connection:on_recv(fn) self._on_recv = fn end
--- Sends msg to this client: false once it is gone.
function Connection:send(msg)
  msg = check_message(msg)
  if msg == "" then return not self._shut end
  return self.socket.output:send(msg)
end
--- Flushes and closes this connection (waiting at most talk.linger ms).
function Connection:close()
  local srv = self.server
  if srv and srv.connections[self.id] == self then srv.connections[self.id] = nil end
  shut(self)
  await_end({ self }, conch.now() + talk.linger + 100)
end
-- Connections are driven by their reader go block.
function Connection:_on_poll() end

-- ---- SocketServer ----

local SocketServer = class()
talk.SocketServer = SocketServer

--- A server. params: {connection_backlog = n} (default 10). `connections`
--- maps each client's id (1, 2, ... in accept order) to its Connection;
--- `poller` is the Poller listen() runs.
function SocketServer.new(params)
  if params ~= nil and type(params) ~= "table" then
    error("conch.talk: SocketServer(params): params must be a table", 2)
  end
  params = params or {}
  for k in pairs(params) do
    if k ~= "connection_backlog" then
      error("conch.talk: SocketServer: unknown option '" .. tostring(k) .. "'", 2)
    end
  end
  local backlog = params.connection_backlog or 10
  if math.type(backlog) ~= "integer" or backlog < 1 then
    error("conch.talk: SocketServer: connection_backlog must be an integer >= 1", 2)
  end
  local self = setmetatable({
    connection_backlog = backlog, poller = Poller(), connections = {}, fd = pseudo_fd(),
    next_id = 0, _end = conch.chan(),
  }, SocketServer)
  self._on_recv = function() return nil end
  return self
end

function SocketServer:on_recv(fn) self._on_recv = fn end
--- on_connect(fn): fn(id) runs for each new client (conch extension).
function SocketServer:on_connect(fn) self._on_connect = fn end
--- on_close(fn): fn(id) runs when a client hangs up (conch extension).
function SocketServer:on_close(fn) self._on_close = fn end

-- The reader of one connection: on_recv(id, msg) for each chunk.
function SocketServer:_serve(conn)
  read_loop(conn, function(msg)
    call("on_recv", conn._on_recv, msg)
  end, function()
    if self.connections[conn.id] == conn then
      self.connections[conn.id] = nil
      call("on_close", self._on_close, conn.id)
    end
  end)
end

--- Starts serving `path` (a Unix socket path; also "@name" or host:port) and
--- returns at once: true, or nil, message, code. opts: conch socket options.
function SocketServer:start(path, opts)
  if self.srv then error("conch.talk: this server is already listening", 2) end
  local o = { backlog = self.connection_backlog }
  for k, v in pairs(opts or {}) do o[k] = v end
  local srv, err, code = conch.listen(address(path), o)
  if not srv then return nil, err, code end
  self.srv, self.path = srv, path
  conch.go(function()
    for sock in srv.connections:iter() do
      self.next_id = self.next_id + 1
      local conn = Connection(self.next_id, sock, self)
      conn:on_recv(function(msg) return self._on_recv(conn.id, msg) end)
      self.connections[conn.id] = conn
      call("on_connect", self._on_connect, conn.id)
      conch.go(self._serve, self, conn)
    end
  end)
  self.poller:add(self)
  return true
end

--- Listens on `path` and serves until close(), as luatalk's listen does
--- (running self.poller, so pollables added to it are polled too). Raises
--- when it cannot listen.
function SocketServer:listen(path, opts)
  if self.poller._polling then error("conch.talk: listen: the server's poller is already polling", 2) end
  local ok, err = self:start(path, opts)
  if not ok then error("conch.talk: listen(" .. tostring(path) .. "): " .. tostring(err), 2) end
  self.poller:_run(nil, self._end)
  return true
end

--- The address the server listens on.
function SocketServer:address() return self.srv and self.srv:address() end

--- Sends msg to one client (its id, or its Connection): true, or false if
--- that client is gone.
function SocketServer:send(client, msg)
  msg = check_message(msg)
  local conn = client
  if type(client) ~= "table" then conn = self.connections[client] end
  if not conn or conn._shut then return false end
  if msg == "" then return true end
  return conn.socket.output:send(msg)
end

--- Sends msg to every connected client; returns how many it reached.
function SocketServer:broadcast(msg)
  msg = check_message(msg)
  local list = {}
  for _, conn in pairs(self.connections) do list[#list + 1] = conn end
  local n = 0
  for _, conn in ipairs(list) do
    if not conn._shut and (msg == "" or conn.socket.output:send(msg)) then n = n + 1 end
  end
  return n
end

--- Stops listening and closes every connection: what was sent to them is
--- flushed first (waiting at most talk.linger ms for the clients to close);
--- listen() returns.
function SocketServer:close()
  if self.srv then self.srv:close() end
  local list = {}
  for id, conn in pairs(self.connections) do
    list[#list + 1] = conn
    self.connections[id] = nil
    shut(conn)
  end
  if not self._closed then
    self._closed = true
    self._end:close()
  end
  await_end(list, conch.now() + talk.linger + 100)
end

-- The server is driven by its accept go block.
function SocketServer:_on_poll() end

-- ---- Client ----

local Client = class()
talk.Client = Client
talk.SocketClient = Client

local LiveClient = setmetatable({ __gc = finalize }, { __index = Client })
LiveClient.__index = Client

function Client.new()
  local self = setmetatable({ fd = pseudo_fd(), _end = conch.chan() }, Client)
  self._on_recv = function() return nil end
  return self
end

function Client:on_recv(fn) self._on_recv = fn end
--- on_close(fn): fn() runs when the server hangs up (conch extension).
function Client:on_close(fn) self._on_close = fn end

--- Connects to a server at `path` (as SocketServer:start). Raises when it
--- cannot connect. opts: conch socket options.
function Client:connect(path, opts)
  if self.socket then
    error("conch.talk: this client is already connected (a new Client connects again)", 2)
  end
  local sock, err = conch.connect(address(path), opts)
  if not sock then error("conch.talk: connect(" .. tostring(path) .. "): " .. tostring(err), 2) end
  self.socket, self.path = sock, path
  conch.go(read_loop, self, function(msg)
    call("on_recv", self._on_recv, msg)
  end, function()
    call("on_close", self._on_close)
  end)
  setmetatable(self, LiveClient)  -- finalizable from now on (see invariants)
  return true
end

--- Sends msg to the server: true once queued, false once the connection is
--- gone (luatalk raises then).
function Client:send(msg)
  msg = check_message(msg)
  if not self.socket then error("conch.talk: send: the client is not connected", 2) end
  if self._shut then return false end
  if msg == "" then return true end
  return self.socket.output:send(msg)
end

--- Closes the connection: what was sent is flushed first, waiting at most
--- talk.linger ms for the server to close its side.
function Client:close()
  if not self.socket then return end
  shut(self)
  await_end({ self }, conch.now() + talk.linger + 100)
end

-- The client is driven by its reader go block.
function Client:_on_poll() end

-- ---- running the loop without a Poller ----

--- Runs the event loop until every go block (server, clients) has ended.
function talk.run() conch.run() end

--- Runs the event loop for `ms` milliseconds (without: as talk.run()).
function talk.poll(ms)
  if ms then conch.sleep(ms) else conch.run() end
end

return talk
