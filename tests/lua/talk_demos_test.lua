-- tests/lua/talk_demos_test.lua
-- conch.talk with luatalk's scripts as separate lua5.4 processes: README pair, 100 send-and-exit runs, demos.
--
-- lua5.4 talk_demos_test.lua LUA CPATH_DIR LUA_DIR [real]
--   LUA: the lua5.4 to run the scripts with; CPATH_DIR: where conch.so is;
--   LUA_DIR: the folder holding conch/talk.lua. Without "real": the scripts
--   in tests/lua/talk/ (luatalk's README examples and demos as written, the
--   require line changed, the path from TALK_PATH), a custom pollable, a quiet
--   descriptor. With "real": luatalk's own README examples and demos from
--   $LUATALK_SRC (a checkout of APTy/luatalk), the require line rewritten;
--   skipped (exit 77) when LUATALK_SRC is unset. They use /tmp/demo and
--   /tmp/talkie, as luatalk's do.
-- Servers run in the background with line-buffered stdout (stdbuf -oL), are
-- waited on through their output (at most 30 s each) and killed by pid.
local conch = require "conch"
local T = require "check"

local lua, cpath_dir, lua_dir, mode = arg[1], arg[2], arg[3], arg[4]
assert(lua and cpath_dir and lua_dir, "usage: talk_demos_test.lua LUA CPATH_DIR LUA_DIR [real]")
local here = arg[0]:match("^(.*)/[^/]*$") or "."

local src = os.getenv("LUATALK_SRC")
if mode == "real" and (src == nil or src == "") then
  T.skip("talk_real", "LUATALK_SRC is not set (a checkout of APTy/luatalk runs luatalk's own scripts)")
end

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

local tmp = os.tmpname()
os.remove(tmp)
assert(os.execute("mkdir -p " .. q(tmp)))

local env = ("LUA_PATH=%s LUA_CPATH=%s"):format(q(lua_dir .. "/?.lua;;"), q(cpath_dir .. "/?.so;;"))
local pids = {}

local function read_file(p)
  local f = io.open(p, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function write_file(p, s)
  local f = assert(io.open(p, "wb"))
  f:write(s)
  f:close()
end

-- Starts `script` in the background (stdout+stderr to `out`, stdin from
-- `feed` through a pipe, else /dev/null); returns its pid.
local function spawn(script, path, out, feed)
  local input = feed and ("printf %%s %s | "):format(q(feed)) or ""
  local cmd = ("%s%s TALK_PATH=%s stdbuf -oL %s %s > %s 2>&1 %s & echo $!"):format(
      input, env, q(path or ""), q(lua), q(script), q(out), feed and "" or "< /dev/null")
  local p = assert(io.popen("sh -c " .. q(cmd)))
  local pid = p:read("l")
  p:close()
  assert(pid and pid:match("^%d+$"), "no pid for " .. script)
  pids[#pids + 1] = pid
  return pid
end

-- Runs `script` in the foreground (bounded by timeout 60); its exit status and output.
local function run(script, path, feed)
  local out = tmp .. "/run.out"
  local input = feed and ("printf %%s %s | "):format(q(feed)) or ""
  local cmd = ("%s%s TALK_PATH=%s timeout 60 %s %s > %s 2>&1; echo $? > %s"):format(
      input, env, q(path or ""), q(lua), q(script), q(out), q(out .. ".rc"))
  os.execute("sh -c " .. q(cmd))
  return tonumber(read_file(out .. ".rc")), read_file(out)
end

local function kill(pid) os.execute("kill " .. pid .. " 2>/dev/null") end

-- Polls cond() every 10 ms for up to 30 s; true once it holds.
local function eventually(cond) return T.poll(cond, 30000, 10) end

local function is_socket(path) return os.execute("test -S " .. q(path)) == true end

-- The payloads of the lines of `text` that start with `prefix`, concatenated
-- (a stream may deliver two sends in one callback, or one in two).
local function payload(text, prefix)
  local parts = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, #prefix) == prefix then parts[#parts + 1] = line:sub(#prefix + 1) end
  end
  return table.concat(parts)
end

local function count_lines(text, line)
  local n = 0
  for l in text:gmatch("[^\n]+") do if l == line then n = n + 1 end end
  return n
end

-- Stops every process we started, then removes our files.
local function cleanup()
  for _, pid in ipairs(pids) do kill(pid) end
  pids = {}
end

-- ---- the README pair and the demos: the scripts in tests/lua/talk/ ----

local function readme_pair(server_script, client_script, path, runs)
  local out = tmp .. "/server.out"
  os.remove(path)  -- as in demo_pair
  spawn(server_script, path, out)
  T.ok(eventually(function() return is_socket(path) end), "the server listens on " .. path)
  local failed = 0
  for _ = 1, runs do
    local rc, text = run(client_script, path)
    if rc ~= 0 then
      failed = failed + 1
      io.stderr:write("client failed (", tostring(rc), "): ", text, "\n")
    end
  end
  T.eq(failed, 0, "clients that failed")
  local want = 'Received this message: Groovy!'
  eventually(function() return count_lines(read_file(out), want) >= runs end)
  local text = read_file(out)
  T.eq(count_lines(text, want), runs, "messages received of " .. runs .. " send-and-exit clients")
  cleanup()
end

local function demo_pair(server_script, client_script, path, lines)
  local sout, cout = tmp .. "/talkserver.out", tmp .. "/talk.out"
  -- A killed server leaves its socket file: without this the wait below could
  -- see the last test's file before this server listens (connection refused).
  os.remove(path)
  spawn(server_script, path, sout)
  T.ok(eventually(function() return is_socket(path) end), "the server listens on " .. path)
  lines = lines or { "hello", "world" }
  local want = table.concat(lines)
  spawn(client_script, path, cout, table.concat(lines, "\n") .. "\n")
  -- The client's StdinReader sends each line; the server prints it and
  -- broadcasts it back; the client prints what it receives.
  local ok = eventually(function()
    return payload(read_file(sout), "User 1 says: ") == want
           and payload(read_file(cout), "Received: ") == want
  end)
  if not ok then io.stderr:write("server:\n", read_file(sout), "client:\n", read_file(cout)) end
  T.ok(ok, "stdin lines reached the server and its broadcast came back")
  cleanup()
end

if mode ~= "real" then
  local dir = here .. "/talk"
  T.test("the README's server and client; 100 clients that send and end lose nothing", function()
    local ok, err = pcall(readme_pair, dir .. "/readme_server.lua", dir .. "/readme_client.lua",
                          tmp .. "/demo", 100)
    cleanup()
    assert(ok, err)
  end)

  T.test("demos: talk.lua (StdinReader fed through a pipe, Poller) against talkserver.lua", function()
    local ok, err = pcall(demo_pair, dir .. "/demo_talkserver.lua", dir .. "/demo_talk.lua",
                          tmp .. "/talkie")
    cleanup()
    assert(ok, err)
  end)

  T.test("demos: 3000 lines (beyond one 4096-byte read) through the pipe arrive in order", function()
    local lines = {}
    for i = 1, 3000 do lines[i] = "line " .. i .. ";" end
    local ok, err = pcall(demo_pair, dir .. "/demo_talkserver.lua", dir .. "/demo_talk.lua",
                          tmp .. "/talkie", lines)
    cleanup()
    assert(ok, err)
  end)

  T.test("a custom pollable (fd, _on_poll) is polled, removed, and poll() returns", function()
    local ok, err = pcall(function()
      local path, sout = tmp .. "/pollable", tmp .. "/pollable_server.out"
      spawn(dir .. "/demo_talkserver.lua", path, sout)
      T.ok(eventually(function() return is_socket(path) end), "the server listens")
      local rc, text = run(dir .. "/pollable.lua", path, "a\nb\nremove\n")
      T.eq(rc, 0, "pollable.lua's exit status (output: " .. text .. ")")
      T.ok(text:find("poll returned; pollables left: nil", 1, true), "poll() returned: " .. text)
      T.ok(eventually(function() return read_file(sout):find("remove", 1, true) ~= nil end),
           "what the pollable read reached the server")
      T.ok(read_file(sout):find("User 1 says: a", 1, true), "the first chunk arrived")
    end)
    cleanup()
    assert(ok, err)
  end)

  T.test("a quiet descriptor: a cancelled watch closes empty; a script ending with watches exits", function()
    local fifo, out, rcf = tmp .. "/quiet.fifo", tmp .. "/quiet.out", tmp .. "/quiet.rc"
    assert(os.execute("mkfifo " .. q(fifo)))
    local cmd = ("(%s timeout 60 %s %s < %s > %s 2>&1; echo $? > %s) &"):format(
        env, q(lua), q(dir .. "/quiet_fd.lua"), q(fifo), q(out), q(rcf))
    assert(os.execute("sh -c " .. q(cmd)))
    local w = assert(io.open(fifo, "w"))  -- held open and silent until the script has ended
    local ended = eventually(function() return read_file(rcf) ~= "" end)
    w:close()
    T.ok(ended, "quiet_fd.lua ended while its stdin stayed open")
    T.eq(tonumber(read_file(rcf)), 0, "quiet_fd.lua's exit status (output: " .. read_file(out) .. ")")
    T.ok(read_file(out):find("ending with watches armed", 1, true), "it ran to its end")
  end)
else
  -- ---- luatalk's own scripts from LUATALK_SRC, the require line rewritten ----
  local function converted(text, name)
    local s, n = text:gsub("require%('init'%)", "require('conch.talk')")
    assert(n == 1, name .. ": expected one require('init') line, found " .. n)
    local p = tmp .. "/" .. name
    write_file(p, s)
    return p
  end
  local readme = read_file(src .. "/README.md")
  local server_code = readme:match("```%s*lua\n(%-%- server%.lua.-)```")
  local client_code = readme:match("```%s*lua\n(%-%- client%.lua.-)```")
  T.test("luatalk's README server.lua and client.lua, 100 client runs", function()
    assert(server_code and client_code, "the README's server.lua and client.lua examples")
    local ok, err = pcall(readme_pair, converted(server_code, "server.lua"),
                          converted(client_code, "client.lua"), "/tmp/demo", 100)
    cleanup()
    assert(ok, err)
  end)
  T.test("luatalk's demos/talk.lua against demos/talkserver.lua", function()
    local ok, err = pcall(demo_pair, converted(read_file(src .. "/demos/talkserver.lua"), "talkserver.lua"),
                          converted(read_file(src .. "/demos/talk.lua"), "talk.lua"), "/tmp/talkie")
    cleanup()
    assert(ok, err)
  end)
end

cleanup()
os.execute("rm -rf " .. q(tmp))
T.done(mode == "real" and "talk_real" or "talk_demos")
