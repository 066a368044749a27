-- tests/lua/lsocket_test.lua
-- `require "lsocket"` served by conch: lsocket 1.4's calls, return conventions and constants.
--
-- false = would block, nil = closed, nil + message = error; accept returns
-- false when nothing is pending; select for read and write with a timeout;
-- the connecting state seen by select for write plus status(); TCP over IPv4
-- and IPv6, Unix paths and abstract names, UDP, broadcast; resolve and
-- getinterfaces; select inside conch go blocks parks only the go block.
local ls = require "lsocket"
local conch = require "conch"
local T = require "check"

-- Waits (bounded) until sock is readable; fails the test on a time out.
local function readable(sock, what)
  local r = ls.select({ sock }, 10)
  T.ok(r and r[1] == sock, (what or "socket") .. " readable within 10 s")
end

-- A connected TCP pair over server socket srv (already bound): client, accepted.
local function tcp_pair(srv, addr, port)
  local c = assert(ls.connect(addr, port))
  local _, w = ls.select(nil, { c }, 10)
  T.ok(w and w[1] == c, "connect finished")
  T.eq(c:status(), true, "status after connect")
  readable(srv, "listener")
  local a, ip, p = srv:accept()
  T.ok(a, "accepted")
  return c, a, ip, p
end

T.test("constants and module shape", function()
  T.eq(ls.INADDR_ANY, "0.0.0.0")
  T.eq(ls.IN6ADDR_ANY, "::0")
  T.eq(ls._VERSION, "1.4.1")
  for _, f in ipairs { "connect", "bind", "select", "resolve", "getinterfaces" } do
    T.eq(type(ls[f]), "function", f)
  end
  T.ok(require "lsocket" == ls, "require returns the same table")
end)

T.test("TCP over IPv4: accept false, connect, status, info, send/recv, close", function()
  local srv = assert(ls.bind("127.0.0.1", 0, 10))
  local info = srv:info()
  T.eq(info.family, "inet")
  T.eq(info.type, "tcp")
  T.eq(info.listening, true)
  T.eq(info.multicast, false)
  T.eq(info.fd, srv:getfd())
  T.ok(tostring(srv):match("^socket: "), "tostring")
  local port = srv:info("socket").port
  T.ok(port > 0, "bound port")
  T.eq(srv:accept(), false, "accept with nothing pending")
  local c, a, ip, p = tcp_pair(srv, "127.0.0.1", port)
  T.eq(ip, "127.0.0.1")
  T.eq(p, c:info("socket").port, "accept reports the client's port")
  T.eq(c:info("peer").port, port)
  T.eq(c:info("peer").addr, "127.0.0.1")
  T.eq(c:info().listening, false)
  T.eq(c:info("nonsense"), nil)
  T.eq(a:recv(), false, "recv with nothing to read")
  T.eq(c:send("hello"), 5)
  readable(a)
  T.eq(a:recv(), "hello")
  T.eq(a:send("x"), 1)
  readable(c)
  T.eq(c:recv(1), "x")
  -- recv with a small size returns at most that much
  c:send("abcdef")
  readable(a)
  T.eq(a:recv(4), "abcd")
  T.eq(a:recv(), "ef")
  -- the peer closes: readable, then nil (no message)
  T.eq(c:close(), true)
  readable(a)
  local s, err = a:recv()
  T.eq(s, nil)
  T.eq(err, nil)
  -- a closed socket reports the error as nil + message
  local ok, e = c:send("late")
  T.eq(ok, nil)
  T.eq(e, "Bad file descriptor")
  T.eq(c:getfd(), -1)
  a:close()
  srv:close()
end)

T.test("bind with lsocket's argument forms", function()
  -- bind(port): INADDR_ANY
  local s = assert(ls.bind(0))
  T.eq(s:info("socket").addr, "0.0.0.0")
  s:close()
  -- bind("tcp", addr, port) and any case
  s = assert(ls.bind("TCP", "127.0.0.1", 0))
  T.eq(s:info().type, "tcp")
  s:close()
  -- a missing port is an argument error; a bad address is nil + message
  T.raises(function() ls.bind() end, "number expected")
  local np, nerr = ls.bind("127.0.0.1")     -- an address without a port: lsocket's lookup error
  T.eq(np, nil)
  T.eq(type(nerr), "string")
  local n, err = ls.bind("no.such.host.invalid", 0)
  T.eq(n, nil)
  T.eq(type(err), "string")
  -- a port in use
  local a = assert(ls.bind("udp", "127.0.0.1", 0))
  local port = a:info("socket").port
  local b, e2 = ls.bind("udp", "127.0.0.1", port)
  -- SO_REUSEADDR lets UDP rebind on Linux only for the same user and when all set it
  if b then b:close() else T.eq(e2, "Address already in use") end
  a:close()
end)

T.test("TCP over IPv6", function()
  local srv, err = ls.bind("::1", 0)
  if not srv then
    io.stderr:write("no IPv6 loopback here (", tostring(err), "), skipping\n")
    return
  end
  T.eq(srv:info().family, "inet6")
  local port = srv:info("socket").port
  local c, a, ip = tcp_pair(srv, "::1", port)
  T.eq(ip, "::1")
  T.eq(c:info("peer").family, "inet6")
  c:send("six")
  readable(a)
  T.eq(a:recv(), "six")
  c:close(); a:close(); srv:close()
end)

T.test("connect to a closed port: select for write, then status() reports it", function()
  local probe = assert(ls.bind("127.0.0.1", 0))
  local port = probe:info("socket").port
  probe:close()   -- nothing listens there now
  local c = ls.connect("127.0.0.1", port)
  if c then
    local _, w = ls.select(nil, { c }, 10)
    T.ok(w and w[1] == c, "select reports the failed connect")
    local ok, err = c:status()
    T.eq(ok, nil)
    T.eq(err, "Connection refused")
    c:close()
  end
end)

T.test("Unix path and abstract name: accept gives nil address, info family unix", function()
  local path = os.tmpname()
  os.remove(path)
  for _, addr in ipairs { path, "@conch-lsocket-test-" .. tostring(os.time()) .. tostring({}):sub(-6) } do
    local srv = assert(ls.bind(addr, nil, 10))
    T.eq(srv:info().family, "unix")
    if addr == path then T.eq(srv:info("socket").addr, path) end
    local c = assert(ls.connect(addr))
    ls.select(nil, { c }, 10)
    T.eq(c:status(), true)
    readable(srv)
    local a, ip, p = srv:accept()
    T.ok(a, "accepted")
    T.eq(ip, nil)
    T.eq(p, nil)
    T.eq(a:info().family, "unix")
    T.eq(c:info("peer").family, "unix")
    c:send("over " .. addr:sub(1, 1))
    readable(a)
    T.eq(a:recv(), "over " .. addr:sub(1, 1))
    c:close()
    readable(a)
    T.eq(a:recv(), nil)
    a:close(); srv:close()
  end
  os.remove(path)
  local n, err = ls.connect("/nonexistent/dir/sock")
  T.eq(n, nil)
  T.eq(err, "No such file or directory")
  local m, e = ls.bind("mcast", path)
  T.eq(m, nil)
  T.eq(e, "multicast not available for unix domain sockets.")
  local long = "/" .. string.rep("a", 200)
  local l, le = ls.bind(long)
  T.eq(l, nil)
  T.eq(le, "unix domain path too long")
end)

T.test("UDP: bind + recvfrom/sendto, connect + send/recv", function()
  local srv = assert(ls.bind("udp", "127.0.0.1", 0))
  T.eq(srv:info().type, "udp")
  local port = srv:info("socket").port
  T.eq(srv:recvfrom(), false, "recvfrom with nothing to read")
  local c = assert(ls.connect("udp", "127.0.0.1", port))
  local _, w = ls.select(nil, { c }, 10)
  T.ok(w and w[1] == c, "udp connect is writable at once")
  T.eq(c:status(), true)
  T.eq(c:send("ping"), 4)
  readable(srv)
  local s, ip, p = srv:recvfrom()
  T.eq(s, "ping")
  T.eq(ip, "127.0.0.1")
  T.eq(p, c:info("socket").port)
  T.eq(srv:sendto("pong", ip, p), 4)
  readable(c)
  T.eq(c:recv(), "pong")
  c:close(); srv:close()
end)

T.test("broadcast ('mcast' over IPv4): a bound mcast socket hears a connected one", function()
  local rx = assert(ls.bind("mcast", "127.255.255.255", 0))
  T.eq(rx:info().multicast, true)
  T.eq(rx:info().type, "udp")
  local port = rx:info("socket").port
  local tx = assert(ls.connect("mcast", "127.255.255.255", port))
  ls.select(nil, { tx }, 10)
  T.eq(tx:status(), true)
  T.eq(tx:send("Counting: 1"), 11)
  readable(rx)
  local s, ip = rx:recvfrom()
  T.eq(s, "Counting: 1")
  T.eq(ip, "127.0.0.1")
  rx:close(); tx:close()
end)

T.test("select: timeout, sleep, read+write tables, closed sockets, errors", function()
  local a = assert(ls.bind("udp", "127.0.0.1", 0))
  local t0 = conch.now()
  T.eq(ls.select({ a }, 0.05), false, "time out gives false")
  T.ok(conch.now() - t0 >= 40, "waited about the timeout")
  T.eq(ls.select(0.01), false, "select(timeout) sleeps")
  T.eq(ls.select({ a }, 0), false, "timeout 0 polls")
  -- write only: the read answer is an empty read-only table
  local r, w = ls.select(nil, { a })
  T.eq(#r, 0)
  T.eq(w[1], a)
  r[1] = 1
  T.eq(r[1], nil, "empty table stays empty")
  -- both tables: a socket in both appears in each answer
  local r2, w2 = ls.select({ a }, { a }, 1)
  T.eq(#r2, 0)
  T.eq(w2[1], a)
  -- closed sockets are ignored; none open and no timeout is nil + message
  local b = assert(ls.bind("udp", "127.0.0.1", 0))
  b:close()
  local n, err = ls.select({ b })
  T.eq(n, nil)
  T.eq(err, "no open sockets to check and no timeout set")
  T.eq(ls.select({ b }, 0.01), false)
  T.raises(function() ls.select({ a, "x" }) end, "tables can only contain sockets")
  T.raises(function() ls.select({ a }, nil, 1, 2) end, "invalid option")
  a:close()
end)

T.test("select returns each ready socket once, in descriptor order", function()
  local rx1 = assert(ls.bind("udp", "127.0.0.1", 0))
  local rx2 = assert(ls.bind("udp", "127.0.0.1", 0))
  local idle = assert(ls.bind("udp", "127.0.0.1", 0))
  local tx = assert(ls.connect("udp", "127.0.0.1", rx1:info("socket").port))
  tx:sendto("a", "127.0.0.1", rx2:info("socket").port)
  tx:send("b")
  local deadline = conch.now() + 10000
  local r
  repeat r = ls.select({ rx2, idle, rx1, rx2 }, 1) until (r and #r == 2) or conch.now() > deadline
  T.eq(#r, 2)
  T.eq(r[1], rx1.getfd(rx1) < rx2:getfd() and rx1 or rx2)
  T.ok(r[1] ~= r[2], "no duplicates")
  rx1:close(); rx2:close(); idle:close(); tx:close()
end)

T.test("setfd(-1) forgets the descriptor; other values are refused", function()
  local s = assert(ls.bind("udp", "127.0.0.1", 0))
  local fd = s:getfd()
  local ok, err = s:setfd(3)
  T.eq(ok, nil)
  T.eq(err, "bad argument #1 to 'setfd' (invalid fd)")
  T.eq(s:setfd(-1), true)
  T.eq(s:getfd(), -1)
  -- the descriptor is still open: wrap it again through a fresh bind is not possible,
  -- so just check close() of the forgotten socket does not close fd
  T.eq(s:close(), true)
  local probe = assert(ls.bind("udp", "127.0.0.1", 0))
  T.ok(probe:getfd() ~= fd, "fd still taken, so not reused")
  probe:close()
end)

T.test("recv size must be positive", function()
  local s = assert(ls.bind("udp", "127.0.0.1", 0))
  T.raises(function() s:recv(0) end, "size")
  T.raises(function() s:recvfrom(-5) end, "size")
  s:close()
end)

T.test("resolve and getinterfaces", function()
  local r = assert(ls.resolve("127.0.0.1"))
  T.eq(#r, 1)
  T.eq(r[1].family, "inet")
  T.eq(r[1].addr, "127.0.0.1")
  local r6 = assert(ls.resolve("::1"))
  T.eq(r6[1].family, "inet6")
  T.eq(r6[1].addr, "::1")
  local l = assert(ls.resolve("localhost"))
  T.ok(#l >= 1, "localhost resolves")
  local n, err = ls.resolve("no.such.host.invalid")
  T.eq(n, nil)
  T.eq(type(err), "string")
  local ifs = assert(ls.getinterfaces())
  local lo
  for _, i in ipairs(ifs) do
    T.ok(i.name and i.family and i.addr, "interface fields")
    if i.addr == "127.0.0.1" then lo = i end
  end
  T.ok(lo, "loopback listed")
  T.eq(lo.family, "inet")
  T.eq(lo.mask, "255.0.0.0")
end)

T.test("inside go blocks select parks the block: two echo exchanges interleave", function()
  local srv = assert(ls.bind("127.0.0.1", 0))
  local port = srv:info("socket").port
  local log = conch.chan(16)
  -- server go block: accepts one client, echoes until it closes
  local done = conch.go(function()
    while true do
      local r = ls.select({ srv }, 10)
      if r then break end
    end
    local a = srv:accept()
    while true do
      ls.select({ a }, 10)
      local s = a:recv()
      if s == nil then break end
      if s then a:send("echo:" .. s); log:send("server got " .. s) end
    end
    a:close()
    return "server done"
  end)
  -- client go block: select waits there too; the server's go block runs meanwhile
  local client = conch.go(function()
    local c = assert(ls.connect("127.0.0.1", port))
    ls.select(nil, { c }, 10)
    assert(c:status())
    local got = {}
    for i = 1, 3 do
      c:send("m" .. i)
      local s
      repeat ls.select({ c }, 10); s = c:recv() until s ~= false
      got[#got + 1] = s
    end
    c:close()
    return table.concat(got, ",")
  end)
  T.eq(client:recv(), "echo:m1,echo:m2,echo:m3")
  T.eq(done:recv(), "server done")
  local seen = T.drain((function() log:close(); return log end)())
  T.eq(#seen, 3)
  srv:close()
end)

T.test("a go block parked in select does not stop other go blocks", function()
  -- `parked` waits in select for a datagram that only `worker` sends, after
  -- work of its own: it arrives only if the parked select left the loop free.
  local quiet = assert(ls.bind("udp", "127.0.0.1", 0))
  local port = quiet:info("socket").port
  local started = conch.chan(1)
  local parked = conch.go(function()
    started:send(true)
    local r = ls.select({ quiet }, 10)
    return r and r[1] == quiet and quiet:recvfrom() or "timed out"
  end)
  local worker = conch.go(function()
    started:recv()   -- parked is in its select (or blocking the loop there) from now on
    local n = 0
    for _ = 1, 5 do conch.sleep(1); n = n + 1 end
    local tx = assert(ls.bind("udp", "127.0.0.1", 0))
    tx:sendto("worked " .. n, "127.0.0.1", port)
    tx:close()
    return n
  end)
  T.eq(worker:recv(), 5)
  T.eq(parked:recv(), "worked 5")
  quiet:close()
end)

T.test("outside any go block, a waiting select lets the state's go blocks run", function()
  -- The datagram comes from a go block that needs the loop (and this state)
  -- while the main thread waits in select.
  local rx = assert(ls.bind("udp", "127.0.0.1", 0))
  local port = rx:info("socket").port
  local sender = conch.go(function()
    conch.sleep(1)
    local tx = assert(ls.bind("udp", "127.0.0.1", 0))
    tx:sendto("from a go block", "127.0.0.1", port)
    tx:close()
    return true
  end)
  local r = ls.select({ rx }, 10)
  T.ok(r and r[1] == rx, "woken by the go block's datagram")
  T.eq(rx:recvfrom(), "from a go block")
  T.eq(sender:recv(), true)
  rx:close()
end)

T.done("lsocket")
