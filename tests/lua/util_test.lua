-- tests/lua/util_test.lua
-- slua's helpers (require "conch.util" and the globals util.install() sets): known vectors.
local T = require "check"
local util = require "conch.util"
local conch = require "conch"
local json = util.json

-- Deep comparison of decoded JSON values (tables compared key by key).
local function same(a, b)
  if type(a) ~= "table" or type(b) ~= "table" then
    return a == b and math.type(a) == math.type(b)
  end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

T.test("hashes give the known lowercase hex digests", function()
  T.eq(util.md5(""), "d41d8cd98f00b204e9800998ecf8427e", "md5('')")
  T.eq(util.md5("abc"), "900150983cd24fb0d6963f7d28e17f72", "md5")
  T.eq(util.sha1("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d", "sha1")
  T.eq(util.sha256("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "sha256")
  T.eq(util.sha512("abc"), "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
    .. "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f", "sha512")
  T.eq(util.sha256("a\0b"), util.sha256("a\0b"), "embedded NUL")
  T.ok(util.sha256("a\0b") ~= util.sha256("a"), "the bytes after a NUL count")
  T.raises(function() util.md5({}) end, "string expected")
end)

T.test("install() sets slua's globals", function()
  util.install()
  T.eq(("abc"):sha256(), util.sha256("abc"), "string method")
  T.eq(string.md5, util.md5, "string.md5")
  T.eq(json.encode, _G.json.encode, "json global")
  T.eq(type(os.usleep), "function", "os.usleep")
  T.eq(io.ls, util.ls, "io.ls")
  T.eq(io.stat, util.stat, "io.stat")
  T.eq(eprint, util.eprint, "eprint")
  eprint("util_test: eprint writes this line to stderr", 1, nil, true)
end)

T.test("json round trip keeps unicode, escapes, nesting and number kinds", function()
  local doc = {
    text = "caf\u{e9} \u{1F600} \"quoted\" back\\slash\nnew\ttab\1ctl/",
    list = {1, 2.5, -3, 1.0, {deep = {deeper = {true, false, json.null}}}},
    empty_obj = {},
    big = 9007199254740993,
    ["key with \"quotes\""] = "v",
  }
  local s = json.encode(doc)
  local back = assert(json.decode(s))
  T.ok(same(back, doc), "round trip of " .. s)
  T.eq(math.type(back.big), "integer", "a large integer stays an integer")
  T.eq(back.big, 9007199254740993, "exactly")
  T.eq(math.type(back.list[4]), "float", "1.0 stays a float")
  T.eq(back.list[5].deep.deeper[3], json.null, "null inside an array")
  T.eq(json.encode({1, 2, 3}), "[1,2,3]", "an array")
  T.eq(json.encode({a = 1}), '{"a":1}', "an object")
  T.eq(json.encode("\u{1F600}"), '"\u{1F600}"', "UTF-8 written as is")
  T.eq(json.encode("a\"b\\c\n\1"), '"a\\"b\\\\c\\n\\u0001"', "escapes")
  T.eq(json.encode(json.null), "null", "json.null")
  T.eq(json.encode(nil), "null", "nil")
  T.eq(json.decode(json.encode({[1] = "a", [3] = "c"}))["3"], "c", "a sparse table is an object with string keys")
end)

T.test("json.decode reads escapes, surrogate pairs, null and numbers", function()
  local v = assert(json.decode('{"s":"\\u00e9\\ud83d\\ude00\\n\\"\\/","n":null,"i":42,"f":4.25,"e":1e3,"neg":-7}'))
  T.eq(v.s, "\u{e9}\u{1F600}\n\"/", "escapes")
  T.eq(v.n, json.null, "null is json.null")
  T.eq(math.type(v.i), "integer", "integer")
  T.eq(v.f, 4.25, "float")
  T.eq(math.type(v.e), "float", "exponent form is a float")
  T.eq(v.neg, -7, "negative")
  T.eq(json.decode("null"), json.null, "a bare null")
  T.eq(json.decode(" 7 "), 7, "a bare number")
end)

T.test("empty tables encode as {} unless they came from []", function()
  T.eq(json.encode({}), "{}", "an empty table")
  local a = assert(json.decode("[]"))
  T.eq(json.encode(a), "[]", "a decoded empty array")
  T.eq(json.encode(setmetatable({}, json.array)), "[]", "marked with json.array")
  T.eq(json.encode(assert(json.decode('{"x":[],"y":{}}')).x), "[]", "nested")
end)

T.test("bad JSON is nil plus a message; deep nesting is an error, not a crash", function()
  for _, bad in ipairs({"", "{", "[1,]", '{"a" 1}', "tru", '"\\x"', "[1] x", '"\xff"'}) do
    local v, err = json.decode(bad)
    T.eq(v, nil, "decode " .. bad)
    T.ok(err:find("json.decode", 1, true), "message for " .. bad .. ": " .. tostring(err))
  end
  local v, err = json.decode(string.rep("[", 100000) .. string.rep("]", 100000))
  T.eq(v, nil, "100000 nested arrays")
  T.ok(err:find("nesting", 1, true), err)
  T.ok(json.decode(string.rep("[", 900) .. string.rep("]", 900)), "900 nested arrays are fine")
  local deep = {}
  for _ = 1, 2000 do deep = {deep} end
  T.raises(function() json.encode(deep) end, "nesting deeper")
  local cycle = {}
  cycle.self = cycle
  T.raises(function() json.encode(cycle) end, "cycle")
  T.raises(function() json.encode({f = print}) end, "function has no JSON form")
  T.raises(function() json.encode(0 / 0) end, "NaN")
  T.raises(function() json.encode("\xff") end, "not valid UTF-8")
  T.raises(function() json.encode({[true] = 1}) end, "boolean cannot be a JSON key")
end)

-- All three found by the json fuzz target (tests/fuzz/corpus/json).
T.test("json.decode refuses a lone low surrogate, bytes after a NUL, and infinity", function()
  for _, bad in ipairs({'"\\udc00"', '"a\\udfffb"', '{"\\udc00":1}', '["\\ud800\\udc00", "\\ude00"]'}) do
    local v, err = json.decode(bad)
    T.eq(v, nil, "decode " .. bad)
    T.ok(err:find("lone low surrogate", 1, true), "message for " .. bad .. ": " .. tostring(err))
  end
  -- A surrogate pair is fine, and what decode returns, encode accepts.
  T.eq(json.encode(assert(json.decode('"\\ud800\\udc00"'))), '"\u{10000}"', "a pair")
  for _, bad in ipairs({"1\0garbage", "[1]\0", '{"a":1} \0 2'}) do
    local v, err = json.decode(bad)
    T.eq(v, nil, "decode with a NUL")
    T.ok(err:find("NUL byte after the value", 1, true), tostring(err))
  end
  T.eq(json.decode('"a\\u0000b"'), "a\0b", "an escaped NUL inside a string is fine")
  -- Just over the largest double rounds to infinity: refused, as 1e400 is.
  local v, err = json.decode("[1.7976931348624157e308]")
  T.eq(v, nil, "a number that rounds to infinity")
  T.ok(err:find("too big", 1, true), tostring(err))
  T.eq(json.decode("1.7976931348623157e308"), 1.7976931348623157e308, "the largest double is fine")
  -- RapidJSON 1.1's own conversion gave -1.3e-141 for 0e-324, and read past
  -- its table for a long mantissa with a big exponent.
  for _, z in ipairs({"0e-324", "0.0e-400", "-0e-330", "[0.000e-350]", "0E-9999"}) do
    local d = json.decode(z)
    if type(d) == "table" then d = d[1] end
    T.eq(math.type(d), "float", z)
    T.eq(d, 0.0, z)
    T.eq(1 / d, z:find("-", 1, true) == 1 and -math.huge or math.huge, z .. " keeps its sign")
  end
  local big = json.decode("[184467000000000013280283869726867000000000013280283869726800000948623157e308]")
  T.eq(big, nil, "a long mantissa with e308 is too big")
  T.eq(json.decode("1844674407370955161500000000000e-30"), 1.8446744073709552, "long mantissa, small exponent")
  T.eq(math.type(json.decode("9223372036854775807")), "integer", "the largest integer")
  T.eq(math.type(json.decode("9223372036854775808")), "float", "one more: a float")
  T.eq(json.decode("-9223372036854775808"), math.mininteger, "the smallest integer")
  T.eq(json.decode("0.1"), 0.1, "0.1 correctly rounded")
  -- The nesting bound is exactly 1000 levels.
  T.ok(json.decode(string.rep("[", 1000) .. string.rep("]", 1000)), "1000 nested arrays")
  T.eq(json.decode(string.rep("[", 1001) .. string.rep("]", 1001)), nil, "1001 nested arrays")
end)

T.test("iconv converts latin1 to UTF-8 and back, and reports bad input", function()
  T.eq(util.iconv("caf\xe9", "ISO-8859-1", "UTF-8"), "caf\xc3\xa9", "latin1 -> utf-8")
  T.eq(util.iconv("caf\xc3\xa9", "UTF-8", "LATIN1"), "caf\xe9", "utf-8 -> latin1")
  T.eq(util.iconv("", "UTF-8", "LATIN1"), "", "empty")
  local big = string.rep("\xe9", 100000)
  T.eq(#util.iconv(big, "LATIN1", "UTF-8"), 200000, "output larger than the first guess")
  local v, err = util.iconv("ok\xff", "UTF-8", "UTF-16")
  T.eq(v, nil, "invalid UTF-8")
  T.ok(err:find("byte 3", 1, true), err)
  T.raises(function() util.iconv("x", "NO-SUCH-CHARSET", "UTF-8") end, "no conversion from 'NO-SUCH-CHARSET'")
end)

T.test("pcrematch returns the match and its captures, or nil", function()
  local m, y, mo, d = util.pcrematch("on 2024-01-02 at noon", "(\\d{4})-(\\d\\d)-(\\d\\d)")
  T.eq(m, "2024-01-02", "whole match")
  T.eq(y, "2024", "capture 1")
  T.eq(mo, "01", "capture 2")
  T.eq(d, "02", "capture 3")
  T.eq(util.pcrematch("no digits", "\\d+"), nil, "no match")
  T.eq(select("#", util.pcrematch("no digits", "(\\d)+")), 1, "no match is one nil")
  local m2, a, b, c = util.pcrematch("ac", "(a)(b)?(c)")
  T.eq(m2, "ac", "whole match")
  T.eq(b, false, "an unset group is false")
  T.eq(a .. c, "ac", "the others")
  T.eq(util.pcrematch("HeLLo", "(?i)hello"), "HeLLo", "inline option")
  T.raises(function() util.pcrematch("x", "(unclosed") end, "bad pattern")
  for _ = 1, 3 do T.eq(util.pcrematch("abc", "b"), "b", "cached pattern") end
end)

T.test("epoch parses with strptime", function()
  T.eq(util.epoch("2024-01-02 03:04:05", "%Y-%m-%d %H:%M:%S"), 1704164645, "UTC")
  T.eq(math.type(util.epoch("2024-01-02 03:04:05", "%Y-%m-%d %H:%M:%S")), "integer", "integer")
  T.eq(util.epoch("2024-01-02T03:04:05+0200", "%Y-%m-%dT%H:%M:%S%z"), 1704157445, "with an offset")
  local v, err = util.epoch("02/01/2024", "%Y-%m-%d")
  T.eq(v, nil, "bad format")
  T.ok(err:find("does not match", 1, true), err)
  T.eq(util.epoch("2024-01-02 junk", "%Y-%m-%d"), nil, "trailing text")
end)

T.test("ls and stat on a temporary directory", function()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. dir))
  for _, name in ipairs({"b", "a", ".hidden"}) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write("12345")
    f:close()
  end
  assert(os.execute("mkdir " .. dir .. "/sub && ln -s a " .. dir .. "/link"))
  local names = assert(util.ls(dir))
  T.eq(table.concat(names, ","), ".hidden,a,b,link,sub", "sorted names without . and ..")
  local st = assert(util.stat(dir .. "/a"))
  T.eq(st.type, "file", "type")
  T.eq(st.size, 5, "size")
  T.ok(st.mtime > 1600000000, "mtime")
  T.eq(util.stat(dir .. "/sub").type, "directory", "a directory")
  T.eq(util.stat(dir .. "/link").type, "link", "a link is itself")
  local v, err = util.stat(dir .. "/missing")
  T.eq(v, nil, "missing")
  T.ok(err:find("missing", 1, true) and err:find("No such file", 1, true), err)
  local l, lerr = util.ls(dir .. "/missing")
  T.eq(l, nil, "ls of a missing directory")
  T.ok(lerr:find("No such file", 1, true), lerr)
  assert(os.execute("rm -r " .. dir))
end)

T.test("os.usleep in a go block parks the go block, not the thread", function()
  local woke = false
  local seen
  local a = conch.go(function() util.usleep(500000); woke = true end)
  local b = conch.go(function() seen = woke end)
  b:recv()
  a:recv()
  T.eq(seen, false, "the other go block ran while the first slept")
  T.eq(woke, true, "the sleeper woke")
  util.usleep(1000)  -- outside a go block: blocks the thread
  T.raises(function() util.usleep(-1) end, "microseconds")
end)

T.done("util")
