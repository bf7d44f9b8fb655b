-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: nothing is left behind when a process dies.
--
-- A child process opens a session and is SIGKILLed.  Its programs and links
-- (the IDs it held, read from /proc/PID/fdinfo before the kill) must be gone
-- from the kernel, and no tcpinspect tc filter may remain.  Netlink tc
-- filters (kernels without tcx, or TCPINSPECT_TC_NO_TCX=1) cannot be undone
-- by the kernel: there the next start must remove the dead process's filter,
-- and only it: a foreign filter and the clsact qdisc stay.
local net = require "support.net"

local function gone(ids)
	return net.wait_until(function()
		for _, id in ipairs(ids.progs) do if net.prog_exists(id) then return false end end
		for _, id in ipairs(ids.links) do if net.link_exists(id) then return false end end
		return true
	end, 10, 0.1)
end

local function left(ids)
	local t = {}
	for _, id in ipairs(ids.progs) do if net.prog_exists(id) then t[#t + 1] = "prog " .. id end end
	for _, id in ipairs(ids.links) do if net.link_exists(id) then t[#t + 1] = "link " .. id end end
	return table.concat(t, ", ")
end

describe("#kernel cleanup", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] after SIGKILL none of the child's programs, links or tc filters remain"):format(mode), function()
			-- tc runs in a namespace of its own, so `tc filter show dev lo` is ours alone
			local ns = mode == "tc" and net.netns("k") or nil
			local ch
			local ok, err = pcall(function()
				ch = net.session_child({ open = { mode = mode, filter = { port = net.port() } } },
					{ netns = ns and ns.name })
				local m, probes = ch:ready()
				assert.are.equal(mode, m)
				local ids = net.bpf_ids(ch.pid)
				assert.is_true(#ids.progs >= 1, "the child holds no program fd")
				local netlink = false
				for _, status in pairs(probes) do
					if status:find("clsact filter", 1, true) then netlink = true end
				end
				if ns then assert.is_true(net.tc_ours(net.tc_filters("lo", ns.name)) == netlink) end
				ch:kill()
				assert.is_false(net.alive(ch.pid))
				local how = "by the kernel"
				if netlink then
					-- a netlink filter outlives its process: the next start sweeps it
					assert.is_true(net.tc_ours(net.tc_filters("lo", ns.name)), "the stale filter vanished by itself?")
					-- unscoped: the dead session attached in every namespace, and an
					-- unscoped start sweeps them all (a scoped one, its own only)
					local ch2 = net.session_child({ open = { mode = "tc" } }, { netns = ns.name })
					ch2:ready()
					ch2:stop()
					how = "by the next start's sweep"
				end
				assert(gone(ids), "still in the kernel after SIGKILL: " .. left(ids))
				if ns then
					local f = net.tc_filters("lo", ns.name)
					assert.is_false(net.tc_ours(f), "tc filter left on lo:\n" .. f)
					assert.are.equal(0, #net.tc_state_files(ch.pid))
				end
				if mode == "kprobe" then
					local ke = net.read_file("/sys/kernel/tracing/kprobe_events")
						or net.read_file("/sys/kernel/debug/tracing/kprobe_events") or ""
					assert.is_nil(ke:find("libbpf_" .. ch.pid, 1, true), "legacy kprobe event left: " .. ke)
				end
				net.say("[%s] SIGKILL: %d progs, %d links of pid %d all gone (%s)%s", mode,
					#ids.progs, #ids.links, ch.pid, how, ns and ", no tc filter on lo" or "")
			end)
			if ch then ch:kill() end
			if ns then ns:destroy() end
			assert(ok, err)
		end)
	end

	if net.has_mode("tc") then
		it("[tc] netlink path: the next start removes the dead process's stale filter, keeps a foreign filter and the qdisc", function()
			local ns = net.netns("nl")
			local ch
			local ok, err = pcall(function()
				assert(ns:exec("tc qdisc add dev lo clsact"))
				local fok, fout = ns:exec([[tc filter add dev lo ingress prio 1 handle 1 bpf bytecode "1,6 0 0 0,"]])
				assert(fok, "adding the foreign filter failed: " .. fout)
				local env = "TCPINSPECT_TC_NO_TCX=1"
				ch = net.session_child({ open = { mode = "tc", dev = "lo" } }, { netns = ns.name, env = env })
				local _, probes = ch:ready()
				assert.are.equal("attached (clsact filter)", probes["tc/ingress:lo"])
				local ids = net.bpf_ids(ch.pid)
				assert.is_true(net.tc_ours(net.tc_filters("lo", ns.name)))
				assert.are.equal(1, #net.tc_state_files(ch.pid))
				ch:kill()
				-- the kernel cannot undo a netlink filter: it is still there
				local stale = net.tc_filters("lo", ns.name)
				assert.is_true(net.tc_ours(stale), "expected the stale filter:\n" .. stale)
				assert.is_true(net.prog_exists(ids.progs[1]))
				-- the next start sweeps it
				local ch2 = net.session_child({ open = { mode = "tc", dev = "lo" } }, { netns = ns.name, env = env })
				ch2:ready()
				local during = net.tc_filters("lo", ns.name)
				ch2:stop()
				local after = net.tc_filters("lo", ns.name)
				assert.is_false(net.tc_ours(after), "tcpinspect filter left:\n" .. after)
				assert.matches("pref 1 bpf chain 0 handle 0x1", after)
				assert.matches("bytecode '1,6 0 0 0'", after)
				local _, q = ns:exec("tc qdisc show dev lo")
				assert.matches("qdisc clsact", q)
				assert.are.equal(0, #net.tc_state_files(ch.pid))
				assert(gone(ids), "the dead process's program is still loaded: " .. left(ids))
				-- while the second session ran there was exactly one filter of ours
				local n = 0
				for _ in during:gmatch("ti_tc_ingress[^\n]*") do n = n + 1 end
				assert.are.equal(1, n)
				net.say("[tc] netlink: stale filter of pid %d swept at next start; foreign filter pref 1 and clsact kept", ch.pid)
			end)
			if ch then ch:kill() end
			ns:destroy()
			assert(ok, err)
		end)
	end
end)
