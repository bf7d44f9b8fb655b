-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: filters include and exclude exactly.
--
-- One burst of real loopback traffic (two source addresses, three ports,
-- IPv4 and IPv6, several payload sizes) is watched by many sessions at once,
-- each with its own filter.  Every session must deliver exactly the packets
-- of the tcpdump capture that satisfy the same predicate written in Lua: no
-- more (exclusion), no fewer (inclusion).  Also: set_filter switches a live
-- session to another port without re-attaching, and family="ipv4" attaches
-- only tcp_v4_rcv in the function-probe modes.
local net = require "support.net"

-- Traffic: server A, clients C and B (fresh 127.X.Y.Z addresses, that no other
-- test on a shared machine talks to) and ::1.
local function traffic(ports, A, B, C)
	local P1, P2, P3 = ports[1], ports[2], ports[3]
	return {
		{ host = A, port = P1, n = 3, data = ("a"):rep(100), bind = C },
		{ host = A, port = P2, n = 2, data = ("b"):rep(200), bind = B },
		{ host = "::1", port = P1, n = 2, data = ("c"):rep(100) },
		{ host = "::1", port = P3, n = 1, data = ("d"):rep(50) },
	}
end

local function generate(ports, A, B, C)
	local servers = {}
	local ok, err = pcall(function()
		for _, t in ipairs(traffic(ports, A, B, C)) do
			local key = t.host .. "/" .. t.port
			servers[key] = servers[key] or net.server(t.host, t.port)
			net.conversations(servers[key], t.host, t.port, t.n, { data = t.data, bind = t.bind })
		end
	end)
	for _, s in pairs(servers) do s:close() end
	assert(ok, err)
end

local function in_set(set, v)
	for _, x in ipairs(set) do if x == v then return true end end
	return false
end

describe("#kernel filters", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] port, list, range, CIDR, host, flags, len, family: many sessions at once, each exactly its own"):format(mode), function()
			local P1 = net.port(3)
			local P2, P3 = P1 + 1, P1 + 2
			local range = ("%d-%d"):format(P1, P3)
			local A, B, C = net.addr4(), net.addr4(), net.addr4()
			local HOSTS = { A, B, C, "::1" }
			local function ours(p) return p.sport >= P1 and p.sport <= P3 or p.dport >= P1 and p.dport <= P3 end
			local cases = {
				{ "dport single", { dport = P1 }, function(p) return p.dport == P1 end },
				{ "sport single", { sport = P2 }, function(p) return p.sport == P2 end },
				{ "port list", { port = { P1, P2 } }, function(p) return in_set({ P1, P2 }, p.sport) or in_set({ P1, P2 }, p.dport) end },
				{ "port range", { port = ("%d-%d"):format(P2, P3) }, function(p) return p.sport >= P2 and p.sport <= P3 or p.dport >= P2 and p.dport <= P3 end },
				{ "saddr v4 /32", { port = range, saddr = B .. "/32" }, function(p) return ours(p) and p.saddr == B end },
				{ "saddr v4 /8", { port = range, saddr = "127.0.0.0/8" }, function(p) return ours(p) and p.family == 4 end },
				{ "daddr v6", { port = range, daddr = "::1/128" }, function(p) return ours(p) and p.daddr == "::1" end },
				{ "saddr v4+v6 list", { port = range, saddr = { B, "::/0" } }, function(p) return ours(p) and (p.saddr == B or p.family == 6) end },
				{ "host v4", { port = range, host = B }, function(p) return ours(p) and (p.saddr == B or p.daddr == B) end },
				{ "flags syn|fin", { port = range, flags = { "syn", "fin" } }, function(p) return ours(p) and p.flags & 0x03 ~= 0 end },
				{ "flags rst", { port = range, flags = "rst" }, function(p) return ours(p) and p.flags & 0x04 ~= 0 end },
				{ "len min 1", { port = range, len = { min = 1 } }, function(p) return ours(p) and p.len >= 1 end },
				{ "len exactly 100", { port = range, len = { min = 100, max = 100 } }, function(p) return ours(p) and p.len == 100 end },
				{ "filter.family ipv6", { port = range, family = "ipv6" }, function(p) return ours(p) and p.family == 6 end },
			}
			local sessions = {}
			local ok, err = pcall(function()
				for i, c in ipairs(cases) do
					-- all traffic of ours is to or from HOSTS: exclude the rest of the machine
					c[2].host = c[2].host or HOSTS
					local s = net.open{ mode = mode, ring_size = 65536, filter = c[2] }
					local rec = { name = c[1], pred = c[3], s = s, n = 0, bad = {} }
					sessions[i] = rec
					s:on_packet(function(p)
						rec.n = rec.n + 1
						local t = p:totable()
						if not c[3](t) then rec.bad[#rec.bad + 1] = tostring(p) end
					end)
				end
				local cap = net.tcpdump{ filter = ("tcp portrange %d-%d and (host %s or host ::1)"):format(P1, P3, A) }
				local gok, gerr = pcall(generate, { P1, P2, P3 }, A, B, C)
				local pkts = cap:stop()
				assert(gok, gerr)
				local summary = {}
				for _, rec in ipairs(sessions) do
					net.drain(rec.s)
					local want = net.count(pkts, rec.pred)
					local st = net.stats(rec.s)
					assert(#rec.bad == 0, rec.name .. ": delivered packets outside the filter: " .. table.concat(rec.bad, "; "))
					assert(rec.n == want, ("%s: %d events, tcpdump says %d"):format(rec.name, rec.n, want))
					assert(st.matched == want, ("%s: matched %d, tcpdump says %d"):format(rec.name, st.matched, want))
					-- the rest of our traffic was seen and filtered out
					local excluded = #pkts - want
					assert(st.filtered >= excluded, ("%s: filtered %d < %d excluded packets of ours"):format(rec.name, st.filtered, excluded))
					net.identity(st)
					summary[#summary + 1] = ("%s=%d"):format(rec.name:gsub(" ", "_"), want)
				end
				-- sanity of the traffic itself: every case is non-trivial except rst
				assert.are.equal(0, net.count(pkts, function(p) return p.flags & 0x04 ~= 0 end))
				net.say("[%s] filters: %d sessions at once over %d pkts: %s", mode, #cases, #pkts, table.concat(summary, " "))
			end)
			for _, rec in pairs(sessions) do rec.s:close() end
			assert(ok, err)
		end)

		it(("[%s] set_filter switches port on a live session without re-attaching"):format(mode), function()
			local P1 = net.port(2)
			local P2 = P1 + 1
			local A = net.addr4()
			local s <close> = net.open{ mode = mode, filter = { port = P1, host = A } }
			local seen = { {}, {} }
			local phase = 1
			s:on_packet(function(p)
				local port
				if p.sport == P1 or p.dport == P1 then port = P1 elseif p.sport == P2 or p.dport == P2 then port = P2 else port = "other" end
				seen[phase][port] = (seen[phase][port] or 0) + 1
			end)
			local ids_before = net.bpf_ids(net.getpid())
			local srv1, srv2 = net.server(A, P1), net.server(A, P2)
			local function burst()
				local cap = net.tcpdump{ filter = ("host %s and (tcp port %d or tcp port %d)"):format(A, P1, P2) }
				local ok, err = pcall(function()
					net.conversations(srv1, A, P1, 2, { data = "hello" })
					net.conversations(srv2, A, P2, 2, { data = "hello" })
				end)
				local pkts = cap:stop()
				assert(ok, err)
				net.drain(s)
				return net.count(pkts, function(p) return p.sport == P1 or p.dport == P1 end),
					net.count(pkts, function(p) return p.sport == P2 or p.dport == P2 end)
			end
			local ok, err = pcall(function()
				local a1, b1 = burst()
				assert.are.same({ [P1] = a1 }, seen[1])
				phase = 2
				s:set_filter{ port = P2, host = A }
				local a2, b2 = burst()
				assert.are.same({ [P2] = b2 }, seen[2])
				local ids_after = net.bpf_ids(net.getpid())
				assert.are.same(ids_before, ids_after) -- same programs and links: no re-attach
				net.identity(s)
				net.say("[%s] set_filter: before: port A %d/%d (other port 0 of %d), after: port B %d/%d (old port 0 of %d)",
					mode, seen[1][P1], a1, b1, seen[2][P2], b2, a2)
			end)
			srv1:close()
			srv2:close()
			assert(ok, err)
		end)

		it(("[%s] family='ipv4': IPv6 traffic is not seen%s"):format(mode,
			(mode == "fentry" or mode == "kprobe") and ", only tcp_v4_rcv is attached" or ""), function()
			local P = net.port()
			local A = net.addr4()
			local s <close> = net.open{ mode = mode, family = "ipv4", filter = { port = P, host = { A, "::1" } } }
			if mode == "fentry" or mode == "kprobe" then
				assert.are.equal("attached", s.probes.tcp_v4_rcv)
				assert.matches("^not requested", s.probes.tcp_v6_rcv)
			end
			local fams, byflow = {}, {}
			s:on_packet(function(p)
				fams[p.family] = (fams[p.family] or 0) + 1
				local k = net.flow_key(p.saddr, p.sport, p.daddr, p.dport)
				byflow[k] = (byflow[k] or 0) + 1
			end)
			local cap = net.tcpdump{ filter = ("tcp port %d and (host %s or host ::1)"):format(P, A) }
			local srv4, srv6 = net.server(A, P), net.server("::1", P)
			local ok, err = pcall(function()
				net.conversations(srv4, A, P, 2, { data = "x" })
				net.conversations(srv6, "::1", P, 2, { data = "x" })
			end)
			srv4:close()
			srv6:close()
			local pkts = cap:stop()
			assert(ok, err)
			net.drain(s)
			local v4 = net.count(pkts, function(p) return p.family == 4 end)
			local v6 = net.count(pkts, function(p) return p.family == 6 end)
			assert.is_true(v6 > 0)
			assert.are.same(net.by_flow(pkts, function(p) return p.family == 4 end), byflow)
			assert.are.same({ [4] = v4 }, fams)
			assert.are.equal(v4, s:stats().matched)
			for k in s:map("flows"):pairs() do assert.are.equal(4, k.family) end
			net.say("[%s] family=ipv4: %d v4 events, 0 of %d v6 pkts; probes: %s", mode, v4, v6,
				(function() local t = {} for k, v in pairs(s.probes) do t[#t + 1] = k .. "=" .. v end table.sort(t) return table.concat(t, ", ") end)())
		end)
	end
end)
