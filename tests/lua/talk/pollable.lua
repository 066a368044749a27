-- tests/lua/talk/pollable.lua
-- A custom pollable (any object with `fd` and `_on_poll`) on stdin, in a Poller with a talk client.
-- Each stdin chunk goes to the server; a chunk ending in "remove" takes the pollable out of the
-- poller, and poll() returns once the client is closed too.
local conch = require('conch')
local luatalk = require('conch.talk')

local Pipe = {}
Pipe.__index = Pipe
function Pipe.new(fd) return setmetatable({ fd = fd, chunks = 0 }, Pipe) end

local poller = luatalk.Poller()
local client = luatalk.Client()
client:connect(os.getenv('TALK_PATH'))

function Pipe:_on_poll()
  local chunk = assert(conch.fd_read(self.fd))
  self.chunks = self.chunks + 1
  if chunk ~= '' then client:send(chunk) end
  if chunk == '' or chunk:find('remove\n$') then
    poller:remove(self.fd)
    client:close()
  end
end

poller:add(Pipe.new(0))
poller:add(client)
poller:poll()
print('poll returned; pollables left: ' .. tostring(next(poller.pollables)))
