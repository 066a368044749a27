-- bench/json/json_bench.lua
-- Lua JSON decode/encode speed: conch.util's json (RapidJSON) against Debian's lua-cjson, same documents, one run.
--
--   LUA_CPATH='build/lua/?.so;;' lua5.4 bench/json/json_bench.lua [seconds] [file.json ...]
--
-- Prints `bench=json_decode|json_encode param=doc:<name>,lib:<lib> value=<MB/s> unit=MB/s`
-- (CPU time, os.clock). Without files it reads Debian's iso-codes documents
-- plus one generated number-heavy document. Checks that every library reads
-- back what it wrote (exit 1 otherwise). lua-cjson missing: its rows are
-- left out with a note.
local seconds = tonumber(arg[1]) or 1
local util = require "conch.util"
local have_cjson, cjson = pcall(require, "cjson")

local libs = { { name = "conch.util", decode = util.json.decode, encode = util.json.encode } }
if have_cjson then
  cjson.encode_max_depth(1000)
  libs[#libs + 1] = { name = "lua-cjson", decode = cjson.decode, encode = cjson.encode }
else
  io.stderr:write("json_bench: lua-cjson not installed (apt-get install lua-cjson): its rows are left out\n")
end

local docs = {}
local function add_file(path)
  local f = io.open(path, "rb")
  if not f then return end
  docs[#docs + 1] = { name = path:match("([^/]+)$"), text = f:read("a") }
  f:close()
end
if #arg >= 2 then
  for i = 2, #arg do add_file(arg[i]) end
else
  for _, n in ipairs({ "iso_639-3.json", "iso_3166-2.json", "iso_4217.json", "schema-639-3.json" }) do
    add_file("/usr/share/iso-codes/json/" .. n)
  end
  local nums = {}
  for i = 1, 20000 do
    nums[i] = { id = i, x = i * 0.125 - 1000.5, y = (i * 7919) % 100003, ok = i % 3 == 0, tag = "p" .. i }
  end
  docs[#docs + 1] = { name = "numbers(generated)", text = util.json.encode({ points = nums }) }
end
if #docs == 0 then
  io.stderr:write("json_bench: no documents (install iso-codes or pass files)\n")
  os.exit(1)
end

-- Deep equality (tables by content; floats and integers compared as numbers).
local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then return a == b end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

-- Runs f until `seconds` of CPU time passed; returns MB/s over `bytes` per call.
local function rate(f, bytes)
  f() -- warm-up
  local n, t0 = 0, os.clock()
  local t
  repeat
    f()
    n = n + 1
    t = os.clock() - t0
  until t >= seconds
  return bytes * n / t / 1e6
end

local bad = 0
for _, d in ipairs(docs) do
  for _, lib in ipairs(libs) do
    local v = assert(lib.decode(d.text))
    local out = lib.encode(v)
    if not same(lib.decode(out), v) then
      io.stderr:write(("json_bench: %s does not read back its own encoding of %s\n"):format(lib.name, d.name))
      bad = bad + 1
    end
    local dec = rate(function() lib.decode(d.text) end, #d.text)
    local enc = rate(function() lib.encode(v) end, #out)
    print(("bench=json_decode param=doc:%s,bytes:%d,lib:%s value=%.1f unit=MB/s"):format(d.name, #d.text, lib.name, dec))
    print(("bench=json_encode param=doc:%s,bytes:%d,lib:%s value=%.1f unit=MB/s"):format(d.name, #out, lib.name, enc))
  end
end
os.exit(bad == 0 and 0 or 1)
