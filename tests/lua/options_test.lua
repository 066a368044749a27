-- tests/lua/options_test.lua
-- Strict options: unknown, misplaced or mistyped options and extra arguments are errors naming them.
local conch = require "conch"
local T = require "check"

-- ---- conch.chan ----

T.test("conch.chan{size=3} is an error naming the key and the function", function()
  T.raises(function() conch.chan { size = 3 } end, "conch.chan: unknown option 'size'")
  T.raises(function() conch.chan { size = 3 } end, "conch.chan(n)")  -- says what to write instead
end)

T.test("conch.chan rejects an array item, a mistyped option and an extra argument", function()
  T.raises(function() conch.chan { 3 } end, "option key 1")
  T.raises(function() conch.chan { sliding = "4" } end, "option 'sliding' must be an integer (got string)")
  T.raises(function() conch.chan { fixed = 1.5 } end, "option 'fixed' must be an integer")
  T.raises(function() conch.chan { dropping = 0 } end, "option 'dropping' must be between 1")
  T.raises(function() conch.chan(3, { sliding = 1 }) end, "conch.chan: unexpected argument #2")
  T.raises(function() conch.chan(2.5) end, "integer")
  T.raises(function() conch.chan { max_value = 0 } end, "max_value")
end)

T.test("conch.chan's valid options still make the buffers they name", function()
  local ch = conch.chan { sliding = 1, max_value = 1024 }
  T.eq(ch:send(1), true)
  T.eq(ch:send(2), true)
  T.eq(ch:recv(), 2)
  local f = conch.chan { fixed = 1 }
  T.eq(f:try_send(1), true)
  T.eq(f:try_send(2), false)
  T.eq(conch.chan({}):try_send(1), false, "an empty option table: unbuffered")
end)

T.test("conch.promise and conch.timeout take no extra arguments", function()
  T.raises(function() conch.promise(1) end, "conch.promise: unexpected argument #1")
  T.raises(function() conch.timeout(10, {}) end, "conch.timeout: unexpected argument #2")
end)

-- ---- conch.select ----

T.test("select honours priority given in a second table", function()
  local a, b = conch.chan(1), conch.chan(1)
  for _ = 1, 20 do
    a:send("a")
    b:send("b")
    local v, ch = conch.select({ a, b }, { priority = true })
    T.eq(v, "a", "the first ready case wins")
    T.ok(ch == a, "a fired")
    T.eq(b:recv(), "b")
  end
end)

T.test("select's default in a second table answers at once instead of parking", function()
  local a = conch.chan()
  local v, ch = conch.select({ a }, { default = "none" })
  T.eq(v, "none")
  T.eq(ch, nil)
  v, ch = conch.select({}, { default = 7 })
  T.eq(v, 7)
  T.eq(ch, nil)
end)

T.test("select's options also work as keys of the case table", function()
  local a, b = conch.chan(1), conch.chan(1)
  a:send(1)
  b:send(2)
  local v = conch.select { a, b, priority = true }
  T.eq(v, 1)
  T.eq(conch.select { conch.chan(), default = false }, false, "a false default is a default")
end)

T.test("select rejects unknown options, options given twice, mistyped ones and extra arguments", function()
  local a = conch.chan(1)
  T.raises(function() conch.select({ a }, { prio = true }) end, "conch.select: unknown option 'prio'")
  T.raises(function() conch.select { a, timeout = 5 } end, "conch.select: unknown option 'timeout'")
  T.raises(function() conch.select({ a, priority = true }, { priority = true }) end, "'priority' given twice")
  T.raises(function() conch.select({ a }, { priority = "yes" }) end, "option 'priority' must be a boolean")
  T.raises(function() conch.select({ a }, {}, {}) end, "conch.select: unexpected argument #3")
  T.raises(function() conch.select({ a }, 5) end, "table of options")
  T.raises(function() conch.select { a, [5] = a } end, "key 5 is not a case")
end)

-- ---- conch.listen / connect / udp / resolve / interfaces ----

T.test("listen rejects frame= (the key is framing) naming the key and the function", function()
  T.raises(function() conch.listen("127.0.0.1:0", { frame = "lines" }) end,
    "conch.listen: unknown option 'frame'")
  T.raises(function() conch.listen("127.0.0.1:0", { frame = "lines" }) end, "framing")
end)

T.test("a misplaced option says where it belongs", function()
  T.raises(function() conch.listen("127.0.0.1:0", { connect_timeout = 5 }) end,
    "conch.listen: unknown option 'connect_timeout' (it is an option of conch.connect")
  T.raises(function() conch.connect("127.0.0.1:1", { backlog = 5 }) end,
    "conch.connect: unknown option 'backlog' (it is an option of conch.listen")
  T.raises(function() conch.udp("127.0.0.1:0", { framing = "lines" }) end, "conch.udp: unknown option 'framing'")
  T.raises(function() conch.listen("127.0.0.1:0", { delimiter = "\n" }) end, "needs framing = \"delimited\"")
end)

T.test("net option types and ranges are checked, naming the key", function()
  T.raises(function() conch.listen("127.0.0.1:0", { framing = 1 }) end, "option 'framing' must be a string")
  T.raises(function() conch.listen("127.0.0.1:0", { max_frame = 0 }) end, "option 'max_frame' must be between")
  T.raises(function() conch.listen("127.0.0.1:0", { in_capacity = "8" }) end, "option 'in_capacity' must be an integer")
  T.raises(function() conch.connect("127.0.0.1:1", { connect_timeout = -1 }) end, "option 'connect_timeout'")
  T.raises(function() conch.listen("127.0.0.1:0", { framing = "delimited", delimiter = "ab" }) end, "one byte")
  T.raises(function() conch.listen("127.0.0.1:0", "lines") end, "table of options")
end)

T.test("net functions reject extra arguments", function()
  T.raises(function() conch.listen("127.0.0.1:0", {}, 1) end, "conch.listen: unexpected argument #3")
  T.raises(function() conch.connect("127.0.0.1:1", nil, 1) end, "conch.connect: unexpected argument #3")
  T.raises(function() conch.udp("127.0.0.1:0", nil, 1) end, "conch.udp: unexpected argument #3")
  T.raises(function() conch.resolve("localhost", {}) end, "conch.resolve: unexpected argument #2")
  T.raises(function() conch.interfaces(1) end, "conch.interfaces: unexpected argument #1")
end)

T.test("valid net options are taken: lines framing on both ends", function()
  local srv = assert(conch.listen("127.0.0.1:0", { framing = "lines", backlog = 8, in_capacity = 4 }))
  local s = assert(conch.connect(srv:address(), { framing = "lines", connect_timeout = 5000 }))
  local peer = srv.connections:recv()
  s.output:send("hello")
  T.eq(peer.input:recv(), "hello", "a line, without its delimiter")
  s:close()
  peer:close()
  srv:close()
end)

-- ---- fuzz: random keys and values never crash and always name the key ----

local funcs = {
  { name = "conch.chan", call = function(o) return conch.chan(o) end },
  -- A ready case, so a valid option table never parks.
  { name = "conch.select", call = function(o)
      local c = conch.chan(1)
      c:send(1)
      return conch.select({ c }, o)
    end },
  { name = "conch.select", call = function(o)
      local c = conch.chan(1)
      c:send(1)
      local t = { c }
      for k, v in pairs(o) do t[k] = v end
      return conch.select(t)
    end },
  { name = "conch.listen", call = function(o) return conch.listen("127.0.0.1:0", o) end },
  { name = "conch.connect", call = function(o) return conch.connect("/nonexistent/conch-options-test.sock", o) end },
  { name = "conch.udp", call = function(o) return conch.udp("127.0.0.1:0", o) end },
}
local keys = {
  "fixed", "dropping", "sliding", "max_value", "priority", "default", "framing", "delimiter",
  "in_capacity", "out_capacity", "max_frame", "backlog", "unix_mode", "connect_timeout",
  "size", "frame", "timeout", "", "x y", "\0nul", 0, -1, 1.5, true,
}
local vals = { 0, 1, 2, -1, 1.5, 2 ^ 70, 0 / 0, "lines", "raw", "delimited", "\n", "", true, false, {}, print }

-- True if msg names one of the keys of o (a name by its text, another key
-- as "key ...").
local function names_a_key(msg, o)
  for k in pairs(o) do
    if type(k) == "string" and msg:find(k, 1, true) then return true end
    if type(k) ~= "string" and msg:find("key", 1, true) then return true end
  end
  return false
end

T.test("random option tables: never a crash, every error names the function and a key", function()
  math.randomseed(17)
  local errors, taken = 0, 0
  for i = 1, 600 do
    local f = funcs[math.random(#funcs)]
    local o = {}
    -- One key half the time (more valid tables), else up to three.
    for _ = 1, i % 2 == 0 and 1 or math.random(3) do o[keys[math.random(#keys)]] = vals[math.random(#vals)] end
    local ok, r = pcall(f.call, o)
    if ok then
      taken = taken + 1
      -- Close what a valid option table made (a server, a UDP socket).
      if type(r) == "userdata" and (f.name == "conch.listen" or f.name == "conch.udp") then r:close() end
    else
      errors = errors + 1
      local msg = tostring(r)
      local shown = {}
      for k, v in pairs(o) do shown[#shown + 1] = ("[%q]=%s"):format(tostring(k), tostring(v)) end
      shown = table.concat(shown, " ")
      if not msg:find(f.name, 1, true) then error(("%s %s: %q does not name the function"):format(f.name, shown, msg)) end
      if not names_a_key(msg, o) then error(("%s %s: %q names none of the keys"):format(f.name, shown, msg)) end
    end
  end
  T.ok(errors > 100 and taken > 10, ("both outcomes seen (%d errors, %d taken)"):format(errors, taken))
end)

T.done("options")
