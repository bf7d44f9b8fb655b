-- SPDX-License-Identifier: GPL-2.0-only
-- why_refused.lua: why are connections to this host refused, or their SYNs
-- left unanswered?  Per destination port: the connection attempts that
-- arrived (SYN without ACK) and the kernel's drops of incoming segments, by
-- reason (the running kernel's names) and the function that dropped them,
-- with the receiving socket's state where the kernel names it (p.sk_state,
-- in a build with the socket lookup; "-" where there is none).
--
--   tcpinspect examples/why_refused.lua [--dport 80] [--duration N] \
--       [--every seconds (default: only at exit)]
--
-- Output, a line per port with drops (every --every seconds, and at exit):
--   REFUSED dport=8080 syns=5 drops=5 reasons=NO_SOCKET:5 where=tcp_v4_rcv state=- why="no socket listens on the port"
-- and at exit:
--   SUMMARY why-refused ports=1 syns=5 drops=5
-- A replay (-r) has no drops (a capture holds no fates): the script runs,
-- and says so.
local o = getopt { every = 0 }

local WHY = {
	NO_SOCKET = "no socket listens on the port",
	TCP_LISTEN_OVERFLOW = "the listener's accept queue is full",
	NETFILTER_DROP = "a firewall rule dropped it",
	TCP_CSUM = "a bad TCP checksum",
	SOCKET_FILTER = "a socket filter dropped it",
	SOCKET_BACKLOG = "the socket's backlog is full",
	SOCKET_RCVBUFF = "the socket's receive buffer is full",
	TCP_OLD_DATA = "data before the window",
	TCP_OVERWINDOW = "data beyond the window",
	TCP_INVALID_SEQUENCE = "a sequence number outside the window",
	TCP_RFC7323_PAWS = "an old timestamp (PAWS)",
	TCP_ZEROWINDOW = "the receive window is zero",
	XFRM_POLICY = "an IPsec policy",
}

-- the socket lookup (sockets = true), where this build has it
local has_sockets = false
for _, f in ipairs(tcpinspect.packet_fields()) do has_sockets = has_sockets or f == "sk_state" end

local s = open { drops = true, aggregates = false, sockets = has_sockets or nil }
local ports = {} -- dport -> { syns, drops, reasons = {reason = n}, where = {fn = n}, state = {st = n} }
local function port(dport)
	local e = ports[dport]
	if not e then
		e = { syns = 0, drops = 0, reasons = {}, where = {}, state = {} }
		ports[dport] = e
	end
	return e
end

on_packet(function(p)
	if p.flags & (SYN | ACK) == SYN then
		local e = port(p.dport)
		e.syns = e.syns + 1
	end
end)

s:on_drop(function(p)
	local e = port(p.dport)
	e.drops = e.drops + 1
	e.reasons[p.reason] = (e.reasons[p.reason] or 0) + 1
	e.where[p.location] = (e.where[p.location] or 0) + 1
	local st = has_sockets and p.sk_state or "-"
	e.state[st] = (e.state[st] or 0) + 1
end)

-- "A:3,B:1", most first
local function counts(t)
	local list = {}
	for k, n in pairs(t) do list[#list + 1] = { k, n } end
	table.sort(list, function(a, b) return a[2] > b[2] or (a[2] == b[2] and a[1] < b[1]) end)
	for i, e in ipairs(list) do list[i] = e[1] .. ":" .. e[2] end
	return list
end

local function top(t)
	return (counts(t)[1] or "-"):match("^(.*):%d+$") or "-"
end

local function report()
	local list = {}
	for dport, e in pairs(ports) do if e.drops > 0 then list[#list + 1] = dport end end
	table.sort(list)
	for _, dport in ipairs(list) do
		local e = ports[dport]
		local reason = top(e.reasons)
		printf('REFUSED dport=%d syns=%d drops=%d reasons=%s where=%s state=%s why="%s"', dport, e.syns, e.drops,
			table.concat(counts(e.reasons), ","), table.concat(counts(e.where), ","), top(e.state),
			WHY[reason] or "see the kernel's enum skb_drop_reason: " .. reason)
	end
end

if o.every > 0 then every(o.every, report) end
on_exit(function()
	report()
	local nports, syns, drops = 0, 0, 0
	for _, e in pairs(ports) do
		if e.drops > 0 then nports = nports + 1 end
		syns, drops = syns + e.syns, drops + e.drops
	end
	if not s:stats().drops then
		printf("NOTE why-refused: no drops here: %s", s.mode == "replay"
			and "a replay: a capture holds what arrived, not what became of it" or s.probes["skb:kfree_skb"])
	end
	printf("SUMMARY why-refused ports=%d syns=%d drops=%d", nports, syns, drops)
end)
