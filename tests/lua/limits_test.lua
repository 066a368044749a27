-- tests/lua/limits_test.lua
-- Issue 19 from Lua: hostile addresses are nil, err, code (never an abort or a hang); capacities have limits.
local conch = require "conch"
local T = require "check"

local ZONE = "[fe80::1%123456789012345678901234]:80"

-- r is {nil, message, code}: the message must mention `fragment`.
local function refused(r, fragment, what)
  T.eq(r[1], nil, what .. ": result")
  T.ok(type(r[2]) == "string" and r[2]:find(fragment, 1, true), what .. ": message " .. tostring(r[2]))
  T.eq(r[3], "INVALID_ARGUMENT", what .. ": code")
end

T.test("a zone id too large for 32 bits is an error from every entry point", function()
  refused({ conch.listen(ZONE) }, "out of range", "listen")
  refused({ conch.udp(ZONE) }, "out of range", "udp")
  refused({ conch.connect(ZONE) }, "out of range", "connect")
  refused({ conch.resolve("::%5115115115115115115115115115") }, "out of range", "resolve")
  -- The same inside a go block (connect and resolve used to hang there).
  local r = conch.go(function() return { conch.connect(ZONE) } end):recv()
  refused(r, "out of range", "connect in a go block")
  refused({ conch.listen("[fe80::1%4294967297]:80") }, "out of range", "listen, 2^32 + 1")
  local u = assert(conch.udp("127.0.0.1:0"))
  refused({ u:join("ff02::1%99999999999999999999") }, "out of range", "join")
  u:close()
end)

T.test("malformed addresses name what is wrong", function()
  refused({ conch.listen("127.0.0.1:99999999999999999999") }, "out of range", "port")
  refused({ conch.listen("1.2.3.4\0junk:80") }, "NUL byte", "NUL")
  refused({ conch.listen("[fe80::1%]:80") }, "empty zone", "empty zone")
  refused({ conch.connect("[fe80::1%no-such-if9]:80") }, "not a network interface", "zone name")
  local long = { conch.listen(("a"):rep(1 << 20) .. ":80") }
  T.eq(long[1], nil, "a megabyte-long name")
  T.ok(#long[2] < 1000, "the message quotes only the start")
end)

T.test("channel capacities over 2^24 are refused with the limit named", function()
  T.raises(function() conch.chan(1 << 32) end, "over the limit of 16777216")
  T.raises(function() conch.chan(2 ^ 32) end, "over the limit of 16777216")
  T.raises(function() conch.chan { fixed = 1 << 32 } end, "over the limit")
  T.raises(function() conch.chan { sliding = 1 << 32 } end, "over the limit")
  T.raises(function() conch.chan { dropping = math.maxinteger } end, "over the limit")
  T.raises(function() conch.chan((1 << 24) + 1) end, "over the limit")
  T.raises(function() conch.chan(-1) end, "0 or more")
  local c = conch.chan(1024)
  T.eq(c:try_send(1), true)
end)

T.test("big channels nobody holds are collected without an explicit collectgarbage", function()
  -- Each buffer of 2^20 slots lives outside Lua's heap (tens of MB). The
  -- collector must count it, or a loop like this one runs out of memory
  -- before a cycle frees the channels it dropped (the lua_options fuzz target
  -- found it: 4 GB after six such channels).
  collectgarbage("collect")
  collectgarbage("restart")
  local alive = setmetatable({}, { __mode = "v" })
  for i = 1, 64 do
    local c = conch.chan(1 << 20)
    c:close()
    alive[i] = c
  end
  local left = 0
  for _ in pairs(alive) do left = left + 1 end
  T.ok(left < 32, "unreachable big channels were collected on the way: " .. left .. " of 64 left")
end)

T.test("socket capacities over 2^20 are refused with the limit named", function()
  T.raises(function() conch.listen("127.0.0.1:0", { in_capacity = 1 << 32 }) end,
           "'in_capacity' of 4294967296 is over the limit of 1048576")
  T.raises(function() conch.connect("127.0.0.1:1", { out_capacity = 2 ^ 32 }) end,
           "out_capacity")
  T.raises(function() conch.udp("127.0.0.1:0", { in_capacity = (1 << 20) + 1 }) end,
           "in_capacity")
  T.raises(function() conch.listen("127.0.0.1:0", { backlog = 1 << 40 }) end, "backlog")
  local srv = assert(conch.listen("127.0.0.1:0", { in_capacity = 1 << 10, out_capacity = 1 << 10 }))
  srv:close()
end)

T.done("limits")
