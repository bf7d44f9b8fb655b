-- SPDX-License-Identifier: GPL-2.0-only
-- port_scan.lua: which sources try many different destination ports in a
-- short time?  The kernel passes only SYNs (filter flags=syn); the script
-- keeps, per source, the set of ports tried in the current window.
--
--   tcpinspect examples/port_scan.lua [--duration N] \
--       [--threshold ports (default 20)] [--window seconds (default 2)]
--
-- Output, once per source and window over the threshold:
--   ALERT port-scan src=10.0.0.1 ports=100 window=2s
-- and at exit:
--   SUMMARY port-scan alerts=N
-- With --listen ADDR:PORT, Prometheus can scrape port_scan_alerts_total{src}
-- (one per alert line) from http://ADDR:PORT/metrics.
local o = getopt { threshold = 20, window = 2 }
local alert_metric = metrics.counter("port_scan_alerts_total", { "src" },
	"Windows in which a source tried more than --threshold ports.")

open { filter = { flags = "syn" } }
local ports, count, alerts = {}, {}, 0

local function check()
	for src, n in pairs(count) do
		if n >= o.threshold then
			alerts = alerts + 1
			alert_metric:inc(src)
			printf("ALERT port-scan src=%s ports=%d window=%gs", src, n, o.window)
		end
	end
	ports, count = {}, {}
end

on_packet(function(p)
	if p.flags & ACK ~= 0 then return end -- SYN-ACKs answer, they do not ask
	local src, dport = p.saddr, p.dport
	local set = ports[src]
	if not set then
		set = {}
		ports[src] = set
	end
	if not set[dport] then
		set[dport] = true
		count[src] = (count[src] or 0) + 1
	end
end)
every(o.window, check)
on_exit(function()
	check()
	printf("SUMMARY port-scan alerts=%d", alerts)
end)
