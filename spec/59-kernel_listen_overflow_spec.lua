-- SPDX-License-Identifier: GPL-2.0-only
-- The listen-overflow fate (issue 21): a SYN, or a handshake's last ACK,
-- that a listener refuses because its accept queue is full is not freed
-- through kfree_skb with a reason (the SYN is consume_skb'd), so with
-- drops = true and sockets = true the receive hook that knows the listener
-- reports it as a drop with reason TCP_LISTEN_OVERFLOW (the kernel's value
-- where its BTF names it, else TI_DROP_LISTEN_OVERFLOW).
--
-- In a fresh network namespace (its own TcpExt counters): a listener with
-- backlog 1 that never accepts, M connection attempts, each left to the
-- kernel's SYN retries for 3 s.  The drops reported with that reason, each
-- a SYN or a bare ACK to the port, equal TcpExtListenDrops's change in the
-- namespace, and stats().drops.reasons agrees; at least one happened.
-- Every mode: tc and cgroup know the listener; fentry and kprobe through
-- their socket-side hook (sk_filter_trim_cap; doc/modes.md, "The receiving
-- socket").
local net = require "support.net"

local M = 4

describe("#kernel listen overflow", function()
	for _, mode in ipairs(net.modes()) do
		for _, family in ipairs{ 4, 6 } do
			it(("[%s] ipv%d: a full accept queue's refusals are TCP_LISTEN_OVERFLOW drops, == ListenDrops"):format(
				mode, family), function()
				local defer = net.cleanups(finally)
				local ns = net.netns("ov")
				defer(function() ns:destroy() end)
				local addr = family == 4 and "127.0.0.1" or "::1"
				local port = 24000 + math.random(0, 999)
				local s <close> = net.open{ mode = mode, netns = ns.name, drops = true, sockets = true,
					filter = { dport = port } }
				assert.truthy(s.probes["skb:kfree_skb"]:find("^attached"), s.probes["skb:kfree_skb"])
				local overflows, other = 0, {}
				s:on_drop(function(p)
					local f = p.flagstr
					if p.reason == "TCP_LISTEN_OVERFLOW" and p.dport == port and p.daddr == addr
						and (f == "S" or f == ".") then
						overflows = overflows + 1
						assert.are.equal("LISTEN", f == "S" and p.sk_state or "LISTEN")
					else
						other[#other + 1] = p.reason .. " " .. f
					end
				end)
				local before = net.mibs(ns.name).TcpExtListenDrops
				local ok, out = ns:exec(("timeout %d /usr/bin/python3 %s/spec/support/listeners.py overflow %s %d %d"):format(
					net.scale(30), net.ROOT, addr, port, M))
				assert(ok and out:find("done"), out)
				net.drain(s)
				local after = net.mibs(ns.name).TcpExtListenDrops
				local st = s:stats()
				net.say("%s ipv%d: ListenDrops +%d, TCP_LISTEN_OVERFLOW drops %d, others %s", mode, family,
					after - before, overflows, table.concat(other, ","))
				assert.is_true(after - before > 0, "no listen drop happened")
				assert.are.equal(after - before, overflows)
				assert.are.equal(overflows, st.drops.reasons.TCP_LISTEN_OVERFLOW)
				assert.are.equal(0, st.drops.lost)
			end)
		end
	end
end)
