-- SPDX-License-Identifier: GPL-2.0-only
-- rst_storm.lua: resets per source and window; an alert when a source
-- sends more RSTs per second than a threshold (a scan of closed ports, a
-- crashing peer, a middlebox killing connections).  The kernel passes only
-- segments with RST.
--
--   tcpinspect examples/rst_storm.lua [--duration N] \
--       [--threshold RST/s (default 50)] [--window seconds (default 1)]
--
-- Output:
--   ALERT rst-storm src=127.0.0.1 rate=100/s rsts=100 window=1s
--   SUMMARY rst-storm total=N alerts=M
local o = getopt { threshold = 50, window = 1 }
local count, total, alerts = {}, 0, 0

open { filter = { flags = "rst" } }

on_packet(function(p)
	local src = p.saddr
	count[src] = (count[src] or 0) + 1
	total = total + 1
end)

local function check()
	for src, n in pairs(count) do
		local rate = n / o.window
		if rate >= o.threshold then
			alerts = alerts + 1
			printf("ALERT rst-storm src=%s rate=%d/s rsts=%d window=%gs", src, math.floor(rate + 0.5), n, o.window)
		end
	end
	count = {}
end

every(o.window, check)
on_exit(function()
	check()
	printf("SUMMARY rst-storm total=%d alerts=%d", total, alerts)
end)
