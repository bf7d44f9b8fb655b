-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: what the core counts equals what really crossed the wire.
--
-- For every mode that must work here (TCPINSPECT_EXPECT_MODES) and for IPv4
-- and IPv6 on loopback: N real connections with data give exactly N SYNs
-- (sources map, flows map flags, events), and every flow's packet count in
-- the flows map equals what `tcpdump -Q in -i lo` captured for that flow,
-- and equals the events delivered for it.  events=false: no ring traffic,
-- the aggregates still count.
local net = require "support.net"
local tcpinspect = require "tcpinspect"

local N = 10
local DATA = ("x"):rep(100)
-- IPv4: the server on a fresh 127.X.Y.Z (no other test on the machine talks
-- to it), the client bound to 127.0.0.1, so sources[127.0.0.1].syns == N.
local FAMILIES = { { 4, "127.0.0.1" }, { 6, "::1" } }

describe("#kernel #matrix counts", function()
	for _, mode in ipairs(net.modes()) do
		for _, fam in ipairs(FAMILIES) do
			local family, client = fam[1], fam[2]
			it(("[%s] ipv%d: SYNs == connections, flows == tcpdump, events == flows"):format(mode, family), function()
				local port = net.port()
				local host = family == 4 and net.addr4() or "::1"
				local s <close> = net.open{ mode = mode, filter = { port = port, host = host } }
				local ev = {}
				local ev_syn, nev = 0, 0
				s:on_packet(function(p)
					local k = net.flow_key(p.saddr, p.sport, p.daddr, p.dport)
					ev[k] = (ev[k] or 0) + 1
					nev = nev + 1
					if p.flagstr == "S" then ev_syn = ev_syn + 1 end
					assert(p.family == family, "family " .. p.family)
					assert(p.sport == port or p.dport == port)
				end)
				local cap = net.tcpdump{ filter = ("tcp port %d and host %s"):format(port, host) }
				local srv = net.server(host, port)
				local ok, err = pcall(net.conversations, srv, host, port, N, { data = DATA, bind = client })
				srv:close()
				local pkts = cap:stop()
				assert(ok, err)
				net.drain(s)

				-- SYNs
				local syns = net.count(pkts, function(p) return p.flags & 0x12 == 0x02 end)
				assert.are.equal(N, syns) -- the capture itself is sane
				local src = s:map("sources"):lookup(client)
				assert.is_table(src, "no sources entry for " .. client)
				assert.are.equal(N, src.syns)
				assert.are.equal(N, ev_syn)
				local flows = net.map_flows(s)
				local flows_with_syn = 0
				for _, v in pairs(flows) do
					if v.flags_seen & tcpinspect.SYN ~= 0 and v.flags_seen & tcpinspect.ACK ~= 0 then
						flows_with_syn = flows_with_syn + 1
					end
				end
				-- every flow (both directions of every connection) saw a SYN
				assert.are.equal(2 * N, flows_with_syn)

				-- per-flow counts: map == tcpdump == events
				local want = net.by_flow(pkts)
				local got = {}
				for k, v in pairs(flows) do got[k] = v.packets end
				assert.are.same(want, got)
				assert.are.same(want, ev)

				-- the ports map and the byte counts
				local pv = s:map("ports"):lookup(port)
				assert.are.equal(net.count(pkts, function(p) return p.dport == port end), pv.packets)
				assert.are.equal(N * #DATA, pv.bytes)

				local st = net.stats(s)
				net.identity(st)
				assert.are.equal(#pkts, st.matched)
				assert.are.equal(#pkts, st.delivered)
				assert.are.equal(#pkts, nev)
				assert.are.equal(0, st.dropped)
				assert.are.equal(0, st.errors)
				net.say("[%s] ipv%d: %d conns, sources[%s].syns=%d, %d flows match tcpdump (%d pkts), events=%d, seen=%d filtered=%d",
					mode, family, N, client, src.syns, 2 * N, #pkts, nev, st.seen, st.filtered)
			end)
		end

		it(("[%s] events=false: no ring traffic, aggregates still count"):format(mode), function()
			local port = net.port()
			local host = net.addr4()
			local s <close> = net.open{ mode = mode, events = false, filter = { port = port, host = host } }
			local called = 0
			-- no packet would ever come: the library says so (issue 11)
			assert.has_error(function() s:on_packet(function() called = called + 1 end) end,
				"tcpinspect: on_packet: this session was opened with events = false, so no packet will be delivered; " ..
				"open it with events = true")
			assert.is_false(s.events)
			assert.are.equal(-1, s:fd())
			local client = net.addr4()
			local cap = net.tcpdump{ filter = ("tcp port %d and host %s"):format(port, host) }
			local srv = net.server(host, port)
			local ok, err = pcall(net.conversations, srv, host, port, 5, { data = DATA, bind = client })
			srv:close()
			local pkts = cap:stop()
			assert(ok, err)
			assert.are.equal(0, s:poll(50))
			assert.are.equal(0, called)
			local st = net.stats(s)
			assert.are.equal(#pkts, st.matched)
			assert.are.equal(0, st.delivered)
			assert.are.equal(0, st.dropped)
			assert.are.equal(0, st.sampled_out)
			net.identity(st, false)
			local total = 0
			for _, v in s:map("flows"):pairs() do total = total + v.packets end
			assert.are.equal(#pkts, total)
			assert.are.equal(5, s:map("sources"):lookup(client).syns)
			local hist = 0
			for _, v in s:map("len_hist"):pairs() do hist = hist + v.count end
			assert.are.equal(#pkts, hist)
			net.say("[%s] events=false: %d pkts counted in maps, 0 delivered", mode, total)
		end)
	end
end)
