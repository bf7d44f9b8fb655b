-- SPDX-License-Identifier: GPL-2.0-only
-- port_bytes.lua: packets and payload bytes per destination port, from the
-- kernel's "ports" map, largest first.
--
--   tcpinspect examples/port_bytes.lua [--duration N] [--interval S] [--port 8000-9000]
--
-- Output every interval and at exit:
--   PORT dport=22 packets=120 bytes=5120 rate=2.5 KiB/s
--   END elapsed=2.0
local prev, last = {}, 0

open { events = false, aggregates = { "ports" } }

local function report(elapsed)
	local dt = math.max(elapsed - last, 1e-3)
	last = elapsed
	for _, e in ipairs(topk.top(map("ports"), 1000, { "bytes", "packets" })) do
		local d = e.key.dport
		local rate = (e.value.bytes - (prev[d] or 0)) / dt
		prev[d] = e.value.bytes
		printf("PORT dport=%d packets=%d bytes=%d rate=%s", d, e.value.packets, e.value.bytes, fmt.byterate(rate))
	end
	printf("END elapsed=%.1f", elapsed)
end

every(cli.interval or 1, report)
on_exit(report)
