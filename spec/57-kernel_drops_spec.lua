-- SPDX-License-Identifier: GPL-2.0-only
-- Drops of incoming TCP segments (issue 21, item 1): the skb:kfree_skb hook
-- (tp_btf), loaded only with open's drops = true, through the same filter as
-- received segments, its records to on_drop and its counters in
-- stats().drops.
--
-- Kernel part, in every mode that must work here (host: tc, cgroup; the
-- guests: all four): N SYNs to a closed port on a fresh 127.X.Y.Z address
-- (or ::1) give exactly N drops with the reason the running kernel gives
-- for a segment no socket takes, each delivered to on_drop and counted per
-- reason, equal to the SYNs tcpdump saw; M SYNs to the next port, also
-- closed, are kept out by the session's filter (dport), exactly; through
-- either drop hook (tp_btf, and the raw_tp fallback in a child that asks
-- for it with TCPINSPECT_DROP_HOOK).  Without
-- drops = true no drop program is loaded and on_drop raises naming the
-- option.  The unit part: a replay never delivers a drop, and says so.
local net = require "support.net"
local drops = require "support.drops"
local tcpinspect = require "tcpinspect"

local N, M = 7, 4

-- The reason and the dropping function for a SYN to a closed port, per
-- kernel line: measured (6.18 host, 6.1-cloud, 6.12-rt guests).
local function expected(family)
	return "NO_SOCKET", family == 6 and "tcp_v6_rcv" or "tcp_v4_rcv"
end

-- Our own BPF programs' names, through their fds.
local function prog_names()
	local names = {}
	for _, id in ipairs(net.bpf_ids(net.getpid()).progs) do
		local _, out = net.sh("bpftool prog show id " .. id)
		local name = out:match("name (%S+)")
		if name then names[name] = true end
	end
	return names
end

describe("#kernel drops", function()
	it("features() says the drop hook loads and attaches here", function()
		local f = tcpinspect.features()
		assert.is_true(f.drops, f.reasons.drops)
		assert.is_false(f.replay_drops)
		assert.is_string(f.reasons.replay_drops)
		local names = tcpinspect.drop_reasons()
		assert.truthy(#names > 0)
		local has = {}
		for _, n in ipairs(names) do has[n] = true end
		assert.is_true(has.NO_SOCKET and has.NOT_SPECIFIED and true)
		assert.is_nil(has.MAX)
	end)

	for _, mode in ipairs(net.modes()) do
		for _, family in ipairs{ 4, 6 } do
			-- the first hook (tp_btf) in this process, the fallback (raw_tp)
			-- in a child that asks for it
			for _, hook in ipairs{ "tp_btf", "raw_tp" } do
				it(("[%s] ipv%d %s: N SYNs to a closed port -> N drops, the filter keeps the other port's out"):format(
					mode, family, hook), function()
					local r
					if hook == "tp_btf" then
						r = drops.closed_port(mode, family, N, M)
					else
						local out = net.lua_child(([[
							local net = require "support.net"
							io.write("RESULT", net.serialize(require("support.drops").closed_port(%q, %d, %d, %d)))
						]]):format(mode, family, N, M), { env = "TCPINSPECT_DROP_HOOK=raw_tp" })
						local src = out:match("RESULT(.*)$")
						assert(src, out)
						r = assert(load("return " .. src))()
					end
					assert.are.equal(("attached (%s)"):format(hook), r.status)
					local want_reason, want_location = expected(family)
					-- the capture: N SYNs to the port, M to the other
					assert.are.same({ N, M }, r.syns)
					-- exactly the N, each a SYN with the kernel's reason and
					-- place, and nothing of any other port (the filter)
					assert.are.equal(N, r.drops)
					assert.are.equal(0, r.other)
					assert.are.same({ [want_reason .. " " .. want_location] = N }, r.seen)
					assert.are.same({ S = N }, r.flagstrs)
					local d = assert(r.stats.drops, "stats().drops")
					assert.are.equal(d.seen, d.filtered + d.matched)
					assert.are.equal(d.matched, d.delivered + d.lost)
					assert.are.equal(0, d.lost)
					assert.are.equal(0, d.errors)
					assert.are.equal(N, d.matched)
					assert.are.equal(N, d.delivered)
					assert.are.same({ [want_reason] = N }, d.reasons)
					-- the other port's M drops were seen and filtered out
					assert.is_true(d.filtered >= M, ("filtered %d < %d"):format(d.filtered, M))
					-- the receive hooks' counters keep their own identity
					net.identity(r.stats)
					net.say("%s ipv%d %s: %d SYNs -> %d %s drops in %s; %d to the other port filtered (drops seen %d)",
						mode, family, hook, N, r.drops, want_reason, want_location, M, d.seen)
				end)
			end
		end

		it(("[%s] a netns scope and a filter expression: exactly that namespace's drops to the port"):format(mode), function()
			local ns = net.netns("drop")
			finally(function() ns:destroy() end)
			local ino = tonumber((net.must("stat -L -c %i /run/netns/" .. ns.name)))
			local port = net.port(2)
			local s <close> = net.open{ mode = mode, drops = true, netns = ns.name,
				filter = { expr = ("tcp dst port %d"):format(port) } }
			assert.are.equal("attached (tp_btf)", s.probes["skb:kfree_skb"])
			local want_reason, want_location = expected(4)
			local got, bad = 0, {}
			s:on_drop(function(p)
				if p.netns == ino and p.dport == port and p.reason == want_reason and p.location == want_location then
					got = got + 1
				else
					bad[#bad + 1] = ("%s:%d netns %d %s"):format(p.daddr, p.dport, p.netns, p.reason)
				end
			end)
			local function refused_in_ns(dport)
				local _, out = ns:exec(("timeout %d bash -c 'echo > /dev/tcp/127.0.0.1/%d' 2>&1"):format(net.scale(2), dport))
				assert.truthy(out:find("refused", 1, true), out)
			end
			for _ = 1, N do refused_in_ns(port) end
			for _ = 1, M do refused_in_ns(port + 1) end -- the expression keeps these out
			for _ = 1, M do assert.is_true(net.connect_closed(net.addr4(), port)) end -- another namespace
			net.drain(s)
			assert.are.same({}, bad)
			assert.are.equal(N, got)
			local d = net.stats(s).drops
			-- the namespace holds nothing else: its N + M drops, no more (the
			-- host's M are out of scope, not even seen)
			assert.are.equal(N + M, d.seen)
			assert.are.equal(M, d.filtered)
			assert.are.equal(N, d.matched)
			assert.are.same({ [want_reason] = N }, d.reasons)
			net.say("%s netns scope + expr: %d of %d drops in the namespace matched, %d on the host not seen",
				mode, N, N + M, M)
		end)

		it(("[%s] without drops = true: no drop hook, on_drop raises naming the option #anymode"):format(mode), function()
			local s <close> = net.open{ mode = mode, filter = { dport = net.port() } }
			assert.is_nil(s.probes["skb:kfree_skb"])
			local names = prog_names()
			assert.is_nil(names.ti_drop_btf or names.ti_drop_btf_sk)
			assert.is_nil(s:stats().drops)
			local ok, err = pcall(s.on_drop, s, function() end)
			assert.is_false(ok)
			assert.are.equal("drops", err.option)
			assert.truthy(tostring(err.message):find("drops = true", 1, true))
			s:on_drop(nil) -- clearing is always allowed
			-- with it, the program is there, and on_drop(fn, fields) passes
			-- the fields' values
			local port, host = net.port(), net.addr4()
			local d <close> = net.open{ mode = mode, drops = true, filter = { dport = port } }
			assert.are.equal("attached (tp_btf)", d.probes["skb:kfree_skb"])
			-- the tracepoint with rx_sk where the kernel has it (6.11+)
			names = prog_names()
			assert.is_true(names.ti_drop_btf or names.ti_drop_btf_sk)
			local got = {}
			d:on_drop(function(reason, location, dport, daddr)
				got[#got + 1] = table.concat({ reason, location, dport, daddr }, " ")
			end, { "reason", "location", "dport", "daddr" })
			for _ = 1, 2 do assert.is_true(net.connect_closed(host, port)) end
			net.drain(d)
			local reason, location = expected(4)
			local want = ("%s %s %d %s"):format(reason, location, port, host)
			assert.are.same({ want, want }, got)
		end)
	end
end)

-- Graceful absence: where the drop hook cannot load (no CAP_PERFMON), a
-- session with drops = true still opens, in a mode that needs no
-- CAP_PERFMON, and says why; so does features().
describe("#kernel drops without CAP_PERFMON", function()
	for _, mode in ipairs(net.modes()) do
		if mode == "tc" or mode == "cgroup" then
			it(("[%s] open succeeds without the drop hook, and says why"):format(mode), function()
				local out = net.lua_child(([[
					package.cpath = %q .. "/?.so;" .. package.cpath -- the build under test
					local t = require "tcpinspect"
					local s, err = t.open{ mode = %q, drops = true }
					if not s then print("FAIL " .. err) return end
					print("PROBE " .. tostring(s.probes["skb:kfree_skb"]))
					print("STATS " .. tostring(s:stats().drops))
					local ok, e = pcall(s.on_drop, s, function() end)
					print("ON_DROP " .. tostring(ok) .. " " .. tostring(not ok and e.option))
					local f = t.features()
					print("FEATURES " .. tostring(f.drops) .. " " .. tostring(f.reasons.drops))
				]]):format(net.BUILD, mode), { wrap = function(cmd) return "setpriv --bounding-set=-all,+bpf,+net_admin " .. cmd end })
				local why = "needs CAP_PERFMON (or CAP_SYS_ADMIN); run as root"
				assert.truthy(out:find("PROBE not attached: the drop hook (skb:kfree_skb) " .. why, 1, true), out)
				assert.truthy(out:find("STATS nil", 1, true), out)
				-- the option was given: on_drop is allowed, no drop will come
				assert.truthy(out:find("ON_DROP true", 1, true), out)
				assert.truthy(out:find("FEATURES false the drop hook (skb:kfree_skb) " .. why, 1, true), out)
			end)
		end
	end
end)

describe("drops in a replay", function()
	it("on_drop never fires, stats has no drops table, features say so", function()
		local s <close> = tcpinspect.replay{ file = "spec/fixtures/port_scan.pcap", drops = true }
		local ndrops, pkts = 0, 0
		s:on_drop(function() ndrops = ndrops + 1 end)
		s:on_packet(function(p)
			pkts = pkts + 1
			assert.is_nil(p.reason)
			assert.is_nil(p.location)
		end)
		while s:poll(-1) > 0 do end
		assert.is_true(pkts > 0)
		assert.are.equal(0, ndrops)
		assert.is_nil(s:stats().drops)
		-- on_drop's fields, checked as on_packet's
		s:on_drop(function() end, { "reason", "dport" })
		local ok, err = pcall(s.on_drop, s, function() end, { "nosuch" })
		assert.is_false(ok)
		assert.are.equal("fields", err.option)
		-- the options accepted, as a live session's
		local r <close> = tcpinspect.replay{ file = "spec/fixtures/port_scan.pcap" }
		ok, err = pcall(r.on_drop, r, function() end)
		assert.is_false(ok)
		assert.are.equal("drops", err.option)
	end)
end)
