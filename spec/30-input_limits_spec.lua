-- SPDX-License-Identifier: GPL-2.0-only
-- Unit specs (no kernel): bad input is refused by its real value, never
-- accepted mangled (issue 10, item 9).
local core = require "tcpinspect.core"
local cli = require "support.cli"

local function refuses(opts, pattern)
	local ok, err = pcall(core.check_options, opts)
	assert.is_false(ok, "accepted: " .. tostring(err))
	assert.matches(pattern, tostring(err), 1, true)
end

describe("input limits", function()
	it("a port out of range is named by its value, not its low 32 bits", function()
		refuses({ filter = { dport = 4294967376 } }, "port 4294967376 out of range 0-65535")
		refuses({ filter = { sport = { 80, 2 ^ 40 | 0 } } }, "port 1099511627776 out of range")
		refuses({ filter = { flags = (1 << 32) | 2 } }, "flag mask 4294967298 out of range 1-255")
	end)

	it("a string with a NUL byte is refused, not cut at it", function()
		refuses({ filter = { port = "80\0junk" } }, "'filter.port': the string holds a NUL byte")
		refuses({ filter = { saddr = "10.0.0.1\0/8" } }, "'filter.saddr': the string holds a NUL byte")
		refuses({ filter = { flags = "syn\0rst" } }, "'filter.flags': the string holds a NUL byte")
		refuses({ mode = "tc\0x" }, "'mode': the string holds a NUL byte")
		refuses({ family = "ipv4\0" }, "'family': the string holds a NUL byte")
		refuses({ dev = "lo\0x" }, "'dev': the string holds a NUL byte")
		refuses({ cgroup = "/sys/fs/cgroup\0/x" }, "'cgroup': the string holds a NUL byte")
	end)

	it("a flag list longer than 127 bytes is refused, not cut", function()
		refuses({ filter = { flags = string.rep("syn,", 32) .. "rst" } }, "flag list too long (131 bytes, at most 127)")
		assert.is_true(core.check_options { filter = { flags = "fin,syn,rst,psh,ack,urg,ece,cwr" } })
	end)

	it("max_flows is at most 2^20 (preallocated kernel memory)", function()
		refuses({ max_flows = 1 << 24 }, "'max_flows': 16777216 out of range 1-1048576")
		assert.is_true(core.check_options { max_flows = 1 << 20 })
	end)

	it("run refuses NaN for duration and interval (a busy loop, a run that never ends)", function()
		local run = core.session_methods.run
		for _, o in ipairs{ { interval = 0 / 0 }, { duration = 0 / 0 }, { interval = 0 }, { duration = -1 } } do
			local ok, err = pcall(run, {}, o)
			assert.is_false(ok)
			assert.matches("run option '%a+': expected seconds", err)
		end
	end)

	it("CLI: --ring-size that overflows and --len bounds too large are refused", function()
		local r = cli.run { "stats", "--ring-size", "18014398509481988K" }
		assert.are.equal(2, r.code)
		assert.matches("argument '--ring-size': '18014398509481988K' is too large", r.err, 1, true)
		r = cli.run { "stats", "--len", "99999999999999999999-5" }
		assert.are.equal(2, r.code)
		assert.matches("--len", r.err, 1, true)
	end)
end)
