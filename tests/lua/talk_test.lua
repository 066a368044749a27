-- tests/lua/talk_test.lua
-- conch.talk as luatalk, in one process: the README's server and client, sizes, broadcast, close, Poller.
-- (tests/lua/talk_demos_test.lua runs scripts as separate processes: exit, stdin, the real demos.)
local conch = require "conch"
local talk = require "conch.talk"
local T = require "check"

local function tmp_path()
  local p = os.tmpname()
  os.remove(p)
  return p
end

-- Polls cond() every 5 ms (running the loop) for up to 10 s (sanitizers on
-- a busy machine); true once it holds.
local function eventually(cond) return T.poll(cond, 10000, 5) end

local function count(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

-- A server that collects what each client sent (chunks concatenated by id).
local function collecting_server(path)
  local server = talk.SocketServer()
  local got = {}
  server:on_recv(function(id, msg) got[id] = (got[id] or "") .. msg end)
  assert(server:start(path))
  return server, got
end

T.test("the README's server and client: listen serves until close(), the message arrives", function()
  local path = tmp_path()
  local server = require('conch.talk').SocketServer()
  local received = conch.chan(4)
  server:on_recv(function(fd, msg)
    received:send('Received this message: ' .. msg)
  end)
  local listening = conch.go(function()
    server:listen(path)
    return "listen returned"
  end)
  T.ok(eventually(function() return server.srv ~= nil end), "listening")

  local client = require('conch.talk').Client()
  client:connect(path)
  client:send('Groovy!')
  T.eq(received:recv(), 'Received this message: Groovy!')
  T.eq(listening:try_recv(), nil, "listen still serving")
  client:close()
  server:close()
  T.eq(listening:recv(), "listen returned", "listen returned after close()")
  os.remove(path)
end)

T.test("connections are keyed by a per-connection number; send and broadcast", function()
  local path = tmp_path()
  local server = talk.SocketServer()
  local seen = conch.chan(10)
  server:on_recv(function(id, msg)
    seen:send({ id = id, msg = msg })
    server:broadcast("all:" .. msg)
  end)
  assert(server:start(path))
  local inbox, clients = { conch.chan(10), conch.chan(10) }, {}
  for i = 1, 2 do
    clients[i] = talk.SocketClient()
    clients[i]:on_recv(function(msg) inbox[i]:send(msg) end)
    clients[i]:connect(path)
  end
  T.ok(eventually(function() return count(server.connections) == 2 end), "two connections")
  T.ok(server.connections[1] and server.connections[2], "keys 1 and 2")
  T.eq(server.connections[1].fd, 1, "a connection's fd is its key")

  T.eq(clients[1]:send("hello"), true)
  local got = seen:recv()
  T.eq(got.msg, "hello")
  T.eq(inbox[1]:recv(), "all:hello", "client 1 got the broadcast")
  T.eq(inbox[2]:recv(), "all:hello", "client 2 got the broadcast")

  T.eq(server:send(got.id, "just you"), true)
  T.eq(inbox[1]:recv(), "just you")
  T.eq(inbox[2]:try_recv(), nil, "client 2 got nothing")
  T.eq(server:send(99, "nobody"), false, "an unknown id is false")

  for i = 1, 2 do clients[i]:close() end
  T.ok(eventually(function() return next(server.connections) == nil end), "hung-up clients leave")
  T.eq(server:broadcast("late"), 0, "broadcast with no one left reaches no one, no error")
  T.eq(server:send(got.id, "late"), false, "send to a closed client is false, no error")
  server:close()
  os.remove(path)
end)

T.test("messages of 1, 4095, 4096, 4097 bytes and 1 MiB arrive whole, both ways", function()
  local path = tmp_path()
  local server, got = collecting_server(path)
  local sizes = { 1, 4095, 4096, 4097, 1 << 20 }
  local bytes = {}
  for i = 1, 251 do bytes[i] = string.char(i) end
  local block251 = table.concat(bytes)
  for _, n in ipairs(sizes) do
    -- Bytes 1..251 over and over (251 is prime: no buffer size is a
    -- multiple of it, so a lost, repeated or moved chunk shows).
    local msg = string.rep(block251, n // 251 + 1):sub(1, n)
    local back = {}
    local c = talk.Client()
    c:on_recv(function(m) back[#back + 1] = m end)
    c:connect(path)
    T.eq(c:send(msg), true)
    local id
    T.ok(eventually(function()
      for k, v in pairs(got) do if #v >= n then id = k return true end end
    end), n .. " bytes reached the server")
    T.ok(got[id] == msg, n .. " bytes arrived whole at the server")
    T.eq(server:send(id, msg), true)
    T.ok(eventually(function() return #table.concat(back) >= n end), n .. " bytes came back")
    T.ok(table.concat(back) == msg, n .. " bytes arrived whole at the client")
    got[id] = nil
    c:close()
  end
  server:close()
  os.remove(path)
end)

T.test("server:close() flushes and closes every accepted client (luatalk's leaves them open)", function()
  local path = tmp_path()
  local server = talk.SocketServer()
  assert(server:start(path))
  local closed, inbox = conch.chan(4), conch.chan(4)
  local clients = {}
  for i = 1, 2 do
    clients[i] = talk.Client()
    clients[i]:on_recv(function(msg) inbox:send(i .. ":" .. msg) end)
    clients[i]:on_close(function() closed:send(i) end)
    clients[i]:connect(path)
  end
  T.ok(eventually(function() return count(server.connections) == 2 end), "both accepted")
  server:broadcast("bye")
  server:close()  -- luatalk's leaves the accepted descriptors open
  T.eq(next(server.connections), nil, "connections emptied")
  local heard = {}
  for _ = 1, 2 do heard[inbox:recv()] = true end
  T.ok(heard["1:bye"] and heard["2:bye"], "what was sent before close() arrived")
  local ended = {}
  for _ = 1, 2 do ended[closed:recv()] = true end
  T.ok(ended[1] and ended[2], "both clients saw the server close")
  T.eq(clients[1]:send("x"), false, "sending to a closed server is false")
  T.raises(function() talk.Client():connect(path) end, "connect(")
  os.remove(path)
end)

T.test("a client's close() flushes what it sent; the server's on_close hears the hang-up", function()
  local path = tmp_path()
  local server, got = collecting_server(path)
  local gone = conch.chan(1)
  server:on_close(function(id) gone:send(id) end)
  local c = talk.Client()
  c:connect(path)
  local big = string.rep("z", 300000)
  c:send(big)
  c:send("end")
  c:close()  -- returns once the server has everything and closed its side
  local id = gone:recv()
  T.ok(got[id] == big .. "end", "all of it arrived before the hang-up")
  T.eq(server.connections[id], nil)
  server:close()
  os.remove(path)
end)

T.test("a callback may close its own connection or the server", function()
  local path = tmp_path()
  local server = talk.SocketServer()
  server:on_recv(function(id, msg)
    if msg == "quit" then
      server:send(id, "ok")
      server:close()  -- from inside the connection's own callback: no self-wait
    end
  end)
  local done = conch.go(function()
    server:listen(path)
    return true
  end)
  T.ok(eventually(function() return server.srv ~= nil end))
  local reply = conch.chan(1)
  local c = talk.Client()
  c:on_recv(function(msg) reply:send(msg) end)
  c:connect(path)
  c:send("quit")
  T.eq(reply:recv(), "ok", "the reply sent before close() arrived")
  T.eq(done:recv(), true, "listen returned")
  c:close()
  os.remove(path)
end)

T.test("errors are clear: bad paths, bad messages, bad options, a failing callback", function()
  T.raises(function() talk.Client():connect("/nonexistent/talk.sock") end,
           "conch.talk: connect(/nonexistent/talk.sock)")
  T.raises(function() talk.SocketServer():listen("/nonexistent/dir/talk.sock") end,
           "conch.talk: listen(/nonexistent/dir/talk.sock)")
  local ok, err = talk.SocketServer():start("/nonexistent/dir/talk.sock")
  T.eq(ok, nil)
  T.ok(type(err) == "string", "start: nil, message")
  T.raises(function() talk.Client():connect(nil) end, "socket path")
  local live_path = tmp_path()
  local live = talk.SocketServer()
  assert(live:start(live_path))
  local ok2, err2 = talk.SocketServer():start(live_path)  -- luatalk's unlinks the live socket
  T.eq(ok2, nil, "a path a live server listens on is refused")
  T.ok(type(err2) == "string", "with a message")
  live:close()
  os.remove(live_path)
  T.raises(function() talk.SocketServer{ backlog = 3 } end, "unknown option 'backlog'")
  T.raises(function() talk.SocketServer{ connection_backlog = 0 } end, "connection_backlog")
  T.raises(function() talk.Client():send("x") end, "not connected")
  T.raises(function() talk.Poller():add({ fd = 3 }) end, "_on_poll")

  local path = tmp_path()
  local server = talk.SocketServer{ connection_backlog = 4 }
  local n, seen = 0, conch.chan(2)
  server:on_recv(function(_, msg)
    n = n + 1
    if n == 1 then error("first message fails") end
    seen:send(msg)
  end)
  assert(server:start(path, { framing = "lines" }))
  local c = talk.Client()
  c:connect(path, { framing = "lines" })
  T.raises(function() c:send({}) end, "must be a string")
  c:send("one")
  c:send("two")
  T.eq(seen:recv(), "two", "the connection survived the failing callback")
  T.raises(function() c:connect(path) end, "already connected")
  c:close()
  server:close()
  os.remove(path)
end)

T.test("a relative path names a Unix socket in the working directory, as luatalk's does", function()
  local name = "conch_talk_test_" .. math.random(1 << 30) .. ".sock"
  local server, got = collecting_server(name)
  local c = talk.Client()
  c:connect(name)
  c:send("rel")
  T.ok(eventually(function() return got[1] == "rel" end), "arrived")
  T.ok(os.execute("test -S " .. name), "the socket file is in the working directory")
  c:close()
  server:close()
  os.remove(name)
end)

T.test("host:port serves TCP on loopback too (a conch extension)", function()
  local server, got = collecting_server("127.0.0.1:0")
  local addr = server:address()
  T.ok(addr:match("^127%.0%.0%.1:%d+$"), "bound to a free port: " .. tostring(addr))
  local c = talk.Client()
  c:connect(addr)
  c:send("tcp")
  T.ok(eventually(function() return got[1] == "tcp" end), "arrived over TCP")
  c:close()
  server:close()
end)

T.test("Poller: talk objects are polled until they end; poll{timeout}, stop() and an empty poller return", function()
  local path = tmp_path()
  local server = talk.SocketServer()
  assert(server:start(path))
  local poller = talk.Poller()
  local c = talk.Client()
  local inbox = conch.chan(1)
  c:on_recv(function(msg) inbox:send(msg) end)
  c:connect(path)
  poller:add(c)
  T.eq(poller.pollables[c.fd], c, "pollables keyed by fd")
  T.ok(c.fd < 0, "a talk object's fd is no OS descriptor")
  poller:poll{ timeout = 30 }
  T.eq(poller.pollables[c.fd], c, "poll{timeout} returned with the client still polled")
  local stopped = false
  conch.go(function()
    conch.sleep(20)
    stopped = true
    poller:stop()
  end)
  poller:poll(1)  -- luatalk's README writes poll(fd): a number is no time limit
  T.ok(stopped, "poll(1) ran until stop()")
  T.raises(function() poller:poll{ ms = 1 } end, "unknown option 'ms'")
  conch.go(function()
    T.ok(eventually(function() return server.connections[1] ~= nil end))
    server:send(1, "hi")
    server:close()  -- the client sees the server close: it ends, leaves the poller
  end)
  poller:poll()  -- returns once nothing is left to poll
  T.eq(inbox:recv(), "hi", "the callback ran while polling")
  T.eq(next(poller.pollables), nil, "the ended client left the poller")

  local p2 = talk.Poller()
  p2:add(talk.Client())  -- never connects: polled until removed or stopped
  conch.go(function() conch.sleep(10) p2:stop() end)
  p2:poll()
  T.ok(next(p2.pollables) ~= nil, "stop() keeps the pollables")
  p2:remove(next(p2.pollables))
  p2:poll()  -- nothing left: returns at once
  os.remove(path)
end)

T.test("conch.fd_watch and fd_read: a closed descriptor polls POLLNVAL; bad arguments are errors", function()
  local ready, cancel = conch.fd_watch(1 << 20)  -- no such descriptor: POLLNVAL
  T.eq(ready:recv(), 32, "POLLNVAL for a closed descriptor")
  T.raises(function() conch.fd_watch(-1) end, "not a file descriptor")
  T.raises(function() conch.fd_read(0, 0) end, "byte count")
  local v, err = conch.fd_read(1 << 20)
  T.eq(v, nil)
  T.ok(err:find("Bad file descriptor", 1, true), "read of a closed descriptor: " .. tostring(err))
  cancel()
end)

-- A connected TCP pair of plain descriptors (lsocket's sockets): client, accepted.
local function fd_pair()
  local ls = require "lsocket"
  local srv = assert(ls.bind("127.0.0.1", 0, 10))
  local c = assert(ls.connect("127.0.0.1", srv:info("socket").port))
  local r = ls.select({ srv }, 10)
  T.ok(r and r[1] == srv, "connection pending within 10 s")
  local a = assert(srv:accept())
  srv:close()
  return c, a
end

-- Within 10 s, the value ch gives (nil if it closed empty); fails on a time out.
local function within(ch, what)
  local v, got = conch.select { ch, conch.timeout(10000) }
  T.ok(got == ch, (what or "watch") .. " answered within 10 s")
  return v
end

T.test("conch.fd_watch waits on the loop's ring: quiet until data arrives, one report, then closed", function()
  local c, a = fd_pair()
  local ready, cancel = conch.fd_watch(a:getfd())
  conch.sleep(0)  -- the watch's go block runs: armed on a quiet descriptor
  T.eq(ready:try_recv(), nil, "nothing to read: no report")
  T.eq(ready:closed(), false)
  local outcome = conch.go(function() return ready:recv() end)  -- parks only this go block
  T.ok(c:send("x"), "sent")
  T.eq(within(outcome, "the parked go block"), 1, "POLLIN once the byte arrived")
  T.eq(ready:recv(), nil, "one report, then closed")
  T.eq(a:recv(1), "x", "the watch consumed nothing")
  cancel()  -- after the report: harmless
  -- Hang-up: readable with POLLHUP or EOF; a report either way.
  local ready2 = conch.fd_watch(a:getfd())
  c:close()
  T.ok(within(ready2, "hang-up") & 1 == 1, "POLLIN (end of file) after the peer closed")
  a:close()
end)

T.test("conch.fd_watch: cancel() and collection end a watch; 300 armed at once hold no thread", function()
  local c, a = fd_pair()
  local ready, cancel = conch.fd_watch(a:getfd())
  cancel()
  T.eq(within(ready, "cancelled watch"), nil, "cancel() closes it empty")
  cancel()  -- idempotent
  local dropped = conch.fd_watch(a:getfd())  -- its cancel closure is garbage at once
  collectgarbage()
  collectgarbage()
  T.eq(within(dropped, "collected watch"), nil, "collecting the cancel closure cancels the watch")
  -- More quiet watches than the blocking pool has threads (256): each was a
  -- thread once; now a further watch still reports.
  local quiet = {}
  for i = 1, 300 do
    local r, k = conch.fd_watch(a:getfd())
    T.ok(r, "watch " .. i)
    quiet[i] = { r, k }
  end
  local c2, a2 = fd_pair()
  local ready2, cancel2 = conch.fd_watch(a2:getfd())
  T.ok(c2:send("y"), "sent")
  T.eq(within(ready2, "watch 301"), 1, "the 301st watch reports POLLIN")
  for _, q in ipairs(quiet) do q[2]() end
  for i, q in ipairs(quiet) do T.eq(within(q[1], "quiet watch " .. i), nil, "cancelled") end
  cancel2()
  for _, s in ipairs { c, a, c2, a2 } do s:close() end
end)

T.test("the script may end with a server and clients still open (the state closes, flushing)", function()
  local path = tmp_path()
  local server = talk.SocketServer()
  assert(server:start(path))
  for i = 1, 3 do
    local c = talk.Client()
    c:connect(path)
    T.eq(c:send("left open " .. i), true)
  end
  -- Nothing closed: the runner must still end (lua_close finalizes them).
end)

T.done("talk")
