-- SPDX-License-Identifier: GPL-2.0-only
-- syn_flood.lua: which sources send connection attempts (SYN without ACK)
-- faster than a threshold?  The counting happens in the kernel (the
-- "sources" map keeps SYNs per source); every window the script reads the
-- map and compares with the previous read, so a flood costs no per-packet
-- events.
--
--   tcpinspect examples/syn_flood.lua [--duration N] [--dport 80] \
--       [--threshold SYN/s (default 100)] [--window seconds (default 1)] \
--       [--dump DIR [--dump-seconds 30] [--dump-files 10]]
--
-- Output, one line per source over the threshold in a window:
--   ALERT syn-flood src=10.0.0.1 rate=950/s syns=950 window=1s
-- and at exit:
--   SUMMARY syn-flood alerts=N sources=M
-- With --dump DIR, each check that alerts also writes the last
-- --dump-seconds of SYNs to a pcap file in DIR (the flight recorder: the
-- SYNs then reach user space too, into the window, still no Lua per SYN):
--   DUMP syn-flood file=DIR/syn-flood-20260101T120000Z-0001.pcap segments=950 drops=0
-- With --listen ADDR:PORT, Prometheus can scrape syn_flood_alerts_total{src}
-- (one per alert line) from http://ADDR:PORT/metrics.
local o = getopt { threshold = 100, window = 1, dump = "", dump_seconds = 30, dump_files = 10 }
local alert_metric = metrics.counter("syn_flood_alerts_total", { "src" },
	"Windows in which a source sent SYNs faster than --threshold.")

open { events = o.dump ~= "", aggregates = { "sources" }, filter = { flags = "syn" },
	snaplen = o.dump ~= "" and 128 or nil }

-- --dump DIR: the flight recorder (session:recorder, tcpinspect.record):
-- the last --dump-seconds of the segments the filter passes, written to a
-- new file in DIR when an alert fires (the newest --dump-files kept)
local dump_window = require("tcpinspect.record").alert_dumper(session, o, "syn-flood")
local last, alerted, alerts = {}, {}, 0

local function check()
	local fired = false
	for k, v in map("sources"):pairs() do
		local new = v.syns - (last[k.saddr] or 0)
		last[k.saddr] = v.syns
		local rate = new / o.window
		if rate >= o.threshold then
			alerts = alerts + 1
			alerted[k.saddr] = true
			fired = true
			alert_metric:inc(k.saddr)
			printf("ALERT syn-flood src=%s rate=%d/s syns=%d window=%gs", k.saddr, math.floor(rate + 0.5),
				new, o.window)
		end
	end
	if fired then dump_window() end
end

every(o.window, check)
on_exit(function()
	check() -- the part of a window before the end
	local n = 0
	for _ in pairs(alerted) do n = n + 1 end
	printf("SUMMARY syn-flood alerts=%d sources=%d", alerts, n)
end)
