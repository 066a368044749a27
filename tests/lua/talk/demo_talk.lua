-- tests/lua/talk/demo_talk.lua
-- As luatalk's demos/talk.lua, with only the require line changed: stdin lines to the server, its broadcasts printed.
local luatalk = require('conch.talk')
local poller = luatalk.Poller()
local stdin = luatalk.StdinReader()
local client = luatalk.Client()

client:connect(os.getenv('TALK_PATH'))
client:on_recv(function(msg)
  print('Received: ' .. msg)
end)

stdin:on_read(function(msg)
  client:send(msg)
end)

poller:add(stdin)
poller:add(client)
poller:poll()
