-- SPDX-License-Identifier: GPL-2.0-only
-- retransmits.lua: incoming retransmissions, per connection, from the
-- connection tracking (open's conns = true, doc/reference.md
-- "Connections"): a segment that occupies sequence space below the
-- highest end already seen on its connection is a retransmission (or out
-- of order), as tshark flags them.  A line per connection that had any,
-- when it ends; at exit, the open ones that had any, then a summary.
--
--   tcpinspect examples/retransmits.lua [--duration N] [--dport 9000]
--
-- Output:
--   RETRANS flow=10.0.0.1:41234>10.0.0.2:9000 count=7 segments=140 bytes=100000 end=fin
--   SUMMARY retransmits connections=1 count=7
local conns, total = 0, 0

local function report(c, ended)
	if c.retransmits == 0 then return end
	conns, total = conns + 1, total + c.retransmits
	printf("RETRANS flow=%s:%d>%s:%d count=%d segments=%d bytes=%d end=%s", c.saddr, c.sport, c.daddr, c.dport,
		c.retransmits, c.segments, c.bytes, ended and c.end_reason or "open")
end

-- the connection tracking only: no aggregate map
open { conns = true, aggregates = false }

on_conn(function(c) report(c, true) end)

on_exit(function()
	for c in session:conns() do report(c, false) end
	printf("SUMMARY retransmits connections=%d count=%d", conns, total)
end)
