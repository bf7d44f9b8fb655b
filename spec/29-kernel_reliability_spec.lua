-- Kernel specs for issue 10: what a crashed script, a failing syscall, a
-- reused PID, a new or stacked interface, or a namespace of its own must not
-- get wrong.  Every spec here failed on the code before the fix it names.
--
-- Traffic stays in namespaces created here; the cgroup spec uses a filter
-- port no other traffic uses.
local net = require "support.net"
local cli = require "support.cli"

local function state_file_of(pid)
	for _, name in ipairs(net.tc_state_files()) do
		if tonumber(name:match("^tc%-(%d+)%-")) == pid then return name end
	end
end

-- run a Lua chunk in a child (optionally in a netns, with env); returns its output
local function lua_child(code, opts)
	opts = opts or {}
	local path = net.tmpfile(".lua")
	net.write_file(path, ("package.path = %q .. package.path\npackage.cpath = %q .. package.cpath\n"):format(
		net.ROOT .. "/lua/?.lua;" .. net.ROOT .. "/spec/?.lua;", net.ROOT .. "/build/?.so;") .. code)
	local cmd = (opts.env and ("env " .. opts.env .. " ") or "") .. net.LUA .. " " .. net.q(path)
	if opts.netns then cmd = "ip netns exec " .. opts.netns .. " " .. cmd end
	if opts.wrap then cmd = opts.wrap(cmd) end
	local _, out = net.sh(cmd .. " 2>&1")
	os.remove(path)
	return out
end

-- n connection attempts (SYNs) from namespace ns to addr:port, each bounded
local function syns(ns, addr, port, n)
	for _ = 1, n do
		net.sh(("ip netns exec %s timeout %d bash -c 'echo > /dev/tcp/%s/%d' 2>/dev/null"):format(ns, net.scale(2), addr, port))
	end
end

describe("#kernel reliability", function()
	if net.has_mode("tc") then
		it("[tc] the CLI detaches a script's own session after the script raises (netlink filter, state file)", function()
			local ns = net.netns("cl")
			local ok, err = pcall(function()
				local before = {}
				for _, f in ipairs(net.tc_state_files()) do before[f] = true end
				local r = cli.run({ "-e", 'local s = require("tcpinspect").open{ mode = "tc", dev = "lo" }; error("boom")' },
					{ netns = ns.name, env = "TCPINSPECT_TC_NO_TCX=1" })
				assert.are.equal(1, r.code)
				assert.matches("boom", r.err)
				local f = net.tc_filters("lo", ns.name)
				assert.is_false(net.tc_ours(f), "tc filter left behind after the script's error:\n" .. f)
				for _, name in ipairs(net.tc_state_files()) do
					assert.is_true(before[name] ~= nil, "state file left behind: " .. name)
				end
				net.say("[tc] CLI: script error with its own netlink session: no filter, no state file left")
			end)
			ns:destroy()
			assert(ok, err)
		end)

		it("[tc] a failed set_filter leaves the active filter in force and no stale address behind", function()
			local ns = net.netns("sf")
			local ok, err = pcall(function()
				local out = lua_child([[
local bench = require "bench.common"
local tcpinspect = require "tcpinspect"
local ctl = os.getenv("TI_FAILINJ_FILE")
local s = assert(tcpinspect.open{ mode = "tc", dev = "lo", events = false,
  filter = { saddr = "127.0.0.1", dport = 80 } })
-- frames from 127.0.0.1 (bench.common's frame); another source by patching its bytes
local function from(last)
  local f = bench.frame{ dport = 80 }
  return f:sub(1, 26) .. "\127\0\0" .. string.char(last) .. f:sub(31)
end
local function matched(last)
  local a = s:stats(); s:test_run(from(last)); local b = s:stats()
  return b.matched - a.matched
end
-- BPF_MAP_UPDATE_ELEM (2) fails with ENOMEM (12) after 2 updates succeed
local f = assert(io.open(ctl, "w")); f:write("2 12 2\n"); f:close()
print("FAILED", s:set_filter{ saddr = { "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5" }, dport = 80 })
os.remove(ctl)
print("AFTER_FAIL", matched(1), matched(2), matched(3), matched(5))
print("SET", s:set_filter{ saddr = "127.0.0.9", dport = 80 })
print("AFTER_SET", matched(1), matched(2), matched(3), matched(9))
print("SET2", s:set_filter{ saddr = "127.0.0.7", dport = 80 })
print("AFTER_SET2", matched(1), matched(2), matched(3), matched(9), matched(7))
s:close()
]], { netns = ns.name, env = ("TI_FAILINJ_FILE=%s LD_PRELOAD=%s/build/failinj.so"):format(
					net.tmpfile(".ctl"), net.ROOT) })
				assert.matches("FAILED\tnil\tENOMEM: [^\n]*\t12\n", out)
				-- the old filter (127.0.0.1) still in force, none of the new one
				assert.matches("AFTER_FAIL\t1\t0\t0\t0\n", out, 1, true)
				-- the next filter: only its own address, none of the half-written ones
				assert.matches("AFTER_SET\t0\t0\t0\t1\n", out, 1, true)
				-- and the slot the failure wrote to, used again, holds only the new one
				assert.matches("AFTER_SET2\t0\t0\t0\t0\t1\n", out, 1, true)
				net.say("[tc] set_filter failing at its 3rd address: old filter kept, no stale address in either slot")
			end)
			ns:destroy()
			assert(ok, err)
		end)

		it("[tc] the sweep trusts the state file's lock, not its PID", function()
			local ns = net.netns("sw")
			local ch, live
			local ok, err = pcall(function()
				local env = "TCPINSPECT_TC_NO_TCX=1"
				-- a dead owner whose PID was reused: its file renamed to PID 1's name
				ch = net.session_child({ open = { mode = "tc", dev = "lo" } }, { netns = ns.name, env = env })
				ch:ready()
				local name = assert(state_file_of(ch.pid), "no state file")
				ch:kill()
				local reused = name:gsub("^tc%-%d+%-", "tc-1-")
				net.must(("mv /run/tcpinspect/%s /run/tcpinspect/%s"):format(name, reused))
				assert.is_true(net.tc_ours(net.tc_filters("lo", ns.name)))
				-- a live owner whose PID looks dead (another PID namespace)
				live = net.session_child({ open = { mode = "tc", dev = "lo" } }, { netns = ns.name, env = env })
				live:ready()
				local lname = assert(state_file_of(live.pid), "no state file for the live owner")
				local far = lname:gsub("^tc%-%d+%-", "tc-4194000-")
				net.must(("mv /run/tcpinspect/%s /run/tcpinspect/%s"):format(lname, far))
				-- the next start sweeps the dead one, keeps the live one
				local ch3 = net.session_child({ open = { mode = "tc", dev = "lo" } }, { netns = ns.name, env = env })
				ch3:ready()
				local during = net.tc_filters("lo", ns.name)
				ch3:stop()
				local n = 0
				for _ in during:gmatch("ti_tc_ingress[^\n]*") do n = n + 1 end
				assert.are.equal(2, n, "expected the live owner's and the new session's filters only:\n" .. during)
				assert.is_nil(net.read_file("/run/tcpinspect/" .. reused), "the dead owner's file was not swept")
				assert.is_truthy(net.read_file("/run/tcpinspect/" .. far), "the live owner's file was swept")
				local res = live:stop()
				assert.is_table(res.stats)
				live = nil
				local after = net.tc_filters("lo", ns.name)
				assert.is_false(net.tc_ours(after), "filters left:\n" .. after)
				os.remove("/run/tcpinspect/" .. far)
				net.say("[tc] sweep: dead owner under a live PID swept, live owner under a dead PID kept")
			end)
			if ch then ch:kill() end
			if live then live:kill() end
			ns:destroy()
			assert(ok, err)
		end)

		it("[tc] a dead owner's state file in a network namespace that is gone: swept by the next session anywhere", function()
			local ns = net.netns("gone")
			local ch
			local ok, err = pcall(function()
				ch = net.session_child({ open = { mode = "tc", dev = "lo" } },
					{ netns = ns.name, env = "TCPINSPECT_TC_NO_TCX=1" })
				ch:ready()
				local name = assert(state_file_of(ch.pid), "no state file")
				local ino = tonumber(net.must("stat -L -c %i /run/netns/" .. ns.name):match("%d+"))
				assert.matches("^" .. ino .. " ", net.read_file("/run/tcpinspect/" .. name))
				ch:kill() -- SIGKILL: its filter and state file stay
				ch = nil
				assert.is_truthy(net.read_file("/run/tcpinspect/" .. name))
				ns:destroy() -- the namespace and its filter are gone
				local s = net.open{ mode = "tc", dev = "lo", events = false }
				s:close()
				assert.is_nil(net.read_file("/run/tcpinspect/" .. name), "the file of a gone namespace was kept")
				net.say("[tc] sweep: state file %s of netns %d (deleted) removed by a session in this one", name, ino)
			end)
			if ch then ch:kill() end
			ns:destroy()
			assert(ok, err)
		end)

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

	for _, mode in ipairs(net.modes()) do
		it(("[%s] without kernel BTF: the message names CONFIG_DEBUG_INFO_BTF and advises no other mode"):format(mode), function()
			-- a mount namespace where /sys/kernel/btf is an empty tmpfs
			local out = lua_child(([[
local s, err = require("tcpinspect").open{ mode = %q, dev = %s }
print("OPEN", s, err)
]]):format(mode, mode == "tc" and '"lo"' or "nil"),
				{ wrap = function(cmd) return "unshare -m sh -c " .. net.q("mount -t tmpfs none /sys/kernel/btf && " .. cmd) end })
			assert.matches("OPEN\tnil\t[^\n]*" .. mode .. ": this kernel has no BTF", out)
			assert.matches("CONFIG_DEBUG_INFO_BTF=y", out, 1, true)
			assert.not_matches("mode='", out)
		end)
	end

	if net.has_mode("tc") then
		it("[tc] a trapped signal ends one run(), not every later one", function()
			local ns = net.netns("sg")
			local ok, err = pcall(function()
				local out = lua_child([[
local tcpinspect = require "tcpinspect"
local s = assert(tcpinspect.open{ mode = "tc", dev = "lo", events = false })
tcpinspect.trap_signals{ "USR1" }
local pid = io.open("/proc/self/stat"):read("n")
os.execute("kill -USR1 " .. pid)
print("RUN1", select(2, s:run{ duration = 5 }), tcpinspect.signaled())
print("RUN2", select(2, s:run{ duration = 0.3 }))
os.execute("kill -USR1 " .. pid)
print("RUN3", select(2, s:run{ duration = 5 }))
s:close()
]], { netns = ns.name })
				assert.matches("RUN1\tsignal\tUSR1\n", out, 1, true)
				assert.matches("RUN2\tduration\n", out, 1, true)
				assert.matches("RUN3\tsignal\n", out, 1, true)
			end)
			ns:destroy()
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

	if net.has_mode("cgroup") then
		it("[auto] after tc fails, cgroup mode's events do not carry tc's netns", function()
			-- unshare -n: a namespace with lo down (tc finds no interface),
			-- the host's mounts (cgroup finds its root); without CAP_SYS_ADMIN
			-- (setpriv) unscoped tc cannot enter the other namespaces either
			local ok, err = pcall(function()
				local out = lua_child([[
local bench = require "bench.common"
local s = assert(require("tcpinspect").open{ mode = "auto", filter = { dport = 47931 } })
print("MODE", s.mode)
local got = {}
s:on_packet(function(p) got[#got + 1] = p.netns end)
s:test_run(bench.frame{ dport = 47931 })
s:poll(100)
print("EVENTS", #got, got[1])
print("REASON", (s.fallback_reason:gsub("\n", " | ")))
s:close()
]], { env = "TCPINSPECT_HIDE_FUNCS=tcp_v4_rcv,tcp_v6_rcv", wrap = function(cmd)
					return "unshare -n setpriv --bounding-set=-all,+bpf,+net_admin,+perfmon " .. cmd
				end })
				assert.matches("MODE\tcgroup\n", out)
				assert.matches("REASON\t[^\n]*tc: ", out)
				assert.matches("EVENTS\t1\t0\n", out, 1, true)
				net.say("[auto] fentry, kprobe, tc failed; cgroup events carry netns 0")
			end)
			assert(ok, err)
		end)
	end
end)
