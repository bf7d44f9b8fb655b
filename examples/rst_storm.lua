-- SPDX-License-Identifier: GPL-2.0-only
-- rst_storm.lua: resets per source and window; an alert when a source
-- sends more RSTs per second than a threshold (a scan of closed ports, a
-- crashing peer, a middlebox killing connections).  The kernel passes only
-- segments with RST.
--
--   tcpinspect examples/rst_storm.lua [--duration N] \
--       [--threshold RST/s (default 50)] [--window seconds (default 1)] \
--       [--dump DIR [--dump-seconds 30] [--dump-files 10]]
--
-- Output:
--   ALERT rst-storm src=127.0.0.1 rate=100/s rsts=100 window=1s
--   SUMMARY rst-storm total=N alerts=M
-- With --dump DIR, each check that alerts also writes the last
-- --dump-seconds of RSTs to a pcap file in DIR (the flight recorder):
--   DUMP rst-storm file=DIR/rst-storm-20260101T120000Z-0001.pcap segments=100 drops=0
local o = getopt { threshold = 50, window = 1, dump = "", dump_seconds = 30, dump_files = 10 }
local count, total, alerts = {}, 0, 0

open { aggregates = false, filter = { flags = "rst" }, snaplen = o.dump ~= "" and 128 or nil }

-- --dump DIR: the flight recorder (session:recorder, tcpinspect.record):
-- the last --dump-seconds of the segments the filter passes, written to a
-- new file in DIR when an alert fires (the newest --dump-files kept)
local dump_window = require("tcpinspect.record").alert_dumper(session, o, "rst-storm")

on_packet(function(p)
	local src = p.saddr
	count[src] = (count[src] or 0) + 1
	total = total + 1
end)

local function check()
	local fired = false
	for src, n in pairs(count) do
		local rate = n / o.window
		if rate >= o.threshold then
			alerts = alerts + 1
			fired = true
			printf("ALERT rst-storm src=%s rate=%d/s rsts=%d window=%gs", src, math.floor(rate + 0.5), n, o.window)
		end
	end
	count = {}
	if fired then dump_window() end
end

every(o.window, check)
on_exit(function()
	check()
	printf("SUMMARY rst-storm total=%d alerts=%d", total, alerts)
end)
