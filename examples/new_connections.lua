-- SPDX-License-Identifier: GPL-2.0-only
-- new_connections.lua: a line per connection this host accepted or was
-- asked for (its first incoming segment a SYN without ACK: history "S..."),
-- from the connection tracking (open's conns = true): when it ends, with
-- its handshake time and how it ended; at exit, the ones still open.
--
--   tcpinspect examples/new_connections.lua [--duration N] [--dport 22]
--
-- Output:
--   NEW 15:04:05.123456 src=10.0.0.1 sport=41234 dst=10.0.0.2 dport=22 handshake=0.000118 segments=6 end=fin
--   SUMMARY new-connections count=N
local n = 0

local function report(c, ended)
	if c.history:sub(1, 1) ~= "S" then return end
	n = n + 1
	printf("NEW %s src=%s sport=%d dst=%s dport=%d handshake=%s segments=%d end=%s", fmt.clock(c.start), c.saddr,
		c.sport, c.daddr, c.dport, c.handshake and ("%.6f"):format(c.handshake) or "-", c.segments,
		ended and c.end_reason or "open")
end

-- the connection tracking only: no aggregate map
open { conns = true, aggregates = false }

on_conn(function(c) report(c, true) end)

on_exit(function()
	for c in session:conns() do report(c, false) end
	printf("SUMMARY new-connections count=%d", n)
end)
