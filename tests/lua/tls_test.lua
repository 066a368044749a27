-- tests/lua/tls_test.lua
-- TLS from Lua: conch.listen/connect with a tls option table (a throwaway certificate made by `openssl`).
local conch = require "conch"
local T = require "check"

if not os.execute("command -v openssl >/dev/null 2>&1") then T.skip("tls", "no openssl command") end

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir " .. dir))
local function make_cert(name)
  local crt, key = dir .. "/" .. name .. ".crt", dir .. "/" .. name .. ".key"
  assert(os.execute("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2" ..
    " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " .. key ..
    " -out " .. crt .. " >/dev/null 2>&1"))
  return crt, key
end
local crt, key = make_cert("server")
local other = make_cert("other")

local function echo_server(opts)
  local srv = assert(conch.listen("127.0.0.1:0", opts))
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

T.test("a TLS line echo: plaintext frames over an encrypted socket", function()
  local srv = echo_server({ framing = "lines", tls = { cert = crt, key = key } })
  local c = assert(conch.connect(srv:address(), { framing = "lines", tls = { ca = crt } }))
  for i = 1, 10 do
    T.eq(c.output:send("line " .. i), true)
    T.eq(c.input:recv(), "echo:line " .. i)
  end
  c.output:close()
  T.eq(c.input:recv(), nil)
  T.eq(c:status(), true)
  local big = string.rep("0123456789abcdef", 65536)  -- 1 MB in one line
  local r = assert(conch.connect("localhost:" .. srv:address():match(":(%d+)$"),
    { framing = "lines", tls = { ca = crt, server_name = "localhost" } }))
  r.output:send(big)
  T.eq(r.input:recv(), "echo:" .. big, "1 MB frame")
  r:close()
  srv:close()
end)

T.test("an untrusted certificate: connect gives nil, a message naming the handshake", function()
  local srv = echo_server({ framing = "lines", tls = { cert = crt, key = key } })
  local c, err = conch.connect(srv:address(), { tls = { ca = other } })
  T.eq(c, nil, "no socket")
  T.ok(tostring(err):find("TLS handshake with", 1, true) and err:find("certificate verify failed", 1, true), err)
  local lax = assert(conch.connect(srv:address(), { framing = "lines", tls = { verify = false } }))
  lax.output:send("anyway")
  T.eq(lax.input:recv(), "echo:anyway")
  lax:close()
  srv:close()
end)

T.test("tls options are checked", function()
  T.raises(function() conch.listen("127.0.0.1:0", { tls = { cert = crt, key = key, bogus = 1 } }) end,
    "unknown tls option 'bogus'")
  T.raises(function() conch.connect("127.0.0.1:1", { tls = { verify = "yes" } }) end, "tls.verify must be a boolean")
  T.raises(function() conch.connect("127.0.0.1:1", { tls = 5 }) end, "tls must be true or a table")
  T.raises(function() conch.udp("127.0.0.1:0", { tls = true }) end, "option of conch.listen and conch.connect")
  local srv, err = conch.listen("127.0.0.1:0", { tls = { cert = dir .. "/missing.crt", key = key } })
  T.eq(srv, nil)
  T.ok(err:find("missing.crt", 1, true), err)
  local s2, err2 = conch.listen("127.0.0.1:0", { tls = {} })
  T.eq(s2, nil)
  T.ok(err2:find("needs cert_file and key_file", 1, true), err2)
end)

T.test("sock:starttls upgrades plain sockets on both sides after a plain exchange", function()
  local srv = assert(conch.listen("127.0.0.1:0"))  -- raw: the bytes become ciphertext
  local upgraded = conch.chan(1)
  conch.go(function()
    local s = srv.connections:recv()
    T.eq(s.input:recv(), "STARTTLS\n")
    s.output:send("GO\n")                       -- still queued: goes out before the handshake
    upgraded:send(assert(s:starttls({ server = true, framing = "lines", tls = { cert = crt, key = key } })))
  end)
  local c = assert(conch.connect(srv:address()))
  c.output:send("STARTTLS\n")
  T.eq(c.input:recv(), "GO\n")
  local t = assert(c:starttls({ framing = "lines", connect_timeout = 5000, tls = { ca = crt } }))
  local st = upgraded:recv()
  t.output:send("hello over tls")
  T.eq(st.input:recv(), "hello over tls")
  st.output:send("and back")
  T.eq(t.input:recv(), "and back")
  t:close()
  st:close()
  srv:close()
end)

T.test("sock:starttls errors: untrusted certificate, unread bytes, a framed socket, missing tls", function()
  local srv = assert(conch.listen("127.0.0.1:0"))
  local peers = conch.chan(4)
  conch.go(function()
    for s in srv.connections:iter() do peers:send(s) end
  end)
  -- The server side upgrades with its certificate; the client trusts another.
  -- As in a real STARTTLS exchange the client starts only after the server's
  -- "GO" (a ClientHello that arrived before the server's starttls would be
  -- unread plain text there, refused); both sides bound their handshakes.
  local c = assert(conch.connect(srv:address()))
  local p = peers:recv()
  conch.go(function()
    p.output:send("GO\n")
    p:starttls({ server = true, connect_timeout = 10000, tls = { cert = crt, key = key } })
  end)
  T.eq(c.input:recv(), "GO\n")
  local t, err, code = c:starttls({ connect_timeout = 10000, tls = { ca = other } })
  T.eq(t, nil)
  T.eq(code, "UNAVAILABLE")
  T.ok(err:find("certificate verify failed", 1, true), err)
  -- Bytes received in plain text and not read yet: refused, the socket stays plain.
  local c2 = assert(conch.connect(srv:address()))
  local p2 = peers:recv()
  p2.output:send("early")
  T.eventually(function() return c2.input:size() > 0 end, "the early bytes arrive")
  local t2, err2, code2 = c2:starttls({ tls = { ca = crt } })
  T.eq(t2, nil)
  T.eq(code2, "FAILED_PRECONDITION")
  T.ok(err2:find("unread", 1, true), err2)
  T.eq(c2.input:recv(), "early")
  c2:close()
  local c3 = assert(conch.connect(srv:address(), { framing = "lines" }))
  local _, err3, code3 = c3:starttls({ tls = { ca = crt } })
  T.eq(code3, "FAILED_PRECONDITION")
  T.ok(err3:find("framing::raw()", 1, true), err3)
  T.raises(function() c3:starttls({}) end, "option 'tls' is required")
  T.raises(function() c3:starttls({ tls = true, backlog = 5 }) end, "backlog")
  T.raises(function() c3:starttls({ tls = true, server = "yes" }) end, "server")
  c3:close()
  srv:close()
end)

os.execute("rm -r " .. dir)
T.done("tls")
