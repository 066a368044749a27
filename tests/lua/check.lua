-- tests/lua/check.lua
-- A tiny test harness for the Lua test scripts (plain asserts, Lua testes style).
--
--   local T = require "check"
--   T.test("name", function() T.eq(1 + 1, 2) end)
--   T.done("chan")   -- prints "chan: N passed, M failed"; raises if M > 0 or N == 0
--   T.skip("chan", "why")  -- exit 77: CTest reports the script skipped
--   T.eventually(function() return conch.tasks() == 0 end, "all ended")
--
-- Tests run on the main thread, outside any go block, so they may block on
-- channels (that runs the event loop until the operation completes).
local M = { passed = 0, failed = 0 }

function M.test(name, fn)
  if os.getenv("CHECK_VERBOSE") then io.stderr:write("-- ", name, "\n") end
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    M.passed = M.passed + 1
  else
    M.failed = M.failed + 1
    io.stderr:write("FAIL ", name, ": ", tostring(err), "\n")
  end
end

function M.eq(got, want, what)
  if got ~= want then
    error(("%s: expected %s, got %s"):format(what or "value", tostring(want), tostring(got)), 2)
  end
end

function M.ok(cond, what)
  if not cond then error((what or "check") .. " failed", 2) end
end

-- fn must raise an error whose message contains `pattern` (plain text).
function M.raises(fn, pattern)
  local ok, err = pcall(fn)
  if ok then error("expected an error", 2) end
  if pattern and not tostring(err):find(pattern, 1, true) then
    error(("error %q does not mention %q"):format(tostring(err), pattern), 2)
  end
end

-- Waits until cond() is true, looking every millisecond (conch.sleep), for
-- at most limit_ms (default 5000): for state no channel announces. Fails
-- with `what` if it never holds. Never a fixed sleep in its place.
function M.eventually(cond, what, limit_ms)
  if not M.poll(cond, limit_ms or 5000, 1) then error((what or "condition") .. ": never held", 2) end
end

-- Looks at cond() every step_ms (default 1) for at most limit_ms, running the
-- loop in between (conch.sleep); true once it holds, false if it never did.
function M.poll(cond, limit_ms, step_ms)
  local conch = require "conch"
  local deadline = conch.now() + limit_ms
  while not cond() do
    if conch.now() >= deadline then return cond() end
    conch.sleep(step_ms or 1)
  end
  return true
end

-- Receives every value of ch until it closes, into an array.
function M.drain(ch)
  local out = {}
  for v in function() return ch:recv() end do out[#out + 1] = v end
  return out
end

function M.done(name)
  print(("%s: %d passed, %d failed"):format(name, M.passed, M.failed))
  if M.failed > 0 then error(("%s: %d failed"):format(name, M.failed), 0) end
  if M.passed == 0 then error(name .. ": no test ran", 0) end
end

-- Skips the whole script: prints the reason and exits 77, which CTest
-- reports as skipped (SKIP_RETURN_CODE). For what the host lacks, never for
-- a failure.
function M.skip(name, reason)
  io.stderr:write(("skipped: %s: %s\n"):format(name, reason))
  io.stderr:flush()
  os.exit(77)
end

return M
