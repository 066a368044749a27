-- tests/lua/net_test.lua
-- Sockets from Lua: TCP and Unix echo with line framing, a server with many
-- connections, errors as nil, message, code, resolve, interfaces, UDP.
local conch = require "conch"
local T = require "check"

-- An echo server on addr: every frame comes back prefixed. Returns the server.
local function echo_server(addr, opts)
  local srv = assert(conch.listen(addr, opts))
  conch.go(function()
    for s in srv.connections:iter() do
      conch.go(function()
        for frame in s.input:iter() do s.output:send("echo:" .. frame) end
        s.output:close()
      end)
    end
  end)
  return srv
end

T.test("TCP echo with line framing, from the main thread", function()
  local srv = echo_server("127.0.0.1:0", { framing = "lines" })
  local c = assert(conch.connect(srv:address(), { framing = "lines" }))
  for i = 1, 20 do
    T.eq(c.output:send("line " .. i), true)
    T.eq(c.input:recv(), "echo:line " .. i)
  end
  T.ok(c:peer() == srv:address(), "peer address")
  T.eq(c:status(), true)
  c.output:close()            -- half-close: the server sees EOF and closes its side
  T.eq(c.input:recv(), nil)   -- then our input ends
  srv:close()
end)

T.test("connect_timeout: a live server still answers; a bad value is an error", function()
  local srv = echo_server("127.0.0.1:0", { framing = "lines" })
  local c = assert(conch.connect(srv:address(), { framing = "lines", connect_timeout = 2000 }))
  T.eq(c.output:send("in time"), true)
  T.eq(c.input:recv(), "echo:in time")
  c:close()
  local ok, err = pcall(conch.connect, srv:address(), { connect_timeout = -1 })
  T.ok(not ok and tostring(err):find("connect_timeout", 1, true), "negative connect_timeout refused")
  srv:close()
end)

T.test("Unix socket echo, in and out spelled as in the API", function()
  local path = os.tmpname()
  os.remove(path)
  local srv = echo_server(path, { framing = "lines" })
  local c = assert(conch.connect(path, { framing = "lines" }))
  c["out"]:send("over unix")
  T.eq(c["in"]:recv(), "echo:over unix")
  T.ok(c["in"] == c.input and c["out"] == c.output, "aliases")
  c:close()
  srv:close()
  os.remove(path)
end)

T.test("a server with many concurrent clients in go blocks", function()
  local srv = echo_server("127.0.0.1:0", { framing = "lines" })
  local addr = srv:address()
  local clients = {}
  for i = 1, 50 do
    clients[i] = conch.go(function()
      local c = assert(conch.connect(addr, { framing = "lines" }))
      local ok = true
      for k = 1, 10 do
        c.output:send(i .. "/" .. k)
        ok = ok and c.input:recv() == ("echo:" .. i .. "/" .. k)
      end
      c:close()
      return ok
    end)
  end
  for i = 1, 50 do T.eq(clients[i]:recv(), true, "client " .. i) end
  srv:close()
end)

T.test("other framings: raw chunks, length-prefixed, delimited by \\f", function()
  for _, opts in ipairs { { framing = "length" }, { framing = "delimited", delimiter = "\f" } } do
    local srv = echo_server("127.0.0.1:0", opts)
    local c = assert(conch.connect(srv:address(), opts))
    c.output:send("a\nb\0c")
    T.eq(c.input:recv(), "echo:a\nb\0c", opts.framing)
    c:close()
    srv:close()
  end
  local srv = echo_server("127.0.0.1:0", { framing = "lines" })
  local raw = assert(conch.connect(srv:address()))  -- raw by default
  raw.output:send("two\nlines\n")
  local got = ""
  while #got < #"echo:two\necho:lines\n" do got = got .. raw.input:recv() end
  T.eq(got, "echo:two\necho:lines\n")
  raw:close()
  srv:close()
  T.raises(function() conch.listen("127.0.0.1:0", { framing = "bogus" }) end, "framing")
end)

T.test("select over connections, socket input and a timeout", function()
  local srv = assert(conch.listen("127.0.0.1:0", { framing = "lines" }))
  local c = assert(conch.connect(srv:address(), { framing = "lines" }))
  local s, ch = conch.select { srv.connections, conch.timeout(2000) }
  T.ok(ch == srv.connections, "a connection arrived")
  c.output:send("hi")
  local v, from = conch.select { s.input, conch.timeout(2000) }
  T.eq(v, "hi")
  T.ok(from == s.input, "from the accepted socket")
  local none, to = conch.select { s.input, conch.timeout(20) }
  T.eq(none, nil)
  T.ok(to ~= s.input, "timed out")
  c:close()
  srv:close()
  T.eq(srv.connections:recv(), nil, "connections closes with the server")
end)

T.test("failures are nil, message, code", function()
  local s, err, code = conch.connect("127.0.0.1:1")
  T.eq(s, nil)
  T.ok(err:find("refused", 1, true), err)
  T.eq(code, "UNAVAILABLE")
  local r = conch.go(function() return { conch.connect("/nonexistent/dir/sock") } end):recv()
  T.eq(r[1], nil)
  T.eq(r[3], "NOT_FOUND")
  local srv, lerr = conch.listen("not an address")
  T.eq(srv, nil)
  T.ok(type(lerr) == "string", "a message")
end)

T.test("resolve and interfaces", function()
  local addrs = assert(conch.resolve("localhost:80"))
  T.ok(#addrs >= 1, "localhost resolves")
  T.ok(addrs[1]:find(":80", 1, true), addrs[1])
  local none, err, code = conch.resolve("no.such.host.invalid")
  T.eq(none, nil)
  T.eq(code, "NOT_FOUND")
  T.ok(err, "a message")
  local ifs = assert(conch.interfaces())
  local lo = false
  for _, i in ipairs(ifs) do
    if i.loopback and i.family == "inet" then lo = i.addr == "127.0.0.1:0" or i.addr == "127.0.0.1" end
  end
  T.ok(#ifs >= 1 and lo, "the loopback interface")
end)

T.test("UDP datagrams are {data, peer} tables", function()
  local a = assert(conch.udp("127.0.0.1:0"))
  local b = assert(conch.udp("127.0.0.1:0"))
  local echo = conch.go(function()
    local d = b.input:recv()
    b.output:send({ data = d.data:upper(), peer = d.peer })
  end)
  a.output:send({ data = "ping", peer = b:address() })
  local d = a.input:recv()
  T.eq(d.data, "PING")
  T.eq(d.peer, b:address())
  echo:recv()
  T.raises(function() a.output:send("no peer") end, "datagram")
  a:close()
  b:close()
end)

T.done("net")
