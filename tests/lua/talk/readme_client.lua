-- tests/lua/talk/readme_client.lua
-- luatalk's README client with only the require line changed: sends and ends (nothing may be lost).
local client = require('conch.talk').Client()
client:connect(os.getenv('TALK_PATH'))
client:send('Groovy!')
