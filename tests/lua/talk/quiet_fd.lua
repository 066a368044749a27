-- tests/lua/talk/quiet_fd.lua
-- conch.fd_watch on a stdin that stays quiet: a cancelled watch closes empty, and a script that
-- ends with a watch still armed exits (the watch is cancelled when the state closes).
local conch = require('conch')
local ready, cancel = conch.fd_watch(0)
local v, ch = conch.select { ready, conch.timeout(50) }
assert(v == nil and ch ~= ready, 'a quiet descriptor did not poll readable')
cancel()
assert(ready:recv() == nil, 'a cancelled watch closes empty')
cancel()  -- idempotent
local poller = require('conch.talk').Poller()
poller:add(require('conch.talk').StdinReader())
poller:poll{ timeout = 20 }  -- returns after 20 ms (cancelling its watch)
local again = conch.fd_watch(0)
print('ending with watches armed')
