-- SPDX-License-Identifier: GPL-2.0-only
-- top_talkers.lua: the sources sending the most payload bytes, from the
-- kernel's "sources" map (no per-packet events).
--
--   tcpinspect examples/top_talkers.lua [--duration N] [--interval S] [--top K (default 5)]
--
-- Output every interval and at exit (rank 1 = most bytes):
--   TOP rank=1 src=10.0.0.1 bytes=123456 packets=100 syns=1
--   -- (a separator line after each block, "END elapsed=2.0")
local o = getopt { top = 5 }

open { events = false, aggregates = { "sources" } }

local function report(elapsed)
	for i, e in ipairs(topk.top(map("sources"), o.top, { "bytes", "packets" })) do
		printf("TOP rank=%d src=%s bytes=%d packets=%d syns=%d (%s)", i, e.key.saddr, e.value.bytes,
			e.value.packets, e.value.syns, fmt.bytes(e.value.bytes))
	end
	printf("END elapsed=%.1f", elapsed)
end

every(cli.interval or 1, report)
on_exit(report)
