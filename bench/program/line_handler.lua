-- bench/program/line_handler.lua: server mode's line echo handler (bench/run_program_server.sh).
-- One state per connection: every line comes back as it came. Lua 5.2 too (slua).
while true do
  local line = client.line()
  if line == nil then break end
  client.write(line .. "\n")
end
