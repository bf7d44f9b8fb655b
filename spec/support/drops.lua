-- SPDX-License-Identifier: GPL-2.0-only
--- spec/support/drops.lua: the drop specs' traffic and what a session made
-- of it (spec/57-kernel_drops_spec.lua), in this process or in a child whose
-- environment picks the drop hook (TCPINSPECT_DROP_HOOK).
--
--   drops.closed_port(mode, family, n, m) -> result
--     a session with drops = true and filter { dport = port }, n SYNs to a
--     closed port on a fresh 127.X.Y.Z (or ::1), m to the next port (closed
--     too), under tcpdump; result = { status = session.probes' drop hook,
--     syns = { to the port, to the next } (tcpdump), drops = the on_drop
--     calls for the port, other = those for anything else, seen = { reason
--     .. " " .. location = count }, flagstrs = { flagstr = count },
--     stats = stats() after a drain, port = }
local net = require "support.net"

local M = {}

function M.closed_port(mode, family, n, m)
	local port = net.port(2) -- port and port + 1, both closed
	local host = family == 4 and net.addr4() or "::1"
	local s <close> = net.open{ mode = mode, drops = true, filter = { dport = port } }
	local r = { status = s.probes["skb:kfree_skb"], drops = 0, other = 0, seen = {}, flagstrs = {}, port = port }
	s:on_drop(function(p)
		if p.daddr == host and p.dport == port and p.probe == "skb:kfree_skb" and p.family == family
			and p.len == 0 then
			r.drops = r.drops + 1
			local k = p.reason .. " " .. p.location
			r.seen[k] = (r.seen[k] or 0) + 1
			r.flagstrs[p.flagstr] = (r.flagstrs[p.flagstr] or 0) + 1
		else
			r.other = r.other + 1
		end
	end)
	local cap = net.tcpdump{ filter = ("tcp and dst host %s and (dst port %d or dst port %d)"):format(
		host, port, port + 1) }
	for _ = 1, n do assert(net.connect_closed(host, port), "not refused") end
	for _ = 1, m do assert(net.connect_closed(host, port + 1), "not refused") end
	local pkts = cap:stop()
	net.drain(s)
	local function syns_to(dport)
		return net.count(pkts, function(p) return p.dport == dport and p.flags & 0x12 == 0x02 end)
	end
	r.syns = { syns_to(port), syns_to(port + 1) }
	r.stats = net.stats(s)
	return r
end

return M
