-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs for issue 10 (moved out of spec/29): tc's own filters and
-- state files after a script error, a reused PID, a live owner in another
-- PID namespace, or a network namespace that is gone.  Every spec here
-- failed on the code before the fix it names.
--
-- Traffic stays in namespaces created here.
local net = require "support.net"
local cli = require "support.cli"

describe("#kernel tc state after a crash", function()
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

		it("[tc] the sweep trusts the state file's lock, not its PID", function()
			local ns = net.netns("sw")
			local ch, live
			local ok, err = pcall(function()
				local env = "TCPINSPECT_TC_NO_TCX=1"
				-- a dead owner whose PID was reused: its file renamed to PID 1's name
				ch = net.session_child({ open = { mode = "tc", dev = "lo" } }, { netns = ns.name, env = env })
				ch:ready()
				local name = assert(net.tc_state_files(ch.pid)[1], "no state file")
				ch:kill()
				local reused = name:gsub("^tc%-%d+%-", "tc-1-")
				net.must(("mv /run/tcpinspect/%s /run/tcpinspect/%s"):format(name, reused))
				assert.is_true(net.tc_ours(net.tc_filters("lo", ns.name)))
				-- a live owner whose PID looks dead (another PID namespace)
				live = net.session_child({ open = { mode = "tc", dev = "lo" } }, { netns = ns.name, env = env })
				live:ready()
				local lname = assert(net.tc_state_files(live.pid)[1], "no state file for the live owner")
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
				local name = assert(net.tc_state_files(ch.pid)[1], "no state file")
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
	end
end)
