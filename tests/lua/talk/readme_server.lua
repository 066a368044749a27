-- tests/lua/talk/readme_server.lua
-- luatalk's README server with only the require line changed (the path comes from TALK_PATH).
local server = require('conch.talk').SocketServer()

server:on_recv(function(fd, msg)
  print('Received this message: ' .. msg)
end)

server:listen(os.getenv('TALK_PATH'))
