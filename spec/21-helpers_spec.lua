-- SPDX-License-Identifier: GPL-2.0-only
-- Unit specs: the pure-Lua helpers (format, hist, topk, json, timer) and the
-- CLI's argument handling.  No root, no kernel; exact outputs.
local fmt = require "tcpinspect.format"
local hist = require "tcpinspect.hist"
local topk = require "tcpinspect.topk"
local json = require "tcpinspect.json"
local timer = require "tcpinspect.timer"
local script = require "tcpinspect.script"
local cli = require "tcpinspect.cli"
local args = require "tcpinspect.args"
local tcpinspect = require "tcpinspect"
local dkjson = require "dkjson"

-- a packet as a plain table (views read the same field names)
local function pkt(t)
	local p = { time = 1700000000.123456, family = 4, saddr = "127.0.0.1", sport = 41234,
		daddr = "127.0.0.1", dport = 22, flags = 0x12, seq = 123, ack = 456, window = 65483, len = 0 }
	for k, v in pairs(t or {}) do p[k] = v end
	return p
end

local function hms(t) return os.date("%H:%M:%S", t) end

describe("format", function()
	it("prints a packet like tcpdump -S", function()
		assert.are.equal(hms(1700000000) .. ".123456 IP 127.0.0.1.41234 > 127.0.0.1.22" ..
			": Flags [S.], seq 123, ack 456, win 65483, length 0",
			fmt.packet(pkt()))
		-- no ACK: no ack field; flagstr from the flags when the table has none
		assert.are.equal(hms(1700000000) .. ".500000 IP 10.0.0.1.1 > 10.0.0.2.2: Flags [S], seq 1, win 5, length 0",
			fmt.packet(pkt { time = 1700000000.5, saddr = "10.0.0.1", sport = 1, daddr = "10.0.0.2", dport = 2,
				flags = 2, seq = 1, window = 5 }))
		-- payload: a sequence range, wrapping at 2^32; IPv6 is IP6
		assert.are.equal(hms(1700000001) .. ".000000 IP6 ::1.41234 > ::1.22" ..
			": Flags [P.], seq 4294967290:4, ack 456, win 512, length 10",
			fmt.packet(pkt { time = 1700000000.9999999, family = 6, saddr = "::1", daddr = "::1", flags = 0x18,
				seq = 4294967290, window = 512, len = 10 }))
		assert.are.equal(hms(1700000000) .. ".123456 IP 127.0.0.1.41234 > 127.0.0.1.22" ..
			": Flags [F.], seq 123, ack 456, win 65483, length 0",
			fmt.packet(pkt { flags = 0x11, flagstr = "F." }))
	end)
	it("parses its own lines back", function()
		local p = pkt { flags = 0x18, len = 6, seq = 100 }
		local t = fmt.parse_packet(fmt.packet(p))
		assert.are.same({ clock = hms(1700000000) .. ".123456", family = 4, saddr = "127.0.0.1", sport = 41234,
			daddr = "127.0.0.1", dport = 22, flagstr = "P.", seq = 100, seq_end = 106, ack = 456,
			window = 65483, len = 6 }, t)
		assert.is_nil(fmt.parse_packet("garbage"))
	end)
	it("names flags like tcpdump", function()
		assert.are.equal("S", fmt.flags(2))
		assert.are.equal("S.", fmt.flags(18))
		assert.are.equal("FP.", fmt.flags(0x19))
		assert.are.equal("R", fmt.flags(4))
		assert.are.equal("none", fmt.flags(0))
		for f = 0, 255 do assert.are.equal(tcpinspect.flagstr(f), fmt.flags(f)) end
	end)
	it("prints bytes, rates, counts and durations in human units", function()
		assert.are.equal("0 B", fmt.bytes(0))
		assert.are.equal("512 B", fmt.bytes(512))
		assert.are.equal("1023 B", fmt.bytes(1023))
		assert.are.equal("1 KiB", fmt.bytes(1024))
		assert.are.equal("1.5 KiB", fmt.bytes(1536))
		assert.are.equal("12.3 MiB", fmt.bytes(12.3 * 1024 * 1024))
		assert.are.equal("200 GiB", fmt.bytes(200 * 2 ^ 30))
		assert.are.equal("12.3 kpps", fmt.rate(12345, "pps"))
		assert.are.equal("950 pps", fmt.rate(950, "pps"))
		assert.are.equal("1.51k", fmt.rate(1510))
		assert.are.equal("2.5 MB/s", fmt.rate(2.5e6, "B/s"))
		assert.are.equal("1.5 KiB/s", fmt.byterate(1536))
		assert.are.equal("1.23k", fmt.count(1234))
		assert.are.equal("12", fmt.count(12))
		assert.are.equal("0s", fmt.duration(0))
		assert.are.equal("12us", fmt.duration(12e-6))
		assert.are.equal("150ms", fmt.duration(0.15))
		assert.are.equal("2.5s", fmt.duration(2.5))
		assert.are.equal("2m05s", fmt.duration(125))
		assert.are.equal("1h02m03s", fmt.duration(3723))
	end)
	it("pads and cuts columns", function()
		assert.are.equal("ab   ", fmt.pad("ab", 5))
		assert.are.equal("   ab", fmt.pad("ab", -5))
		assert.are.equal("abc~", fmt.pad("abcdefg", 4))
	end)
end)

describe("hist", function()
	local BAR = string.rep("@", 52)
	it("prints a log2 histogram like bpftrace's hist()", function()
		local h = hist.log2()
		for _ = 1, 8 do h:add(0) end
		h:add(1)
		h:add(2, 2)
		h:add(3, 2)
		h:add(1500, 4)
		assert.are.equal(17, h:count())
		assert.are.equal(
			"@len:\n" ..
			"[0]                    8 |" .. BAR .. "|\n" ..
			"[1]                    1 |@@@@@@                                              |\n" ..
			"[2, 4)                 4 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n" ..
			"[4, 8)                 0 |                                                    |\n" ..
			"[8, 16)                0 |                                                    |\n" ..
			"[16, 32)               0 |                                                    |\n" ..
			"[32, 64)               0 |                                                    |\n" ..
			"[64, 128)              0 |                                                    |\n" ..
			"[128, 256)             0 |                                                    |\n" ..
			"[256, 512)             0 |                                                    |\n" ..
			"[512, 1K)              0 |                                                    |\n" ..
			"[1K, 2K)               4 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n",
			h:render("len"))
		assert.are.equal(h:render(), tostring(h))
	end)
	it("prints only the non-empty range, and nothing when empty", function()
		local h = hist.log2()
		assert.are.equal("", tostring(h))
		h:add(100):add(3000, 3)
		assert.are.equal(
			"[64, 128)              1 |@@@@@@@@@@@@@@@@@                                   |\n" ..
			"[128, 256)             0 |                                                    |\n" ..
			"[256, 512)             0 |                                                    |\n" ..
			"[512, 1K)              0 |                                                    |\n" ..
			"[1K, 2K)               0 |                                                    |\n" ..
			"[2K, 4K)               3 |" .. BAR .. "|\n", tostring(h))
		h:add(-5)
		assert.are.equal("(..., 0)               1 |", tostring(h):sub(1, 26))
		assert.are.same({ label = "[2K, 4K)", low = 2048, high = 4096, count = 3 }, h:buckets()[#h:buckets()])
	end)
	it("reads the kernel's len_hist map layout", function()
		-- slot 0: empty payloads; slot k: 2^(k-1) .. 2^k - 1
		local entries = {}
		for slot = 0, 17 do
			entries[#entries + 1] = { { slot = slot, low = slot == 0 and 0 or 1 << (slot - 1),
				high = slot == 0 and 0 or (1 << slot) - 1 }, { count = ({ [0] = 10, [7] = 5, [11] = 2 })[slot] or 0 } }
		end
		local fake = { pairs = function()
			local i = 0
			return function()
				i = i + 1
				if entries[i] then return entries[i][1], entries[i][2] end
			end
		end }
		local h = hist.from_map(fake)
		assert.are.equal(17, h:count())
		assert.are.equal(10, h:get(0))
		assert.are.equal(5, h:get(100)) -- slot 7 = [64, 128)
		assert.are.equal(2, h:get(1500)) -- slot 11 = [1K, 2K)
		local lines = {}
		for l in tostring(h):gmatch("[^\n]+") do lines[#lines + 1] = l end
		assert.are.equal(12, #lines)
		assert.are.equal("[0]                   10 |" .. BAR .. "|", lines[1])
		assert.are.equal("[64, 128)              5 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |", lines[8])
		assert.are.equal("[1K, 2K)               2 |@@@@@@@@@@                                          |", lines[12])
	end)
	it("prints a linear histogram like bpftrace's lhist()", function()
		local h = hist.linear(0, 100, 25)
		h:add(-1)
		h:add(10, 3)
		h:add(60)
		h:add(100, 2)
		assert.are.equal(
			"(..., 0)               1 |@@@@@@@@@@@@@@@@@                                   |\n" ..
			"[0, 25)                3 |" .. BAR .. "|\n" ..
			"[25, 50)               0 |                                                    |\n" ..
			"[50, 75)               1 |@@@@@@@@@@@@@@@@@                                   |\n" ..
			"[75, 100)              0 |                                                    |\n" ..
			"[100, ...)             2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |\n", tostring(h))
		assert.are.equal("[1K, 2K)", hist.linear(1024, 4096, 1024):add(1500):buckets()[1].label)
		assert.has_error(function() hist.linear(10, 0, 1) end)
	end)
end)

describe("topk", function()
	it("ranks a table by value, ties by key", function()
		assert.are.same({ { key = "b", value = 7, score = 7 }, { key = "c", value = 5, score = 5 } },
			topk.top({ a = 3, b = 7, c = 5 }, 2))
		local r = topk.top({ x = 1, a = 1, m = 1 }, 3)
		assert.are.same({ "a", "m", "x" }, { r[1].key, r[2].key, r[3].key })
	end)
	it("ranks by a field, a list of fields or a function", function()
		local t = { a = { bytes = 10, packets = 1 }, b = { bytes = 10, packets = 5 }, c = { bytes = 30, packets = 2 } }
		local r = topk.top(t, 3, { "bytes", "packets" })
		assert.are.same({ "c", "b", "a" }, { r[1].key, r[2].key, r[3].key })
		r = topk.top(t, 1, "packets")
		assert.are.equal("b", r[1].key)
		r = topk.top(t, 2, function(_, v) return -v.bytes end)
		assert.are.same({ "a", "b" }, { r[1].key, r[2].key })
	end)
	it("keeps only k while reading a map (anything with :pairs())", function()
		local n = 1000
		local fake = { pairs = function()
			local i = 0
			return function()
				i = i + 1
				if i <= n then return { dport = i }, { packets = i % 97, bytes = i } end
			end
		end }
		local r = topk.top(fake, 3, "bytes")
		assert.are.same({ 1000, 999, 998 }, { r[1].key.dport, r[2].key.dport, r[3].key.dport })
		r = topk.top(fake, 2, { "packets", "bytes" })
		assert.are.same({ { 96, 969 }, { 96, 872 } }, { { r[1].value.packets, r[1].key.dport },
			{ r[2].value.packets, r[2].key.dport } })
		assert.has_error(function() topk.top({}, 0) end)
	end)
	it("counts keys", function()
		local c = topk.counter()
		for _, k in ipairs { "a", "b", "a", "c", "a", "b" } do c:add(k) end
		c:add("c", 10)
		assert.are.equal(3, c:get("a"))
		assert.are.equal(0, c:get("z"))
		local r = c:top(2)
		assert.are.same({ "c", "a" }, { r[1].key, r[2].key })
	end)
end)

describe("json", function()
	local fields = json.fields
	it("its fields are the packet fields but line (format.packet's text of them)", function()
		local want = tcpinspect.packet_fields()
		assert.are.equal("line", table.remove(want))
		assert.are.same(want, fields)
	end)
	it("encodes a packet with every documented field, in the documented order", function()
		local t = {}
		for i, f in ipairs(fields) do t[f] = i end
		t.saddr, t.daddr, t.flagstr, t.probe, t.time = "10.0.0.1", "10.0.0.2", "S.", "tc/ingress:lo", 1.5
		local line = json.packet(t)
		local keys = {}
		for k in line:gmatch('"([%w_]+)":') do keys[#keys + 1] = k end
		assert.are.same(fields, keys)
		assert.are.same(t, dkjson.decode(line))
		assert.is_nil(line:find("\n"))
	end)
	it("encodes a decoded kernel record (a real packet object)", function()
		local core = require "tcpinspect.core"
		local p = core.decode_record(string.rep("\0", core.record_size))
		local v = dkjson.decode(json.packet(p))
		for _, f in ipairs(fields) do
			-- a drop's fields are nil, so absent, in a segment that was not dropped
			-- and the socket's, where the hook named none
			if f == "reason" or f == "location" or f == "sk_state" or f == "sk_cookie" or f == "uid"
				or f == "pid" or f == "comm" then
				assert.is_nil(v[f], f)
			else
				assert.is_not_nil(v[f], f)
			end
		end
		-- a drop record (probe TI_PROBE_KFREE_SKB, the byte at offset 83)
		-- with its socket, which a live process holds, has them all
		local raw, pid, done = require("spec.support.sock_record").full_record(core)
		p = core.decode_record(raw)
		v = dkjson.decode(json.packet(p))
		done()
		for _, f in ipairs(fields) do assert.is_not_nil(v[f], f) end
		assert.are.same({ "ESTABLISHED", 1000, pid, "python3" }, { v.sk_state, v.uid, v.pid, v.comm })
	end)
	it("encodes other values with sorted keys and no duplicates", function()
		assert.are.equal('{"a":1,"b":[{"a":2,"c":"x"}],"c":true}',
			json.encode { c = true, a = 1, b = { { c = "x", a = 2 } } })
		assert.are.equal("3", json.encode(3))
		assert.are.same({ a = { 1, 2 } }, json.decode('{"a":[1,2]}'))
		local v, err = json.decode("{")
		assert.is_nil(v)
		assert.is_string(err)
	end)
end)

describe("timer", function()
	local now
	local function sched() now = 100; return timer.new { clock = function() return now end } end

	it("runs several timers with different periods", function()
		local t = sched()
		local log = {}
		t:every(1, function(e) log[#log + 1] = ("a@%g"):format(e) end)
		t:every(2.5, function(e) log[#log + 1] = ("b@%g"):format(e) end)
		t:after(1.5, function(e) log[#log + 1] = ("once@%g"):format(e) end)
		for i = 1, 60 do
			now = 100 + i / 10
			t:tick()
		end
		-- float steps: compare rounded
		for i, s in ipairs(log) do log[i] = s:gsub("@(%d+%.?%d*)", function(x) return ("@%.1f"):format(tonumber(x)) end) end
		assert.are.same({ "a@1.0", "once@1.5", "a@2.0", "b@2.5", "a@3.0", "a@4.0", "a@5.0", "b@5.0", "a@6.0" }, log)
		assert.are.equal(1, t:shortest())
	end)
	it("fires once after a stall and keeps its phase", function()
		local t = sched()
		local n = 0
		local tm = t:every(1, function() n = n + 1 end)
		now = now + 5.5
		assert.are.equal(1, t:tick())
		assert.are.equal(1, n)
		assert.are.equal(106, t:next_due())
		tm:cancel()
		now = now + 10
		assert.are.equal(0, t:tick())
		assert.is_nil(t:next_due())
	end)
	it("drives session:run through run_options", function()
		local t = sched()
		local fired = 0
		t:every(0.2, function() fired = fired + 1 end)
		local asked = 0
		local o = t:run_options { duration = 3, should_stop = function() asked = asked + 1 return false end }
		assert.are.equal(0.2, o.interval)
		assert.are.equal(50, o.poll_ms)
		assert.are.equal(3, o.duration)
		now = now + 0.25
		assert.is_false(o.should_stop())
		assert.are.equal(1, fired)
		assert.are.equal(1, asked)
	end)
	it("rejects bad periods", function()
		local t = sched()
		assert.has_error(function() t:every(0, function() end) end)
		assert.has_error(function() t:every(1) end)
	end)
end)

describe("script runtime", function()
	it("merges the script's options under the command line's", function()
		assert.are.same({ mode = "tc", events = false, filter = { dport = "22", flags = "syn" } },
			script.merge({ mode = "tc", filter = { dport = "22" } },
				{ mode = "cgroup", events = false, filter = { dport = 80, flags = "syn" } }))
		assert.are.same({ filter = { len = { min = 1 } } }, script.merge({}, { filter = { len = { min = 1 } } }))
	end)
	it("parses script arguments", function()
		assert.are.same({ threshold = 5, window = 2, name = "x", verbose = true, "pos" },
			script.getopt({ "--threshold", "5", "pos", "--name=x", "--verbose" },
				{ threshold = 100, window = 2, name = "", verbose = false }))
		local ok, err = pcall(script.getopt, { "--bogus", "1" }, { threshold = 1 })
		assert.is_false(ok)
		assert.is_true(script.is_exit(err))
		assert.are.equal(2, err.code)
		assert.matches("'%-%-bogus'", err.msg)
		ok, err = pcall(script.getopt, { "--threshold", "many" }, { threshold = 1 })
		assert.is_false(ok)
		assert.matches("'%-%-threshold': expected a number", err.msg)
	end)
	it("offers the documented prelude names", function()
		local names = script.prelude_names()
		-- each name, read by a script, is the prelude's own value: not nil, and
		-- not a global of the same name showing through
		local fake = {}
		local rt = script.new { options = {}, cli = {}, args = {}, name = "t.lua", open = function() return fake end }
		for _, n in ipairs { "session", "open", "options", "cli", "args", "arg", "getopt", "on_packet", "on_conn", "every",
			"after", "on_exit", "stop", "elapsed", "map", "stats", "printf", "flagstr", "SYN", "ACK", "FIN",
			"RST", "PSH", "URG", "ECE", "CWR", "tcpinspect", "fmt", "hist", "topk", "json", "timer" } do
			local v = rt:load { code = "return " .. n }() -- the chunk alone: no loop
			assert(v ~= nil, n .. " is nil in a script")
			assert(not rawequal(v, rawget(_G, n)), n .. " in a script is the global, not the prelude's")
			local found = false
			for _, m in ipairs(names) do if m == n then found = true end end
			assert.is_true(found, n)
		end
	end)
	it("runs a script without a session when it registers nothing", function()
		local rt = script.new { options = {}, cli = {}, args = { "a", "b" }, name = "t.lua",
			open = function() error("must not open") end, drive = function() error("must not run") end }
		local chunk = rt:load { code = "local x, y = ... assert(x == 'a' and arg[2] == 'b' and arg[0] == 't.lua') return 7" }
		assert.are.equal(7, (rt:execute(chunk)))
	end)
	it("opens lazily, with the script's options merged, and runs the loop", function()
		local opened, driven, closed, exited
		local fake = { on_packet = function(self, fn) self.fn = fn end, close = function() closed = true end }
		local rt = script.new { options = { filter = { dport = "22" } }, cli = { duration = 1 }, args = {},
			name = "t.lua",
			open = function(o) opened = o return fake end,
			drive = function(s, ro) driven = ro.duration; s.fn({ saddr = "x" }) return "duration" end }
		local chunk = rt:load { code = [[
			local seen
			open { filter = { flags = "syn" } }
			on_packet(function(p) seen = p.saddr end)
			on_exit(function(_, why) _G.__t_exit = why .. ":" .. seen end)
		]] }
		local code, why = rt:execute(chunk)
		exited = _G.__t_exit
		_G.__t_exit = nil
		assert.are.same({ filter = { dport = "22", flags = "syn" } }, opened)
		assert.are.equal(1, driven)
		assert.are.equal(0, code)
		assert.are.equal("duration", why)
		assert.are.equal("duration:x", exited)
		assert.is_true(closed)
	end)
	it("opens with events off when the chunk returns with only timers", function()
		local opened
		local rt = script.new { options = {}, cli = {}, args = {}, name = "t",
			open = function(o) opened = o return { close = function() end } end,
			drive = function() return "stopped" end }
		rt:execute(rt:load { code = "every(1, function() end)" })
		assert.are.same({ events = false }, opened)
	end)
end)

describe("cli arguments", function()
	it("splits the command, its options and a script's arguments", function()
		local function split(...) return { cli.split({ ... }) } end
		assert.are.same({ "watch", { "--dport", "22" }, {}, {} }, split("watch", "--dport", "22"))
		assert.are.same({ "top", { "--dport", "22", "-n", "5" }, {}, {} }, split("--dport", "22", "top", "-n", "5"))
		assert.are.same({ "run", { "x.lua", "--duration", "3" },
			{ "--threshold", "5", "foo", "-c", "3", "--duration", "1" }, {} },
			split("x.lua", "--duration", "3", "--threshold", "5", "foo", "-c", "3", "--", "--duration", "1"))
		assert.are.same({ "run", { "-e", "print(1)", "--dport", "22" }, {}, {} }, split("-e", "print(1)", "--dport", "22"))
		-- watch's words are its filter expression, after '--' too
		assert.are.same({ "watch", {}, {}, { "extra" } }, split("watch", "extra"))
		assert.are.same({ "watch", { "-c", "1" }, {}, { "tcp", "port", "80" } }, split("watch", "-c", "1", "--", "tcp", "port", "80"))
	end)
	it("maps options onto open()", function()
		assert.are.same({ mode = "tc", family = "6", dev = { "lo", "eth0" }, sample = 2, ring_size = 4194304,
			filter = { dport = "22,80", saddr = { "10.0.0.0/8", "::1" }, host = "192.0.2.1", flags = "syn",
				len = { min = 1 } } },
			args.open_options { mode = "tc", family = "6", dev = "lo,eth0", sample = 2, ring_size = 4194304,
				dport = "22,80", saddr = "10.0.0.0/8,::1", host = "192.0.2.1", flags = "syn", len = "1-" })
		assert.are.same({}, args.open_options {})
		assert.are.same({ filter = { len = 0 } }, args.open_options { len = "0" })
		assert.are.same({ filter = { len = { min = 10, max = 20 } } }, args.open_options { len = "10-20" })
	end)
end)
