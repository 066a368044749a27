-- tests/fuzz/lua_options.lua
-- fuzz_one(bytes): calls conch.chan, select, timeout, listen, connect and udp with option tables and arguments built from the bytes.
--
-- Every call runs under pcall: it may succeed or raise, but it must return
-- (the target would hang or crash otherwise) and an error must be a string
-- that names something ("conch..."). Only loopback addresses are used, and
-- every select has a case that is ready at once (a closed channel), so
-- nothing waits on the network or forever. What is made is closed again.
local conch = require "conch"

local closed = conch.chan()
closed:close()

local VALUES = {
  true, false, 0, -1, 1, 2, 3, 64, 1 << 20, (1 << 20) + 1, 1 << 24, (1 << 24) + 1, 1 << 31, 1 << 32,
  1 << 62, math.maxinteger, math.mininteger, 0.5, -0.0, 2.0 ^ 32, 1 / 0, -1 / 0, 0 / 0,
  "", "raw", "lines", "length", "length_prefixed", "delimited", "\f", "\0", "ab", "x",
  "fixed", "sliding", "dropping", "priority", "default",
  "table", "function", "closed", "chan",  -- placeholders replaced below
}
local KEYS = {
  "framing", "delimiter", "in_capacity", "out_capacity", "max_frame", "backlog", "connect_timeout",
  "unix_mode", "line_end", "fixed", "sliding", "dropping", "priority", "default", "size", "bogus",
  1, 2, 3, true, 0.5,
}

local function reader(bytes)
  local pos = 0
  return function()
    pos = pos + 1
    return bytes:byte(pos) or 0
  end, function() return pos >= #bytes end
end

local function value(byte, made)
  local v = VALUES[byte() % #VALUES + 1]
  if v == "table" then return {} end
  if v == "function" then return print end
  if v == "closed" then return closed end
  if v == "chan" then
    local c = conch.chan(1)
    made[#made + 1] = c
    return c
  end
  return v
end

local function options(byte, made)
  local t = {}
  for _ = 1, byte() % 6 do
    local k = KEYS[byte() % #KEYS + 1]
    t[k] = value(byte, made)
  end
  return t
end

-- An error must be a message, not some other value.
local function call(f, ...)
  local ok, err = pcall(f, ...)
  if not ok then assert(type(err) == "string", "ORACLE: an error that is not a message") end
  return ok, err
end

local ADDRS = { "127.0.0.1:0", "[::1]:0" }

function fuzz_one(bytes)
  local byte, done = reader(bytes)
  local made = {}
  local calls = 0
  while not done() and calls < 16 do
    calls = calls + 1
    local what = byte() % 7
    if what == 0 then
      call(conch.chan, options(byte, made))
    elseif what == 1 then
      call(conch.chan, value(byte, made))
    elseif what == 2 then
      -- select: cases from the bytes plus a closed channel, options as a
      -- second table or as keys of the case table.
      local cases = {}
      for _ = 1, byte() % 4 do
        local kind = byte() % 3
        if kind == 0 then
          cases[#cases + 1] = value(byte, made)
        elseif kind == 1 then
          local c = conch.chan(1)
          made[#made + 1] = c
          cases[#cases + 1] = { c, value(byte, made) }
        else
          cases[#cases + 1] = { value(byte, made), value(byte, made) }
        end
      end
      table.insert(cases, byte() % (#cases + 1) + 1, closed)
      local opts = options(byte, made)
      if byte() % 2 == 0 then
        for k, v in pairs(opts) do if type(k) == "string" then cases[k] = v end end
        call(conch.select, cases)
      else
        call(conch.select, cases, opts)
      end
    elseif what == 3 then
      local ok, srv = call(conch.listen, ADDRS[byte() % 2 + 1], options(byte, made))
      if ok and srv then srv:close() end
    elseif what == 4 then
      -- Nothing listens on port 1: refused at once, whatever the options.
      local ok, s = call(conch.connect, "127.0.0.1:1", options(byte, made))
      assert(not (ok and s), "ORACLE: connected to a port nobody listens on")
    elseif what == 5 then
      local ok, u = call(conch.udp, ADDRS[byte() % 2 + 1], options(byte, made))
      if ok and u then u:close() end
    else
      local v = value(byte, made)
      if type(v) == "number" and v > 1000 then v = 1000 end  -- timers must not outlive the run by much
      call(conch.timeout, v)
    end
  end
  for _, c in ipairs(made) do c:close() end
end
