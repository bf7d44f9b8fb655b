-- SPDX-License-Identifier: GPL-2.0-only
-- Unit specs: option and filter checking.  No root, no kernel: every bad
-- input raises before anything is loaded.
local tcpinspect = require "tcpinspect"

local function err_of(opts)
	local ok, err = pcall(tcpinspect.open, opts)
	assert.is_false(ok, "expected an error")
	return err
end

describe("open() options", function()
	it("rejects unknown keys, naming them", function()
		assert.matches("unknown option 'bogus'", err_of{ bogus = 1 })
		assert.matches("unknown filter key 'dprot'", err_of{ filter = { dprot = 22 } })
	end)
	it("rejects a bad mode", function()
		assert.matches("option 'mode': 'xdp' is not one of", err_of{ mode = "xdp" })
		assert.matches("option 'mode': expected a string", err_of{ mode = 3 })
	end)
	it("rejects out-of-range and malformed ports", function()
		assert.matches("option 'filter.dport': port 70000 out of range", err_of{ filter = { dport = 70000 } })
		assert.matches("option 'filter.sport': port %-1 out of range", err_of{ filter = { sport = -1 } })
		assert.matches("option 'filter.dport': '80%-70': range 80%-70 is reversed", err_of{ filter = { dport = "80-70" } })
		assert.matches("option 'filter.dport': 'http' is not a port", err_of{ filter = { dport = "http" } })
		assert.matches("option 'filter.port': 1.5 is not an integer", err_of{ filter = { port = 1.5 } })
		assert.matches("option 'filter.dport': expected a port", err_of{ filter = { dport = true } })
		assert.matches("option 'filter.dport': empty list", err_of{ filter = { dport = {} } })
	end)
	it("rejects malformed addresses and CIDRs", function()
		assert.matches("option 'filter.saddr': '10.0.0.0/33' is not", err_of{ filter = { saddr = "10.0.0.0/33" } })
		assert.matches("option 'filter.daddr': '300.1.1.1' is not", err_of{ filter = { daddr = "300.1.1.1" } })
		assert.matches("option 'filter.host': 'fe80::/129' is not", err_of{ filter = { host = "fe80::/129" } })
		assert.matches("option 'filter.saddr': list item 2 is a number", err_of{ filter = { saddr = { "::1", 5 } } })
	end)
	it("rejects unknown flags", function()
		assert.matches("option 'filter.flags': unknown TCP flag 'syn!'", err_of{ filter = { flags = { "syn!" } } })
		assert.matches("option 'filter.flags': flag mask 300 out of range", err_of{ filter = { flags = 300 } })
	end)
	it("rejects bad lengths", function()
		assert.matches("option 'filter.len.max': min 10 is greater than max 5", err_of{ filter = { len = { min = 10, max = 5 } } })
		assert.matches("unknown filter.len key 'maximum'", err_of{ filter = { len = { maximum = 5 } } })
		assert.matches("option 'filter.len': expected a length", err_of{ filter = { len = "big" } })
	end)
	it("rejects a ring size that is not a power-of-two multiple of the page", function()
		assert.matches("option 'ring_size': 1000 is not a power of two", err_of{ ring_size = 1000 })
		assert.matches("option 'ring_size': 2048 is not a power of two multiple of the page", err_of{ ring_size = 2048 })
		assert.matches("option 'ring_size': %-4096 out of range", err_of{ ring_size = -4096 })
		assert.matches("option 'ring_size': expected an integer, got string", err_of{ ring_size = "4M" })
	end)
	it("rejects bad sample, max_flows, wakeup, events, family", function()
		assert.matches("option 'sample': 0 out of range", err_of{ sample = 0 })
		assert.matches("option 'max_flows': 0 out of range", err_of{ max_flows = 0 })
		assert.matches("option 'wakeup': %-1 out of range", err_of{ wakeup = -1 })
		assert.matches("option 'events': expected true or false", err_of{ events = "no" })
		assert.matches("option 'family': 'ipv5' is not one of", err_of{ family = "ipv5" })
	end)
	it("rejects bad netns, container and cgroup scopes, naming the option", function()
		-- the error object names the option, for the CLI to blame the flag
		assert.are.equal("netns", err_of{ netns = -1 }.option)
		assert.matches("option 'netns': inode %-1 out of range 1%-4294967295", err_of{ netns = -1 })
		assert.matches("option 'netns': inode 4294967296 out of range", err_of{ netns = 1 << 32 })
		assert.matches("option 'netns': expected a name .* got a non%-integer number", err_of{ netns = 1.5 })
		assert.matches("option 'netns': expected a name .* got table", err_of{ netns = {} })
		assert.matches("option 'netns': an empty name", err_of{ netns = "" })
		assert.matches("option 'netns': no network namespace named 'ti%-no%-such%-ns' %(/run/netns/ti%-no%-such%-ns: " ..
			"No such file or directory; see `ip netns list`%)", err_of{ netns = "ti-no-such-ns" })
		assert.matches("option 'netns': cannot open '/nonexistent/ns': No such file or directory",
			err_of{ netns = "/nonexistent/ns" })
		-- a file any user can read that is not a namespace
		assert.matches("option 'netns': '/etc/hostname' is not a network namespace$", err_of{ netns = "/etc/hostname" })
		assert.are.equal("container", err_of{ container = "1" }.option)
		assert.matches("option 'container': expected a process id %(an integer%), got string", err_of{ container = "1" })
		assert.matches("option 'container': process id 0 out of range", err_of{ container = 0 })
		local f = assert(io.open("/proc/sys/kernel/pid_max"))
		local beyond = tonumber(f:read("l")) + 1
		f:close()
		assert.matches("option 'container': no process " .. beyond .. "$", err_of{ container = beyond })
		assert.matches("option 'container': give either container %(its netns and cgroup%) or netns, not both",
			err_of{ container = 1, netns = 1 })
		assert.matches("option 'container': give either container %(its netns and cgroup%) or cgroup, not both",
			err_of{ container = 1, cgroup = "/x" })
		assert.matches("option 'cgroup': tc mode runs before the socket lookup and cannot tell a segment's cgroup",
			err_of{ mode = "tc", cgroup = "/x" })
		assert.matches("option 'cgroup': cannot read '/nonexistent/cg': No such file or directory$",
			err_of{ cgroup = "/nonexistent/cg" })
		assert.matches("option 'cgroup': '/etc' is not a cgroup v2 directory", err_of{ cgroup = "/etc" })
		assert.matches("option 'cgroup': expected a cgroup v2 directory path, got number", err_of{ cgroup = 5 })
	end)
	it("rejects unknown interfaces", function()
		assert.matches("option 'dev': no interface named 'nosuch0'", err_of{ dev = "nosuch0" })
		assert.matches("option 'filter.dev': no interface named 'nosuch0'", err_of{ filter = { dev = "nosuch0" } })
	end)
	it("raises an error object that names the option, for programs to read", function()
		local err = err_of{ filter = { dport = 70000 } }
		assert.are.equal("table", type(err))
		assert.are.equal("filter.dport", err.option)
		assert.are.equal("port 70000 out of range 0-65535", err.reason)
		assert.are.equal("tcpinspect: option 'filter.dport': port 70000 out of range 0-65535", err.message)
		assert.are.equal(err.message, tostring(err))
		err = err_of{ filter = { len = { min = 10, max = 5 } } }
		assert.are.same({ "filter.len.max", "min 10 is greater than max 5" }, { err.option, err.reason })
		-- an unknown key: the key's path
		assert.are.equal("filter.dprot", err_of{ filter = { dprot = 22 } }.option)
		assert.are.equal("bogus", err_of{ bogus = 1 }.option)
		assert.are.equal("filter.len.maximum", err_of{ filter = { len = { maximum = 5 } } }.option)
		-- check_options raises the same object
		local ok, cerr = pcall(tcpinspect.check_options, { ring_size = 1000 })
		assert.is_false(ok)
		assert.are.same({ "ring_size", "1000 is not a power of two multiple of the page size (4096)" },
			{ cerr.option, cerr.reason })
	end)
	it("rejects a non-table", function()
		assert.matches("expected an options table, got string", err_of("fentry"))
	end)
end)

describe("errno names", function()
	it("are the real names, as fail tuples give them", function()
		local want = { [1] = "EPERM", [2] = "ENOENT", [9] = "EBADF", [12] = "ENOMEM", [13] = "EACCES",
			[16] = "EBUSY", [22] = "EINVAL", [24] = "EMFILE", [23] = "ENFILE", [28] = "ENOSPC",
			[95] = "EOPNOTSUPP", [7] = "E2BIG", [110] = "ETIMEDOUT", [524] = "ENOTSUPP" }
		for errno, name in pairs(want) do
			assert.are.equal(name, tcpinspect.errname(errno))
		end
		-- a number no libc names still gets a name that says what it is
		assert.are.equal("E4000", tcpinspect.errname(4000))
		assert.has_error(function() tcpinspect.errname(0) end)
	end)
end)
