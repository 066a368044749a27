-- tests/fuzz/lua_values.lua
-- fuzz_one(bytes): builds a graph of Lua values from the bytes, sends it through a channel, compares what comes back.
--
-- The bytes are a program: each byte picks an operation (push a number, a
-- string, a boolean, a channel, a function; make a table; store an entry
-- t[k] = v with k and v any value made so far, so tables can be shared, keys
-- and cyclic). The last table made (or value) is sent with try_send on a
-- conch channel and received back.
--
-- The oracle compares graphs, never iteration order: colour refinement
-- (Weisfeiler-Lehman) over exact, interned signatures. A scalar's colour is
-- its type and value (math.type kept apart: 1 and 1.0 differ, NaN is one
-- colour, -0.0 is not 0.0); a channel's colour is its identity (the core
-- address tostring prints); a table's colour is refined from the sorted
-- colours of its keys and values, as many rounds as the graph is deep. Equal
-- root colours mean the copy unfolds into the same tree as the original.
-- Whether the copy keeps sharing is measured once (SHARING below): if it
-- does (copied as a graph), the number of distinct tables and their colours
-- must match too; if it does not (copied per path), a cyclic value must be
-- refused with an error that says so.
local conch = require "conch"

-- ---- does a round trip keep sharing? ----

local SHARING
do
  local x = {}
  local c = conch.chan(1)
  assert(c:try_send({ a = x, b = x }))
  local got = c:try_recv()
  SHARING = got.a == got.b
end

-- ---- the value builder ----

local INTS = { 0, 1, -1, 2, 255, 1 << 31, 1 << 32, 1 << 53, math.maxinteger, math.mininteger }
local FLOATS = { 0.0, -0.0, 0.5, -1.5, 1.0, 3.0, 2.0 ^ 53, 2.0 ^ 63, 1e308, 5e-324, 1 / 0, -1 / 0, 0 / 0 }
local MAX_TABLES, MAX_CHANS, MAX_OPS = 48, 6, 600

local function build(bytes)
  local pos, n = 0, #bytes
  local function byte()
    pos = pos + 1
    return bytes:byte(pos) or 0
  end
  local nodes, tables, nchans = {}, {}, 0
  local bad = false  -- a value of a type that does not travel was made
  local ops = 0
  while pos < n and ops < MAX_OPS do
    ops = ops + 1
    local op = byte() % 13
    if op == 0 then
      nodes[#nodes + 1] = INTS[byte() % #INTS + 1]
    elseif op == 1 then
      nodes[#nodes + 1] = FLOATS[byte() % #FLOATS + 1]
    elseif op == 2 then
      local len = byte() % 24
      nodes[#nodes + 1] = bytes:sub(pos + 1, pos + len)
      pos = pos + len
    elseif op == 3 then
      nodes[#nodes + 1] = byte() % 2 == 0
    elseif op == 4 or op == 5 then
      if #tables < MAX_TABLES then
        local t = {}
        tables[#tables + 1] = t
        nodes[#nodes + 1] = t
      end
    elseif op >= 6 and op <= 9 then  -- t[k] = v
      if #tables > 0 and #nodes > 0 then
        local t = tables[byte() % #tables + 1]
        local k = nodes[byte() % #nodes + 1]
        local v = nodes[byte() % #nodes + 1]
        if k == k then rawset(t, k, v) end  -- NaN cannot be a key
      end
    elseif op == 10 then  -- t[#t + 1] = v: arrays
      if #tables > 0 and #nodes > 0 then
        local t = tables[byte() % #tables + 1]
        t[#t + 1] = nodes[byte() % #nodes + 1]
      end
    elseif op == 11 then
      if nchans < MAX_CHANS then
        nchans = nchans + 1
        nodes[#nodes + 1] = conch.chan(byte() % 3)
      end
    else  -- rarely: a value that does not travel
      if byte() % 8 == 0 then
        bad = true
        nodes[#nodes + 1] = (byte() % 2 == 0) and print or coroutine.create(print)
      end
    end
  end
  local root = tables[#tables] or nodes[#nodes]
  return root, bad
end

-- ---- the shape of a graph ----

-- Distinct tables reachable from v, whether a table reaches itself, how
-- deep tables nest (longest path of tables; only meaningful when acyclic).
local function shape(v)
  local count, cyclic, maxdepth = 0, false, 0
  local state, depth_of = {}, {}
  local function visit(t)
    if state[t] == "open" then cyclic = true return 0 end
    if state[t] == "done" then return depth_of[t] end
    state[t] = "open"
    count = count + 1
    local d = 1
    for k, x in next, t do
      if type(k) == "table" then d = math.max(d, 1 + visit(k)) end
      if type(x) == "table" then d = math.max(d, 1 + visit(x)) end
    end
    state[t] = "done"
    depth_of[t] = d
    return d
  end
  if type(v) == "table" then maxdepth = visit(v) end
  return count, cyclic, maxdepth
end

-- ---- colours ----

local function new_colours()
  local ids, nid = {}, 0
  local function intern(s)
    local id = ids[s]
    if not id then nid = nid + 1; id = nid; ids[s] = id end
    return id
  end
  local function atom(v)
    local t = type(v)
    if t == "number" then
      if v ~= v then return intern("nan") end
      return intern(math.type(v) .. ":" .. string.pack("<n", v))
    elseif t == "string" then
      return intern("s:" .. v)
    elseif t == "boolean" then
      return intern(v and "true" or "false")
    elseif t == "userdata" then
      return intern("u:" .. tostring(v))  -- a channel: its core's address
    else
      return intern("?:" .. tostring(v))
    end
  end
  -- Colours of every table reachable from root after `rounds` rounds;
  -- returns the root's colour and the list of table colours.
  local function colour(root, rounds)
    if type(root) ~= "table" then return atom(root), {} end
    local all, seen = {}, {}
    local function collect(t)
      if seen[t] then return end
      seen[t] = true
      all[#all + 1] = t
      for k, x in next, t do
        if type(k) == "table" then collect(k) end
        if type(x) == "table" then collect(x) end
      end
    end
    collect(root)
    local col = {}
    for _, t in ipairs(all) do col[t] = intern("T") end
    for _ = 1, rounds do
      local nxt = {}
      for _, t in ipairs(all) do
        local parts = {}
        for k, x in next, t do
          local kc = type(k) == "table" and col[k] or atom(k)
          local xc = type(x) == "table" and col[x] or atom(x)
          parts[#parts + 1] = kc .. "=" .. xc
        end
        table.sort(parts)
        nxt[t] = intern("{" .. table.concat(parts, ",") .. "}")
      end
      col = nxt
    end
    local list = {}
    for _, t in ipairs(all) do list[#list + 1] = col[t] end
    table.sort(list)
    return col[root], list
  end
  return colour
end

-- ---- the typed C++ channels ----

-- S, I, D carry strings, integers, numbers: a value of another kind is an
-- error, a value of their kind comes back equal.
local function typed(v)
  local ok, err = pcall(S.try_send, S, v)
  if ok and err then
    local got = S:try_recv()
    assert(type(v) == "string" and got == v, "ORACLE: string channel changed " .. tostring(v))
  elseif not ok then
    assert(type(v) ~= "string", "ORACLE: string channel refused a string: " .. tostring(err))
  end
  ok, err = pcall(I.try_send, I, v)
  if ok and err then
    local got = I:try_recv()
    assert(math.type(got) == "integer" and got == v, "ORACLE: integer channel changed " .. tostring(v))
  elseif not ok then
    assert(math.type(v) ~= "integer", "ORACLE: integer channel refused an integer: " .. tostring(err))
  end
  ok, err = pcall(D.try_send, D, v)
  if ok and err then
    local got = D:try_recv()
    -- An integer travels as the nearest double (math.maxinteger as 2^63).
    assert(type(got) == "number" and (got == v + 0.0 or (got ~= got and v ~= v)),
           "ORACLE: number channel changed " .. tostring(v))
  elseif not ok then
    assert(type(v) ~= "number", "ORACLE: number channel refused a number: " .. tostring(err))
  end
end

-- ---- one input ----

function fuzz_one(bytes)
  local root, bad = build(bytes)
  if root == nil then return end
  if type(root) ~= "table" then typed(root) end
  local count, cyclic, depth = shape(root)
  local c = conch.chan(1)
  local ok, sent = pcall(c.try_send, c, root)
  if not ok then
    local msg = tostring(sent)
    if bad then return end  -- a function or coroutine inside: an error is right
    if cyclic and (msg:find("itself", 1, true) or msg:find("cycl", 1, true)) then return end
    if depth > 16 and msg:find("deep", 1, true) then return end
    error("ORACLE: a value that travels was refused: " .. msg)
  end
  assert(sent == true, "ORACLE: try_send on an empty one-slot channel did not take the value")
  local got = c:try_recv()
  assert(got ~= nil, "ORACLE: the value sent did not come back")
  if bad then return end  -- userdata/functions may travel by reference one day: no oracle
  assert(SHARING or not cyclic, "ORACLE: a cyclic value was copied without sharing")
  local rounds = (cyclic and count or depth) + 2
  local colour = new_colours()
  local a, alist = colour(root, rounds)
  local b, blist = colour(got, rounds)
  assert(a == b, "ORACLE: the copy differs from the original")
  if SHARING then
    local gcount = shape(got)
    assert(gcount == count, ("ORACLE: %d tables became %d"):format(count, gcount))
    assert(table.concat(alist, ",") == table.concat(blist, ","), "ORACLE: sharing differs")
  end
end
