-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: a veth pair between two network namespaces made by the spec.
--
-- The session runs in a child process inside the server namespace
-- (`ip netns exec`), next to an echo server on the veth's IPv4 and IPv6
-- addresses; a client in the other namespace makes N connections of each
-- family.  Since the server namespace carries nothing but this traffic, its
-- Tcp InSegs delta is the exact number of segments received there, and the
-- flows map must equal both it and a tcpdump -Q in capture on the veth.
local net = require "support.net"

local N = 8
local DATALEN = 300

local function ns_inode(ns)
	local _, out = net.sh("ip netns exec " .. ns .. " stat -L -c %i /proc/self/ns/net")
	return out:match("%d+")
end

describe("#kernel network namespaces", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] veth between two namespaces: flows == tcpdump == InSegs delta"):format(mode), function()
			local pair = net.netns_pair()
			local ch, srvch
			local ok, err = pcall(function()
				local port = net.port()
				local cap = net.tcpdump{ netns = pair.server, iface = pair.sdev, filter = "tcp port " .. port }
				local before = net.snmp(pair.server)
				-- daddr: in cgroup mode the session also sees the client namespace
				local filter = { port = port, daddr = { pair.server4 .. "/32", pair.server6 .. "/128" } }
				local servers = {
					listen = { pair.server4, port },
					listen6 = { pair.server6, port },
				}
				if mode == "cgroup" then
					-- `ip netns exec` remounts /sys, hiding the cgroup2 mount; the
					-- cgroup root program sees every namespace, so the session runs
					-- here and only the server runs in the namespace.
					srvch = net.session_child({ open = false, listen = servers.listen,
						listen6 = servers.listen6 }, { netns = pair.server })
					srvch:ready()
					ch = net.session_child({ open = { mode = mode, filter = filter } })
				else
					ch = net.session_child({ open = { mode = mode, filter = filter },
						listen = servers.listen, listen6 = servers.listen6 }, { netns = pair.server })
				end
				local m = ch:ready()
				assert.are.equal(mode, m)
				for _, host in ipairs{ pair.server4, pair.server6 } do
					net.must("ip netns exec " .. pair.client .. " " ..
						net.lua_cmd(net.ROOT .. "/spec/support/client_child.lua", host, port, N, DATALEN))
				end
				local r = ch:stop()
				if srvch then srvch:stop() end
				local pkts = cap:stop()
				local after = net.snmp(pair.server)
				local insegs = after.InSegs - before.InSegs

				assert.are.equal(mode, r.mode)
				assert.are.equal(2 * N, net.count(pkts, function(p) return p.flags & 0x12 == 0x02 end))
				assert.are.equal(2 * N, r.syns)
				assert.are.equal(2 * N, r.syn_events)
				local want = net.by_flow(pkts)
				assert.are.same(want, r.flows)
				assert.are.same(want, r.events)
				assert.are.equal(#pkts, insegs)
				assert.are.equal(#pkts, r.stats.matched)
				assert.are.equal(#pkts, r.stats.delivered)
				assert.are.equal(0, r.stats.dropped)
				net.identity(r.stats)
				-- the netns field: the server namespace, in every mode (cgroup
				-- mode reads the socket's, as root)
				assert.are.same({ [ns_inode(pair.server)] = true }, r.netns)
				net.say("[%s] netns veth: %d+%d conns (v4+v6), syn=%d, %d flows match tcpdump and InSegs (%d pkts)",
					mode, N, N, r.syns, (function() local n = 0 for _ in pairs(want) do n = n + 1 end return n end)(), insegs)
			end)
			if ch then ch:kill() end
			if srvch then srvch:kill() end
			pair:destroy()
			assert(ok, err)
		end)
	end
end)
