-- SPDX-License-Identifier: GPL-2.0-only
-- The packet field `line` (issue 23: `tcpinspect watch` costs no more than
-- a 1-field callback): the tcpdump line `format.packet` returned, built once
-- in C (luaext/packet.c), the one definition that format.packet and
-- format.segment (core.segment_line) use.  No root, no kernel.
--
-- The literal lines are checked field by field against the records made
-- here; the clock's HH:MM:SS is os.date's (local time, as tcpdump's).  Every
-- segment of spec/fixtures/filter_corpus.pcap (3226, IPv4 and IPv6, every
-- flag byte) and connections.pcap (30) is checked against the Lua
-- string.format line that format.segment made before (kept below as the
-- reference): byte for byte.
local core = require "tcpinspect.core"
local tcpinspect = require "tcpinspect"
local fmt = require "tcpinspect.format"

-- struct ti_event, as spec/02-packet_spec.lua packs it
local FMT = "<I8c16c16I4I4I4I4I8I4I2I2I2I2I4BBBBI4I4I4I8I8I4BBI2"

local function record(t)
	local raw = string.pack(FMT, t.ts or 0, t.saddr, t.daddr, t.seq or 0, t.ack or 0, 1, 0, 0, 0,
		t.sport or 0, t.dport or 0, t.window or 0, 0, t.len or 0, t.flags or 0, t.family or 4, 64, 0, 0, 0, 0,
		0, 0, 0, 0, 0, 0)
	return raw .. ("\0"):rep(core.record_size - #raw)
end

local function v4(a, b, c, d) return string.char(a, b, c, d) .. ("\0"):rep(12) end
local function v6(s) return s .. ("\0"):rep(16 - #s) end

-- format.segment as it was in Lua (string.format and os.date): the reference
local function lua_line(time, family, saddr, sport, daddr, dport, flags, seq, ack, window, len, flagstr)
	local sec = math.floor(time)
	local usec = math.floor((time - sec) * 1e6 + 0.5)
	if usec >= 1000000 then sec, usec = sec + 1, usec - 1000000 end
	local seqtext = len > 0 and string.format("%d:%d", seq, (seq + len) & 0xffffffff) or seq
	local ip = family == 6 and "IP6" or "IP"
	if flags & 16 ~= 0 then
		return string.format("%s.%06d %s %s.%d > %s.%d: Flags [%s], seq %s, ack %d, win %d, length %d",
			os.date("%H:%M:%S", sec), usec, ip, saddr, sport, daddr, dport, flagstr, seqtext, ack, window, len)
	end
	return string.format("%s.%06d %s %s.%d > %s.%d: Flags [%s], seq %s, win %d, length %d",
		os.date("%H:%M:%S", sec), usec, ip, saddr, sport, daddr, dport, flagstr, seqtext, window, len)
end

describe("the packet field line", function()
	it("is a packet field, the last", function()
		local f = tcpinspect.packet_fields()
		assert.are.equal("line", f[#f])
	end)

	it("is tcpdump -S -n's line: IPv4 with payload, seq wrapping, ACK", function()
		-- ts 1234.567890123 s + offset 1000.5: time 2235.067890123
		local p = core.decode_record(record { ts = 1234567890123, saddr = v4(192, 0, 2, 1),
			daddr = v4(198, 51, 100, 7), seq = 0xfffffffe, ack = 42, sport = 51000, dport = 443, window = 65535,
			len = 1448, flags = 0x18 }, 1000.5)
		assert.are.equal(os.date("%H:%M:%S", 2235) .. ".067890 IP 192.0.2.1.51000 > 198.51.100.7.443: " ..
			"Flags [P.], seq 4294967294:1446, ack 42, win 65535, length 1448", p.line)
	end)

	it("IPv6 without ACK: no ack; no payload: seq alone; no flags: none", function()
		local p = core.decode_record(record { ts = 5e9, family = 6, saddr = v6("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\1"),
			daddr = v6("\32\1\13\184\0\0\0\0\0\0\0\0\0\0\0\7"), seq = 7, ack = 99, sport = 5, dport = 80, window = 0,
			flags = 0x02 })
		assert.are.equal(os.date("%H:%M:%S", 5) .. ".000000 IP6 ::1.5 > 2001:db8::7.80: Flags [S], seq 7, win 0, " ..
			"length 0", p.line)
		p = core.decode_record(record { ts = 5e9, saddr = v4(10, 0, 0, 1), daddr = v4(10, 0, 0, 2), seq = 1,
			ack = 2, len = 1, flags = 0 })
		assert.are.equal(os.date("%H:%M:%S", 5) .. ".000000 IP 10.0.0.1.0 > 10.0.0.2.0: Flags [none], seq 1:2, " ..
			"win 0, length 1", p.line)
	end)

	it("rounds the microseconds into the next second", function()
		-- 9.9999996 s: 999999.6 us rounds to 10.000000
		local p = core.decode_record(record { ts = 9999999600, saddr = v4(1, 2, 3, 4), daddr = v4(5, 6, 7, 8),
			flags = 0x10, ack = 1 })
		assert.are.equal(os.date("%H:%M:%S", 10) .. ".000000 IP 1.2.3.4.0 > 5.6.7.8.0: Flags [.], seq 0, ack 1, " ..
			"win 0, length 0", p.line)
	end)

	it("format.packet, format.segment, copies and tables make the same text", function()
		local p = core.decode_record(record { ts = 1234567890123, saddr = v4(127, 0, 0, 1), daddr = v4(127, 0, 0, 1),
			seq = 3, ack = 4, sport = 41234, dport = 22, window = 512, len = 10, flags = 0x11 }, 1.7e9)
		local line = p.line
		assert.are.equal(line, fmt.packet(p))
		assert.are.equal(line, fmt.packet(p:copy()))
		assert.are.equal(line, p:totable().line)
		local t = p:totable()
		t.line = nil -- a plain table of the fields
		assert.are.equal(line, fmt.packet(t))
		t.flagstr = nil -- from flags
		assert.are.equal(line, fmt.packet(t))
		local args = {}
		for i, f in ipairs(fmt.SEGMENT_FIELDS) do args[i] = p[f] end
		assert.are.equal(line, fmt.segment(table.unpack(args, 1, #fmt.SEGMENT_FIELDS)))
		assert.are.equal(lua_line(table.unpack(args, 1, #fmt.SEGMENT_FIELDS)), line)
		assert.has_error(function() fmt.segment(1.5, 4, "a", "x") end)
		-- format.clock is the line's clock
		assert.are.equal(line:sub(1, 15), fmt.clock(p.time))
		assert.are.equal(os.date("%H:%M:%S", 10) .. ".000000", fmt.clock(9.9999996))
		assert.are.equal(os.date("%H:%M:%S", 1700000000) .. ".123457", fmt.clock(1700000000.1234567))
	end)

	it("writes addresses as inet_ntop does (p.saddr): IPv6 zero runs, IPv4-mapped and -compatible", function()
		local specials = { ("\0"):rep(16), ("\0"):rep(15) .. "\1", ("\0"):rep(12) .. "\1\2\3\4",
			("\0"):rep(10) .. "\255\255\1\2\3\4", ("\0"):rep(10) .. "\255\254\1\2\3\4",
			("\0"):rep(11) .. "\1\1\2\3\4", "\1" .. ("\0"):rep(15), ("\255"):rep(16),
			"\0\1\0\0\0\1\0\0\0\0\0\1\0\0\0\0", "\32\1\13\184\0\0\0\0\0\1\0\0\0\0\0\1" }
		math.randomseed(75)
		local n = 0
		for i = 1, 20000 do
			local a = specials[i]
			if not a then
				local w = {}
				for j = 1, 8 do
					local r = math.random()
					w[j] = r < 0.5 and 0 or r < 0.6 and math.random(1, 15) or r < 0.7 and 0xffff
						or math.random(0, 0xffff)
				end
				a = string.pack(">I2I2I2I2I2I2I2I2", table.unpack(w))
			end
			local b = specials[#specials - (i - 1) % #specials]
			local p = core.decode_record(record { family = 6, saddr = a, daddr = b, flags = 2 })
			local want = " IP6 " .. p.saddr .. ".0 > " .. p.daddr .. ".0: "
			if not p.line:find(want, 1, true) then
				assert.are.equal(want, p.line:sub(16, 15 + #want))
			end
			n = n + 1
		end
		assert.are.equal(20000, n)
		for i = 1, 2000 do
			local a = string.pack(">I4", math.random(0, 0xffffffff)) .. ("\0"):rep(12)
			local p = core.decode_record(record { saddr = a, daddr = i == 1 and ("\0"):rep(16) or a, flags = 2 })
			assert.truthy(p.line:find(" IP " .. p.saddr .. ".0 > " .. p.daddr .. ".0: ", 1, true), p.line)
		end
	end)

	for _, file in ipairs { "filter_corpus.pcap", "connections.pcap" } do
		it("is byte for byte the Lua format's on every segment of " .. file, function()
			local s <close> = assert(tcpinspect.replay { file = "spec/fixtures/" .. file })
			local n, v6n, bad = 0, 0, {}
			local fields = { "line" }
			for _, f in ipairs(fmt.SEGMENT_FIELDS) do fields[#fields + 1] = f end
			s:on_packet(function(line, ...)
				n = n + 1
				local want = lua_line(...)
				if line ~= want and #bad < 3 then bad[#bad + 1] = want .. "\n" .. line end
				if (...) and select(2, ...) == 6 then v6n = v6n + 1 end
			end, fields)
			while s:poll(-1) > 0 do end
			assert.are.same({}, bad)
			assert.are.equal(file == "connections.pcap" and 30 or 3226, n)
			if file == "filter_corpus.pcap" then assert.is_true(v6n > 1000, "IPv6 segments: " .. v6n) end
		end)
	end
end)
