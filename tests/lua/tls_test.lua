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

os.execute("rm -r " .. dir)
T.done("tls")
