-- bench/program/handler.lua: the handler side of bench/run_program.sh.
-- MODE: batch (submit JOBS, then collect them), inflight (keep 16 in flight),
-- serial (submit, collect, repeat), inline (call the worker function here),
-- cpu (JOBS jobs of ~100 us of Lua arithmetic each, submitted then collected).
-- Written for Lua 5.2 too (slua): no integer division, no goto.
local mode = os.getenv("MODE") or "batch"
local n = tonumber(os.getenv("JOBS") or "100000")
local cpu_iters = tonumber(os.getenv("CPU_ITERS") or "20000")
local function job(i)
  if mode == "cpu" then return tostring(cpu_iters) end
  return "job" .. i
end
local clock = conch and conch.now  -- ms; absent under slua (then the script times the process)
local t0 = clock and clock()
local got = 0
if mode == "batch" or mode == "cpu" then
  for i = 1, n do work.submit(job(i)) end
  for i = 1, n do if work.collect() then got = got + 1 end end
elseif mode == "inflight" then
  local inflight, sent = 0, 0
  while got < n do
    while inflight < 16 and sent < n do sent = sent + 1; work.submit(job(sent)); inflight = inflight + 1 end
    if work.collect() then got = got + 1 end
    inflight = inflight - 1
  end
elseif mode == "serial" then
  for i = 1, n do work.submit(job(i)); if work.collect() then got = got + 1 end end
elseif mode == "inline" then
  local f = function(s) return s .. "!" end
  for i = 1, n do if f(job(i)) then got = got + 1 end end
end
assert(got == n, "lost results: " .. got .. " of " .. n)
if clock then io.stderr:write(string.format("elapsed_ms=%.3f\n", clock() - t0)) end
-- Under conch, CPU cells also report the CPU time of each loop thread (the
-- runtime's loops are the first threads after the main one; the workers'
-- states run there), from /proc in clock ticks of 10 ms.
if clock and mode == "cpu" and io.ls then
  local tids = io.ls("/proc/self/task")
  table.sort(tids, function(a, b) return tonumber(a) < tonumber(b) end)
  for k = 2, #tids do
    local f = io.open("/proc/self/task/" .. tids[k] .. "/stat")
    local stat = f and f:read("a")
    if f then f:close() end
    local fields = {}
    for w in (stat or ""):match("%) (.*)"):gmatch("%S+") do fields[#fields + 1] = w end
    -- after the command name: utime and stime are fields 14 and 15 of stat(5)
    local ticks = tonumber(fields[12]) + tonumber(fields[13])
    io.stderr:write(string.format("thread%d_cpu_ms=%d\n", k - 1, ticks * 10))
  end
end
