-- examples/lua/echo_server.lua
-- A TCP (or Unix) echo server: each connection is a go block that sends back
-- every line it receives.
--
--   LUA_CPATH='build/lua/?.so' lua5.4 examples/lua/echo_server.lua 127.0.0.1:7000
--   (then: socat - TCP:127.0.0.1:7000)
--   lua5.4 examples/lua/echo_server.lua --demo   # server plus a client, then exit
local conch = require "conch"

local demo = arg[1] == "--demo"
local addr = demo and "127.0.0.1:0" or (arg[1] or "127.0.0.1:7000")

local srv = assert(conch.listen(addr, { framing = "lines" }))
print("echo server on " .. srv:address())

conch.go(function()
  for sock in srv.connections:iter() do          -- one accepted socket at a time
    conch.go(function()                           -- ... served by its own go block
      for line in sock.input:iter() do sock.output:send(line) end
      sock.output:close()                         -- flush, then half-close
    end)
  end
end)

if demo then
  local c = assert(conch.connect(srv:address(), { framing = "lines" }))
  for _, word in ipairs { "hello", "echo", "world" } do
    c.output:send(word)
    local back = c.input:recv()
    print("sent " .. word .. ", got " .. back)
    assert(back == word)
  end
  c:close()
  srv:close()
end
conch.run()   -- serve until the server is closed (forever, unless --demo)
