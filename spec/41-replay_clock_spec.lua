-- SPDX-License-Identifier: GPL-2.0-only
-- Replay's clock: its cost follows the frames, never the capture's span
-- (doc/reference.md, tcpinspect.replay: "Gaps and backwards time").
--
-- Fixtures: six of tcpdump's own test captures (spec/fixtures/tcpdump/,
-- from Debian's tcpdump 4.99.3 source, tests/; their clocks jump by months
-- or years, go backwards, or end 615 ns before 2^64), and captures made
-- here with string.pack:
--   gap.pcap      2 SYNs, at t = 1 s and t = 4e9 s (classic pcap, whose
--                 seconds field is unsigned 32-bit)
--   back.pcap     3 SYNs stamped 100 s, 50.000005 s, 200 s
--   near.pcapng   2 SYNs stamped 2^64 - 615 ns and 2^64 - 115 ns
--                 (if_tsresol 9: nanoseconds)
-- Every command runs in a child under timeout(1) (10 s), so that the old
-- code, which stepped the clock 100 ms at a time (11 hours for gap.pcap,
-- for ever for near.pcapng), fails here instead of hanging.
local pcapfile = require "support.pcapfile"
local ti = require "tcpinspect"

local BIN = "build/bin/tcpinspect"
local TCPDUMP_DIR = "spec/fixtures/tcpdump/"

local function syn(sport)
	local tcp = string.pack(">I2I2I4I4BBI2I2I2", sport, 80, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
	return string.pack(">BBI2I2I2BBI2c4c4", 0x45, 0, 20 + #tcp, 1, 0, 64, 6, 0,
		"\10\0\0\1", "\10\0\0\2") .. tcp
end

-- a pcapng file: one section, one LINKTYPE_RAW interface with nanosecond
-- timestamps, an enhanced packet block per frame (ts: a 64-bit count)
local function pcapng(frames)
	local function block(btype, body)
		return string.pack("<I4I4", btype, 12 + #body) .. body .. string.pack("<I4", 12 + #body)
	end
	local out = {
		block(0x0A0D0D0A, string.pack("<I4I2I2i8", 0x1A2B3C4D, 1, 0, -1)),
		block(1, string.pack("<I2I2I4", 101, 0, 65535) .. string.pack("<I2I2Bxxx", 9, 1, 9) .. string.pack("<I2I2", 0, 0)),
	}
	for _, f in ipairs(frames) do
		local data = f.data .. ("\0"):rep((4 - #f.data % 4) % 4)
		out[#out + 1] = block(6, string.pack("<I4I4I4I4I4", 0, f.ts >> 32, f.ts & 0xffffffff, #f.data, #f.data) .. data)
	end
	return table.concat(out)
end

local dir = os.tmpname()
os.remove(dir)
assert(os.execute("mkdir -m 0755 " .. dir))
local GAP, BACK, NEAR = dir .. "/gap.pcap", dir .. "/back.pcap", dir .. "/near.pcapng"
pcapfile.write(GAP, pcapfile.LINKTYPE_RAW, { { sec = 1, data = syn(1001) }, { sec = 4000000000, data = syn(1002) } })
pcapfile.write(BACK, pcapfile.LINKTYPE_RAW, {
	{ sec = 100, data = syn(1001) }, { sec = 50, usec = 5, data = syn(1002) }, { sec = 200, data = syn(1003) } })
do
	local f = assert(io.open(NEAR, "wb"))
	-- -615 and -115 as unsigned 64-bit counts: 2^64 - 615 ns, 2^64 - 115 ns
	f:write(pcapng { { ts = -615, data = syn(1001) }, { ts = -115, data = syn(1002) } })
	f:close()
end

local function write(path, text)
	local f = assert(io.open(path, "w"))
	f:write(text)
	f:close()
	return path
end

-- every(1) and the packets, with elapsed() at each, in the script's order
local TICKS = write(dir .. "/ticks.lua", [[
every(1, function(e) print(string.format("tick %.0f", e)) end)
on_packet(function(p) print(string.format("pkt %d %d %.0f", p.sport, p.ts, elapsed())) end)
]])
local EVERY50 = write(dir .. "/every50.lua", [[
every(50, function(e) print(string.format("tick %.0f", e)) end)
on_packet(function(p) print(string.format("pkt %d %d %.0f", p.sport, p.ts, elapsed())) end)
]])

-- Run the CLI in a child (TZ=UTC: watch prints the time of day), bounded by
-- timeout(1): stdout, stderr's last line, exit code, seconds taken.
local function cli(args)
	local err = dir .. "/stderr"
	local t0 = ti.monotonic()
	local p = assert(io.popen("TZ=UTC timeout 10 " .. BIN .. " " .. args .. " 2>" .. err))
	local out = p:read("a")
	local ok, _, code = p:close()
	local took = ti.monotonic() - t0
	local f = assert(io.open(err))
	local e = f:read("a")
	f:close()
	return out, e:match("([^\n]*)\n?$"), ok and 0 or code, took
end

local function lines(s)
	local t = {}
	for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
	return t
end

local function tcpdump_tcp_count(file)
	local p = assert(io.popen("tcpdump -nqr " .. file .. " tcp 2>/dev/null | wc -l"))
	local n = tonumber(p:read("a"):match("%d+"))
	p:close()
	return n
end

describe("replay: cost follows frames, not span", function()
	teardown(function() os.execute("rm -rf " .. dir) end)

	-- file, segments printed, segments the parse refused (errors): together
	-- the TCP segments tcpdump reads in the file
	local TCPDUMP = {
		{ "babel_update_oobr.pcap", 2, 0 },
		{ "kday3.pcap", 8, 1 },
		{ "kday4.pcap", 10, 1 },
		{ "kday7.pcap", 10, 1 },
		{ "of13_ericsson.pcapng", 174, 0 },
		{ "smb_data_print-segv.pcapng", 4, 0 },
	}
	for _, c in ipairs(TCPDUMP) do
		local name, printed, errors = c[1], c[2], c[3]
		local file = TCPDUMP_DIR .. name
		it("watch, top, stats and a script with every() end with " .. name .. " in under 2 s", function()
			assert.are.equal(tcpdump_tcp_count(file), printed + errors)
			local out, last, code, took = cli("watch -r " .. file)
			assert.are.equal(0, code, last)
			assert.is_true(took < 2, "watch took " .. took .. " s")
			assert.are.equal(printed, #lines(out))
			assert.matches("^tcpinspect: " .. printed .. " packets printed in %S+ %(end%); seen " .. printed ..
				",.* errors " .. errors .. ",", last)
			for _, cmd in ipairs { "top -r " .. file, "stats -r " .. file, "-r " .. file .. " " .. TICKS } do
				local _, l, rc, t = cli(cmd)
				assert.are.equal(0, rc, cmd .. ": " .. l)
				assert.is_true(t < 2, cmd .. " took " .. t .. " s")
				assert.matches("%(end%); seen " .. printed .. ",", l)
			end
		end)
	end

	for _, file in ipairs { GAP, BACK, NEAR } do
		local base = file:match("[^/]+$")
		it("watch, top, stats and a script with every() end with the crafted " .. base .. " in under 2 s", function()
			for _, cmd in ipairs { "watch -r ", "top -r ", "stats -r " } do
				local _, l, rc, t = cli(cmd .. file)
				assert.are.equal(0, rc, cmd .. ": " .. l)
				assert.is_true(t < 2, cmd .. " took " .. t .. " s")
				assert.matches("%(end%)", l)
			end
			local _, l, rc, t = cli("-r " .. file .. " " .. TICKS)
			assert.are.equal(0, rc, l)
			assert.is_true(t < 2, "the script took " .. t .. " s")
		end)
	end

	it("prints both frames of a 2-frame capture 4e9 s apart", function()
		local out, last, code = cli("watch -r " .. GAP)
		assert.are.equal(0, code, last)
		assert.are.equal("00:00:01.000000 IP 10.0.0.1.1001 > 10.0.0.2.80: Flags [S], seq 1, win 65535, length 0\n" ..
			"07:06:40.000000 IP 10.0.0.1.1002 > 10.0.0.2.80: Flags [S], seq 1, win 65535, length 0\n", out)
		assert.matches("2 packets printed in %S+ %(end%)", last)
	end)

	it("fires the ticks of a gap once, at the last of them, elapsed covering the gap", function()
		local out, last, code = cli("-r " .. GAP .. " " .. TICKS)
		assert.are.equal(0, code, last)
		assert.are.equal(4, #lines(out)) -- a count first: a message listing millions of lines would take hours
		assert.are.same({
			"pkt 1001 1000000000 0",
			"tick 3999999998",                 -- the ticks at 2 .. 4e9-1 s, once
			"pkt 1002 4000000000000000000 3999999999",
			"tick 3999999999",
		}, lines(out))
		-- stats' reports: one per tick that fired
		local sout = cli("stats -r " .. GAP)
		local el = {}
		for e in sout:gmatch("elapsed=(%S+)") do el[#el + 1] = e end
		assert.are.equal(3, #el) -- 2 reports and the final line
		assert.are.same({ "3999999998.000", "3999999999.000" }, { el[1], el[2] })
	end)

	it("session:run: on_interval once across a gap, then the frame", function()
		-- in a child: the old code's run would take 11 hours
		local code = write(dir .. "/run.lua", [=[
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local ti = require "tcpinspect"
local s <close> = assert(ti.replay { file = arg[1] })
s:on_packet(function(p) print("pkt", p.sport) end)
local n, why = s:run { interval = 1, on_interval = function(_, e) print("interval", e) end }
print("run", n, why, s:now(), s.next_ts)
]=])
		local p = assert(io.popen("timeout 10 lua5.4 " .. code .. " " .. GAP .. " 2>&1"))
		local out = p:read("a")
		p:close()
		assert.are.equal(5, #lines(out))
		assert.are.same({ "pkt\t1001", "interval\t3999999998.0", "pkt\t1002",
			"interval\t3999999999.0", "run\t2\tend\t4000000000.0\tinf" }, lines(out))
	end)

	it("--duration in capture time ends a replay, across a gap and at 2^64 ns", function()
		local out, last, code, took = cli("watch -r " .. GAP .. " --duration 10")
		assert.are.equal(0, code, last)
		assert.is_true(took < 2)
		assert.are.equal(1, #lines(out))
		assert.matches("^tcpinspect: 1 packets printed in %S+ %(duration%)", last)
		-- the clock cannot pass 2^64 - 1 ns: the duration still ends the run
		out, last, code, took = cli("watch -r " .. NEAR .. " --duration 1")
		assert.are.equal(0, code, last)
		assert.is_true(took < 2)
		assert.are.equal(2, #lines(out))
		assert.matches("^tcpinspect: 2 packets printed in %S+ %(duration%)", last)
		local _, l2 = cli("stats -r " .. NEAR .. " --duration 5")
		assert.matches("%(duration%); seen 2,", l2)
	end)

	it("a clock near 2^64 saturates: p.ts is math.maxinteger, now() ends at 2^64 ns", function()
		local s <close> = assert(ti.replay { file = NEAR })
		local ts = {}
		s:on_packet(function(p) ts[#ts + 1] = p.ts end)
		assert.are.equal((2 ^ 64 - 615) / 1e9, s.next_ts)
		assert.are.equal(2, s:poll(0x7fffffff))
		assert.are.same({ math.maxinteger, math.maxinteger }, ts)
		assert.are.equal(2 ^ 64 / 1e9, s:now()) -- 2^64 - 115 ns as a float: the horizon saturated, no wrap
		assert.are.equal(0, s:poll(1000))
		assert.are.equal(0, s:poll(math.maxinteger)) -- a replay's poll takes any length
		assert.are.equal(2 ^ 64 / 1e9, s:now())
	end)

	it("a frame that is not ours (ARP) does not move the clock", function()
		local eth = ("\2"):rep(12)
		local skip = dir .. "/skip.pcap"
		pcapfile.write(skip, pcapfile.LINKTYPE_ETHERNET, {
			{ sec = 10, data = eth .. "\8\0" .. syn(1001) },
			{ sec = 20, data = eth .. "\8\6" .. ("\0"):rep(28) },
			{ sec = 30, data = eth .. "\8\0" .. syn(1002) } })
		local s <close> = assert(ti.replay { file = skip })
		local at = {}
		s:on_packet(function(p) at[#at + 1] = { p.sport, s:now() } end)
		assert.are.equal(1, s:poll(15000)) -- to 25 s: the SYN at 10 s, the clock at 25 s
		assert.are.same({ { 1001, 10 } }, at) -- before: 20, the ARP read ahead
		assert.are.equal(25, s:now())
		assert.are.equal(30, s.next_ts)
		assert.are.equal(1, s:poll(-1))
		assert.are.same({ { 1001, 10 }, { 1002, 30 } }, at)
	end)

	it("backwards time: delivered at once at the current clock, p.ts and -w keep the frame's own", function()
		local out, last, code = cli("-r " .. BACK .. " " .. EVERY50)
		assert.are.equal(0, code, last)
		assert.are.equal(5, #lines(out))
		assert.are.same({
			"pkt 1001 100000000000 0",
			"pkt 1002 50000005000 0",   -- stamped 50 s earlier: the clock stays at 100 s
			"tick 99",                  -- every(50)'s tick at 150 s, in the gap to 200 s
			"pkt 1003 200000000000 100",
			"tick 100",
		}, lines(out))
		local w = dir .. "/back_out.pcap"
		local _, l, rc = cli("watch -r " .. BACK .. " -w " .. w)
		assert.are.equal(0, rc, l)
		local cap = pcapfile.read(w)
		local stamps = {}
		for _, p in ipairs(cap.packets) do stamps[#stamps + 1] = string.format("%d.%06d", p.sec, p.usec) end
		assert.are.same({ "100.000000", "50.000005", "200.000000" }, stamps)
		-- the library: the clock never goes back
		local s <close> = assert(ti.replay { file = BACK })
		local at = {}
		s:on_packet(function(p) at[#at + 1] = { p.ts, s:now() } end)
		assert.are.equal(3, s:poll(-1))
		assert.are.same({ { 100000000000, 100 }, { 50000005000, 100 }, { 200000000000, 200 } }, at)
	end)
end)
