-- bench/lua/echo_server.lua
-- A raw-bytes Lua echo server, written four ways: conch, lsocket (conch's or the real one), cqueues, luv.
--
--   LUA_CPATH='build/lua/?.so' lua5.4 bench/lua/echo_server.lua conch|lsocket|cqueues|luv tcp:PORT|unix:PATH
-- Prints "ready" once it listens, then echoes every byte back on its
-- connection until killed (bench/run_lua_echo.sh drives it with
-- conch_bench_sock_loadgen, as bench/run_sockets.sh does the C++ servers).
-- Each is written the way that library's users write one.
io.stdout:setvbuf("line")
local impl, spec = arg[1], arg[2] or "tcp:9000"
local kind, where = spec:match("^(%a+):(.+)$")
assert(kind == "tcp" or kind == "unix", "spec: tcp:PORT or unix:PATH")
if kind == "unix" then os.remove(where) end

local servers = {}

-- conch: a go block per connection, raw chunks from input straight to output.
function servers.conch()
  local conch = require "conch"
  local srv = assert(conch.listen(kind == "tcp" and ("127.0.0.1:" .. where) or where))
  print("ready")
  for s in srv.connections:iter() do
    conch.go(function()
      for chunk in s.input:iter() do s.output:send(chunk) end
      s.output:close()
    end)
  end
end

-- lsocket: one select loop over the listener and every connection (lsocket's samples' shape);
-- what send does not take now is kept and the socket watched for write.
function servers.lsocket()
  local ls = require "lsocket"
  local srv = kind == "tcp" and assert(ls.bind("127.0.0.1", tonumber(where), 1024))
              or assert(ls.bind(where, nil, 1024))
  print("ready")
  local reading, pending = { srv }, {}
  local function drop(s)
    s:close()
    pending[s] = nil
    for i, x in ipairs(reading) do if x == s then table.remove(reading, i) break end end
  end
  while true do
    local writing = {}
    for s in pairs(pending) do writing[#writing + 1] = s end
    local r, w = ls.select(reading, writing)
    for _, s in ipairs(w or {}) do
      local n = s:send(pending[s])
      if n then pending[s] = n < #pending[s] and pending[s]:sub(n + 1) or nil end
    end
    for _, s in ipairs(r or {}) do
      if s == srv then
        local c = srv:accept()
        while c do reading[#reading + 1] = c; c = srv:accept() end
      else
        local data = s:recv(65536)
        if data then
          if pending[s] then pending[s] = pending[s] .. data
          else
            local n = s:send(data)
            if n == nil then drop(s)
            elseif n ~= #data then pending[s] = data:sub((n or 0) + 1) end
          end
        elseif data == nil then drop(s) end
      end
    end
  end
end

-- cqueues: a coroutine per connection on one controller.
function servers.cqueues()
  local cqueues, socket = require "cqueues", require "cqueues.socket"
  local srv = kind == "tcp" and socket.listen("127.0.0.1", tonumber(where)) or socket.listen { path = where }
  srv:listen()
  local cq = cqueues.new()
  cq:wrap(function()
    print("ready")
    for c in srv:clients() do
      cq:wrap(function()
        c:setmode("bn", "bn")
        pcall(function()   -- a reset connection raises: it ends only that connection
          while true do
            local data = c:xread(-65536, "b")
            if not data then break end
            c:write(data)
            c:flush()
          end
        end)
        c:close()
      end)
    end
  end)
  assert(cq:loop())
end

-- luv: callbacks on the default loop.
function servers.luv()
  local uv = require "luv"
  local srv = kind == "tcp" and uv.new_tcp() or uv.new_pipe(false)
  if kind == "tcp" then assert(srv:bind("127.0.0.1", tonumber(where))) else assert(srv:bind(where)) end
  assert(srv:listen(1024, function()
    local c = kind == "tcp" and uv.new_tcp() or uv.new_pipe(false)
    srv:accept(c)
    c:read_start(function(err, data)
      if err or not data then c:close() return end
      c:write(data)
    end)
  end))
  print("ready")
  uv.run()
end

local run = servers[impl]
if not run then error("unknown server " .. tostring(impl) .. ": conch, lsocket, cqueues or luv") end
run()
