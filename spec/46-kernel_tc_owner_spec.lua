-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: a tc attachment belongs to the process that made it
-- (doc/modes.md, "Cleanup after a crash").
--
-- 1. A forked child that exits with os.exit(0, true) closes its copy of
--    the session: its fds, nothing else.  The parent still receives every
--    segment, equal to tcpdump, flow for flow (each mode; tc over clsact +
--    netlink and over tcx where the kernel has it).
-- 2. A SIGKILL right after each netlink operation of a clsact + netlink
--    attach and of its close (build/failinj.so, TI_FAILINJ_NL_KILL=K) leaves
--    nothing once the next tc session started: no filter on the interface,
--    no state file.
-- 3. SIGHUP (a hang-up) to `tcpinspect watch` detaches: no filter, no state
--    file, exit 0.  So does a reader that went away (`watch | head -1`):
--    here SIGPIPE arrives ignored (LuaSocket in busted ignores it, and exec
--    keeps that), so without the CLI's trap watch would write into the
--    closed pipe for ever; from a shell it would die by SIGPIPE, filter
--    left behind.  Trapped, either way it stops, detaches, exits 0.
-- Everything runs in a network namespace of its own, so `tc filter show dev
-- lo` there is ours alone.
local net = require "support.net"
local cli = require "support.cli"

local N, DATALEN = 4, 100
local NETLINK = "TCPINSPECT_TC_NO_TCX=1"

local fork_so
local function fork_module()
	if not fork_so then
		fork_so = net.tmpfile(".so")
		net.must(("cc -shared -fPIC -I/usr/include/lua5.4 -o %s %s"):format(net.q(fork_so),
			net.q(net.ROOT .. "/spec/support/fork.c")))
	end
	return fork_so
end

local function failinj()
	local so = net.ROOT .. "/build/failinj.so"
	assert(net.read_file(so), so .. " is missing: make " .. so)
	return so
end

describe("#kernel tc ownership", function()
	local variants = {}
	for _, mode in ipairs(net.modes()) do
		if mode == "tc" then
			variants[#variants + 1] = { mode = "tc", env = NETLINK, label = "tc, clsact + netlink" }
			variants[#variants + 1] = { mode = "tc", label = "tc, tcx where the kernel has it" }
		else
			variants[#variants + 1] = { mode = mode, label = mode }
		end
	end

	for _, v in ipairs(variants) do
		it(("[%s] the parent receives every segment after a forked child exited with os.exit(0, true)"):format(v.label), function()
			local defer = net.cleanups(finally)
			-- tc in a namespace of its own (its lo is ours alone); the other
			-- modes see every namespace: a fresh 127.x address in this one
			-- (`ip netns exec` would also hide the cgroup v2 mount)
			local ns = v.mode == "tc" and net.netns("f") or nil
			if ns then defer(function() ns:destroy() end) end
			local port, addr = net.port(), ns and "127.0.0.1" or net.addr4()
			local ch = net.session_child({
				open = { mode = v.mode, dev = v.mode == "tc" and "lo" or nil, filter = { port = port } },
				listen = { addr, port }, fork = fork_module(),
			}, { netns = ns and ns.name, env = v.env })
			defer(function() ch:kill() end)
			local mode, probes = ch:ready()
			assert.are.equal(v.mode, mode)
			assert.matches("FORKED 0\n", ch:output(), 1, true)
			local netlink = false
			for _, status in pairs(probes) do
				if status:find("clsact filter", 1, true) then netlink = true end
			end
			-- netlink when asked for; otherwise tcx, or netlink on a kernel without tcx (6.1)
			if v.env == NETLINK then assert.is_true(netlink) end
			if v.mode == "tc" then
				local f = net.tc_filters("lo", ns.name)
				assert.are.equal(netlink, net.tc_ours(f), "the parent's filter after the child's exit:\n" .. f)
				assert.are.equal(netlink and 1 or 0, #net.tc_state_files(ch.pid))
			end

			local cap = net.tcpdump{ netns = ns and ns.name, iface = "lo", filter = ("host %s and tcp port %d"):format(addr, port) }
			local client = net.lua_cmd(net.ROOT .. "/spec/support/client_child.lua", addr, port, N, DATALEN)
			local _, out = net.sh((ns and "ip netns exec " .. ns.name .. " " or "") .. client)
			assert.matches("DONE " .. N, out)
			local pkts = cap:stop()
			local want = net.by_flow(pkts)
			assert.are.equal(N, net.count(pkts, function(p) return p.flags & 0x12 == 0x02 end))
			local r = ch:stop()
			assert.are.same(want, r.events)
			assert.are.same(want, r.flows)
			assert.are.equal(#pkts, r.stats.seen)
			-- and the parent's own close removed it all
			if v.mode == "tc" then
				local f = net.tc_filters("lo", ns.name)
				assert.is_false(net.tc_ours(f), "tc filter left on lo:\n" .. f)
				assert.are.equal(0, #net.tc_state_files(ch.pid))
			end
		end)
	end

	if net.has_mode("tc") then
		it("[tc] a SIGKILL after each netlink step of an attach and its close leaves nothing after the next start", function()
			local defer = net.cleanups(finally)
			local ns = net.netns("k")
			defer(function() ns:destroy() end)
			local so = failinj()
			local killed, clean = {}, false
			for k = 1, 60 do
				local ch = net.session_child({ open = { mode = "tc", dev = "lo" } },
					{ netns = ns.name, env = ("%s LD_PRELOAD=%s TI_FAILINJ_NL_KILL=%d"):format(NETLINK, so, k) })
				defer(function() ch:kill() end)
				assert(net.wait_until(function()
					return ch:output():find("READY ", 1, true) or not net.alive(ch.pid)
				end, 20), "the child neither attached nor died")
				if ch:output():find("READY ", 1, true) then
					-- attached: the kill may come in the close
					net.write_file(ch.stopfile, "stop\n")
					assert(net.wait_exit(ch.pid, 20), "the child did not stop")
				end
				if ch:output():find("RESULT ", 1, true) then
					clean = true -- K is past the last netlink operation
				else
					killed[#killed + 1] = k
				end
				-- the next start (its sweep), then its own clean close
				local nxt = net.session_child({ open = { mode = "tc", dev = "lo" } }, { netns = ns.name, env = NETLINK })
				defer(function() nxt:kill() end)
				nxt:ready()
				nxt:stop()
				local f = net.tc_filters("lo", ns.name)
				assert.is_false(net.tc_ours(f), ("killed after netlink operation %d: a filter is left after the next start:\n%s"):format(k, f))
				assert.are.equal(0, #net.tc_state_files(ch.pid), ("killed after netlink operation %d: its state file is left"):format(k))
				assert.are.equal(0, #net.tc_state_files(nxt.pid))
				if clean then break end
			end
			assert.is_true(clean, "never ran to the end")
			-- the interface dump, the qdisc, the filter, its removal: each a socket and a send
			assert.is_true(#killed >= 7, "killed at " .. table.concat(killed, ","))
			net.say("spec/46: killed after netlink operations %s", table.concat(killed, ","))
		end)

		it("[tc] SIGHUP to `tcpinspect watch` removes its filter and its state file", function()
			local defer = net.cleanups(finally)
			local ns = net.netns("h")
			defer(function() ns:destroy() end)
			local p = cli.start({ "watch", "--mode", "tc", "--dev", "lo", "--dport", tostring(net.port()) },
				{ netns = ns.name, env = NETLINK })
			defer(function() p:kill() end)
			p:ready(net.scale(20))
			local f = net.tc_filters("lo", ns.name)
			assert.is_true(net.tc_ours(f), "no netlink filter while it runs:\n" .. f)
			assert.are.equal(1, #net.tc_state_files(p.pid))
			net.kill(p.pid, "HUP")
			local r = p:wait(net.scale(20))
			assert.are.equal(0, r.code, r.err)
			assert.matches("(interrupted)", r.err, 1, true)
			f = net.tc_filters("lo", ns.name)
			assert.is_false(net.tc_ours(f), "tc filter left on lo after SIGHUP:\n" .. f)
			assert.are.equal(0, #net.tc_state_files(p.pid))
		end)

		it("[tc] a reader that went away (`watch | head -1`, SIGPIPE) removes its filter and its state file", function()
			local defer = net.cleanups(finally)
			local ns = net.netns("p")
			defer(function() ns:destroy() end)
			local port = net.port()
			local before = net.tc_state_files()
			local out, rc = net.tmpfile(".out"), net.tmpfile(".rc")
			local pipeline = ("%s 2>%s.err | head -1; echo ${PIPESTATUS[0]} >%s"):format(
				cli.cmdline({ "watch", "--mode", "tc", "--dev", "lo", "--dport", tostring(port) }, nil, NETLINK),
				net.q(out), net.q(rc))
			local pid = net.spawn("exec ip netns exec " .. ns.name .. " bash -c " .. net.q(pipeline), out)
			defer(function() net.kill(pid, "KILL") end)
			assert(net.wait_until(function()
				return (net.read_file(out .. ".err") or ""):find("Ctrl-C to stop", 1, true)
			end, 20), "watch did not start")
			assert.is_true(net.tc_ours(net.tc_filters("lo", ns.name)))
			-- segments until head has its line and watch writes into the closed pipe
			for _ = 1, 10 do
				if net.read_file(rc) then break end
				ns:exec(("timeout %d bash -c 'echo > /dev/tcp/127.0.0.1/%d' 2>/dev/null"):format(net.scale(2), port))
				net.sleep(0.2)
			end
			assert(net.wait_until(function() return net.read_file(rc) end, 20), "watch did not exit")
			assert.are.equal("0\n", net.read_file(rc), net.read_file(out .. ".err"))
			assert.matches("(interrupted)", net.read_file(out .. ".err"), 1, true)
			local f = net.tc_filters("lo", ns.name)
			assert.is_false(net.tc_ours(f), "tc filter left on lo after SIGPIPE:\n" .. f)
			assert.are.same(before, net.tc_state_files(), "a state file was left")
		end)
	end
end)
