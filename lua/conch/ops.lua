-- lua/conch/ops.lua
-- core.async's combinators and `thread` for Lua, as go blocks of the calling state.
--
-- Compiled into the module (lua/opslib.cpp embeds this file) and run once per
-- state, the first time a script reads a name the module table lacks: the
-- chunk gets the module table M and the C primitives P (is_chan,
-- thread_start) and stores its functions in M. Not a module of its own:
-- `require "conch.ops"` is not needed and not provided.
--
-- Invariants:
--  - Every combinator checks all of its arguments before it starts anything;
--    a bad argument, an unknown option or an extra argument is an error that
--    names the function (level 2: the caller's line).
--  - Every go block started here ends when its sources close (or its output
--    is closed), so conch.run() returns once the data has flowed; the only
--    exceptions are documented (a mix waits for a change or a value).
--  - A user function runs inside the go block under xpcall. Its error is
--    reported like any go block's (conch.on_error or stderr, with its
--    traceback) and costs only the value it was called for (C++'s rule),
--    except in reduce, where it is raised to reduce's caller.
--  - Values read from a channel are handed on as read (no second copy):
--    pipelines pass sequence numbers between their go blocks, never values.
-- Lock order: none (one Lua state runs one piece of Lua at a time).
local M, P = ...

local chan, go, alts = M.chan, M.go, M.select
local is_chan, thread_start = P.is_chan, P.thread_start
local pack, unpack = table.pack, table.unpack
local traceback = (debug and debug.traceback) or function(m) return m end
local fmt = string.format

-- ---- argument checks ----

local getinfo = debug and debug.getinfo

-- Raises msg at the first caller outside this file (the user's line).
local function raise(msg)
  local level = 2
  if getinfo then
    while true do
      local info = getinfo(level, "S")
      if info == nil or info.source ~= "=conch/ops.lua" then break end
      level = level + 1
    end
  end
  error(msg, level)
end

local function argerr(fname, what, got)
  raise(fmt("%s: %s (got %s)", fname, what, got == nil and "nil" or type(got)))
end

local function check_chan(fname, x, what)
  if not is_chan(x) then argerr(fname, what .. " must be a channel", x) end
  return x
end

local function check_fn(fname, x, what)
  if type(x) ~= "function" then argerr(fname, what .. " must be a function", x) end
  return x
end

local function check_close(fname, x)
  if x == nil then return true end
  if type(x) ~= "boolean" then argerr(fname, "close must be a boolean or nil", x) end
  return x
end

local function check_count(fname, x, what, min)
  if math.type(x) ~= "integer" or x < min then
    raise(fmt("%s: %s must be an integer >= %d (got %s)", fname, what, min, tostring(x)))
  end
  return x
end

-- An error for arguments after the last one fname takes.
local function check_extra(fname, max, n)
  if n > max then
    raise(fmt("%s: too many arguments (%d given, it takes at most %d)", fname, n, max))
  end
end

-- A list of channels: a sequence table whose elements are all channels.
local function check_chans(fname, t, what)
  if type(t) ~= "table" or is_chan(t) then argerr(fname, what .. " must be a table of channels", t) end
  local n = #t
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      raise(fmt("%s: %s must be a list of channels (found key %s)", fname, what, tostring(k)))
    end
  end
  for i = 1, n do
    if not is_chan(t[i]) then
      raise(fmt("%s: %s[%d] must be a channel (got %s)", fname, what, i, type(t[i])))
    end
  end
  return t
end

-- The output channel of a combinator, buffered as conch.chan(buf) would be.
local function out_chan(fname, buf)
  local ok, ch = pcall(chan, buf)
  if not ok then raise(fmt("%s: output buffer: %s", fname, tostring(ch))) end
  return ch
end

-- Checks an option table against the keys it may have.
local function check_opts(fname, t, allowed)
  if type(t) ~= "table" or is_chan(t) then argerr(fname, "options must be a table", t) end
  for k in pairs(t) do
    if not allowed[k] then
      raise(fmt("%s: unknown option '%s'", fname, tostring(k)))
    end
  end
  return t
end

-- ---- running user code ----

-- Reports an error of a user function like an error escaping a go block:
-- conch.on_error's handler or stderr, with the message and its traceback.
local function report(fname, err)
  go(error, fmt("%s: %s", fname, tostring(err)), 0)
end

-- f(...) in protected mode: true, results... or false after reporting.
local function call(fname, f, ...)
  local r = pack(xpcall(f, traceback, ...))
  if r[1] then return true, unpack(r, 2, r.n) end
  report(fname, r[2])
  return false
end

-- call for functions whose first result is all that counts (no table per call).
local function call1(fname, f, ...)
  local ok, r = xpcall(f, traceback, ...)
  if ok then return true, r end
  report(fname, r)
  return false
end

-- ---- pipe, map, filter, remove, take, mapcat, partition, unique ----

--- conch.pipe(from, to [, close]) -> to: every value of `from` goes to `to`;
--- when `from` closes, `to` is closed too unless close == false. Stops
--- reading `from` once `to` is closed. Between two channels of one kind
--- (two conch.chan()s, or two C++ channels of one type) it is C++'s
--- conch::pipe, a C++ go block that runs no Lua per value (so conch.tasks()
--- does not count it); otherwise a go block of this state.
function M.pipe(from, to, close, ...)
  check_extra("conch.pipe", 3, select("#", ...) + 3)
  check_chan("conch.pipe", from, "from")
  check_chan("conch.pipe", to, "to")
  close = check_close("conch.pipe", close)
  if P.native_pipe(from, to, close) then return to end
  go(function()
    while true do
      local v = from:recv()
      if v == nil then
        if close then to:close() end
        return
      end
      if not to:send(v) then return end
    end
  end)
  return to
end

-- A go block that applies step(v, out) to every value of `in`; step returns
-- false to stop (the output is closed). The output closes when `in` does.
local function transform(out, inp, step)
  go(function()
    while true do
      local v = inp:recv()
      if v == nil or not step(v, out) then break end
    end
    out:close()
  end)
  return out
end

-- Sends the non-nil values among r[first..r.n] to out; false if out is closed.
local function send_all(out, r, first)
  for i = first, r.n do
    local x = r[i]
    if x ~= nil and not out:send(x) then return false end
  end
  return true
end

--- conch.map(f, ch [, buf]) -> channel of f(v) for every v of ch.
--- conch.map(f, {ch1, ch2, ...} [, buf]) -> channel of f(v1, v2, ...), one
--- value from each source per round; it closes as soon as any source closes.
function M.map(f, src, buf, ...)
  local fname = "conch.map"
  check_extra(fname, 3, select("#", ...) + 3)
  check_fn(fname, f, "f")
  local out
  if is_chan(src) then
    out = out_chan(fname, buf)
    go(function()
      while true do
        local v = src:recv()
        if v == nil then break end
        local ok, r = xpcall(f, traceback, v)
        if not ok then
          report(fname, r)  -- that value is skipped
        elseif r == nil then
          report(fname, "f returned nil (nil cannot be sent): the value is skipped")
        elseif not out:send(r) then
          break
        end
      end
      out:close()
    end)
    return out
  end
  if type(src) ~= "table" then argerr(fname, "ch must be a channel or a list of channels", src) end
  local srcs = check_chans(fname, src, "ch")
  out = out_chan(fname, buf)
  local n = #srcs
  go(function()
    local args = {}
    while n > 0 do
      for i = 1, n do
        local v = srcs[i]:recv()
        if v == nil then out:close() return end
        args[i] = v
      end
      local ok, r = call1(fname, f, unpack(args, 1, n))
      if ok then
        if r == nil then
          report(fname, "f returned nil (nil cannot be sent): the values are skipped")
        elseif not out:send(r) then
          break
        end
      end
    end
    out:close()
  end)
  return out
end

local function filter_with(fname, keep, pred, ch, buf, nextra)
  check_extra(fname, 3, nextra + 3)
  check_fn(fname, pred, "pred")
  check_chan(fname, ch, "ch")
  return transform(out_chan(fname, buf), ch, function(v, o)
    local ok, r = call1(fname, pred, v)
    if not ok or (not r) == keep then return true end
    return o:send(v)
  end)
end

--- conch.filter(pred, ch [, buf]) -> channel of the values v of ch with pred(v) truthy.
function M.filter(pred, ch, buf, ...)
  return filter_with("conch.filter", true, pred, ch, buf, select("#", ...))
end

--- conch.remove(pred, ch [, buf]) -> channel of the values v of ch with pred(v) falsy.
function M.remove(pred, ch, buf, ...)
  return filter_with("conch.remove", false, pred, ch, buf, select("#", ...))
end

--- conch.mapcat(f, ch [, buf]) -> channel of every element of the list f(v)
--- returns, in order, for each v of ch.
function M.mapcat(f, ch, buf, ...)
  local fname = "conch.mapcat"
  check_extra(fname, 3, select("#", ...) + 3)
  check_fn(fname, f, "f")
  check_chan(fname, ch, "ch")
  return transform(out_chan(fname, buf), ch, function(v, o)
    local ok, r = call1(fname, f, v)
    if not ok or r == nil then return true end
    if type(r) ~= "table" then
      report(fname, "f must return a list (a table), got a " .. type(r))
      return true
    end
    for i = 1, #r do
      if not o:send(r[i]) then return false end
    end
    return true
  end)
end

--- conch.take(n, ch [, buf]) -> channel of at most the first n values of ch;
--- it closes after n values or when ch closes. ch itself is never closed.
function M.take(n, ch, buf, ...)
  local fname = "conch.take"
  check_extra(fname, 3, select("#", ...) + 3)
  check_count(fname, n, "n", 0)
  check_chan(fname, ch, "ch")
  local out = out_chan(fname, buf)
  go(function()
    for _ = 1, n do
      local v = ch:recv()
      if v == nil or not out:send(v) then break end
    end
    out:close()
  end)
  return out
end

--- conch.partition(n, ch [, buf]) -> channel of lists of n consecutive
--- values of ch; the last may be shorter when ch closes mid-way.
function M.partition(n, ch, buf, ...)
  local fname = "conch.partition"
  check_extra(fname, 3, select("#", ...) + 3)
  check_count(fname, n, "n", 1)
  check_chan(fname, ch, "ch")
  local out = out_chan(fname, buf)
  go(function()
    local part = {}
    while true do
      local v = ch:recv()
      if v == nil then break end
      part[#part + 1] = v
      if #part == n then
        if not out:send(part) then out:close() return end
        part = {}
      end
    end
    if #part > 0 then out:send(part) end
    out:close()
  end)
  return out
end

--- conch.unique(ch [, buf]) -> channel of the values of ch with consecutive
--- equal (==) values dropped.
function M.unique(ch, buf, ...)
  local fname = "conch.unique"
  check_extra(fname, 2, select("#", ...) + 2)
  check_chan(fname, ch, "ch")
  local last = {}  -- a sentinel no value equals
  return transform(out_chan(fname, buf), ch, function(v, o)
    if v == last then return true end
    last = v
    return o:send(v)
  end)
end

-- ---- merge, split ----

--- conch.merge({ch1, ch2, ...} [, buf]) -> channel of every value of every
--- source, in the order taken (random among sources ready together); it
--- closes once every source has closed (at once for an empty list).
function M.merge(chs, buf, ...)
  local fname = "conch.merge"
  check_extra(fname, 2, select("#", ...) + 2)
  check_chans(fname, chs, "chs")
  local out = out_chan(fname, buf)
  local live = {}
  for i = 1, #chs do live[i] = chs[i] end
  go(function()
    while #live > 0 do
      local v, c = alts(live)
      if v == nil then
        -- That source closed: stop reading it.
        for i = 1, #live do
          if rawequal(live[i], c) then table.remove(live, i) break end
        end
      elseif not out:send(v) then
        break
      end
    end
    out:close()
  end)
  return out
end

--- conch.split(pred, ch [, tbuf, fbuf]) -> t, f: the values with pred(v)
--- truthy go to t, the others to f; both close when ch closes. A side its
--- consumer closed drops its values; once both are closed, split stops.
function M.split(pred, ch, tbuf, fbuf, ...)
  local fname = "conch.split"
  check_extra(fname, 4, select("#", ...) + 4)
  check_fn(fname, pred, "pred")
  check_chan(fname, ch, "ch")
  local t, f = out_chan(fname, tbuf), out_chan(fname, fbuf)
  go(function()
    local t_open, f_open = true, true
    while t_open or f_open do
      local v = ch:recv()
      if v == nil then break end
      local ok, r = call1(fname, pred, v)
      if ok then
        if r then
          if t_open and not t:send(v) then t_open = false end
        elseif f_open and not f:send(v) then
          f_open = false
        end
      end
    end
    t:close()
    f:close()
  end)
  return t, f
end

-- ---- mult ----

-- The index of channel c in list (by identity of the channel, ==), or nil.
local function find(list, c)
  for i = 1, #list do
    if list[i].ch == c then return i end
  end
end

local Mult = {}
Mult.__index = Mult
Mult.__name = "conch.mult"

local function check_mult(self, fname)
  if getmetatable(self) ~= Mult then raise(fname .. ": call it as m:" .. fname:match("[%w_]+$") .. "(...)") end
end

--- m:tap(ch [, close]) -> ch: copies every later value of the source onto ch;
--- with close (default true) ch is closed when the source closes (at once if
--- it already has). Tapping a channel again updates its close flag.
function Mult:tap(ch, close, ...)
  check_mult(self, "mult:tap")
  check_extra("mult:tap", 2, select("#", ...) + 2)
  check_chan("mult:tap", ch, "ch")
  close = check_close("mult:tap", close)
  if self.ended then
    if close then ch:close() end
    return ch
  end
  local i = find(self.taps, ch)
  if i then
    self.taps[i].close = close
  else
    self.taps[#self.taps + 1] = { ch = ch, close = close }
  end
  return ch
end

--- m:untap(ch): disconnects ch (not closed); if the mult is waiting for ch
--- to take the current value, it stops waiting.
function Mult:untap(ch, ...)
  check_mult(self, "mult:untap")
  check_extra("mult:untap", 1, select("#", ...) + 1)
  check_chan("mult:untap", ch, "ch")
  local i = find(self.taps, ch)
  if i then
    table.remove(self.taps, i)
    self.changed:try_send(true)
  end
end

--- m:untap_all(): disconnects every tap, closing none.
function Mult:untap_all(...)
  check_mult(self, "mult:untap_all")
  check_extra("mult:untap_all", 0, select("#", ...))
  self.taps = {}
  self.changed:try_send(true)
end

--- m:done() -> channel that closes once the source has closed and every
--- value read was offered to the taps (close=true taps are closed by then).
function Mult:done() return self.done_ch end

--- m:source() -> the source channel (core.async muxch).
function Mult:source() return self.src end

-- Offers v to every tap at once (core.async puts to all taps in parallel)
-- and waits until each has taken it, closed, or been untapped.
local function offer_all(m, v)
  local pending = {}
  for i = 1, #m.taps do pending[i] = m.taps[i] end
  local cases = {}
  while #pending > 0 do
    for i = 1, #pending do cases[i] = { pending[i].ch, v } end
    cases[#pending + 1] = m.changed
    for i = #pending + 2, #cases do cases[i] = nil end
    local ok, c = alts(cases)
    if rawequal(c, m.changed) then
      -- untap/untap_all: forget the taps no longer there.
      for i = #pending, 1, -1 do
        if not find(m.taps, pending[i].ch) then table.remove(pending, i) end
      end
    else
      for i = 1, #pending do
        if rawequal(pending[i].ch, c) then
          if not ok then
            -- Found closed: untap it (core.async).
            local j = find(m.taps, c)
            if j then table.remove(m.taps, j) end
          end
          table.remove(pending, i)
          break
        end
      end
    end
  end
end

--- conch.mult(src) -> m: every value read from src is copied to each tap;
--- values read while there is no tap are dropped.
function M.mult(src, ...)
  check_extra("conch.mult", 1, select("#", ...) + 1)
  check_chan("conch.mult", src, "src")
  local m = setmetatable({ src = src, taps = {}, changed = chan { sliding = 1 }, ended = false }, Mult)
  m.done_ch = go(function()
    while true do
      local v = src:recv()
      if v == nil then break end
      if #m.taps > 0 then offer_all(m, v) end
    end
    m.ended = true
    local taps = m.taps
    m.taps = {}
    for i = 1, #taps do
      if taps[i].close then taps[i].ch:close() end
    end
  end)
  return m
end

-- ---- pub/sub ----

local Pub = {}
Pub.__index = Pub
Pub.__name = "conch.pub"

local function check_pub(self, fname)
  if getmetatable(self) ~= Pub then raise(fname .. ": call it as p:" .. fname:match("[%w_]+$") .. "(...)") end
end

-- The topic's mult, created on first use (a channel buffered by buf_fn(topic)).
local function topic_mult(p, fname, topic)
  local m = p.topics[topic]
  if m then return m end
  local buf
  if p.buf_fn then
    local ok, b = pcall(p.buf_fn, topic)
    if not ok then raise(fmt("%s: buf_fn: %s", fname, tostring(b))) end
    buf = b
  end
  local ok, ch = pcall(chan, buf)
  if not ok then raise(fmt("%s: the buffer buf_fn returned: %s", fname, tostring(ch))) end
  m = M.mult(ch)
  p.topics[topic] = m
  return m
end

--- p:sub(topic, ch [, close]) -> ch: ch gets every later value whose topic is
--- `topic`; with close (default true) ch is closed once the source has
--- closed and every topic ch subscribes to has delivered its last value.
function Pub:sub(topic, ch, close, ...)
  check_pub(self, "pub:sub")
  check_extra("pub:sub", 3, select("#", ...) + 3)
  if topic == nil then raise("pub:sub: topic must not be nil") end
  check_chan("pub:sub", ch, "ch")
  close = check_close("pub:sub", close)
  if self.ended then
    if close then ch:close() end
    return ch
  end
  return topic_mult(self, "pub:sub", topic):tap(ch, close)
end

--- p:unsub(topic, ch): unsubscribes ch from topic (not closed).
function Pub:unsub(topic, ch, ...)
  check_pub(self, "pub:unsub")
  check_extra("pub:unsub", 2, select("#", ...) + 2)
  check_chan("pub:unsub", ch, "ch")
  local m = topic ~= nil and self.topics[topic]
  if m then m:untap(ch) end
end

-- Forgets a topic: its subscribers are untapped (not closed), its channel
-- closed so its mult's go block ends.
local function drop_topic(p, topic)
  local m = p.topics[topic]
  if m then
    p.topics[topic] = nil
    m:untap_all()
    m.src:close()
  end
end

--- p:unsub_all([topic]): unsubscribes every channel from topic (from every
--- topic without one); none is closed.
function Pub:unsub_all(topic, ...)
  check_pub(self, "pub:unsub_all")
  check_extra("pub:unsub_all", 1, select("#", ...) + 1)
  if topic ~= nil then
    drop_topic(self, topic)
  else
    for t in pairs(self.topics) do drop_topic(self, t) end
  end
end

--- p:source() -> the source channel.
function Pub:source() return self.src end

--- conch.pub(src, topic_fn [, buf_fn]) -> p: partitions src by topic_fn(v)
--- (called for every value; an error in it skips that value). Values of a
--- topic with no subscriber are dropped. buf_fn(topic), if given, returns
--- the buffer (as for conch.chan) of that topic's channel; default unbuffered.
function M.pub(src, topic_fn, buf_fn, ...)
  local fname = "conch.pub"
  check_extra(fname, 3, select("#", ...) + 3)
  check_chan(fname, src, "src")
  check_fn(fname, topic_fn, "topic_fn")
  if buf_fn ~= nil then check_fn(fname, buf_fn, "buf_fn") end
  local p = setmetatable({ src = src, topics = {}, buf_fn = buf_fn, ended = false }, Pub)
  go(function()
    while true do
      local v = src:recv()
      if v == nil then break end
      local ok, topic = call1(fname, topic_fn, v)
      local m = ok and topic ~= nil and p.topics[topic]
      if m and not m.src:send(v) then
        -- The topic's channel was closed (unsub_all): forget it.
        if p.topics[topic] == m then p.topics[topic] = nil end
      end
    end
    p.ended = true
    local topics = p.topics
    p.topics = {}
    -- A close=true subscriber closes once every topic it subscribes to has
    -- delivered its last value (C++'s rule): the pub closes them itself,
    -- after every topic's mult is done.
    local to_close = {}
    for _, m in pairs(topics) do
      for _, t in ipairs(m.taps) do
        if t.close then
          to_close[#to_close + 1] = t.ch
          t.close = false
        end
      end
      m.src:close()
    end
    for _, m in pairs(topics) do m:done():recv() end
    for i = 1, #to_close do to_close[i]:close() end
  end)
  return p
end

-- ---- mix ----

local Mix = {}
Mix.__index = Mix
Mix.__name = "conch.mix"

local function check_mix(self, fname)
  if getmetatable(self) ~= Mix then raise(fname .. ": call it as m:" .. fname:match("[%w_]+$") .. "(...)") end
end

local function mix_changed(m)
  m.version = m.version + 1
  m.changed:try_send(true)
end

local function mix_input(m, ch)
  local i = find(m.inputs, ch)
  if i then return m.inputs[i] end
  local input = { ch = ch, mute = false, pause = false, solo = false }
  m.inputs[#m.inputs + 1] = input
  return input
end

--- m:admix(ch): adds ch as an input with no flags set (flags of an input
--- already there are kept).
function Mix:admix(ch, ...)
  check_mix(self, "mix:admix")
  check_extra("mix:admix", 1, select("#", ...) + 1)
  check_chan("mix:admix", ch, "ch")
  mix_input(self, ch)
  mix_changed(self)
end

--- m:unmix(ch): removes ch from the inputs (not closed).
function Mix:unmix(ch, ...)
  check_mix(self, "mix:unmix")
  check_extra("mix:unmix", 1, select("#", ...) + 1)
  check_chan("mix:unmix", ch, "ch")
  local i = find(self.inputs, ch)
  if i then table.remove(self.inputs, i) end
  mix_changed(self)
end

--- m:unmix_all(): removes every input, closing none.
function Mix:unmix_all(...)
  check_mix(self, "mix:unmix_all")
  check_extra("mix:unmix_all", 0, select("#", ...))
  self.inputs = {}
  mix_changed(self)
end

local toggle_keys = { mute = true, pause = true, solo = true }

--- m:toggle(ch, {mute=, pause=, solo=}): sets the given flags of ch (adding
--- it as an input if needed); flags not given keep their value.
function Mix:toggle(ch, state, ...)
  check_mix(self, "mix:toggle")
  check_extra("mix:toggle", 2, select("#", ...) + 2)
  check_chan("mix:toggle", ch, "ch")
  check_opts("mix:toggle", state, toggle_keys)
  for k, v in pairs(state) do
    if type(v) ~= "boolean" then
      raise(fmt("mix:toggle: option '%s' must be a boolean (got %s)", k, type(v)))
    end
  end
  local input = mix_input(self, ch)
  for k, v in pairs(state) do input[k] = v end
  mix_changed(self)
end

--- m:solo_mode(mode): "mute" (the default: inputs not soloed are read and
--- dropped) or "pause" (they are not read) while any input is soloed.
function Mix:solo_mode(mode, ...)
  check_mix(self, "mix:solo_mode")
  check_extra("mix:solo_mode", 1, select("#", ...) + 1)
  if mode ~= "mute" and mode ~= "pause" then
    raise(fmt("mix:solo_mode: mode must be \"mute\" or \"pause\" (got %s)", tostring(mode)))
  end
  self.mode = mode
  mix_changed(self)
end

--- m:out() -> the output channel.
function Mix:out() return self.out_ch end

-- The inputs to read now as select cases (ending with the change channel)
-- and, by channel, whether its values reach the output.
local function mix_plan(m)
  local cases, emit = {}, {}
  local solos = false
  for i = 1, #m.inputs do
    if m.inputs[i].solo then solos = true break end
  end
  for i = 1, #m.inputs do
    local input = m.inputs[i]
    local read
    if solos then
      read = input.solo or (m.mode == "mute" and not input.pause)
    else
      read = not input.pause
    end
    if read then
      cases[#cases + 1] = input.ch
      emit[input.ch] = solos and input.solo or (not solos and not input.mute)
    end
  end
  cases[#cases + 1] = m.changed
  return cases, emit
end

--- conch.mix(out) -> m: merges a changing set of inputs onto out, with
--- per-input mute/pause/solo (core.async's semantics). An input that closes
--- is removed. The mix never closes out; its go block ends when out is
--- found closed (at the next value or change).
function M.mix(out, ...)
  check_extra("conch.mix", 1, select("#", ...) + 1)
  check_chan("conch.mix", out, "out")
  local m = setmetatable({ out_ch = out, inputs = {}, mode = "mute", version = 0,
                           changed = chan { sliding = 1 } }, Mix)
  go(function()
    while not out:closed() do
      m.changed:try_recv()  -- this plan covers every change so far
      local seen = m.version
      local cases, emit = mix_plan(m)
      while m.version == seen do
        local v, c = alts(cases)
        if rawequal(c, m.changed) then break end  -- a change: plan again
        if v == nil then
          -- That input closed: core.async removes it.
          local i = find(m.inputs, c)
          if i then table.remove(m.inputs, i) end
          m.version = m.version + 1
          break
        end
        if emit[c] and not out:send(v) then return end  -- out closed: the mix ends
        if out:closed() then return end
      end
    end
  end)
  return m
end

-- ---- pipelines ----

-- The common engine of the three pipelines (core.async's): a feeder hands
-- sequence numbers to n workers and, in the same order, to the output go
-- block; each job has its own result channel, which the output block drains
-- in turn, so results leave in input order. work(v, res) must close res.
-- The workers and the output block each have their own table of result
-- channels and each clears only its own: the output block may reach a job
-- before any worker has taken it.
local function pipeline_engine(fname, n, to, from, close, work)
  local jobs, results = chan(n), chan(n)
  local vals, res, out_res = {}, {}, {}
  local stopped = false
  local done = chan(1)
  -- feeder
  go(function()
    local seq = 0
    while not stopped do
      local v = from:recv()
      if v == nil then break end
      seq = seq + 1
      local r = chan(1)
      vals[seq], res[seq], out_res[seq] = v, r, r
      if not jobs:send(seq) or not results:send(seq) then
        -- Stopped: a worker that took this job gets false from r at once.
        r:close()
        break
      end
    end
    jobs:close()
    results:close()
  end)
  -- workers
  for _ = 1, n do
    go(function()
      while true do
        local seq = jobs:recv()
        if seq == nil then return end
        local v, r = vals[seq], res[seq]
        vals[seq], res[seq] = nil, nil
        work(v, r)
      end
    end)
  end
  -- output, in input order
  go(function()
    while true do
      local seq = results:recv()
      if seq == nil then break end
      local r = out_res[seq]
      out_res[seq] = nil
      while not stopped do
        local x = r:recv()
        if x == nil then break end
        if not to:send(x) then
          -- to was closed: stop reading from (jobs in flight finish).
          stopped = true
          jobs:close()
          results:close()
        end
      end
      -- After a stop, a worker still sending to r gets false instead of
      -- waiting forever.
      if stopped then r:close() end
    end
    if close then to:close() end
    done:send(true)
    done:close()
  end)
  return done
end

local function check_pipeline(fname, n, to, f, from, close, nextra)
  check_extra(fname, 5, nextra + 5)
  check_count(fname, n, "n", 1)
  check_chan(fname, to, "to")
  check_fn(fname, f, fname == "conch.pipeline_async" and "af" or "f")
  check_chan(fname, from, "from")
  return check_close(fname, close)
end

--- conch.pipeline(n, to, f, from [, close]) -> done: runs f(v) for every v
--- of from in n go blocks and sends its results (every non-nil value f
--- returns; none is fine) to `to` in input order. When from closes, `to` is
--- closed after the last result unless close == false; if `to` is closed,
--- the pipeline stops reading from. done gets true and closes once the last
--- result is delivered. An error in f costs that value's results only.
--- The n go blocks share this Lua state: n > 1 helps when f parks.
function M.pipeline(n, to, f, from, close, ...)
  local fname = "conch.pipeline"
  close = check_pipeline(fname, n, to, f, from, close, select("#", ...))
  return pipeline_engine(fname, n, to, from, close, function(v, r)
    local out = pack(call(fname, f, v))
    if out[1] then send_all(r, out, 2) end
    r:close()
  end)
end

--- conch.pipeline_blocking(n, to, f, from [, close]) -> done: like
--- pipeline, but every call of f runs as conch.thread(f, v) (a fresh Lua
--- state on the blocking pool, at most n at a time), so f may block; f must
--- meet conch.thread's rules (checked at once).
function M.pipeline_blocking(n, to, f, from, close, ...)
  local fname = "conch.pipeline_blocking"
  close = check_pipeline(fname, n, to, f, from, close, select("#", ...))
  P.thread_check(fname, f)
  return pipeline_engine(fname, n, to, from, close, function(v, r)
    local ok, raw = pcall(thread_start, fname, f, v)
    if not ok then
      report(fname, raw)  -- v cannot cross into a Lua state of its own
    else
      local out = raw:recv()
      if out == nil then
        report(fname, "the thread ended without a result (runtime stopping)")
      elseif not out.ok then
        report(fname, out.err)
      else
        send_all(r, out, 1)
      end
    end
    r:close()
  end)
end

--- conch.pipeline_async(n, to, af, from [, close]) -> done: af(v, res) is
--- given a fresh channel res, must start something (a go block) that sends
--- v's results to res and closes it, and return at once. Results go to `to`
--- in input order: an af that never closes res stalls the pipeline. An
--- error in af closes its res.
function M.pipeline_async(n, to, af, from, close, ...)
  local fname = "conch.pipeline_async"
  close = check_pipeline(fname, n, to, af, from, close, select("#", ...))
  return pipeline_engine(fname, n, to, from, close, function(v, r)
    if not call(fname, af, v, r) then r:close() end
  end)
end

-- ---- collections ----

-- A snapshot of the list t[1..t.n or #t], each element checked non-nil.
local function snapshot(fname, t)
  if type(t) ~= "table" or is_chan(t) then argerr(fname, "list must be a table", t) end
  local n = t.n
  if n == nil then n = #t end
  if math.type(n) ~= "integer" or n < 0 then
    raise(fmt("%s: list.n must be a non-negative integer", fname))
  end
  local copy = {}
  for i = 1, n do
    local v = t[i]
    if v == nil then raise(fmt("%s: list[%d] is nil (nil cannot be sent)", fname, i)) end
    copy[i] = v
  end
  return copy, n
end

local function onto(ch, list, n, close)
  return go(function()
    for i = 1, n do
      if not ch:send(list[i]) then break end
    end
    if close then ch:close() end
    return true
  end)
end

--- conch.onto_chan(ch, list [, close]) -> done: sends list[1..#list] (a
--- snapshot taken now; list.n is honoured) to ch in order, then closes ch
--- unless close == false. Stops early if ch is closed. done gets true and
--- closes once the elements are sent.
function M.onto_chan(ch, list, close, ...)
  local fname = "conch.onto_chan"
  check_extra(fname, 3, select("#", ...) + 3)
  check_chan(fname, ch, "ch")
  local copy, n = snapshot(fname, list)
  return onto(ch, copy, n, check_close(fname, close))
end

--- conch.to_chan(list) -> ch: a channel holding the elements of list, closed
--- after the last one (buffered for up to 100 of them).
function M.to_chan(list, ...)
  local fname = "conch.to_chan"
  check_extra(fname, 1, select("#", ...) + 1)
  local copy, n = snapshot(fname, list)
  local ch = chan(math.min(n, 100))
  if n == 0 then
    ch:close()
  else
    onto(ch, copy, n, true)
  end
  return ch
end

--- conch.reduce(f, init, ch) -> f(...f(f(init, v1), v2)..., vn) over every
--- value of ch until it closes; init if it closes empty. Parks (in a go
--- block) or runs the loop (outside one). An error in f is raised to the
--- caller (the rest of ch is left unread).
function M.reduce(f, init, ch, ...)
  local fname = "conch.reduce"
  check_extra(fname, 3, select("#", ...) + 3)
  check_fn(fname, f, "f")
  check_chan(fname, ch, "ch")
  local acc = init
  while true do
    local v = ch:recv()
    if v == nil then return acc end
    acc = f(acc, v)
  end
end

--- conch.into(tbl, ch) -> tbl with every value of ch appended, once ch
--- closes. Parks or runs the loop, as reduce.
function M.into(tbl, ch, ...)
  local fname = "conch.into"
  check_extra(fname, 2, select("#", ...) + 2)
  if type(tbl) ~= "table" or is_chan(tbl) then argerr(fname, "tbl must be a table", tbl) end
  check_chan(fname, ch, "ch")
  local n = #tbl
  while true do
    local v = ch:recv()
    if v == nil then return tbl end
    n = n + 1
    tbl[n] = v
  end
end

-- ---- thread ----

--- conch.thread(f, ...) -> ch: runs f(...) in a fresh Lua state on the
--- runtime's blocking pool, so f may block without stalling this state's
--- go blocks; ch gets f's first result (if not nil) once, then closes. What
--- crosses: f's code (dumped and loaded), its arguments and the values of
--- its upvalues, copied as a channel copies them; an upvalue or global
--- `conch` that is the module is the thread state's own module; _ENV is
--- the thread state's globals. An upvalue holding anything a channel cannot
--- carry (a function, a coroutine, a foreign userdata) is an error naming
--- it. An error in f is reported like a go block's and ch closes empty.
function M.thread(f, ...)
  local raw = thread_start("conch.thread", f, ...)
  local out = chan(1)
  go(function()
    local r = raw:recv()
    if r ~= nil and r.ok and r[1] ~= nil then out:send(r[1]) end
    out:close()
    if r == nil then
      error("conch.thread: the thread ended without a result (runtime stopping)", 0)
    elseif not r.ok then
      error("conch.thread: " .. tostring(r.err), 0)
    end
  end)
  return out
end
