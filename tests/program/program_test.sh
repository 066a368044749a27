#!/bin/bash
# tests/program/program_test.sh CONCH CASE: one end-to-end case of the `conch` program.
# Each case writes its scripts to a fresh directory, runs the executable and
# checks its output and exit status; it prints why when it fails (exit 1).
set -u
CONCH=$1
CASE=$2
DIR=$(mktemp -d /tmp/conch_program.XXXXXX)
SERVER_PID=
BG_PIDS=()  # nats-server and worker processes of the nats_* cases
cleanup() {
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null
  for p in "${BG_PIDS[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$DIR"
}
trap cleanup EXIT
cd "$DIR" || exit 1

fail() { echo "FAIL ($CASE): $*" >&2; exit 1; }
# expect_status WANT: the status of the last `run`
run() { "$@" >out.txt 2>err.txt; STATUS=$?; }
expect_status() {
  [ "$STATUS" = "$1" ] || { echo "--- stdout"; cat out.txt; echo "--- stderr"; cat err.txt; fail "exit status $STATUS, wanted $1"; } >&2
}
expect_out() {  # the whole of stdout
  [ "$(cat out.txt)" = "$1" ] || { echo "--- stdout"; cat out.txt; echo "--- wanted"; echo "$1"; echo "--- stderr"; cat err.txt; fail "stdout differs"; } >&2
}
expect_err_has() {
  grep -qF -- "$1" err.txt || { echo "--- stderr"; cat err.txt; fail "stderr lacks '$1'"; } >&2
}

# The slua README's pair.
readme_scripts() {
  cat >handler.lua <<'LUA'
work.submit('hello')
work.submit('goodbye')
work.submit('really, goodbye')

print(work.collect())
print(work.collect())
print(work.collect())
LUA
  cat >worker.lua <<'LUA'
while true do
  work.answer(work.accept() .. 'world')
end
LUA
}

# A server whose handler echoes each line through the pool (upper-cased by a worker).
server_scripts() {
  cat >handler.lua <<'LUA'
while true do
  local line = client.line()
  if line == nil then break end
  if line == "flood" then
    for i = 1, 1000000 do print(i) end
  end
  work.submit(line)
  print(work.collect(), client.peer ~= nil)
end
LUA
  cat >worker.lua <<'LUA'
while true do
  work.answer(string.upper(work.accept()))
end
LUA
}

# start_server ADDR [options...]: runs the server in the background, waits for
# "listening on", sets ADDR_REAL to the address it reports.
start_server() {
  local addr=$1
  shift
  "$CONCH" --listen "$addr" handler.lua worker.lua "$@" >server_out.txt 2>server_err.txt &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    ADDR_REAL=$(sed -n 's/^conch: listening on //p' server_err.txt)
    [ -n "$ADDR_REAL" ] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || { cat server_err.txt >&2; fail "the server exited"; }
    sleep 0.1
  done
  fail "the server did not report its address"
}

stop_server() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID"
  local st=$?
  SERVER_PID=
  [ "$st" = 0 ] || { cat server_err.txt >&2; fail "the server exited with $st after SIGTERM"; }
}

# clients N SOCAT_ADDR: N concurrent line clients, each sending 20 lines and
# checking every reply.
clients() {
  local n=$1 target=$2 pids=()
  for c in $(seq 1 "$n"); do
    (
      for i in $(seq 1 20); do echo "client $c line $i"; done | socat -t 60 - "$target" >"client_$c.txt" 2>"client_$c.err"
    ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  for c in $(seq 1 "$n"); do
    local want
    want=$(for i in $(seq 1 20); do printf 'CLIENT %s LINE %s\ttrue\n' "$c" "$i"; done)
    [ "$(cat "client_$c.txt")" = "$want" ] || { echo "--- client $c got"; cat "client_$c.txt" "client_$c.err"; fail "client $c's replies differ"; } >&2
  done
}

# wait_for FILE WHAT: waits (30 s at most) until FILE exists.
wait_for() {
  for _ in $(seq 1 300); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  fail "$2 did not happen within 30 s"
}

# start_nats: a nats-server on a free loopback port (its own pick); sets
# NATS_URL. Skips the case (77) without nats-server.
start_nats() {
  local bin
  bin=$(PATH="$PATH:/usr/sbin" command -v nats-server) || { echo "SKIP: no nats-server" >&2; exit 77; }
  "$bin" -a 127.0.0.1 -p -1 >nats.log 2>&1 &
  BG_PIDS+=($!)
  for _ in $(seq 1 300); do
    NATS_URL=$(sed -n 's/.*Listening for client connections on \([0-9.:]*\).*/nats:\/\/\1/p' nats.log)
    [ -n "$NATS_URL" ] && return 0
    sleep 0.1
  done
  cat nats.log >&2
  fail "nats-server did not start"
}

# start_nats_worker NAME [options...]: a worker process running worker.lua
# with WN=NAME; waits until its first worker state has subscribed (the
# script's first line writes NAME.ready). Sets WORKER_PID.
start_nats_worker() {
  local name=$1
  shift
  WN=$name "$CONCH" --nats "$NATS_URL" --worker worker.lua "$@" >"$name.out" 2>"$name.err" &
  WORKER_PID=$!
  BG_PIDS+=($WORKER_PID)
  wait_for "$name.ready" "worker $name's start"
}

# The NATS cases' worker: answers {who=, job=}; "hang", when HANG is set,
# records its arrival (NAME.hang gets a line) and never answers; "boom" raises.
nats_worker_script() {
  cat >worker.lua <<'LUA'
local who = os.getenv("WN")
io.open(who .. ".ready", "w"):close()
while true do
  local job = work.accept()
  if job == "hang" and os.getenv("HANG") then
    local f = io.open(who .. ".hang", "a")
    f:write("hang\n")
    f:close()
    conch.sleep(600000)
  elseif job == "boom" then
    error("kaboom")
  elseif job == "big" then
    work.answer(("x"):rep(2 << 20))  -- over the server's max_payload (1 MiB)
  end
  work.answer({who = who, job = job})
end
LUA
}

case $CASE in
help_and_version)
  run "$CONCH" -v; expect_status 0
  grep -q '^conch [0-9]' out.txt || fail "-v printed: $(cat out.txt)"
  run "$CONCH" -h; expect_status 0
  grep -q 'handler.lua worker.lua' out.txt || fail "-h lacks the modes"
  run "$CONCH" --bogus; expect_status 2; expect_err_has "unrecognized option '--bogus'"
  run "$CONCH" -w 0 a.lua b.lua; expect_status 2; expect_err_has "-w wants a positive whole number"
  ;;
slua_readme)
  readme_scripts
  run "$CONCH" handler.lua worker.lua -w 1; expect_status 0
  expect_out $'helloworld\ngoodbyeworld\nreally, goodbyeworld'
  # Two workers: completion order, so compare as a set.
  run "$CONCH" handler.lua worker.lua -w 2; expect_status 0
  [ "$(sort out.txt)" = $'goodbyeworld\nhelloworld\nreally, goodbyeworld' ] || fail "got: $(cat out.txt)"
  ;;
jobs_100k)
  # CONCH_TEST_JOBS: fewer under the sanitizers (tests/program/CMakeLists.txt).
  cat >handler.lua <<'LUA'
local n = tonumber(os.getenv("CONCH_TEST_JOBS") or "100000")
for i = 1, n do work.submit({i = i, s = "job" .. i}) end
assert(work.active(), "jobs are outstanding")
local seen, count = {}, 0
for _ = 1, n do
  local r = work.collect()
  assert(type(r) == "table" and r.s == "job" .. r.i .. "!", "a result was garbled")
  assert(not seen[r.i], "duplicate result " .. r.i)
  seen[r.i] = true
  count = count + 1
end
assert(not work.active(), "nothing outstanding after collecting all")
for i = 1, n do assert(seen[i], "lost job " .. i) end
print("collected " .. count .. " pool " .. work.pool())
LUA
  cat >worker.lua <<'LUA'
while true do
  local j = work.accept()
  assert(work.job == j)
  work.answer({i = j.i, s = j.s .. "!"})
end
LUA
  run "$CONCH" handler.lua worker.lua -w 2; expect_status 0
  expect_out "collected ${CONCH_TEST_JOBS:-100000} pool 2"
  ;;
worker_error)
  cat >handler.lua <<'LUA'
for _, j in ipairs({"a", "bad", "b", "c"}) do work.submit(j) end
local ok, errs = {}, {}
for _ = 1, 4 do
  local r, err = work.collect()
  if r == nil then errs[#errs + 1] = err else ok[#ok + 1] = r end
end
table.sort(ok)
assert(#errs == 1 and errs[1]:find("boom in bad", 1, true), "one error, for the bad job: " .. tostring(errs[1]))
-- The worker was restarted: later jobs are still served.
work.submit("d")
ok[#ok + 1] = work.collect()
print(table.concat(ok, " "))
LUA
  cat >worker.lua <<'LUA'
local served = 0
while true do
  local j = work.accept()
  served = served + 1
  if j == "bad" then error("boom in " .. j) end
  work.answer(j:upper())
end
LUA
  run "$CONCH" handler.lua worker.lua -w 1; expect_status 0
  expect_out "A B C D"
  expect_err_has 'error in job "bad"'
  expect_err_has "boom in bad"
  expect_err_has "stack traceback"
  ;;
workers_side_by_side)
  # Two workers are two states on different loops (threads), so two jobs run
  # at the same time. Each job marks a file and then spins, never yielding to
  # its loop, until it sees the other job's mark: on one loop the second job
  # could not start while the first spins, so the first gives up after 60 s.
  # The workers take no job before both are queued (the "go" file).
  [ "$(nproc)" -ge 2 ] || { echo "one core: skipped"; exit 77; }
  cat >handler.lua <<'LUA'
work.submit("a")
work.submit("b")
assert(io.open("go", "w")):close()  -- both jobs queued: the workers may start
local met = work.collect() and work.collect()
print(met and "side by side" or "one at a time")
LUA
  cat >worker.lua <<'LUA'
-- Wait (yielding) until the handler has queued both jobs: the handler's
-- state shares loop 0 with worker 1, so a job spinning there before "b" is
-- submitted would keep the handler from submitting it.
local function exists(p) local f = io.open(p) if f then f:close() return true end return false end
while not exists("go") do conch.sleep(1) end
while true do
  local me = work.accept()
  local other = me == "a" and "b" or "a"
  assert(io.open("mark_" .. me, "w")):close()
  local deadline, met = os.time() + 60, false
  while not met and os.time() < deadline do
    local f = io.open("mark_" .. other)
    if f then f:close(); met = true end
  end
  work.answer(met)
end
LUA
  run "$CONCH" handler.lua worker.lua -w 2; expect_status 0
  expect_out "side by side"
  ;;
bad_values)
  # A job or a result that cannot travel is an error naming it; nothing hangs.
  cat >handler.lua <<'LUA'
local ok, err = pcall(work.submit, function() end)
assert(not ok and err:find("work.submit"), "submit of a function: " .. tostring(err))
assert(not work.active(), "the refused job is not outstanding")
work.submit("fn please")
local r, e = work.collect()
assert(r == nil and e:find("function"), "answer of a function: " .. tostring(e))
work.submit("fine")
print(work.collect())
LUA
  cat >worker.lua <<'LUA'
while true do
  local j = work.accept()
  if j == "fn please" then work.answer(print) else work.answer(j .. "!") end
end
LUA
  run timeout 60 "$CONCH" handler.lua worker.lua -w 1; expect_status 0
  expect_out "fine!"
  ;;
job_values)
  # Every kind of job travels and comes back to its handler: nil, false,
  # numbers, a nested table, and a job a worker submits while serving one.
  cat >handler.lua <<'LUA'
work.submit(nil)
work.submit(false)
work.submit(42)
work.submit(1.5)
work.submit({a = {b = "deep"}, 1, 2})
work.submit("spawn")  -- its worker submits "child", answered to this handler
local seen = {}
for i = 1, 7 do seen[i] = assert(work.collect()) end
assert(not work.active(), "nothing left outstanding")
table.sort(seen)
print(table.concat(seen, " "))
LUA
  cat >worker.lua <<'LUA'
while true do
  local j = work.accept()
  assert(work.job == j, "work.job is the accepted job")
  if j == "spawn" then
    work.submit("child")
    work.answer("spawn")
  elseif type(j) == "table" then
    work.answer("table:" .. j.a.b .. ":" .. #j)
  else
    work.answer(type(j) .. ":" .. tostring(j))
  end
end
LUA
  run timeout 60 "$CONCH" handler.lua worker.lua -w 2; expect_status 0
  expect_out "boolean:false nil:nil number:1.5 number:42 spawn string:child table:deep:2"
  ;;
submit_cannot_wait)
  # A submit that finds the queue full where it cannot wait (inside
  # table.sort) is an error, and that job is not left counted: the others
  # are collected and nothing stays outstanding.
  cat >handler.lua <<'LUA'
work.submit("hold")  -- the one worker holds it until the file "go" exists
work.submit("a")     -- fills the queue (--max-jobs 1) once "hold" is taken
local t = {2, 1}
local ok, err = pcall(table.sort, t, function(x, y)
  while work.backlog() == 0 do os.usleep(1000) end  -- "a" still queued: the worker holds "hold"
  work.submit("b")
  return x < y
end)
assert(not ok and err:find("cannot wait"), "submit that cannot wait: " .. tostring(err))
io.open("go", "w"):close()
local got = {work.collect(), work.collect()}
table.sort(got)
assert(not work.active(), "the refused job is not outstanding")
print(table.concat(got, " "))
LUA
  cat >worker.lua <<'LUA'
while true do
  local j = work.accept()
  if j == "hold" then
    for _ = 1, 60000 do  -- at most 60 s
      local f = io.open("go")
      if f then f:close() break end
      os.usleep(1000)
    end
  end
  work.answer(j .. "!")
end
LUA
  run timeout 90 "$CONCH" handler.lua worker.lua -w 1 --max-jobs 1; expect_status 0
  expect_out "a! hold!"
  ;;
worker_fails_at_start)
  readme_scripts
  echo 'error("broken worker")' >worker.lua
  run timeout 60 "$CONCH" handler.lua worker.lua -w 2; expect_status 1
  expect_err_has "broken worker"
  expect_err_has "no workers left"
  ;;
missing_file)
  run "$CONCH" nosuch.lua; expect_status 2; expect_err_has "nosuch.lua"
  readme_scripts
  run "$CONCH" handler.lua missing_worker.lua -w 2; expect_status 2; expect_err_has "missing_worker.lua"
  run "$CONCH" ./nowhere/script.lua; expect_status 2; expect_err_has "./nowhere/script.lua"
  ;;
handler_error)
  readme_scripts
  printf 'work.submit("x")\nlocal function f() error("handler broke") end\nf()\n' >handler.lua
  run "$CONCH" handler.lua worker.lua -w 2; expect_status 1
  expect_err_has "handler.lua:2: handler broke"
  expect_err_has "stack traceback"
  ;;
script_error)
  printf 'print("before")\nlocal t = nil\nprint(t.x)\n' >s.lua
  run "$CONCH" s.lua; expect_status 1
  expect_out "before"
  expect_err_has "s.lua:3: attempt to index a nil value"
  expect_err_has "stack traceback"
  printf 'x = = 1\n' >syntax.lua
  run "$CONCH" syntax.lua; expect_status 1; expect_err_has "syntax.lua:1:"
  ;;
eval_options)
  run "$CONCH" -e 'x = 20' -e 'print(x + 22, conch ~= nil, type(conch.chan))'; expect_status 0
  expect_out $'42\ttrue\tfunction'
  run "$CONCH" -e 'local c = conch.chan(1); conch.go(function() c:send("from a go block") end); print(c:recv())'
  expect_status 0; expect_out "from a go block"
  run "$CONCH" -e 'error("nope")'; expect_status 1; expect_err_has "nope"
  run "$CONCH" -e; expect_status 2; expect_err_has "-e needs an argument"
  ;;
stdin_script)
  printf 'print("from stdin", ...)\n' | "$CONCH" - a b >out.txt 2>err.txt; STATUS=$?
  expect_status 0; expect_out $'from stdin\ta\tb'
  printf 'print(arg[0])\n' | "$CONCH" >out.txt 2>err.txt; STATUS=$?
  expect_status 0
  ;;
inline_code)
  run "$CONCH" 'print("hi from inline")'; expect_status 0; expect_out "hi from inline"
  run "$CONCH" 'print(...)' x y; expect_status 0; expect_out $'x\ty'
  ;;
arg_table)
  printf 'print(arg[-2] ~= nil, arg[-1], arg[0], arg[1], arg[2], #arg, select("#", ...), ...)\n' >a.lua
  run "$CONCH" -e 'y=1' a.lua one two; expect_status 0
  expect_out $'true\ty=1\ta.lua\tone\ttwo\t2\t2\tone\ttwo'
  # A second file that is not a .lua script is an argument, not a worker.
  echo data >data.txt
  run "$CONCH" a.lua data.txt; expect_status 0
  expect_out $'false\t'"$CONCH"$'\ta.lua\tdata.txt\tnil\t1\t1\tdata.txt'
  ;;
no_workers)
  run "$CONCH" -e 'work.submit("x")'; expect_status 1; expect_err_has "work.submit: no workers"
  run "$CONCH" -e 'print(work.pool(), work.idle(), work.backlog(), work.active())'; expect_status 0
  expect_out $'0\t0\t0\tfalse'
  ;;
results_bounded)
  # With --max-results 2 the workers wait for the handler (which keeps 8
  # jobs in flight, so it collects while it submits); nothing is lost.
  cat >handler.lua <<'LUA'
local sum, sent, got = 0, 0, 0
while got < 500 do
  while sent < 500 and sent - got < 8 do sent = sent + 1; work.submit(sent) end
  sum = sum + work.collect()
  got = got + 1
end
print(sum, work.pool(), work.active())
LUA
  echo 'while true do work.answer(work.accept() * 2) end' >worker.lua
  run "$CONCH" handler.lua worker.lua -w 2 --max-jobs 4 --max-results 2; expect_status 0
  expect_out $'250500\t2\tfalse'
  ;;
server_tcp)
  server_scripts
  start_server 127.0.0.1:0 -w 2 --handlers 8
  clients 50 "TCP:$ADDR_REAL"
  stop_server
  ;;
server_unix)
  server_scripts
  start_server "$DIR/conch.sock" -w 2 --handlers 50
  clients 50 "UNIX-CONNECT:$DIR/conch.sock"
  stop_server
  ;;
server_disconnect)
  server_scripts
  # One handler at a time: a client that leaves must free it for the next.
  start_server 127.0.0.1:0 -w 1 --handlers 1
  # Leaves mid-session, after one exchange, while its handler waits for a line.
  printf 'first\n' | socat -t 60 - "TCP:$ADDR_REAL" >c1.txt
  [ "$(cat c1.txt)" = $'FIRST\ttrue' ] || fail "client 1 got: $(cat c1.txt)"
  # Leaves while its handler is writing a million lines to it.
  printf 'flood\n' | timeout 5 socat -u - "TCP:$ADDR_REAL" >/dev/null 2>&1
  clients 3 "TCP:$ADDR_REAL"
  kill -0 "$SERVER_PID" || fail "the server died"
  stop_server
  ;;
client_io)
  # client.line and client.read across chunk boundaries: a conch client sends
  # the bytes in small pieces (the pieces' timing changes only where the
  # chunks split, never the expected replies).
  cat >handler.lua <<'LUA'
local a = client.line()
local b = client.line()
local c = client.read(5)
local d = client.line()
local rest = client.read()
client.write(string.format("%q %q %q %q %q\n", a, b, c, d, rest))
print("peer", type(client.peer))
LUA
  echo 'while true do work.answer(work.accept()) end' >worker.lua
  start_server 127.0.0.1:0 -w 1 --handlers 2
  cat >client.lua <<'LUA'
local sock = assert(conch.connect(arg[1]))
for _, piece in ipairs({"fir", "st\nsec", "ond\n12", "345tail", " line\nthe", " rest", " of it"}) do
  sock.output:send(piece)
  conch.sleep(20)
end
sock.output:close()
local got = {}
for chunk in sock.input:iter() do got[#got + 1] = chunk end
io.write(table.concat(got))
LUA
  run timeout 60 "$CONCH" client.lua "$ADDR_REAL"; expect_status 0
  expect_out $'"first" "second" "12345" "tail line" "the rest of it"\npeer\tstring'
  stop_server
  ;;
server_tls)
  # A throwaway certificate; TLS clients are socat's (a foreign peer).
  openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost \
    -keyout k.pem -out c.pem >openssl.txt 2>&1 || { cat openssl.txt >&2; fail "openssl could not make a certificate"; }
  server_scripts
  run "$CONCH" --listen 127.0.0.1:0 --tls-cert c.pem handler.lua worker.lua
  expect_status 2; expect_err_has "--tls-cert and --tls-key go together"
  run "$CONCH" --listen 127.0.0.1:0 --tls-cert missing.pem --tls-key k.pem handler.lua worker.lua
  expect_status 2; expect_err_has "missing.pem"
  start_server 127.0.0.1:0 -w 2 --tls-cert c.pem --tls-key k.pem
  clients 10 "OPENSSL:$ADDR_REAL,verify=0"
  # A plain client gets nothing, and the server goes on serving TLS.
  printf 'plain\n' | timeout 10 socat -t 2 - "TCP:$ADDR_REAL" >plain.txt 2>/dev/null || true
  grep -q PLAIN plain.txt && fail "a plain client was answered in clear"
  clients 2 "OPENSSL:$ADDR_REAL,verify=0"
  stop_server
  ;;
nats_two_workers)
  # One handler and two worker processes through one server: every job
  # answered once, with its own value, both processes used.
  start_nats
  nats_worker_script
  start_nats_worker a -w 2
  start_nats_worker b -w 2
  cat >handler.lua <<'LUA'
local n = 400
for i = 1, n do
  work.submit({i = i, f = i + 0.5, s = ("x"):rep(i % 7), t = {true, false, {i}}})
end
local seen, by = {}, {}
for _ = 1, n do
  local r, err = work.collect()
  assert(r, err)
  local j = r.job
  assert(j.f == j.i + 0.5 and math.type(j.i) == "integer" and j.s == ("x"):rep(j.i % 7), "a value changed")
  assert(j.t[1] == true and j.t[2] == false and j.t[3][1] == j.i, "a table changed")
  assert(not seen[j.i], "job " .. j.i .. " answered twice")
  seen[j.i] = true
  by[r.who] = (by[r.who] or 0) + 1
end
for i = 1, n do assert(seen[i], "job " .. i .. " not answered") end
-- A shared table and a cycle arrive as such.
local shared = {1}
local cyc = {a = shared, b = shared}
cyc.self = cyc
work.submit(cyc)
local r = work.collect().job
print(r.a == r.b, r.self == r, r.a[1], work.active())
print((by.a or 0) > 0, (by.b or 0) > 0, (by.a or 0) + (by.b or 0))
-- A value that cannot travel is refused at submit.
print(pcall(work.submit, {f = print}))
LUA
  run timeout 120 "$CONCH" --nats "$NATS_URL" handler.lua --max-jobs 16 --job-timeout 60000; expect_status 0
  expect_out $'true\ttrue\t1\tfalse\ntrue\ttrue\t400\nfalse\twork.submit: a function cannot travel over NATS (channels, sockets and functions stay in their process)'
  ;;
nats_worker_killed)
  # Worker a takes the job and hangs; b starts; a is killed (SIGKILL): the
  # request times out and the job is sent again, to b. The timeout only has
  # to outlast b's start (a few seconds under TSan on a loaded machine).
  start_nats
  nats_worker_script
  HANG=1 start_nats_worker a -w 1
  A_PID=$WORKER_PID
  echo 'work.submit("hang"); local r, err = work.collect(); print(r and r.who, r and r.job, err)' >handler.lua
  "$CONCH" --nats "$NATS_URL" handler.lua --job-timeout 20000 >out.txt 2>err.txt &
  H_PID=$!
  BG_PIDS+=($H_PID)
  wait_for a.hang "worker a's taking the job"
  start_nats_worker b -w 1
  kill -9 "$A_PID"
  wait "$H_PID"; STATUS=$?
  expect_status 0
  expect_out $'b\thang\tnil'
  [ "$(cat a.hang)" = "hang" ] || fail "worker a got the job $(wc -l <a.hang) times"
  ;;
nats_job_timeout)
  # Both workers hang: the job is sent twice (to either; a hung worker's
  # state keeps the second in its queue), then collect() gets nil, err.
  start_nats
  nats_worker_script
  HANG=1 start_nats_worker a -w 1
  HANG=1 start_nats_worker c -w 1
  echo 'work.submit("hang"); print(work.collect())' >handler.lua
  run timeout 60 "$CONCH" --nats "$NATS_URL" handler.lua --job-timeout 500; expect_status 0
  grep -qF $'nil\tno answer on conch.jobs within 500 ms, twice' out.txt || fail "collect gave: $(cat out.txt)"
  [ -e a.hang ] || [ -e c.hang ] || fail "no worker got the job"
  ;;
nats_no_workers)
  start_nats
  echo 'work.submit(1); work.submit(2); print(work.collect()); print(work.collect()); print(work.active())' >handler.lua
  run timeout 60 "$CONCH" --nats "$NATS_URL" handler.lua; expect_status 0
  [ "$(grep -c 'nil	no workers: nothing answers on conch.jobs for 2 s' out.txt)" = 2 ] || fail "collect gave: $(cat out.txt)"
  [ "$(tail -1 out.txt)" = false ] || fail "work.active() after both: $(tail -1 out.txt)"
  ;;
nats_worker_error)
  # A worker's error is the job's result; the worker goes on (a fresh state).
  start_nats
  nats_worker_script
  start_nats_worker a -w 1 --subject other.jobs
  # Values over the server's max_payload: the job (at its send) or the
  # result (at the worker's answer) gets nil, err at once.
  cat >handler.lua <<'LUA'
work.submit("boom"); print(work.collect())
work.submit(7); print(work.collect().job)
work.submit("big"); print(work.collect())
work.submit(("y"):rep(2 << 20)); print(work.collect())
LUA
  run timeout 60 "$CONCH" --nats "$NATS_URL" --subject other.jobs handler.lua; expect_status 0
  expect_out $'nil\tworker.lua:11: kaboom\n7\nnil\twork.answer: the result cannot be sent: nats: a payload of 2097158 bytes is over the server\'s max_payload of 1048576\nnil\tnats: a payload of 2097157 bytes is over the server\'s max_payload of 1048576'
  grep -qF 'error in job "boom": worker.lua:11: kaboom' a.err || fail "the worker did not report the error: $(cat a.err)"
  ;;
nats_usage)
  nats_worker_script
  echo 'print(1)' >handler.lua
  run "$CONCH" --nats nats://127.0.0.1:abc handler.lua; expect_status 2; expect_err_has "bad port in URL"
  run "$CONCH" --nats nats://127.0.0.1:abc --worker worker.lua; expect_status 2; expect_err_has "bad port in URL"
  run "$CONCH" --nats nats://127.0.0.1:1 handler.lua; expect_status 1; expect_err_has "cannot connect to NATS at nats://127.0.0.1:1"
  run "$CONCH" --nats nats://127.0.0.1:1 --worker worker.lua -w 2; expect_status 1; expect_err_has "cannot connect to NATS"
  run "$CONCH" --nats nats://127.0.0.1:1 handler.lua worker.lua; expect_status 2; expect_err_has "the workers run apart"
  run "$CONCH" --nats nats://127.0.0.1:1 handler.lua -w 2; expect_status 2; expect_err_has "-w goes with --worker"
  run "$CONCH" --worker worker.lua; expect_status 2; expect_err_has "need --nats URL"
  run "$CONCH" --nats nats://127.0.0.1:1 --worker missing.lua; expect_status 2; expect_err_has "cannot open worker script 'missing.lua'"
  run "$CONCH" --nats nats://127.0.0.1:1 --listen 127.0.0.1:0 handler.lua; expect_status 2; expect_err_has "cannot be combined with --listen"
  run "$CONCH" -h; expect_status 0; grep -q 'At-least-once' out.txt || fail "-h does not say at-least-once"
  ;;
*)
  fail "no such case"
  ;;
esac
echo "ok $CASE"
