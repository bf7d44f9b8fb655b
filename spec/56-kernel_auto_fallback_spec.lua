-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel spec for issue 10 (moved out of spec/29): when auto mode falls back
-- past tc to cgroup, the records do not carry the netns tc would have set.
--
-- The filter port is one no other traffic uses.
local net = require "support.net"

-- run a Lua chunk in a child (optionally in a netns, with env); returns its output (support/net.lua)
local lua_child = net.lua_child

describe("#kernel auto fallback", function()
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
