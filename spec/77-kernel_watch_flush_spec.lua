-- SPDX-License-Identifier: GPL-2.0-only
-- `tcpinspect watch`'s stdout (issue 23, fewer syscalls per batch): the
-- command loop (cli.drive) flushes every 20 ms (FLUSH_EVERY), its polls
-- waiting no longer than that, so
--   - a segment's line is out while watch runs, within two polls: a
--     connection's three handshake segments are three lines in the file
--     before anything else happens;
--   - under a flood the file is written once per full stdio buffer (4 KiB)
--     or per 20 ms, not once per poll's few lines (72451 write calls for
--     about 400 k lines before, against this bound's 10047): /proc/PID/io's
--     syscw stays within
--     bytes / 4096 + elapsed / 0.02 + 4, and every delivered segment is a
--     line, none lost.
-- tc on lo, in every tier that has tc.
local net = require "support.net"
local cli = require "support.cli"
local socket = require "socket"

local FLUSH_EVERY = 0.02 -- lua/tcpinspect/cli.lua

-- write(2) calls of process pid so far
local function syscw(pid)
	local io_text = assert(net.read_file(("/proc/%d/io"):format(pid)))
	return tonumber(io_text:match("syscw:%s*(%d+)"))
end

local function start_watch(port, defer)
	local p = cli.start { "watch", "--mode", "tc", "--dev", "lo", "--port", tostring(port) }
	defer(function() p:kill() end)
	return p:ready(net.scale(20))
end

-- the summary's counters: "... seen N, ..., delivered N, dropped N, ..."
local function summary(err)
	local t = {}
	for k, v in err:gsub(",", ""):gmatch("(%a+) (%d+)") do t[k] = tonumber(v) end
	return t
end

describe("#kernel watch's stdout", function()
	if not net.has_mode("tc") then return end

	it("has a connection's three handshake segments as three lines while it runs #cli", function()
		local defer = net.cleanups(finally)
		local port = net.port()
		local srv = net.server("127.0.0.1", port)
		defer(function() srv:close() end)
		local p = start_watch(port, defer)
		local c = assert(socket.tcp())
		defer(function() c:close() end)
		c:settimeout(net.scale(5))
		assert(c:connect("127.0.0.1", port))
		local conn = assert(srv:accept())
		defer(function() conn:close() end)
		-- the lines come without the command's exit, nor any other segment
		local got = net.wait_until(function()
			local l = cli.lines(p:stdout())
			return #l >= 3 and l
		end, net.scale(5))
		assert.is_truthy(got, "no 3 lines while watch runs: " .. p:stdout())
		assert.is_true(net.alive(p.pid))
		net.sleep(net.scale(0.2))
		got = cli.lines(p:stdout())
		assert.are.equal(3, #got, p:stdout())
		assert.matches("Flags %[S%]", got[1])
		assert.matches("Flags %[S%.%]", got[2])
		assert.matches("Flags %[%.%]", got[3])
		p:interrupt()
		assert.are.equal(0, p:wait(net.scale(20)).code)
	end)

	it("writes per full buffer or per 20 ms under a flood, every delivered segment a line #cli", function()
		local defer = net.cleanups(finally)
		local port = net.port()
		local p = start_watch(port, defer)
		local w0, t0 = syscw(p.pid), socket.gettime()
		net.sh(("timeout -s INT %d hping3 -q -S -p %d --flood 127.0.0.1 >/dev/null 2>&1"):format(2, port))
		net.sleep(net.scale(0.3))
		local w1, t1 = syscw(p.pid), socket.gettime()
		p:interrupt()
		local r = p:wait(net.scale(30))
		assert.are.equal(0, r.code, r.err)
		local st = summary(r.err)
		local n = select(2, r.out:gsub("\n", ""))
		assert.is_true(st.delivered > 1000, r.err) -- a flood: SYNs and their RSTs
		assert.are.equal(st.matched, st.delivered, r.err)
		assert.are.equal(0, st.dropped, r.err)
		assert.are.equal(st.delivered, n)
		local bound = math.ceil(#r.out / 4096) + math.ceil((t1 - t0) / FLUSH_EVERY) + 4
		assert.is_true(w1 - w0 <= bound,
			("%d write calls for %d lines (%d bytes) in %.2f s: more than %d"):format(w1 - w0, n, #r.out,
				t1 - t0, bound))
	end)
end)
