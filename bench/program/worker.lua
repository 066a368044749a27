-- bench/program/worker.lua: tiny string jobs are answered at once; a job that
-- is a number is that many iterations of arithmetic (about 100 us for 20000).
while true do
  local j = work.accept()
  local iters = tonumber(j)
  if iters then
    local x = 0
    for i = 1, iters do x = (x + i * 7) % 1000003 end
    work.answer(tostring(x))
  else
    work.answer(j .. "!")
  end
end
