-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs for issue 10 (moved out of spec/29): tc on every interface
-- of a namespace: interface types read in the session's own namespace, L3
-- devices and bridge/bond ports skipped and reported, interfaces added after
-- open attached by the link monitor (which also wakes poll(-1)), and stacked
-- devices (bridge, VLAN, bond) counting each SYN once, as tcpdump sees it.
--
-- Traffic stays in namespaces created here.
local net = require "support.net"

-- run a Lua chunk in a child (optionally in a netns, with env); returns its output (support/net.lua)
local lua_child = net.lua_child

-- n connection attempts (SYNs) from namespace ns to addr:port, each bounded (support/net.lua)
local syns = net.syns

describe("#kernel tc interfaces", function()
	if net.has_mode("tc") then
		it("[tc] reads interface types in its own network namespace (unshare -n, sysfs of another)", function()
			local out = lua_child([[
os.execute("ip link add tiu0 type veth peer name tiu1 && ip link set tiu0 up && ip link set tiu1 up")
local s, err = require("tcpinspect").open{ mode = "tc", dev = "tiu0", events = false }
print("OPEN", s and s.probes["tc/ingress:tiu0"] or err)
if s then s:close() end
]], { wrap = function(cmd)
					return "unshare -n setpriv --bounding-set=-all,+bpf,+net_admin,+perfmon " .. cmd
				end })
			assert.matches("OPEN\tattached", out)
		end)

		it("[tc] every interface: L3 devices and bridge ports skipped and reported; dev= naming them refused", function()
			local ns = net.netns("l3")
			local ok, err = pcall(function()
				local has_tun = ns:exec("sh -c 'ip tuntap add mode tun name titun0 && ip link set titun0 up'")
				assert(ns:exec("sh -c 'ip link add tibr0 type bridge && ip link add tibp0 type veth peer name tibp1 && " ..
					"ip link set tibp0 master tibr0 && ip link set tibr0 up && ip link set tibp0 up && ip link set tibp1 up'"))
				local out = lua_child(("local HAS_TUN = %s\n"):format(tostring(has_tun)) .. [[
local tcpinspect = require "tcpinspect"
local s = assert(tcpinspect.open{ mode = "tc", events = false })
local names = {}
for k, v in pairs(s.probes) do names[#names + 1] = k .. " = " .. v end
table.sort(names)
print(table.concat(names, "\n"))
s:close()
for _, dev in ipairs{ "titun0", "tibp0" } do
  if dev ~= "titun0" or HAS_TUN then
    local s2, e = tcpinspect.open{ mode = "tc", dev = dev }
    print("DEV " .. dev .. " " .. tostring(s2) .. " " .. tostring(e))
  end
end
]], { netns = ns.name })
				assert.matches("tc/ingress:lo = attached", out)
				assert.matches("tc/ingress:tibr0 = attached", out)
				assert.matches("tc/ingress:tibp1 = attached", out)
				assert.matches("tc/ingress:tibp0 = skipped: a port of bridge 'tibr0'", out, 1, true)
				assert.matches("DEV tibp0 nil EOPNOTSUPP: tc: interface 'tibp0' is a port of bridge 'tibr0'", out, 1, true)
				if has_tun then
					assert.matches("tc/ingress:titun0 = skipped: an L3 device (tun", out, 1, true)
					assert.matches("DEV titun0 nil EOPNOTSUPP: tc: interface 'titun0' is an L3 device", out, 1, true)
				end
				net.say("[tc] skipped and reported: bridge port%s", has_tun and ", tun device" or " (no tun here)")
			end)
			ns:destroy()
			assert(ok, err)
		end)

		it("[tc] every interface: a reader blocked in poll(-1) is woken by a new veth, attaches it and gets its SYNs", function()
			local ns1, ns2 = net.netns("lw"), net.netns("lx")
			local pid
			local ok, err = pcall(function()
				local port = net.port()
				-- nothing else arrives in ns1: only the link monitor can end
				-- the first wait (before, poll(-1) slept until a record came,
				-- and none could come from an interface not attached yet)
				local out, script = net.tmpfile(".out"), net.tmpfile(".lua")
				net.write_file(script, ([[
local tcpinspect = require "tcpinspect"
local s = assert(tcpinspect.open{ mode = "tc", wakeup = 1, filter = { dport = %d, flags = "syn" } })
local got, polls = 0, 0
s:on_packet(function() got = got + 1 end)
io.stdout:write("READY\n") io.stdout:flush()
while got < 6 do s:poll(-1) polls = polls + 1 end
io.stdout:write(("GOT %%d ATTACHED %%s POLLS %%d\n"):format(got, tostring(s.probes["tc/ingress:tilw0"]), polls))
s:close()
]]):format(port))
				pid = net.spawn(("ip netns exec %s timeout -s KILL %d %s"):format(ns1.name, net.scale(30),
					net.lua_cmd(script)), out)
				assert(net.wait_until(function() return (net.read_file(out) or ""):find("READY") end, net.scale(20)),
					"reader did not start: " .. (net.read_file(out) or ""))
				net.must(("ip -n %s link add tilw0 type veth peer name tilw1 netns %s"):format(ns1.name, ns2.name))
				net.must(("ip -n %s addr add 10.204.0.1/24 dev tilw0 && ip -n %s link set tilw0 up"):format(ns1.name, ns1.name))
				net.must(("ip -n %s addr add 10.204.0.2/24 dev tilw1 && ip -n %s link set tilw1 up"):format(ns2.name, ns2.name))
				net.sh("sleep 1")
				syns(ns2.name, "10.204.0.1", port, 6)
				local done = net.wait_exit(pid, net.scale(20))
				local res = net.read_file(out) or ""
				assert.is_truthy(done, "the reader stayed blocked in poll(-1): " .. res)
				pid = nil
				local polls = tonumber(res:match("GOT 6 ATTACHED attached[^\n]* POLLS (%d+)"))
				assert(polls, res)
				net.say("[tc] poll(-1) woken by the link monitor: veth attached, 6 of 6 SYNs in %d polls", polls)
			end)
			if pid then net.kill(pid, "KILL") end
			ns1:destroy()
			ns2:destroy()
			assert(ok, err)
		end)

		it("[tc] every interface: a veth added after open is attached and its SYNs seen", function()
			local ns1, ns2 = net.netns("lm"), net.netns("lc")
			local ch
			local ok, err = pcall(function()
				local port = net.port()
				ch = net.session_child({ open = { mode = "tc", filter = { dport = port } } }, { netns = ns1.name })
				local _, probes = ch:ready()
				assert.is_nil(probes["tc/ingress:tilm0"])
				net.must(("ip -n %s link add tilm0 type veth peer name tilm1 netns %s"):format(ns1.name, ns2.name))
				net.must(("ip -n %s addr add 10.203.0.1/24 dev tilm0 && ip -n %s link set tilm0 up"):format(ns1.name, ns1.name))
				net.must(("ip -n %s addr add 10.203.0.2/24 dev tilm1 && ip -n %s link set tilm1 up"):format(ns2.name, ns2.name))
				-- the monitor attaches within a poll (50 ms in the child); give it a second
				net.sh("sleep 1")
				syns(ns2.name, "10.203.0.1", port, 6)
				local r = ch:stop()
				ch = nil
				assert.are.equal(6, r.syn_events)
				assert.are.equal(6, r.stats.matched)
				net.say("[tc] link monitor: veth added after open attached, %d of 6 SYNs seen", r.syn_events)
			end)
			if ch then ch:kill() end
			ns1:destroy()
			ns2:destroy()
			assert(ok, err)
		end)

		it("[tc] a bridge over a veth port: each SYN counted once, as tcpdump sees it on the bridge", function()
			local ns1, ns2 = net.netns("br"), net.netns("bc")
			local ch, cap
			local ok, err = pcall(function()
				local port = net.port()
				net.must(("ip -n %s link add tibr1 type bridge"):format(ns1.name))
				net.must(("ip -n %s link add tibv0 type veth peer name tibv1 netns %s"):format(ns1.name, ns2.name))
				net.must(("ip -n %s link set tibv0 master tibr1 && ip -n %s link set tibv0 up && ip -n %s link set tibr1 up")
					:format(ns1.name, ns1.name, ns1.name))
				net.must(("ip -n %s addr add 10.204.0.1/24 dev tibr1"):format(ns1.name))
				net.must(("ip -n %s addr add 10.204.0.2/24 dev tibv1 && ip -n %s link set tibv1 up"):format(ns2.name, ns2.name))
				ch = net.session_child({ open = { mode = "tc", filter = { dport = port } } }, { netns = ns1.name })
				local _, probes = ch:ready()
				assert.matches("^attached", probes["tc/ingress:tibr1"])
				assert.matches("^skipped: a port of bridge", probes["tc/ingress:tibv0"])
				cap = net.tcpdump { iface = "tibr1", netns = ns1.name, filter = "tcp dst port " .. port }
				net.sh("sleep 0.5")
				syns(ns2.name, "10.204.0.1", port, 6)
				local pkts = cap:stop()
				cap = nil
				local dumped = net.count(pkts, function(p) return p.flagstr == "S" end)
				local r = ch:stop()
				ch = nil
				assert.are.equal(6, dumped)
				assert.are.equal(dumped, r.syn_events)
				assert.are.equal(#pkts, r.stats.matched)
				net.say("[tc] bridge over veth: %d SYNs counted, tcpdump on the bridge saw %d", r.syn_events, dumped)
			end)
			if ch then ch:kill() end
			ns1:destroy()
			ns2:destroy()
			assert(ok, err)
		end)
	end

	-- a VLAN on a veth, and a bond over a veth: the IP stack receives on the
	-- upper device; tc counts each SYN once.  This machine's kernel has
	-- neither 8021q nor bonding: they run in the guests only (tag vmonly),
	-- which load the modules (spec/vm/run EXTRA_MODULES).
	if net.has_mode("tc") then
		for _, kind in ipairs{ "vlan", "bond" } do
			it(("[tc] %s over a veth: each SYN counted once, as tcpdump sees it on the %s device #vmonly"):format(kind, kind), function()
				local ns1, ns2 = net.netns("st"), net.netns("sc")
				local ch, cap
				local ok, err = pcall(function()
					local port = net.port()
					local up = kind == "vlan" and "tivl0" or "tibd0"
					net.must(("ip -n %s link add tisv0 type veth peer name tisv1 netns %s"):format(ns1.name, ns2.name))
					local made, why
					if kind == "vlan" then
						made, why = net.sh(("ip -n %s link add link tisv0 name tivl0 type vlan id 7 && ip -n %s link add link tisv1 name tivl1 type vlan id 7")
							:format(ns1.name, ns2.name))
					else
						made, why = net.sh(("ip -n %s link add tibd0 type bond mode active-backup && " ..
							"ip -n %s link set tisv0 master tibd0 && ip -n %s link add tibd1 type bond mode active-backup && " ..
							"ip -n %s link set tisv1 master tibd1"):format(ns1.name, ns1.name, ns2.name, ns2.name))
					end
					assert(made, kind .. " is missing (spec/vm/run EXTRA_MODULES): " .. tostring(why))
					local peer = kind == "vlan" and "tivl1" or "tibd1"
					net.must(("ip -n %s link set tisv0 up && ip -n %s link set %s up && ip -n %s addr add 10.205.0.1/24 dev %s")
						:format(ns1.name, ns1.name, up, ns1.name, up))
					net.must(("ip -n %s link set tisv1 up && ip -n %s link set %s up && ip -n %s addr add 10.205.0.2/24 dev %s")
						:format(ns2.name, ns2.name, peer, ns2.name, peer))
					ch = net.session_child({ open = { mode = "tc", filter = { dport = port } } }, { netns = ns1.name })
					local _, probes = ch:ready()
					assert.matches("^attached", probes["tc/ingress:" .. up])
					if kind == "bond" then
						assert.matches("^skipped: a port of bond 'tibd0'", probes["tc/ingress:tisv0"])
					else
						assert.matches("^attached", probes["tc/ingress:tisv0"])
					end
					cap = net.tcpdump { iface = up, netns = ns1.name, filter = "tcp dst port " .. port }
					net.sh(net.IN_VM and "sleep 3" or "sleep 1") -- the bond's carrier, ARP
					syns(ns2.name, "10.205.0.1", port, 6)
					local pkts = cap:stop()
					cap = nil
					local dumped = net.count(pkts, function(p) return p.flagstr == "S" end)
					local r = ch:stop()
					ch = nil
					assert.are.equal(6, dumped, "SYNs tcpdump saw on " .. up)
					assert.are.equal(dumped, r.syn_events)
					assert.are.equal(#pkts, r.stats.matched)
					net.say("[tc] %s over veth: %d SYNs counted, tcpdump on %s saw %d", kind, r.syn_events, up, dumped)
				end)
				if ch then ch:kill() end
				ns1:destroy()
				ns2:destroy()
				assert(ok, err)
			end)
		end
	end
end)
