-- tests/lua/talk_test.lua
-- The luatalk-style API (conch.talk): a server, two clients, broadcast.
local conch = require "conch"
local talk = require "conch.talk"
local T = require "check"

local function tmp_path()
  local p = os.tmpname()
  os.remove(p)
  return p
end

T.test("a server with two clients: broadcast reaches both, send reaches one", function()
  local path = tmp_path()
  local server = talk.SocketServer()
  local server_got = conch.chan(10)
  server:on_recv(function(client, msg)
    server_got:send({ client = client, msg = msg })
    server:broadcast("all:" .. msg)
  end)
  assert(server:listen(path))

  local inbox = { conch.chan(10), conch.chan(10) }
  local clients = {}
  for i = 1, 2 do
    clients[i] = talk.Client()
    clients[i]:on_recv(function(msg) inbox[i]:send(msg) end)
    assert(clients[i]:connect(path))
  end
  -- Both connections are accepted before anyone talks.
  for _ = 1, 2000 do  -- up to 10 s (sanitizer builds on a busy machine)
    local n = 0
    for _ in pairs(server.connections) do n = n + 1 end
    if n == 2 then break end
    conch.sleep(5)
  end
  local ids = {}
  for id in pairs(server.connections) do ids[#ids + 1] = id end
  T.eq(#ids, 2, "two connections")

  T.eq(clients[1]:send("hello"), true)
  local got = server_got:recv()
  T.eq(got.msg, "hello")
  T.eq(inbox[1]:recv(), "all:hello", "client 1 got the broadcast")
  T.eq(inbox[2]:recv(), "all:hello", "client 2 got the broadcast")

  T.eq(server:send(got.client, "just you"), true)
  T.eq(inbox[1]:recv(), "just you")
  T.eq(inbox[2]:try_recv(), nil, "client 2 got nothing")

  server:close()
  for i = 1, 2 do clients[i]:close() end
  talk.run()  -- returns once every reader has stopped
  T.eq(next(server.connections), nil, "connections emptied")
  os.remove(path)
end)

T.test("a client that hangs up leaves connections; on_close hears it", function()
  local path = tmp_path()
  local server = talk.SocketServer()
  local closed = conch.chan(1)
  server:on_close(function(id) closed:send(id) end)
  assert(server:listen(path))
  local c = talk.Client()
  assert(c:connect(path))
  c:send("x")
  conch.sleep(10)
  c:close()
  local id = closed:recv()
  T.eq(server.connections[id], nil)
  server:close()
  os.remove(path)
end)

T.test("errors: connecting nowhere; a failing callback does not stop the connection", function()
  local ok, err = talk.Client():connect("/nonexistent/talk.sock")
  T.eq(ok, nil)
  T.ok(err, "a message")
  local path = tmp_path()
  local server = talk.SocketServer()
  local n = 0
  local seen = conch.chan(2)
  server:on_recv(function(_, msg)
    n = n + 1
    if n == 1 then error("first message fails") end
    seen:send(msg)
  end)
  assert(server:listen(path, { framing = "lines" }))
  local c = talk.Client()
  assert(c:connect(path, { framing = "lines" }))
  c:send("one")
  c:send("two")
  T.eq(seen:recv(), "two")
  c:close()
  server:close()
  os.remove(path)
end)

T.test("Poller():poll(ms) runs the loop for a while", function()
  local t0 = conch.now()
  talk.Poller():poll(20)
  T.ok(conch.now() - t0 >= 19, "polled")
end)

T.done("talk")
