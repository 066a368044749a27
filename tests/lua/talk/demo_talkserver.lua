-- tests/lua/talk/demo_talkserver.lua
-- As luatalk's demos/talkserver.lua, with only the require line changed (the path comes from TALK_PATH).
local luatalk = require('conch.talk')
local server = luatalk.SocketServer()

server:on_recv(function(fd, msg)
  print(string.format('User %d says: %s', fd, msg))
  server:broadcast(msg)
end)

server:listen(os.getenv('TALK_PATH'))
