-- SPDX-License-Identifier: GPL-2.0-only
-- The CLI's connections (issue 22, items 3 and 5): `tcpinspect conns`
-- (the conn log, text and --json), `conns --open` (the live table) and the
-- conn lines' formatting.
--
-- Unit (no tag): the text and JSON of conn tables, the table's rows, the
-- exporter's connection metrics and the prelude's on_conn on a stand-in
-- session.
--
-- Kernel (host: tc, cgroup; the guests: every mode; tag cli): N
-- connections from one namespace to another over a veth, each sending a
-- known number of bytes and then closing (FIN) or resetting (RST), under
-- tcpdump in the receiving namespace.  `tcpinspect conns --netns` prints
-- one line per connection, and each line's segments, bytes and end equal
-- tshark's values for that stream of the capture; its handshake time
-- equals the capture's (SYN to the ACK that completed the handshake).
-- --json parses with dkjson and says the same; the live table shows the
-- connections held open; bad options are named.
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
