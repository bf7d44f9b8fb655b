-- SPDX-License-Identifier: GPL-2.0-only
-- Replay without root: tcpinspect.replay and `tcpinspect -r FILE`, run as
-- an unprivileged user with no capabilities, on the small captures in
-- spec/fixtures/:
--   connections.pcap  3 connections to 127.0.0.1:18123 on lo (tcpdump -i lo),
--                     "dataN\n" one way, "helloN\n" the other: 30 segments
--   port_scan.pcap    40 SYNs to ports 21000-21039 (hping3 -S, tcpdump -i lo)
-- Expected counts come from tcpdump reading the same files.
--
-- Run by a privileged busted (root, or any effective capability), this file
-- runs itself again under setpriv as nobody with no capabilities (busted -o
-- TAP) and reports each of its tests from there: the library calls in this
-- process, the CLI in its children, all without privileges.  Run by an
-- unprivileged user, it runs its tests directly.  The unprivileged run is
-- in a world-readable copy of what it needs (spec/support/unpriv.lua), so
-- it passes wherever the checkout is (a clone in root's 0700 home).
local FIX = "spec/fixtures/"
local BIN = "build/bin/tcpinspect"

local function sh(cmd)
	local p = assert(io.popen(cmd .. " 2>&1"))
	local out = p:read("a")
	local ok, _, code = p:close()
	return out, ok and 0 or code
end

local unpriv = require "support.unpriv"

-- this process's uid and effective capabilities (/proc/self/status)
local function credentials()
	local f = assert(io.open("/proc/self/status"))
	local st = f:read("a")
	f:close()
	return tonumber(st:match("\nUid:%s*(%d+)")), st:match("\nCapEff:%s*(%x+)"), st
end
local uid, capeff = credentials()
local privileged = uid == 0 or tonumber(capeff, 16) ~= 0

-- the tests, in order: run here (unprivileged) or reported from the
-- unprivileged child (privileged)
local tests = {}
local function test(name, fn) tests[#tests + 1] = { name = name, fn = fn } end

local function tcpdump_count(file, expr)
	local out = sh(string.format("tcpdump -nr %s %s | wc -l", file, expr and ("'" .. expr .. "'") or ""))
	return tonumber(out:match("(%d+)%s*$"))
end

test("runs as an unprivileged user with no capabilities", function()
	-- this process, where tcpinspect.replay runs, and its children (the CLI)
	local id, _, st = credentials()
	assert.are_not.equal(0, id)
	assert.matches("\nCapEff:\t0000000000000000\n", st, 1, true)
	assert.matches("\nCapPrm:\t0000000000000000\n", st, 1, true)
	local out, code = sh("grep ^Cap[EP] /proc/self/status")
	assert.are.equal(0, code)
	assert.are.equal("CapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n", out)
end)

test("counts every segment of a capture as tcpdump reads it, and fills the maps", function()
	local ti = require "tcpinspect"
	local s <close> = assert(ti.replay { file = FIX .. "connections.pcap" })
	assert.are.equal("replay", s.mode)
	assert.are.equal(FIX .. "connections.pcap", s.file)
	local n, syns = 0, 0
	s:on_packet(function(p)
		n = n + 1
		if p.flags & ti.SYN ~= 0 and p.flags & ti.ACK == 0 then syns = syns + 1 end
		assert.are.equal("pcap", p.probe)
	end)
	local total, why = s:run()
	assert.are.equal("end", why)
	assert.is_true(s.ended)
	local want = tcpdump_count(FIX .. "connections.pcap")
	assert.are.equal(30, want)
	assert.are.equal(want, total)
	assert.are.equal(want, n)
	assert.are.equal(tcpdump_count(FIX .. "connections.pcap", "tcp[tcpflags] == tcp-syn"), syns)
	local st = s:stats()
	assert.are.same({ seen = 30, filtered = 0, matched = 30, sampled_out = 0, delivered = 30, dropped = 0,
		errors = 0, evicted_flows = 0, evicted_sources = 0, evicted_drops = 0, busy = 0 }, st)
	-- 3 connections, 2 directions: 6 flows; packets per port as tcpdump counts them
	assert.are.equal(6, s:map("flows"):count())
	local v = s:map("ports"):lookup(18123)
	assert.are.equal(tcpdump_count(FIX .. "connections.pcap", "dst port 18123"), v.packets)
	assert.are.equal(18, v.bytes) -- "data1\n" .. "data3\n"
	assert.are.equal(3, s:map("sources"):lookup("127.0.0.1").syns)
end)

test("filters by the kernel's rules: native filter options and set_filter", function()
	local ti = require "tcpinspect"
	local s <close> = assert(ti.replay { file = FIX .. "connections.pcap", filter = { dport = 18123, len = { min = 1 } } })
	s:run()
	local st = s:stats()
	assert.are.equal(30, st.seen)
	assert.are.equal(tcpdump_count(FIX .. "connections.pcap", "dst port 18123 and tcp[tcpflags] & tcp-push != 0"),
		st.matched)
	assert.are.equal(3, st.matched)
	local s2 <close> = assert(ti.replay { file = FIX .. "port_scan.pcap" })
	s2:set_filter { dport = "21000-21009" }
	s2:run()
	assert.are.equal(10, s2:stats().matched)
end)

test("follows capture time: run's duration and intervals are the capture's seconds", function()
	local ti = require "tcpinspect"
	local s <close> = assert(ti.replay { file = FIX .. "port_scan.pcap" })
	local t0 = s:now()
	local ticks = {}
	local wall = ti.monotonic()
	local _, why = s:run { duration = 30, interval = 1, on_interval = function(_, e) ticks[#ticks + 1] = e end }
	assert.are.equal("duration", why)
	-- the 40 SYNs take under a second; the ticks at 1 .. 29 s fall in the
	-- stretch without frames after them, and fire once, at the last of them
	-- (doc/reference.md, tcpinspect.replay), then the one at 30 s
	assert.are.same({ 29, 30 }, ticks)
	assert.are.equal(30, s:now() - t0)
	assert.is_true(ti.monotonic() - wall < 5, "30 s of capture time took " .. (ti.monotonic() - wall) .. " s")
end)

local function run_example(name, file)
	local out, code = sh(string.format("%s -q -r %s examples/%s.lua", BIN, FIX .. file, name))
	assert.are.equal(0, code, out)
	return out
end

test("examples/port_scan.lua on port_scan.pcap", function()
	assert.are.equal("ALERT port-scan src=127.0.0.1 ports=40 window=2s\nSUMMARY port-scan alerts=1\n",
		run_example("port_scan", "port_scan.pcap"))
end)

test("examples/new_connections.lua on connections.pcap", function()
	local out = run_example("new_connections", "connections.pcap")
	local lines = {}
	for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l:gsub("NEW %S+ ", "NEW ") end
	-- the capture ends before their FIN's second is over: the three end
	-- when it does, in the table's order; the handshakes are tshark's
	-- tcp.analysis.initial_rtt of each stream
	local summary = table.remove(lines)
	table.sort(lines)
	assert.are.same({
		"NEW src=127.0.0.1 sport=39970 dst=127.0.0.1 dport=18123 handshake=0.000048 segments=6 end=fin",
		"NEW src=127.0.0.1 sport=39976 dst=127.0.0.1 dport=18123 handshake=0.000039 segments=6 end=fin",
		"NEW src=127.0.0.1 sport=39986 dst=127.0.0.1 dport=18123 handshake=0.000062 segments=6 end=fin",
	}, lines)
	assert.are.equal("SUMMARY new-connections count=3", summary)
end)

test("examples/port_bytes.lua and top_talkers.lua on connections.pcap", function()
	assert.are.equal(
		"PORT dport=18123 packets=18 bytes=18 rate=30 B/s\n" ..
		"PORT dport=39970 packets=4 bytes=7 rate=11 B/s\n" ..
		"PORT dport=39976 packets=4 bytes=7 rate=11 B/s\n" ..
		"PORT dport=39986 packets=4 bytes=7 rate=11 B/s\n" ..
		"END elapsed=0.6\n", run_example("port_bytes", "connections.pcap"))
	assert.are.equal("TOP rank=1 src=127.0.0.1 bytes=39 packets=30 syns=3 (39 B)\nEND elapsed=0.6\n",
		run_example("top_talkers", "connections.pcap"))
end)

test("watch -r -w writes a pcap that tcpdump reads back segment for segment, and -w - pipes", function()
	local dir = sh("mktemp -d"):gsub("%s+$", "")
	finally(function() os.execute("rm -rf " .. dir) end)
	local out, code = sh(string.format("%s watch -q -r %s -w %s/out.pcap -c 25",
		BIN, FIX .. "connections.pcap", dir))
	assert.are.equal(0, code, out)
	assert.are.equal("", out)
	-- the same segments, fields as tcpdump prints them, from the IP header on
	local function fields(cmd)
		local t = {}
		for l in sh(cmd):gmatch("[^\n]+") do
			local rest = l:match(" IP (.*)$")
			if rest then t[#t + 1] = rest:gsub(", options %b[]", "") end
		end
		return t
	end
	local orig = fields("tcpdump -S -nr " .. FIX .. "connections.pcap -c 25")
	local written = fields("tcpdump -S -nr " .. dir .. "/out.pcap")
	assert.are.equal(25, #orig)
	assert.are.same(orig, written)
	-- and a replay of the written file counts the same
	local ti = require "tcpinspect"
	local s <close> = assert(ti.replay { file = dir .. "/out.pcap" })
	s:run()
	assert.are.equal(25, s:stats().matched)
	-- -w -: stdout is the pcap
	out = sh(string.format("%s watch -q -r %s -w - | tcpdump -S -nr - | wc -l",
		BIN, FIX .. "connections.pcap"))
	assert.are.equal("30", out:match("(%d+)%s*$"))
end)

test("a missing file: nil, message, errno; a missing or bad option raises", function()
	local ti = require "tcpinspect"
	local s, msg, errno = ti.replay { file = "/nonexistent.pcap" }
	assert.is_nil(s)
	assert.matches("/nonexistent.pcap", msg, 1, true)
	assert.are.equal("ENOENT", ti.errname(errno))
	assert.has_error(function() ti.replay {} end)
	assert.has_error(function() ti.replay { file = FIX .. "connections.pcap", snaplen = -1 } end)
end)

describe("replay", function()
	if not privileged then
		for _, t in ipairs(tests) do it(t.name, t.fn) end
		return
	end
	-- this file again, as nobody with no capabilities; TAP results by name
	local results, output
	local function child()
		if results then return results end
		local src = "spec/" .. debug.getinfo(1, "S").source:match("[^/]+$")
		local dir = unpriv.copy()
		local errf = os.tmpname()
		output = sh("cd " .. dir .. " && " .. unpriv.SETPRIV .. "busted --lua=lua5.4 -o TAP " .. src .. " 2>" .. errf)
		os.remove(errf)
		unpriv.remove(dir)
		results = {}
		local cur
		for l in output:gmatch("[^\n]*") do
			local no, name = l:match("^(n?o?t? ?ok) %d+ %- replay (.*)$")
			if no then
				cur = { ok = no == "ok", diag = {} }
				results[name] = cur
			elseif l:match("^# %S+ @ %d+: ") then
				cur = nil -- the next test's header
			elseif cur and l:match("^#") then
				cur.diag[#cur.diag + 1] = l
			end
		end
		return results
	end
	for _, t in ipairs(tests) do
		it(t.name .. " (as nobody, no capabilities)", function()
			local r = child()[t.name]
			assert(r, "not run as nobody:\n" .. output)
			assert(r.ok, table.concat(r.diag, "\n"))
		end)
	end
end)
