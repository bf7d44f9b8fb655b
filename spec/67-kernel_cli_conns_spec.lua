-- SPDX-License-Identifier: GPL-2.0-only
-- The CLI's connections (issue 22, items 3 and 5): `tcpinspect conns`
-- (the conn log, text and --json), `conns --open` (the live table) and the
-- conn lines' formatting.
--
-- Unit (no tag): the text and JSON of conn tables, the table's rows, the
-- exporter's connection metrics and the prelude's on_conn on a stand-in
-- session.
--
-- Kernel (tag cli: the host and one 6.12 guest): N connections from one
-- namespace to another over a veth, each sending a known number of bytes
-- and then closing (FIN) or resetting (RST), then two held open, under
-- tcpdump in the receiving namespace.  One scene for every mode (a
-- `tcpinspect conns --netns` per mode watching the same traffic): each
-- mode's prints one line per connection, and each line's segments, bytes
-- and end equal tshark's values for that stream of the capture; its
-- handshake time equals the capture's (SYN to the ACK that completed the
-- handshake).  Once per kernel (anymode: the same conn view, another
-- output): --json parses with dkjson and says the same, -c ends the
-- command, the live table shows the connections held open; bad options are
-- named.
local cli = require "support.cli"
local dkjson = require "dkjson"
local fmt = require "tcpinspect.format"
local json = require "tcpinspect.json"

-- a conn as the view's :totable() gives it
local function conn(t)
	local c = { start = 1700000000.25, last = 1700000001.75, family = 4, saddr = "10.0.0.1", sport = 41234, daddr = "10.0.0.2",
		dport = 9000, netns = 4026531840, duration = 1.5, segments = 12, bytes = 4000, history = "SADF",
		handshake = 0.000118, retransmits = 1, zero_windows = 0, end_reason = "fin" }
	for k, v in pairs(t or {}) do c[k] = v end
	return c
end

describe("conn lines", function()
	it("text: the header and eleven columns, '-' where unset", function()
		assert.are.equal("#fields start src dst duration segments bytes handshake retransmits zero_windows history end",
			fmt.conn_header())
		local line = fmt.conn(conn())
		assert.are.equal(fmt.clock(1700000000.25) .. " 10.0.0.1.41234 10.0.0.2.9000 1.500000 12 4000 0.000118 1 0 SADF fin",
			line)
		local t = fmt.parse_conn(line)
		assert.are.same({ "10.0.0.1", 41234, "10.0.0.2", 9000, 1.5, 12, 4000, 0.000118, 1, 0, "SADF", "fin" },
			{ t.saddr, t.sport, t.daddr, t.dport, t.duration, t.segments, t.bytes, t.handshake, t.retransmits,
				t.zero_windows, t.history, t.end_reason })
		-- no handshake seen (the client's half), an IPv6 pair, a reset
		line = fmt.conn(conn { handshake = false, family = 6, saddr = "fd00::2", daddr = "fd00::1", history = "HDR",
			end_reason = "rst" })
		assert.matches(" fd00::2%.41234 fd00::1%.9000 1%.500000 12 4000 %- 1 0 HDR rst$", line)
		t = fmt.parse_conn(line)
		assert.are.same({ "fd00::2", 41234, "fd00::1", 9000 }, { t.saddr, t.sport, t.daddr, t.dport })
		assert.is_nil(t.handshake)
		assert.are.equal(#fmt.CONN_COLUMNS, select(2, line:gsub("%S+", "")))
		-- a name from a capture cannot move the cursor
		assert.matches(" S%^%[ fin$", fmt.conn(conn { history = "S\27" }))
		assert.is_nil(fmt.parse_conn("not a conn line"))
	end)

	it("JSON: the conn fields in order, handshake left out when unset", function()
		local line = json.conn(conn())
		assert.are.equal('{"saddr":"10.0.0.1","daddr":"10.0.0.2","sport":41234,"dport":9000,"family":4,' ..
			'"netns":4026531840,"start":1700000000.250000,"last":1700000001.750000,"duration":1.5,"segments":12,' ..
			'"bytes":4000,"history":"SADF","handshake":0.000118,"retransmits":1,"zero_windows":0,"end_reason":"fin"}',
			line)
		-- the order is the conn view's (tcpinspect.core.conn_fields())
		assert.are.same(require("tcpinspect.core").conn_fields(), json.conn_fields)
		local v = assert(dkjson.decode(line))
		assert.are.same(conn(), v)
		local c = conn()
		c.handshake = nil
		v = assert(dkjson.decode(json.conn(c)))
		assert.is_nil(v.handshake)
		assert.are.equal("fin", v.end_reason)
	end)

	it("the --open table: rows by bytes (or segments), cut to -n, stable ties", function()
		local clim = require "tcpinspect.cli"
		local list = { conn { sport = 1, bytes = 10, segments = 9 }, conn { sport = 2, bytes = 300, segments = 3 },
			conn { sport = 3, bytes = 20, segments = 20 }, conn { sport = 4, bytes = 20, segments = 20, start = 1 } }
		local rows = clim.conns_rows(list, 3)
		assert.are.same({ 2, 4, 3 }, { rows[1].sport, rows[2].sport, rows[3].sport })
		rows = clim.conns_rows(list, 2, "segments")
		assert.are.same({ 4, 3 }, { rows[1].sport, rows[2].sport })
		local text = clim.conns_text(clim.conns_rows(list, 1), "HEAD")
		local l = cli.lines(text)
		assert.are.same({ "HEAD", "CONNECTION", "10.0.0.1.2 > 10.0.0.2.9000" },
			{ l[1], l[2]:match("^%S+"), l[3]:match("^(%S+ > %S+)") })
		assert.matches(" 1%.5s +3 +300 B +118us +1 +0 SADF$", l[3])
	end)

	it("export: connections_total{end} and handshake_seconds from on_conn", function()
		local metrics = require "tcpinspect.metrics"
		local exporter = require "tcpinspect.exporter"
		local cb, polls = nil, 0
		local s = { on_conn = function(_, fn) cb = fn end, poll = function() polls = polls + 1 end }
		local reg = metrics.registry { clock = function() return 0 end }
		exporter.conn_metrics(s, reg)
		cb(conn { handshake = 0.0003 })
		cb(conn { handshake = 0.04 })
		local reset = conn { end_reason = "rst" }
		reset.handshake = nil -- no handshake seen
		cb(reset)
		cb(conn { end_reason = "idle", handshake = 0.0003 })
		local text = reg:render()
		assert.are.equal(1, polls) -- a scrape polls the session first
		assert.matches('\ntcpinspect_connections_total{end="fin"} 2\n', text)
		assert.matches('\ntcpinspect_connections_total{end="rst"} 1\n', text)
		assert.matches('\ntcpinspect_connections_total{end="idle"} 1\n', text)
		assert.matches('\ntcpinspect_handshake_seconds_bucket{le="0.0001"} 0\n', text)
		assert.matches('\ntcpinspect_handshake_seconds_bucket{le="0.0005"} 2\n', text)
		assert.matches('\ntcpinspect_handshake_seconds_bucket{le="0.05"} 3\n', text)
		assert.matches('\ntcpinspect_handshake_seconds_bucket{le="%+Inf"} 3\n', text)
		assert.matches('\ntcpinspect_handshake_seconds_count 3\n', text)
		local sum = tonumber(text:match("\ntcpinspect_handshake_seconds_sum (%S+)\n"))
		assert.is_true(math.abs(sum - 0.0406) < 1e-12, tostring(sum))
		-- --max-series: the end values fold like any label
		cb = nil
		reg = metrics.registry { clock = function() return 0 end, max_series = 1 }
		exporter.conn_metrics(s, reg)
		cb(conn())
		cb(conn { end_reason = "rst" })
		cb(conn { end_reason = "evicted" })
		text = reg:render()
		assert.matches('\ntcpinspect_connections_total{end="fin"} 1\n', text)
		assert.matches('\ntcpinspect_connections_total{end="other"} 2\n', text)
		assert.is_nil(text:find('end="rst"', 1, true))
	end)

	it("the prelude's on_conn: opens with conns = true, each function in order", function()
		local script = require "tcpinspect.script"
		local opened, cb
		local fake = { on_conn = function(_, fn) cb = fn end, on_packet = function() end }
		local rt = script.new { options = {}, cli = {}, args = {}, name = "t.lua",
			open = function(o) opened = o return fake end }
		local seen = {}
		rt:load { code = "on_conn(function(c) SEEN[#SEEN + 1] = 'a' .. c.sport end) " ..
			"on_conn(function(c) SEEN[#SEEN + 1] = 'b' .. c.sport end)" }()
		rt:open()
		assert.is_true(opened.conns)
		_G.SEEN = seen
		cb(conn { sport = 7 })
		_G.SEEN = nil
		assert.are.same({ "a7", "b7" }, seen)
		-- a script that says conns = false keeps it
		rt = script.new { options = { conns = false }, cli = {}, args = {}, name = "t.lua",
			open = function(o) opened = o return fake end }
		rt:load { code = "on_conn(function() end)" }()
		rt:open()
		assert.is_false(opened.conns)
		-- not a function: named
		rt = script.new { options = {}, cli = {}, args = {}, name = "t.lua", open = function() return fake end }
		local ok, err = pcall(rt:load { code = "on_conn(42)" })
		assert.is_false(ok)
		assert.matches("on_conn: expected a function, got number", err)
	end)
end)

describe("conns: bad options", function()
	it("each mistake names its option (exit 2)", function()
		for _, case in ipairs {
			{ { "conns", "--idle-timeout", "0" }, "argument '%-%-idle%-timeout': expected seconds > 0, got '0'" },
			{ { "conns", "--max-conns", "0" }, "argument '%-%-max%-conns': expected an integer >= 1, got '0'" },
			{ { "conns", "-c", "x" }, "argument '%-%-count': expected an integer >= 1, got 'x'" },
			{ { "conns", "--open", "-n", "-3" }, "argument '%-%-top': expected an integer >= 1, got '%-3'" },
			{ { "conns", "--sort", "packets" }, "argument for option '%-%-sort' must be one of 'bytes', 'segments'" },
			{ { "conns", "--idle-timout", "3" }, "unknown option '%-%-idle%-timout'; did you mean '%-%-idle%-timeout'%?" },
			{ { "watch", "--max-conns", "5" }, "'%-%-max%-conns' is an option of 'tcpinspect %a+'" },
			{ { "export", "--no-conn" }, "unknown option '%-%-no%-conn'; did you mean '%-%-no%-conns'%?" },
		} do
			local r = cli.run(case[1])
			assert.are.equal(2, r.code, table.concat(case[1], " ") .. ": " .. r.err)
			assert.matches(case[2], r.err)
		end
	end)
end)

-- ---- kernel -------------------------------------------------------------------

local net = require "support.net"
local unpriv = require "support.unpriv"

local N = 6 -- connections closed (every third one reset)
local HOLD = 1.5 -- seconds two more are held open, for the table (3 in a guest)

-- the listener: a length, that many bytes, then "k"; then reads to the end
local SERVER = [[
import socket, struct, sys, threading
addr, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ':' in addr else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((addr, port))
s.listen(64)
def recvn(c, n):
    b = b''
    while len(b) < n:
        d = c.recv(n - len(b))
        if not d:
            raise OSError('short')
        b += d
    return b
def handle(c):
    try:
        size = struct.unpack('!I', recvn(c, 4))[0]
        recvn(c, size)
        c.sendall(b'k')
        while c.recv(65536):
            pass
    except OSError:
        pass
    c.close()
print('listening', flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=handle, args=(c,), daemon=True).start()
]]

-- the client: n connections closed by FIN or (every third) RST, then two
-- held, one line each "SPORT END PAYLOAD"; after hold seconds the first
-- held one closes (FIN), the second stays open until the process is killed
-- (the held ones open last: the first has to outlive only the hold, not the
-- n as well, inside idle_timeout, so idle_timeout, which the second one
-- waits out before it ends idle, can be short)
local CLIENT = [[
import socket, struct, sys, time
addr, port, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
fam = socket.AF_INET6 if ':' in addr else socket.AF_INET
def opened(size):
    c = socket.socket(fam)
    c.connect((addr, port))
    c.sendall(struct.pack('!I', size) + b'x' * size)
    assert c.recv(1) == b'k'
    return c
def fin(c):
    c.shutdown(socket.SHUT_WR)
    while c.recv(4096):
        pass
    c.close()
for i in range(1, n + 1):
    size = 1000 * i + 7
    c = opened(size)
    sport = c.getsockname()[1]
    if i % 3 == 0:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        c.close()
        print('conn %d rst %d' % (sport, size + 4), flush=True)
    else:
        fin(c)
        print('conn %d fin %d' % (sport, size + 4), flush=True)
    time.sleep(0.05)
held = [opened(100), opened(200)]
print('held %d fin 104' % held[0].getsockname()[1], flush=True)
print('held %d idle 204' % held[1].getsockname()[1], flush=True)
time.sleep(hold)
fin(held[0])
print('closed', flush=True)
time.sleep(3600)
]]

-- tshark's streams of a capture (incoming only): by source port, {segments,
-- bytes, end ("rst" with a RST, "fin" with a FIN, else "idle"), retransmits
-- (tshark's retransmission and out-of-order flags), zero windows,
-- handshake (the SYN to the first ACK after it, from the capture's times)}
local function tshark_streams(file)
	net.must("chmod 644 " .. net.q(file))
	local ok, out = net.sh(unpriv.SETPRIV .. "env HOME=/nonexistent tshark -r " .. net.q(file) ..
		" -n -T fields -E separator=, -e tcp.srcport -e tcp.len -e tcp.flags -e frame.time_epoch" ..
		" -e tcp.analysis.retransmission -e tcp.analysis.out_of_order -e tcp.analysis.zero_window 2>/dev/null")
	assert(ok, "tshark -r " .. file .. ": " .. out)
	local by = {}
	for l in out:gmatch("[^\n]+") do
		local f = {}
		for x in (l .. ","):gmatch("([^,]*),") do f[#f + 1] = x end
		local sport, len, flags, t = tonumber(f[1]), tonumber(f[2]), tonumber(f[3]), tonumber(f[4])
		local s = by[sport]
		if not s then
			s = { segments = 0, bytes = 0, retransmits = 0, zero_windows = 0 }
			by[sport] = s
		end
		s.segments, s.bytes = s.segments + 1, s.bytes + len
		if f[5] ~= "" or f[6] ~= "" then s.retransmits = s.retransmits + 1 end
		if f[7] ~= "" then s.zero_windows = s.zero_windows + 1 end
		if flags & 0x04 ~= 0 then s["end"] = "rst" end
		if flags & 0x01 ~= 0 and s["end"] ~= "rst" then s["end"] = "fin" end
		if flags & 0x12 == 0x02 then s.syn = t end
		if flags & 0x12 == 0x10 and s.syn and not s.ack then s.ack = t end
	end
	for _, s in pairs(by) do
		s["end"] = s["end"] or "idle"
		if s.syn and s.ack then s.handshake = s.ack - s.syn end
	end
	return by
end

local function cleanups() return net.cleanups(finally) end

-- the handshake as the session saw it against the capture's: within 5 %,
-- or 1 ms (10 under emulation) where the times are too small for 5 % to mean much
local function near(got, want)
	return math.abs(got - want) <= math.max(0.05 * want, net.IN_VM and 0.01 or 0.001)
end

-- one scene: the connections above under tcpdump in the server's namespace,
-- and a `tcpinspect conns` process per entry of runs (its extra arguments,
-- run.mode its mode) watching them.  Returns each run's result (in the
-- order of runs), what the client sent (by source port), tshark's streams
-- and the pair.
local function scene(runs)
	local defer = cleanups()
	local pair = net.netns_pair()
	defer(function() pair:destroy() end)
	-- under emulation (the guests have netem): 20 ms each way, so the
	-- handshake (SYN-ACK out, ACK in) is about 40 ms
	local delay = net.IN_VM and pair:exec(pair.server, ("tc qdisc add dev %s root netem delay 20ms"):format(
		pair.sdev))
	if delay then
		net.must(("ip netns exec %s tc qdisc add dev %s root netem delay 20ms"):format(pair.client, pair.cdev))
	end
	local port = net.port()
	-- the first held connection must outlive the hold before its FIN, well
	-- inside idle_timeout (it opens after the N others: see CLIENT); the
	-- second is ended by idle_timeout, so every run waits that out once
	local idle, hold = net.IN_VM and 10 or 3, net.IN_VM and 3 or HOLD
	local sfile, cfile = net.tmpfile(".py"), net.tmpfile(".py")
	net.write_file(sfile, SERVER)
	net.write_file(cfile, CLIENT)
	local sout = net.tmpfile(".out")
	local srv = net.spawn(("ip netns exec %s python3 %s %s %d"):format(pair.server, net.q(sfile), pair.server4,
		port), sout)
	defer(function() net.kill(srv, "KILL") end)
	assert(net.wait_until(function() return (net.read_file(sout) or ""):find("listening") end, net.scale(10)))
	local cap = net.tcpdump { netns = pair.server, iface = pair.sdev, filter = "tcp dst port " .. port }
	defer(function() if net.alive(cap.pid) then net.kill(cap.pid, "KILL") end end)
	local common = { "--netns", pair.server, "--dport", tostring(port), "--idle-timeout", tostring(idle) }
	local procs = {}
	for i, extra in ipairs(runs) do
		local a = { "conns", "--mode", extra.mode }
		for _, x in ipairs(extra) do a[#a + 1] = x end
		for _, x in ipairs(common) do a[#a + 1] = x end
		local p = cli.start(a)
		defer(function() p:kill() end)
		procs[i] = p:ready(net.scale(20))
	end
	local cout = net.tmpfile(".out")
	local client = net.spawn(("ip netns exec %s python3 %s %s %d %d %s"):format(pair.client, net.q(cfile),
		pair.server4, port, N, tostring(hold)), cout)
	defer(function() net.kill(client, "KILL") end)
	assert(net.wait_until(function() return (net.read_file(cout) or ""):find("closed") end, net.scale(60)),
		"client: " .. (net.read_file(cout) or ""))
	local sent = {}
	for kind, sport, how, bytes in (net.read_file(cout)):gmatch("(%a+) (%d+) (%a+) (%d+)") do
		sent[tonumber(sport)] = { kind = kind, ["end"] = how, bytes = tonumber(bytes) }
	end
	-- every connection ends: RST at once, FIN 5 s after (at most idle_timeout), the held
	-- one idle_timeout after its last segment; a run with -c ends by itself
	local function lines_of(p)
		local t = {}
		for _, l in ipairs(cli.lines(p:stdout())) do if l:sub(1, 1) ~= "#" then t[#t + 1] = l end end
		return t
	end
	net.wait_until(function()
		for i, p in ipairs(procs) do
			local c = runs[i].count
			if c == nil and (runs[i].log and #lines_of(p) < N + 2) then return false end
		end
		return true
	end, net.scale(idle + 10))
	local results = {}
	for i, p in ipairs(procs) do
		if runs[i].count then
			results[i] = p:wait(net.scale(10)) -- -c ended it already
		else
			net.sleep(0.3)
			p:interrupt()
			results[i] = p:wait(net.scale(30))
		end
	end
	local pkts = cap:stop()
	net.kill(client, "KILL")
	assert.is_true(#pkts > 0, "tcpdump saw nothing: " .. (net.read_file(cap.log) or "") .. "\nclient:\n" ..
		(net.read_file(cout) or "") .. "\nconns:\n" .. results[1].out .. results[1].err)
	return results, sent, tshark_streams(cap.file), pair, port, delay
end

-- a conn (parsed from text or JSON) against tshark's stream and what the client did
local function check_conn(c, streams, sent, pair, port, delay, line, err)
	local s, want = streams[c.sport], sent[c.sport]
	assert.is_table(s, "no stream of " .. line)
	assert.is_table(want, "no connection of " .. line)
	assert.are.same({ pair.client4, pair.server4, port }, { c.saddr, c.daddr, c.dport })
	assert.are.same({ s.segments, s.bytes, s["end"], s.retransmits, s.zero_windows },
		{ c.segments, c.bytes, c.end_reason, c.retransmits, c.zero_windows }, line .. "\n" .. (err or ""))
	assert.are.same({ want.bytes, want["end"] }, { c.bytes, c.end_reason }, line)
	assert.matches("^S", c.history, line)
	assert.matches(c.end_reason == "rst" and "R" or c.end_reason == "fin" and "F" or "D", c.history)
	assert.is_number(c.handshake, line)
	-- each session its own clock reads, near the capture's
	assert.is_true(near(c.handshake, s.handshake),
		("%s: handshake %.6f, the capture's %.6f"):format(line, c.handshake, s.handshake))
	if delay then assert.is_true(c.handshake >= 0.04, line) end
end

-- The per-mode scene, once for every mode (as spec/35): one traffic, a
-- `conns` process per mode watching it, each mode's test checks its own;
-- the scene's error fails each mode's test
local MODES = net.modes()
local shared, shared_err
local function per_mode_scene()
	if not shared and not shared_err then
		local runs = {}
		for i, m in ipairs(MODES) do runs[i] = { mode = m, log = true } end
		local ok, r = pcall(function() return table.pack(scene(runs)) end)
		if ok then shared = r else shared_err = r end
	end
	assert(shared, shared_err)
	return table.unpack(shared, 1, shared.n)
end

describe("#kernel #cli conns", function()
	for mi, mode in ipairs(MODES) do
		-- what the mode's hook saw: the text log against the capture, per mode
		it(("[%s] conns --netns: a line per connection == tshark's stream (segments, bytes, end, handshake)"):format(
			mode), function()
			local results, sent, streams, pair, port, delay = per_mode_scene()
			-- the text log: the header, then a line per connection
			local r = results[mi]
			assert.are.equal(0, r.code, r.err)
			local lines = cli.lines(r.out)
			assert.are.equal(fmt.conn_header(), lines[1])
			assert.are.equal(N + 2 + 1, #lines, r.out)
			local seen = {}
			for i = 2, #lines do
				local c = assert(fmt.parse_conn(lines[i]), lines[i])
				assert.is_nil(seen[c.sport], "twice: " .. lines[i])
				seen[c.sport] = c
				check_conn(c, streams, sent, pair, port, delay, lines[i], r.err)
			end
			assert.matches(("%d connections printed %%(0 still open%%)"):format(N + 2), r.err)
			net.say("[%s] conns: %d connections == tshark's streams; handshakes %s", mode, N + 2, (function()
				local t = {}
				for _, c in pairs(seen) do t[#t + 1] = ("%.0fus"):format(c.handshake * 1e6) end
				return table.concat(t, " ")
			end)())
		end)

		-- the CLI's other outputs of the same conn view: once per kernel
		it(("[%s] conns --json, -c, --open: the same connections as tshark's streams, three lines, the held ones open #anymode #cli"):format(
			mode), function()
			local results, sent, streams, pair, port, delay = scene { { "--json", mode = mode, log = true },
				{ "--json", "-c", "3", mode = mode, count = true },
				{ "--open", "--json", "--interval", "0.25", mode = mode } }
			-- --json: a line per connection, each == tshark's stream
			local r = results[1]
			assert.are.equal(0, r.code, r.err)
			local lines = cli.lines(r.out)
			assert.are.equal(N + 2, #lines, r.out)
			local seen = {}
			for _, l in ipairs(lines) do
				local v = assert(dkjson.decode(l), l)
				assert.is_nil(seen[v.sport], "twice: " .. l)
				seen[v.sport] = v
				check_conn(v, streams, sent, pair, port, delay, l, r.err)
				assert.are.equal(4, v.family)
				assert.is_true(v.last >= v.start)
			end

			-- -c 3: ended by itself after three lines
			local rc = results[2]
			assert.are.equal(0, rc.code, rc.err)
			lines = cli.lines(rc.out)
			assert.are.equal(3, #lines, rc.out)
			for _, l in ipairs(lines) do
				local v = assert(dkjson.decode(l), l)
				assert.are.equal(assert(seen[v.sport], l).segments, v.segments)
			end

			-- --open: while two were held, the table showed them, open, with
			-- their bytes so far; the final report has none open and every one ended
			r = results[3]
			assert.are.equal(0, r.code, r.err)
			local held, last = {}, nil
			for sport, w in pairs(sent) do if w.kind == "held" then held[#held + 1] = sport end end
			local showed = false
			for _, l in ipairs(cli.lines(r.out)) do
				local v = assert(dkjson.decode(l), l)
				assert.are.equal("conns", v.type)
				local got = {}
				for _, c in ipairs(v.conns) do
					assert.are.equal("open", c.end_reason)
					got[c.sport] = c
				end
				local a, b = got[held[1]], got[held[2]]
				if a and b and a.bytes == sent[held[1]].bytes and b.bytes == sent[held[2]].bytes then showed = true end
				last = v
			end
			assert.is_true(showed, "the table never showed the two held connections:\n" .. r.out)
			assert.is_true(last.final)
			assert.are.same({ 0, N + 2 }, { last.open, last.ended })
		end)
	end
end)
