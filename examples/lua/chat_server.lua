-- examples/lua/chat_server.lua
-- A chat server in the luatalk style (conch.talk): every line a client sends
-- is broadcast to all clients, prefixed with the sender's id.
--
--   LUA_CPATH='build/lua/?.so' LUA_PATH='lua/?.lua;;' lua5.4 examples/lua/chat_server.lua /tmp/chat.sock
--   (then, in other terminals: socat - UNIX-CONNECT:/tmp/chat.sock)
--   lua5.4 examples/lua/chat_server.lua --demo   # server plus two clients, then exit
local conch = require "conch"
local talk = require "conch.talk"

local demo = arg[1] == "--demo"
local path = demo and os.tmpname() or (arg[1] or "/tmp/conch-chat.sock")
if demo then os.remove(path) end

local server = talk.SocketServer()
server:on_connect(function(id) server:broadcast(("* %d joined"):format(id)) end)
server:on_recv(function(id, line) server:broadcast(("%d: %s"):format(id, line)) end)
server:on_close(function(id) server:broadcast(("* %d left"):format(id)) end)
assert(server:start(path, { framing = "lines" }))  -- start returns at once; listen would serve here
print("chat server on " .. path)

if demo then
  local inbox = { conch.chan(16), conch.chan(16) }
  local clients = {}
  for i = 1, 2 do
    clients[i] = talk.Client()
    clients[i]:on_recv(function(msg) inbox[i]:send(msg) end)
    assert(clients[i]:connect(path, { framing = "lines" }))
  end
  -- Wait until each client has heard that the second one joined, then talk.
  for i = 1, 2 do
    repeat local line = inbox[i]:recv() until line == "* 2 joined"
  end
  clients[1]:send("hello from one")
  for i = 1, 2 do
    local line = inbox[i]:recv()
    print(("client %d heard: %s"):format(i, line))
    assert(line:find("hello from one", 1, true))
  end
  for i = 1, 2 do clients[i]:close() end
  server:close()
  os.remove(path)
end
talk.run()   -- until the server and every client are closed (forever, unless --demo)
