-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel spec for issue 10 (moved out of spec/29): a signal trapped with
-- tcpinspect.trap_signals ends one run(), not every later one.
local net = require "support.net"

-- run a Lua chunk in a child (optionally in a netns, with env); returns its output (support/net.lua)
local lua_child = net.lua_child

describe("#kernel trapped signals", function()
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
end)
