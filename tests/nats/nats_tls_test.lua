-- tests/nats/nats_tls_test.lua
-- conch.nats over TLS from Lua: `conch_nats_with_server --tls` starts a nats-server that requires TLS.
local conch = require "conch"
local T = require "check"
local url = os.getenv("CONCH_NATS_URL")
local ca = os.getenv("CONCH_NATS_TLS_CA")
if not url or not ca then T.skip("nats_tls", "run through conch_nats_with_server --tls") end
local nats = conch.nats

T.test("publish, subscribe and request over TLS with tls = {ca = ...}", function()
  local a = assert(nats.connect(url, {name = "lua-tls-a", tls = {ca = ca}}))
  local b = assert(nats.connect(url, {tls = {ca = ca, server_name = "localhost"}}))
  local sub = assert(b:subscribe("lua.tls.*"))
  local svc = assert(b:subscribe("lua.tls-svc"))
  assert(b:flush())
  assert(a:publish("lua.tls.one", "over tls"))
  local m = sub.messages:recv()
  T.eq(m.subject, "lua.tls.one")
  T.eq(m.data, "over tls")
  conch.go(function()
    for q in svc.messages:iter() do b:publish(q.reply, "re:" .. q.data) end
  end)
  local r = assert(a:request("lua.tls-svc", "ping", 5000))
  T.eq(r.data, "re:ping")
  a:close()
  b:close()
end)

T.test("an untrusted certificate fails with UNAVAILABLE naming the reason", function()
  -- tls = true: the system's CAs, which do not know the test's self-signed certificate.
  local c, err, code = nats.connect(url, {tls = true, reconnect = false})
  T.eq(c, nil)
  T.eq(code, "UNAVAILABLE")
  T.ok(err:find("certificate verify failed", 1, true), err)
end)

T.test("tls options are checked like conch.connect's", function()
  T.raises(function() nats.connect(url, {tls = {cafile = ca}}) end, "unknown tls option 'cafile'")
  T.raises(function() nats.connect(url, {tls = {verify = "yes"}}) end, "tls.verify must be a boolean")
  T.raises(function() nats.connect(url, {tls = 1}) end, "tls must be true or a table")
end)

T.done("nats_tls")
