-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.format: text for packets, byte counts, rates and durations.
--
--     local fmt = require "tcpinspect.format"
--     s:on_packet(function(p) print(fmt.packet(p)) end)
--     -- 15:04:05.123456 IP 127.0.0.1.41234 > 127.0.0.1.22: Flags [S.], seq 123, ack 456, win 65483, length 0
--     fmt.bytes(1536)          --> "1.5 KiB"
--     fmt.rate(12345, "pps")   --> "12.3 kpps"
--     fmt.duration(3723)       --> "1h02m03s"
--
-- Everything here reads fields by name, so it works on a packet view (inside
-- a callback), on `p:copy()`, on `p:totable()` and on plain tables.
-- @module tcpinspect.format
local M = {}

local floor, sformat = math.floor, string.format

--- tcpdump's text for a flags byte ("S", "S.", "P.", "F.", "R", "none"),
-- for when a plain table has `flags` but no `flagstr`: the core's
-- `tcpinspect.flagstr`, so both spell flags the same way.
-- @tparam integer flags
-- @treturn string
local core = require "tcpinspect.core"
M.flags = core.flagstr

-- tcpdump's fn_print_char: a byte as it is when printable ASCII, else
-- "M-" for the high bit, then "^" and the byte xor 0x40 for a control one
local VIS = {}
for c = 0, 255 do
	local t, b = "", c
	if b > 0x7f then t, b = "M-", b & 0x7f end
	if b < 0x20 or b == 0x7f then t, b = t .. "^", b ~ 0x40 end
	VIS[string.char(c)] = t .. string.char(b)
end

--- A name from the system or a capture (an interface, a process's comm,
-- a namespace's name) as it can be printed on a terminal: printable ASCII
-- (0x20-0x7e) as it is, any other byte as tcpdump prints it (its
-- `fn_print_char`): "M-" for a byte with the high bit set, followed by that
-- byte's low 7 bits; a control character as "^" and the character 0x40 above
-- it ("\27" ESC -> "^[", "\7" BEL -> "^G", DEL -> "^?", "\155" -> "M-^[",
-- "\233" -> "M-i").  So no byte from a name can move the cursor, clear the
-- screen or retitle the terminal.
-- @tparam string s
-- @treturn string
function M.printable(s)
	s = tostring(s)
	if not s:find("[^\32-\126]") then return s end
	return (s:gsub("[^\32-\126]", VIS))
end

--- Wall-clock time of day as tcpdump prints it: "15:04:05.123456" (local time).
-- @tparam number t seconds since the epoch (a float, like `p.time`)
-- @treturn string
M.clock = core.clock -- the line's clock, in C (luaext/packet.c)

--- An address and a port as tcpdump joins them: "10.0.0.1.22", "::1.22".
-- @tparam string addr
-- @tparam integer port
-- @treturn string
function M.endpoint(addr, port)
	return sformat("%s.%d", addr, port)
end

--- One packet as a tcpdump line (like `tcpdump -S -n`: absolute sequence
-- numbers, a "seq A:B" range when there is payload, "ack" only with ACK).
--
--     15:04:05.123456 IP 127.0.0.1.41234 > 127.0.0.1.22: Flags [S.], seq 123, ack 456, win 65483, length 0
--
-- A view's or copy's `p.line` (made in C, the one definition of the line);
-- a table without `line` goes through `format.segment`.
-- @param p a packet (view, copy or table with the packet fields)
-- @treturn string the line, without a newline
function M.packet(p)
	local line = p.line
	if line then return line end
	return M.segment(p.time, p.family, p.saddr, p.sport, p.daddr, p.dport, p.flags, p.seq, p.ack, p.window, p.len,
		p.flagstr)
end

--- The fields `format.segment` takes, in its order.
M.SEGMENT_FIELDS = { "time", "family", "saddr", "sport", "daddr", "dport", "flags", "seq", "ack", "window", "len",
	"flagstr" }

--- `format.packet`'s line from the fields themselves (M.SEGMENT_FIELDS):
-- the core's `segment_line`, which makes the packet field `line`, so the
-- text has one definition (ack may be nil without ACK, flagstr nil: from
-- flags).
-- @treturn string the line, without a newline
M.segment = core.segment_line

--- Parse a line made by `format.packet` back into a table (for tests and
-- tools reading `tcpinspect watch` output).
-- @tparam string line
-- @treturn table|nil clock, family, saddr, sport, daddr, dport, flagstr, seq,
--   seq_end (with payload), ack (with ACK), window, len
-- tcpdump's printable test (ND_ASCII_ISGRAPH): '!' .. '~'
local function graph(c)
	return c > 0x20 and c < 0x7f
end

--- The bytes as tcpdump -X prints them after a packet's line: for each 16
-- bytes a line "\n\t0x0000:  4500 0034 ...  E..4...", the hex in groups of
-- two bytes padded to 40 columns, then the printable characters ('.' for
-- the rest).  "" for no bytes.
function M.hex_ascii(b)
	local out = {}
	for off = 0, #b - 1, 16 do
		local hex, asc = {}, {}
		local line = b:sub(off + 1, off + 16)
		for i = 1, #line, 2 do
			local c1, c2 = line:byte(i, i + 1)
			hex[#hex + 1] = c2 and (" %02x%02x"):format(c1, c2) or (" %02x"):format(c1)
			asc[#asc + 1] = graph(c1) and string.char(c1) or "."
			if c2 then asc[#asc + 1] = graph(c2) and string.char(c2) or "." end
		end
		out[#out + 1] = ("\n\t0x%04x: %-40s  %s"):format(off, table.concat(hex), table.concat(asc))
	end
	return table.concat(out)
end

--- The bytes as tcpdump -A prints them after a packet's line: a newline,
-- then each byte as itself when printable, a tab, space or newline, else
-- '.'; a CR is dropped before a newline and at the end (tcpdump's
-- ascii_print).
function M.ascii(b)
	local out, n = { "\n" }, #b
	for i = 1, n do
		local c = b:byte(i)
		if c == 13 then
			if n - i > 1 and b:byte(i + 1) ~= 10 then out[#out + 1] = "." end
		elseif graph(c) or c == 9 or c == 32 or c == 10 then
			out[#out + 1] = string.char(c)
		else
			out[#out + 1] = "."
		end
	end
	return table.concat(out)
end

function M.parse_packet(line)
	local clock, ip, src, dst, flagstr, rest =
		line:match("^(%d%d:%d%d:%d%d%.%d+) (IP6?) (%S+) > (%S+): Flags %[([^%]]*)%], (.*)$")
	if not clock then return nil end
	local saddr, sport = src:match("^(.*)%.(%d+)$")
	local daddr, dport = dst:match("^(.*)%.(%d+)$")
	local t = { clock = clock, family = ip == "IP6" and 6 or 4, saddr = saddr, sport = tonumber(sport),
		daddr = daddr, dport = tonumber(dport), flagstr = flagstr }
	local seq, seq_end = rest:match("^seq (%d+):(%d+)")
	if not seq then seq = rest:match("^seq (%d+)") end
	t.seq, t.seq_end = tonumber(seq), tonumber(seq_end)
	t.ack = tonumber(rest:match(", ack (%d+)"))
	t.window = tonumber(rest:match(", win (%d+)"))
	t.len = tonumber(rest:match(", length (%d+)$"))
	return t
end

-- A number with about 3 significant digits: "1.5", "12.3", "123", "7".
local function short(v)
	if v == floor(v) and math.abs(v) < 2^53 then return sformat("%d", v) end
	local a = math.abs(v)
	local s = sformat(a >= 100 and "%.0f" or a >= 10 and "%.1f" or "%.2f", v)
	if s:find(".", 1, true) then s = s:gsub("0+$", ""):gsub("%.$", "") end
	return s
end
M._short = short

local BIN = { "KiB", "MiB", "GiB", "TiB", "PiB" }

--- A byte count in binary units: "512 B", "1.5 KiB", "12.3 MiB".
-- @tparam number n bytes
-- @treturn string
function M.bytes(n)
	if math.abs(n) < 1024 then
		return sformat("%d B", floor(n + 0.0))
	end
	local i = 0
	repeat
		n, i = n / 1024, i + 1
	until math.abs(n) < 1024 or i == #BIN
	return sformat("%s %s", short(n), BIN[i])
end

local SI = { "k", "M", "G", "T", "P" }

--- A quantity in SI units with a unit name: rate(12345, "pps") -> "12.3 kpps",
-- rate(950, "pps") -> "950 pps", rate(2.5e6, "B/s") -> "2.5 MB/s".
-- @tparam number v
-- @tparam[opt=""] string unit
-- @treturn string
function M.rate(v, unit)
	unit = unit or ""
	local i = 0
	while math.abs(v) >= 1000 and i < #SI do
		v, i = v / 1000, i + 1
	end
	local prefix = i > 0 and SI[i] or ""
	if unit == "" then return short(v) .. prefix end
	return sformat("%s %s%s", short(v), prefix, unit)
end

--- Bytes per second in binary units: "1.5 KiB/s".
-- @tparam number bps
-- @treturn string
function M.byterate(bps)
	return M.bytes(bps) .. "/s"
end

--- A count with an SI suffix and no unit: count(1234) -> "1.23k", count(12) -> "12".
-- @tparam number n
-- @treturn string
function M.count(n)
	local i = 0
	while math.abs(n) >= 1000 and i < #SI do
		n, i = n / 1000, i + 1
	end
	return short(n) .. (i > 0 and SI[i] or "")
end

--- A duration in seconds as text: "1h02m03s", "2m05s", "2.5s", "150ms", "12us", "0s".
-- @tparam number s seconds
-- @treturn string
function M.duration(s)
	if s < 0 then return "-" .. M.duration(-s) end
	if s == 0 then return "0s" end
	if s < 1e-3 then return sformat("%dus", floor(s * 1e6 + 0.5)) end
	if s < 1 then return sformat("%dms", floor(s * 1e3 + 0.5)) end
	if s < 60 then return short(s) .. "s" end
	local total = floor(s + 0.5)
	local h, m, sec = total // 3600, total % 3600 // 60, total % 60
	if h > 0 then return sformat("%dh%02dm%02ds", h, m, sec) end
	return sformat("%dm%02ds", m, sec)
end

-- ---- connections (tcpinspect conns) -----------------------------------------

--- The columns of a conn line, in order (`tcpinspect conns`, doc/cli.md
-- "conns"): one word each, "-" where a value is unset (a connection whose
-- handshake was not seen has no handshake time), as Zeek's conn.log.
M.CONN_COLUMNS = { "start", "src", "dst", "duration", "segments", "bytes", "handshake", "retransmits",
	"zero_windows", "history", "end" }

--- The header line of the conn log: "#fields start src dst ...".
-- @treturn string
function M.conn_header()
	return "#fields " .. table.concat(M.CONN_COLUMNS, " ")
end

local function seconds6(v)
	if not v then return "-" end
	return sformat("%.6f", v)
end

--- One ended connection as a line of the conn log (a conn view, its
-- `:totable()`, or a table with the same fields):
--
--     15:04:05.123456 10.0.0.1.41234 10.0.0.2.9000 1.204311 12 4000 0.000118 0 0 SADF fin
--
-- start (wall-clock time of day, as tcpdump prints it), the sender and the
-- receiver (address.port), duration and handshake in seconds (6 places;
-- handshake "-" when not seen), incoming segments, payload bytes,
-- retransmitted segments, zero windows, the history letters, how it ended.
-- @param c a connection
-- @treturn string the line, without a newline
function M.conn(c)
	local hist = c.history
	if hist == nil or hist == "" then hist = "-" end
	return sformat("%s %s.%d %s.%d %s %d %d %s %d %d %s %s", M.clock(c.start), c.saddr, c.sport, c.daddr,
		c.dport, seconds6(c.duration), c.segments, c.bytes, seconds6(c.handshake), c.retransmits,
		c.zero_windows, M.printable(hist), M.printable(c.end_reason or "-"))
end

--- A connection's endpoints as tcpdump joins them: "10.0.0.1.41234 > 10.0.0.2.9000".
-- @param c a connection (saddr, sport, daddr, dport)
-- @treturn string
function M.conn_flow(c)
	return sformat("%s.%d > %s.%d", c.saddr, c.sport, c.daddr, c.dport)
end

--- Parse a conn line (`format.conn`) back into a table, "-" as nil (for
-- tests and tools reading `tcpinspect conns` output).
-- @tparam string line
-- @treturn table|nil clock, saddr, sport, daddr, dport, duration, segments, bytes,
--   handshake, retransmits, zero_windows, history, end_reason
function M.parse_conn(line)
	local w = {}
	for x in line:gmatch("%S+") do w[#w + 1] = x end
	if #w ~= #M.CONN_COLUMNS or not w[1]:match("^%d%d:%d%d:%d%d%.%d+$") then return nil end
	local saddr, sport = w[2]:match("^(.*)%.(%d+)$")
	local daddr, dport = w[3]:match("^(.*)%.(%d+)$")
	if not saddr or not daddr then return nil end
	local function num(x) if x ~= "-" then return tonumber(x) end end
	return { clock = w[1], saddr = saddr, sport = tonumber(sport), daddr = daddr, dport = tonumber(dport),
		duration = num(w[4]), segments = num(w[5]), bytes = num(w[6]), handshake = num(w[7]),
		retransmits = num(w[8]), zero_windows = num(w[9]), history = w[10] ~= "-" and w[10] or nil,
		end_reason = w[11] ~= "-" and w[11] or nil }
end

--- Pad or cut a string to a width (left aligned; right aligned if width < 0).
-- @tparam string s
-- @tparam integer width
-- @treturn string
function M.pad(s, width)
	s = tostring(s)
	local w = math.abs(width)
	if #s > w then
		return w > 1 and s:sub(1, w - 1) .. "~" or s:sub(1, w)
	end
	if width < 0 then return string.rep(" ", w - #s) .. s end
	return s .. string.rep(" ", w - #s)
end

return M
