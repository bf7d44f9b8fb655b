-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel spec for issue 10 (moved out of spec/29): set_filter failing
-- partway (a bpf() map update injected to fail by build/failinj.so) leaves
-- the active filter in force and no stale address in either slot.
local net = require "support.net"

-- run a Lua chunk in a child (optionally in a netns, with env); returns its output (support/net.lua)
local lua_child = net.lua_child

describe("#kernel set_filter rollback", function()
	if net.has_mode("tc") then
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
	end
end)
