-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel spec for issue 10 (moved out of spec/29; RELIABILITY.md #12): a
-- kernel without BTF (an empty /sys/kernel/btf in a mount namespace) gets a
-- message naming CONFIG_DEBUG_INFO_BTF, in every mode, advising no other mode.
local net = require "support.net"

-- run a Lua chunk in a child (optionally in a netns, with env); returns its output (support/net.lua)
local lua_child = net.lua_child

describe("#kernel without kernel BTF", function()
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
end)
