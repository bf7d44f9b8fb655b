-- SPDX-License-Identifier: GPL-2.0-only
-- Connections on replay (issue 22, items 1, 2 and 4; bpf/ti_conn.h): a
-- capture made here, frame by frame, whose every connection's history,
-- counts, handshake, retransmissions, zero windows and end are known, and
-- tshark's reading of the same file (initial_rtt, retransmission flags,
-- incoming segments and bytes) when tshark is installed.
local tcpinspect = require "tcpinspect"
local core = require "tcpinspect.core"
local pcapfile = require "support.pcapfile"

local SYN, ACK, FIN, RST, PSH = 0x02, 0x10, 0x01, 0x04, 0x08
local CLIENT, SERVER = "\10\0\0\1", "\10\0\0\2"

-- One IPv4 segment from CLIENT:sport to SERVER:80 at t seconds.
local function seg(t, sport, flags, seq, len, win)
	local tcp = string.pack(">I2I2I4I4BBI2I2I2", sport, 80, seq, 1, 5 << 4, flags, win or 65535, 0, 0)
	local ip = string.pack(">BBI2I2I2BBI2", 0x45, 0, 20 + #tcp + len, 1, 0, 64, 6, 0) .. CLIENT .. SERVER
	local sec = math.floor(t)
	return { sec = 1700000000 + sec, usec = math.floor((t - sec) * 1e6 + 0.5), data = ip .. tcp .. ("x"):rep(len) }
end

local function capture()
	return {
		-- A (1001): handshake 10 ms, 2 x 100 bytes, the second sent again,
		-- a keep-alive, a zero window, FIN, the last ACK
		seg(0.000, 1001, SYN, 1000, 0),
		seg(0.010, 1001, ACK, 1001, 0),
		seg(0.020, 1001, ACK | PSH, 1001, 100),
		seg(0.030, 1001, ACK | PSH, 1101, 100),
		seg(0.040, 1001, ACK | PSH, 1101, 100),
		seg(0.050, 1001, ACK, 1200, 0),
		seg(0.060, 1001, ACK, 1201, 0, 0),
		seg(0.070, 1001, ACK | FIN, 1201, 0),
		seg(0.080, 1001, ACK, 1202, 0),
		-- B (1002): handshake 20 ms, 50 bytes, RST
		seg(0.100, 1002, SYN, 5000, 0),
		seg(0.120, 1002, ACK, 5001, 0),
		seg(0.130, 1002, ACK | PSH, 5001, 50),
		seg(0.140, 1002, RST, 5051, 0),
		-- C (1003): a SYN alone; D (1004): data without a handshake
		seg(0.150, 1003, SYN, 9000, 0),
		seg(0.160, 1004, ACK | PSH, 7000, 10),
		-- F (1005): a SYN alone, later; G (1006): data, later
		seg(1.500, 1005, SYN, 3000, 0),
		seg(1.500, 1006, ACK | PSH, 4000, 20),
		-- E (1007): at 7 s, open at the end of the file
		seg(7.000, 1007, SYN, 100, 0),
	}
end

local function with_capture(fn)
	local path = os.tmpname()
	pcapfile.write(path, pcapfile.LINKTYPE_RAW, capture())
	local ok, err = pcall(fn, path)
	os.remove(path)
	assert(ok, err)
end

-- Every connection's totable(), by source port, and the session's stats.
local function replay(path, opts)
	opts = opts or {}
	local o = { file = path, conns = true, idle_timeout = opts.idle_timeout or 6, max_conns = opts.max_conns }
	local s = assert(tcpinspect.replay(o))
	local got, order = {}, {}
	s:on_conn(function(c)
		local t = c:totable()
		got[t.sport] = t
		order[#order + 1] = t.sport
	end)
	if opts.poll then opts.poll(s) else
		while not s.ended do s:poll(100) end
		s:poll(0)
	end
	local st = s:stats()
	s:close()
	return got, st, order
end

describe("conns on replay", function()
	it("ends each connection as sent, with exact counts", function()
		with_capture(function(path)
			local got, st = replay(path)
			local a, b = got[1001], got[1002]
			assert.are.same({ "10.0.0.1", "10.0.0.2", 80, 4, 0 }, { a.saddr, a.daddr, a.dport, a.family, a.netns })
			assert.are.equal(9, a.segments)
			assert.are.equal(300, a.bytes)
			assert.are.equal("SADTWF", a.history)
			assert.are.equal(1, a.retransmits)  -- the second 100 bytes, not the keep-alive
			assert.are.equal(1, a.zero_windows)
			assert.is_true(math.abs(a.handshake - 0.010) < 1e-6)
			assert.is_true(math.abs(a.duration - 0.080) < 1e-6)
			assert.is_true(math.abs(a.start - 1700000000) < 1e-3)
			assert.are.equal("fin", a.end_reason)
			assert.are.same({ 4, 50, "SADR", "rst", 0, 0 },
				{ b.segments, b.bytes, b.history, b.end_reason, b.retransmits, b.zero_windows })
			assert.is_true(math.abs(b.handshake - 0.020) < 1e-6)
			-- C, D, F: idle (a SYN alone after 5 s, the rest after idle_timeout 6 s)
			assert.are.same({ "S", "idle" }, { got[1003].history, got[1003].end_reason })
			assert.are.same({ "D", "idle", 10 }, { got[1004].history, got[1004].end_reason, got[1004].bytes })
			assert.are.same({ "S", "idle" }, { got[1005].history, got[1005].end_reason })
			assert.is_nil(got[1003].handshake)
			-- G (5.5 s idle, less than 6) and E: open when the file ended
			assert.are.same({ "D", "open" }, { got[1006].history, got[1006].end_reason })
			assert.are.same({ "S", "open" }, { got[1007].history, got[1007].end_reason })
			assert.are.equal(7, st.conns_opened)
			assert.are.equal(4, st.conns_expired) -- A (fin), C, D, F
			assert.are.same({ 0, 0, 0 }, { st.conns_untracked, st.conns_evicted, st.conns_lost })
		end)
	end)

	it("agrees with tshark on handshake, retransmissions, segments and bytes", function()
		-- tshark is one of make deps' packages: missing, the test fails
		assert(os.execute("command -v tshark >/dev/null 2>&1") == true, "tshark is not installed (make deps)")
		with_capture(function(path)
			local got = replay(path)
			local f = io.popen("tshark -r " .. path .. " -T fields -e tcp.srcport -e tcp.len -e tcp.analysis.initial_rtt"
				.. " -e tcp.analysis.retransmission -e tcp.analysis.fast_retransmission"
				.. " -e tcp.analysis.spurious_retransmission -e tcp.analysis.out_of_order"
				.. " -e tcp.analysis.zero_window -E separator=/t 2>/dev/null")
			local ts = {}
			for line in f:lines() do
				local port, len, irtt, r1, r2, r3, r4, zw = line:match(
					"^(%d+)\t(%d*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t([^\t]*)\t?([^\t]*)$")
				port = tonumber(port)
				local t = ts[port] or { segments = 0, bytes = 0, retransmits = 0, zero_windows = 0 }
				ts[port] = t
				t.segments = t.segments + 1
				t.bytes = t.bytes + (tonumber(len) or 0)
				if irtt ~= "" then t.irtt = tonumber(irtt) end
				if r1 ~= "" or r2 ~= "" or r3 ~= "" or r4 ~= "" then t.retransmits = t.retransmits + 1 end
				if zw ~= "" then t.zero_windows = t.zero_windows + 1 end
			end
			f:close()
			for port = 1001, 1007 do
				local c, t = got[port], ts[port]
				assert.are.same({ t.segments, t.bytes, t.retransmits, t.zero_windows },
					{ c.segments, c.bytes, c.retransmits, c.zero_windows }, "port " .. port)
			end
			assert.is_true(math.abs(got[1001].handshake - ts[1001].irtt) < 1e-6)
			assert.is_true(math.abs(got[1002].handshake - ts[1002].irtt) < 1e-6)
		end)
	end)

	it("bounds the table: untracked and evicted are counted", function()
		with_capture(function(path)
			-- two entries: C..G find it full until a walk makes room
			local got, st = replay(path, { max_conns = 2, poll = function(s)
				while not s.ended do s:poll(100) end
				s:poll(0)
			end })
			local n = 0
			for _ in pairs(got) do n = n + 1 end
			assert.is_true(st.conns_untracked > 0, "untracked counted")
			assert.is_true(st.conns_evicted > 0, "evicted counted")
			assert.are.equal(st.conns_opened, n)
			local evicted = 0
			for _, c in pairs(got) do evicted = evicted + (c.end_reason == "evicted" and 1 or 0) end
			assert.are.equal(st.conns_evicted, evicted)
		end)
	end)

	it("lists open connections with conns() and needs conns = true", function()
		with_capture(function(path)
			local s = assert(tcpinspect.replay{ file = path, conns = true })
			s:poll(50) -- 50 ms of capture time: A and B's starts
			local open = {}
			for c in s:conns() do open[#open + 1] = c.sport .. c.end_reason end
			table.sort(open)
			assert.are.same({ "1001open" }, open)
			s:close()
			local plain = assert(tcpinspect.replay{ file = path })
			local ok, err = pcall(plain.on_conn, plain, function() end)
			assert.is_false(ok)
			assert.matches("conns", tostring(err))
			ok, err = pcall(plain.conns, plain)
			assert.is_false(ok)
			assert.matches("conns", tostring(err))
			plain:close()
		end)
	end)

	it("a SYN on a 4-tuple whose connection got a FIN starts the next connection", function()
		-- the port used again 0.5 s after a close, within the FIN timeout:
		-- two connections, the first ending fin when the second's SYN comes
		local path = os.tmpname()
		pcapfile.write(path, pcapfile.LINKTYPE_RAW, {
			seg(0.000, 1010, SYN, 100, 0),
			seg(0.010, 1010, ACK, 101, 0),
			seg(0.020, 1010, ACK | PSH, 101, 30),
			seg(0.030, 1010, ACK | FIN, 131, 0),
			seg(0.040, 1010, ACK, 132, 0),
			seg(0.500, 1010, SYN, 5000, 0),
			seg(0.520, 1010, ACK, 5001, 0),
			seg(0.530, 1010, ACK | PSH, 5001, 7),
			seg(0.540, 1010, ACK | FIN, 5008, 0),
		})
		local s = assert(tcpinspect.replay{ file = path, conns = true })
		local ends = {}
		s:on_conn(function(c)
			ends[#ends + 1] = { c.history, c.segments, c.bytes, c.end_reason, c.retransmits,
				math.floor(c.handshake * 1000 + 0.5) }
		end)
		while not s.ended do s:poll(100) end
		s:poll(0)
		local st = s:stats()
		s:close()
		os.remove(path)
		assert.are.same({ { "SADF", 5, 30, "fin", 0, 10 }, { "SADF", 4, 7, "fin", 0, 20 } }, ends)
		assert.are.equal(2, st.conns_opened)
	end)

	it("names its fields and raises on an unknown one", function()
		local names = core.conn_fields()
		for _, k in ipairs{ "saddr", "daddr", "sport", "dport", "family", "netns", "start", "duration",
			"segments", "bytes", "history", "handshake", "retransmits", "zero_windows", "end_reason" } do
			local found = false
			for _, n in ipairs(names) do found = found or n == k end
			assert.is_true(found, k)
		end
		assert.are.same({ "open", "fin", "rst", "idle", "evicted" }, core.conn_end_names)
	end)
end)
