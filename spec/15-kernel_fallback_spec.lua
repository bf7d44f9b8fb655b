-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: choosing a hook, and what each hook can see.
--
-- On the development host fentry is refused and there are no kprobes:
-- asking for them gives a message that says so, and auto falls back to tc,
-- naming why each earlier mode failed.  A scan of closed ports (SYN -> RST)
-- is visible to tc and the function probes, but cgroup_skb only sees
-- segments that found a socket: it sees the RSTs coming back to the
-- scanner's sockets and none of the SYNs.
local net = require "support.net"
local tcpinspect = require "tcpinspect"

local ORDER = { "fentry", "kprobe", "tc", "cgroup" }

describe("#kernel fallback", function()
	it("#hostonly fentry is refused and kprobes are missing here: clear messages, auto picks tc", function()
		local s, err, errno = tcpinspect.open{ mode = "fentry" }
		assert.is_nil(s)
		assert.matches("^EPERM: fentry: ", err)
		assert.matches("fentry is refused on this kernel", err)
		assert.matches("try mode='kprobe', 'tc' or 'cgroup'", err)
		assert.are.equal(1, errno)
		s, err, errno = tcpinspect.open{ mode = "kprobe" }
		assert.is_nil(s)
		assert.matches("kprobe: this kernel has no kprobes %(CONFIG_KPROBES/CONFIG_KPROBE_EVENTS off%)", err)
		assert.are.equal(95, errno)
		local a <close> = net.open{ mode = "auto" }
		assert.are.equal("tc", a.mode)
		local lines = {}
		for l in a.fallback_reason:gmatch("[^\n]+") do lines[#lines + 1] = l end
		assert.are.equal(2, #lines)
		assert.matches("^fentry: .*fentry is refused", lines[1])
		assert.matches("^kprobe: this kernel has no kprobes", lines[2])
		local f = tcpinspect.features()
		assert.is_false(f.fentry)
		assert.is_false(f.kprobe)
		assert.is_true(f.tc)
		assert.is_true(f.tcx)
		assert.is_true(f.cgroup)
		net.say("[host] fentry refused (EPERM), kprobe absent (EOPNOTSUPP), auto -> %s", a.mode)
	end)

	it("#kernel auto picks the first working mode (expected modes all work) and explains every mode it skipped", function()
		local modes = net.modes()
		local f = tcpinspect.features()
		for _, m in ipairs(modes) do
			assert(f[m], ("expected mode %s is not available: %s"):format(m, tostring(f.reasons[m])))
		end
		local first
		for _, m in ipairs(ORDER) do
			if f[m] then first = m break end
		end
		local a <close> = net.open{}
		assert.are.equal(first, a.mode)
		local skipped = {}
		for _, m in ipairs(ORDER) do
			if m == first then break end
			skipped[#skipped + 1] = m
		end
		local lines = {}
		for l in (a.fallback_reason or ""):gmatch("[^\n]+") do lines[#lines + 1] = l end
		assert.are.equal(#skipped, #lines)
		for i, m in ipairs(skipped) do
			assert.matches("^" .. m .. ": ", lines[i])
			-- a mode that failed must also fail alone, with the same first words
			local s, err = tcpinspect.open{ mode = m }
			assert.is_nil(s)
			assert.matches(m .. ":", err)
		end
		-- every expected mode opens on its own
		for _, m in ipairs(modes) do
			local s <close> = net.open{ mode = m }
			assert.are.equal(m, s.mode)
		end
	end)

	describe("#kernel closed-port scan", function()
		for _, mode in ipairs(net.modes()) do
			it(("[%s] connects to K closed ports: SYNs %s, RSTs seen"):format(mode,
				mode == "cgroup" and "NOT seen (no socket)" or "seen"), function()
				local K = 6
				local A = net.addr4()
				local P = net.port(K)
				local ports = {}
				for i = 0, K - 1 do ports[P + i] = true end
				local s <close> = net.open{ mode = mode, filter = { host = A, port = ("%d-%d"):format(P, P + K - 1) } }
				local syn, rst, other = 0, 0, 0
				s:on_packet(function(p)
					if p.flagstr == "S" and ports[p.dport] then syn = syn + 1
					elseif p.flags & tcpinspect.RST ~= 0 and ports[p.sport] then rst = rst + 1
					else other = other + 1 end
				end)
				local cap = net.tcpdump{ filter = ("host %s and tcp portrange %d-%d"):format(A, P, P + K - 1) }
				local ok, err = pcall(function()
					for port in pairs(ports) do assert(net.connect_closed(A, port)) end
				end)
				local pkts = cap:stop()
				assert(ok, err)
				net.drain(s)
				assert.are.equal(K, net.count(pkts, function(p) return p.flags == tcpinspect.SYN end))
				assert.are.equal(K, net.count(pkts, function(p) return p.flags & tcpinspect.RST ~= 0 end))
				assert.are.equal(2 * K, #pkts)
				if mode == "cgroup" then
					assert.are.equal(0, syn)
					assert.is_nil(s:map("ports"):lookup(P))
				else
					assert.are.equal(K, syn)
					assert.are.equal(1, s:map("ports"):lookup(P).packets)
				end
				assert.are.equal(K, rst)
				assert.are.equal(0, other)
				local st = net.stats(s)
				assert.are.equal(syn + rst, st.matched)
				net.identity(st)
				net.say("[%s] closed-port scan: %d SYNs to closed ports, %d seen; %d RSTs back, %d seen",
					mode, K, syn, K, rst)
			end)
		end
	end)
end)
