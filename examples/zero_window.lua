-- SPDX-License-Identifier: GPL-2.0-only
-- zero_window.lua: who advertises a zero receive window (a receiver that
-- does not read fast enough stalls its sender)?  Every incoming segment
-- with window 0 (not a RST) is logged, then counted per flow.
--
--   tcpinspect examples/zero_window.lua [--duration N] [--port 9000]
--
-- Output:
--   ZEROWIN 15:04:05.123456 127.0.0.1.9000 > 127.0.0.1.41234 seq 123 ack 456
--   SUMMARY zero-window flow=127.0.0.1.9000>127.0.0.1.41234 count=12
local count, order = {}, {}

open { aggregates = false, filter = { flags = "ack" } }

on_packet(function(p)
	if p.window ~= 0 or p.flags & RST ~= 0 then return end
	local key = string.format("%s.%d>%s.%d", p.saddr, p.sport, p.daddr, p.dport)
	if not count[key] then
		count[key] = 0
		order[#order + 1] = key
	end
	count[key] = count[key] + 1
	printf("ZEROWIN %s %s.%d > %s.%d seq %d ack %d", fmt.clock(p.time), p.saddr, p.sport, p.daddr,
		p.dport, p.seq, p.ack)
end)

on_exit(function()
	for _, key in ipairs(order) do
		printf("SUMMARY zero-window flow=%s count=%d", key, count[key])
	end
	if #order == 0 then print("SUMMARY zero-window none") end
end)
