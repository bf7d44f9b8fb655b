-- SPDX-License-Identifier: GPL-2.0-only
-- new_connections.lua: a log line per connection attempt (SYN without
-- ACK).  The kernel passes only SYN segments.
--
--   tcpinspect examples/new_connections.lua [--duration N] [--dport 22]
--
-- Output:
--   NEW 15:04:05.123456 src=10.0.0.1 sport=41234 dst=10.0.0.2 dport=22 ttl=64 win=64240
--   SUMMARY new-connections count=N
local n = 0

open { filter = { flags = "syn" } }

on_packet(function(p)
	if p.flags & ACK ~= 0 then return end
	n = n + 1
	printf("NEW %s src=%s sport=%d dst=%s dport=%d ttl=%d win=%d", fmt.clock(p.time), p.saddr, p.sport,
		p.daddr, p.dport, p.ttl, p.window)
end)

on_exit(function() printf("SUMMARY new-connections count=%d", n) end)
