-- tests/lua/lsocket/client.lua
-- An lsocket client for server.lua (and lsocket 1.4's sample servers), in the manner of lsocket's samples.
--
--   lua5.4 client.lua tcp|udp|unix|abstract [6] < lines    sends each line, prints "reply: ..."; "quit" ends
--   lua5.4 client.lua mcast [6]                   prints what the counting sender broadcasts
io.stdout:setvbuf("line")
local kind, six = arg[1] or "tcp", arg[2] == "6"
local port = 8000
local ls = require "lsocket"

local function fail(err)
  print("error: " .. tostring(err))
  os.exit(1)
end

if kind == "mcast" then
  local client, err = ls.bind("mcast", six and "ff01::1" or "127.255.255.255", port)
  if not client then fail(err) end
  local s = client:info("socket")
  print("Socket: " .. s.family .. " " .. s.addr .. ":" .. s.port)
  repeat
    ls.select { client }
    local str, ip, p = client:recvfrom()
    if str then
      print("received from " .. ip .. ":" .. p .. ": " .. str)
    elseif str == nil then
      print("error: " .. tostring(ip))
    end
  until false
end

local client, err
if kind == "unix" then
  client, err = ls.connect("./testsocket")
elseif kind == "abstract" then
  client, err = ls.connect("@lsocket-testsocket")
elseif kind == "udp" then
  client, err = ls.connect("udp", six and "::1" or "127.0.0.1", port)
else
  client, err = ls.connect(six and "::1" or "127.0.0.1", port)
end
if not client then fail(err) end
ls.select(nil, { client })   -- wait for connect() to finish
local ok, e = client:status()
if not ok then fail(e) end
local sock, peer = client:info("socket"), client:info("peer")
print("Socket: " .. sock.family .. " Peer: " .. peer.family .. " " .. tostring(peer.addr))
repeat
  local s = io.read() or "quit"
  local n, serr = client:send(s)
  if not n then print("error: " .. tostring(serr)) end
  ls.select({ client })
  local str, rerr = client:recv()
  if str then
    print("reply: " .. str:gsub("\n$", ""))
  elseif rerr then
    print("error: " .. rerr)
  else
    print("server died, exiting")
    s = "quit"
  end
until s == "quit"
client:close()
