-- tests/lua/lsocket/server.lua
-- An lsocket echo server (tcp, udp, unix) or counting sender (mcast), in the manner of lsocket 1.4's samples.
--
--   lua5.4 server.lua tcp|udp|unix|abstract|mcast [6]   (6: IPv6; port 8000, unix path
--                                   ./testsocket, abstract name @lsocket-testsocket)
-- Runs until killed. Written for conch's tests (the samples themselves are
-- lsocket's): the same calls, used the same way, so it runs unchanged on
-- conch's lsocket and on the real one.
io.stdout:setvbuf("line")
local kind, six = arg[1] or "tcp", arg[2] == "6"
local port = 8000
local ls = require "lsocket"

local function fail(err)
  print("error: " .. tostring(err))
  os.exit(1)
end

local function show(sock)
  io.write("Socket info: ")
  for k, v in pairs(sock:info()) do io.write(k .. "=" .. tostring(v) .. " ") end
  local s = sock:info("socket")
  print("\nSocket: " .. s.family .. " " .. tostring(s.addr) .. ":" .. tostring(s.port))
end

if kind == "mcast" then
  local server, err = ls.connect("mcast", six and "ff01::1" or "127.255.255.255", port)
  if not server then fail(err) end
  ls.select(nil, { server })
  local ok, e = server:status()
  if not ok then fail(e) end
  show(server)
  local cnt = 1
  repeat
    ls.select(0.2)
    print("sending " .. cnt)
    server:send("Counting: " .. cnt)
    cnt = cnt + 1
  until false
elseif kind == "udp" then
  local server, err = ls.bind("udp", six and "::1" or "127.0.0.1", port)
  if not server then fail(err) end
  show(server)
  repeat
    ls.select { server }
    local str, addr, p = server:recvfrom()
    if str then
      str = str:gsub("\n$", "")
      print("from " .. addr .. ":" .. p .. " got '" .. str .. "', answering...")
      server:sendto("You sent: " .. str .. "\n", addr, p)
    elseif str == nil then
      print("error: " .. tostring(addr))
    end
  until false
else
  local server, err
  if kind == "unix" then
    server, err = ls.bind("./testsocket", nil, 10)
  elseif kind == "abstract" then
    server, err = ls.bind("@lsocket-testsocket", nil, 10)
  else
    server, err = ls.bind(six and "::1" or "127.0.0.1", port, 10)
  end
  if not server then fail(err) end
  show(server)
  local sockets, names = { server }, {}
  repeat
    local ready = ls.select(sockets)
    for _, s in ipairs(ready) do
      if s == server then
        local s1, ip, p = s:accept()
        if s1 then
          print("Connection established from " .. tostring(ip) .. ", port " .. tostring(p))
          sockets[#sockets + 1] = s1
          names[s1] = ip and (ip .. ":" .. p) or tostring(s1)
        end
      else
        local str, e = s:recv()
        if str then
          str = str:gsub("\n$", "")
          print("from " .. names[s] .. " got '" .. str .. "', answering...")
          s:send("You sent: " .. str .. "\n")
        elseif str == nil and e == nil then
          print("client " .. names[s] .. " disconnected")
          s:close()
          for i, x in ipairs(sockets) do
            if x == s then table.remove(sockets, i) break end
          end
        elseif e then
          print("error: " .. e)
        end
      end
    end
  until false
end
