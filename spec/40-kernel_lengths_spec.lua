-- SPDX-License-Identifier: GPL-2.0-only
-- 32-bit lengths end to end: record, packet fields, `-w` (session:dump),
-- the expression's `len`, from the kernel's hooks and from a replay.
--
-- Live (#kernel, every mode): bulk data over IPv6 on lo with TCP_NODELAY
-- (spec/support/bulk_sender.py).  lo's MTU is 65536, and GSO hands TCP
-- whole 65536-byte segments (IPv6 payload length 65496): 16-bit lengths
-- wrapped them to 0.  In a network namespace of our own whose lo allows
-- BIG TCP (gso_max_size 185000), the segments grow past 64 KiB: IPv6
-- jumbograms, payload length 0 and a Hop-by-Hop Jumbo Payload option (RFC
-- 2675).  In both, for every segment to the server port, tcpinspect's
-- p.seq, p.len and p.wirelen equal what tcpdump captured of the same
-- traffic (its frame length less the Ethernet header, its TCP payload),
-- session:dump's frame lengths equal tcpdump's (less LINUX_SLL2's 20
-- header bytes instead of Ethernet's 14), and a second session with the
-- expression `len > 60000` receives exactly the segments tcpdump has of
-- more than 60000 bytes.
--
-- Replay: the three shapes of tcpdump's BIG TCP test captures (tcpdump
-- 4.99.4+; Debian 12's 4.99.3 source has none), made by
-- spec/support/bigtcp.lua: IPv4 with total length 0, IPv6 with a
-- Hop-by-Hop jumbo header, IPv6 with payload length 0 and no Hop-by-Hop
-- header.  Per frame, p.len, p.iplen and p.wirelen equal tshark's tcp.len,
-- ip.len (IPv6: the jumbo payload length) and frame.len - 14 (the last
-- one, which tshark 4.0 calls malformed: the lengths it was made with, as
-- tcpdump 4.99.6 prints them, "real length 80040", "length 79968"); the
-- dump and the expression `len > 60000` agree too.
local net = require "support.net"
local pcapfile = require "support.pcapfile"
local ti = require "tcpinspect"

local bigtcp = require "support.bigtcp"
local SENDER = "timeout -k 5 150 python3 spec/support/bulk_sender.py"
local LINKTYPE_LINUX_SLL2 = 276

-- "seq len wirelen" of a segment, the form both sides are compared in
local function key(seq, len, wirelen)
	return ("%d %d %d"):format(seq, len, wirelen)
end

-- tcpdump's Ethernet capture: the keys and IP lengths of the TCP segments
-- to dport.  (libpcap's `tcp` does not look past an IPv6 Hop-by-Hop
-- header, so the capture's filter is `ip6` and the port is checked here.)
local function tcpdump_segments(path, dport)
	local cap = pcapfile.read(path)
	assert(cap.linktype == pcapfile.LINKTYPE_ETHERNET, "link type " .. cap.linktype)
	local keys, wires = {}, {}
	for _, r in ipairs(cap.packets) do
		local ip, wire = r.data:sub(15), r.len - 14
		local l4
		if ip:byte(1) >> 4 == 4 then
			l4 = (ip:byte(1) & 15) * 4
		else
			l4 = 40
			if ip:byte(7) == 0 then l4 = l4 + (ip:byte(42) + 1) * 8 end -- Hop-by-Hop
		end
		local dst, seq = string.unpack(">I2I4", ip, l4 + 3)
		local doff = (ip:byte(l4 + 13) >> 4) * 4
		if dst == dport then
			keys[#keys + 1] = key(seq, wire - l4 - doff, wire)
			wires[#wires + 1] = wire
		end
	end
	table.sort(keys)
	table.sort(wires)
	return keys, wires
end

-- the frame lengths of a session:dump file, less the LINUX_SLL2 header
local function dump_wirelens(path)
	local cap = pcapfile.read(path)
	assert(cap.linktype == LINKTYPE_LINUX_SLL2, "link type " .. cap.linktype)
	local wires = {}
	for _, r in ipairs(cap.packets) do wires[#wires + 1] = r.len - 20 end
	table.sort(wires)
	return wires
end

local function count_over(wires, n)
	local c = 0
	for _, w in ipairs(wires) do if w > n then c = c + 1 end end
	return c
end

-- Send `bytes` to addr:port (in ns, if given) under two sessions of mode
-- and tcpdump; compare.  Returns the largest wirelen seen.
local function compare_live(mode, addr, bytes, ns, rcvbuf)
	local port = net.port()
	local scope = ns and { netns = ns.name } or {}
	local function opts(t)
		for k, v in pairs(scope) do t[k] = v end
		return t
	end
	local s = net.open(opts{ mode = mode, snaplen = 128, filter = { dport = port } })
	local sx = net.open(opts{ mode = mode, filter = { dport = port, expr = "len > 60000" } })
	local dump = net.tmpfile(".pcap")
	assert(s:dump(dump))
	local got, matched = {}, 0
	s:on_packet(function(p)
		assert.are.equal(6, p.family)
		assert.are.equal(p.wirelen - 40, p.iplen)
		got[#got + 1] = key(p.seq, p.len, p.wirelen)
	end)
	sx:on_packet(function(p)
		assert.is_true(p.wirelen > 60000, "len > 60000 matched a segment of " .. p.wirelen)
		matched = matched + 1
	end)
	local cap = net.tcpdump{ iface = "lo", netns = ns and ns.name, snaplen = 128, filter = "ip6" }
	local ok, err = pcall(function()
		local cmd = ("%s %s %d %d %s"):format(SENDER, addr, port, bytes, rcvbuf or "")
		local out = net.must(ns and ("ip netns exec %s %s"):format(ns.name, cmd) or cmd)
		assert(tostring(out):find("ok", 1, true), "sender: " .. tostring(out))
	end)
	cap:stop()
	net.drain(s)
	net.drain(sx)
	s:dump(nil)
	local st = s:stats()
	s:close()
	sx:close()
	assert(ok, err)
	local want, wires = tcpdump_segments(cap.file, port)
	table.sort(got)
	assert.is_true(#want >= 5, "tcpdump saw " .. #want .. " segments")
	assert.are.equal(0, st.errors)
	assert.are.same(want, got)
	assert.are.same(wires, dump_wirelens(dump))
	local over = count_over(wires, 60000)
	assert.is_true(over >= 1, ("no segment over 60000 bytes (%d segments, the largest %d)"):format(#wires,
		wires[#wires] or 0))
	assert.are.equal(over, matched)
	return wires[#wires], #want, over
end

describe("32-bit lengths on lo #kernel", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] 65536-byte IPv6 segments: len, wirelen, dump and `len > 60000` as tcpdump"):format(mode), function()
			local max, n, over = compare_live(mode, "::1", 2000000, nil, 4 << 20)
			assert.are.equal(65536, max)
			net.say("[%s] lo ::1: %d segments as tcpdump, %d over 60000 bytes, largest %d", mode, n, over, max)
		end)

		it(("[%s] BIG TCP IPv6 jumbograms in a namespace: as tcpdump"):format(mode), function()
			local ns = net.netns("len")
			local ok, err = pcall(function()
				net.must(("ip -n %s link set lo gso_max_size 185000 gro_max_size 185000"):format(ns.name))
				local max, n, over = compare_live(mode, "::1", 3000000, ns)
				assert.is_true(max > 65536, "largest segment " .. max .. ": no jumbogram")
				net.say("[%s] BIG TCP ::1 in a netns: %d segments as tcpdump, %d over 60000, largest %d",
					mode, n, over, max)
			end)
			ns:destroy()
			assert(ok, err)
		end)
	end
end)

-- tshark's per-frame fields of a capture (one line a frame, tab-separated)
local function tshark(file, fields)
	local args = {}
	for _, f in ipairs(fields) do args[#args + 1] = "-e " .. f end
	local p = assert(io.popen(("tshark -r %s -T fields %s 2>/dev/null"):format(file, table.concat(args, " "))))
	local rows = {}
	for line in p:lines() do
		local row, i = {}, 0
		for v in (line .. "\t"):gmatch("([^\t]*)\t") do
			i = i + 1
			row[fields[i]] = tonumber(v)
		end
		rows[#rows + 1] = row
	end
	p:close()
	return rows
end

local function replay(file, filter)
	local s <close> = assert(ti.replay { file = file, snaplen = 128, filter = filter })
	local dump = net.tmpfile(".pcap")
	assert(s:dump(dump))
	local got = {}
	s:on_packet(function(p) got[#got + 1] = { len = p.len, iplen = p.iplen, wirelen = p.wirelen } end)
	s:run()
	s:dump(nil)
	return got, s:stats(), dump_wirelens(dump)
end

local function capture(name)
	return bigtcp.write(name, net.tmpfile(".pcap"))
end

describe("32-bit lengths in replay: BIG TCP captures", function()
	it("IPv4 total length 0: per frame as tshark", function()
		local file = capture("ipv4")
		local want = tshark(file, { "frame.len", "ip.len", "tcp.len" })
		assert.are.equal(1, #want)
		assert.are.equal(80000, want[1]["tcp.len"])
		local got, st, dumped = replay(file)
		assert.are.equal(0, st.errors)
		assert.are.equal(#want, #got)
		for i, w in ipairs(want) do
			assert.are.same({ len = w["tcp.len"], iplen = w["ip.len"], wirelen = w["frame.len"] - 14 }, got[i])
			assert.are.equal(w["frame.len"] - 14, dumped[i])
		end
		assert.are.equal(1, #replay(file, { expr = "len > 60000" }))
		assert.are.equal(0, #replay(file, { expr = "len <= 60000" }))
		assert.are.equal(1, #replay(file, { len = { min = 80000, max = 80000 } }))
	end)

	it("IPv6 with a Hop-by-Hop Jumbo Payload option: per frame as tshark", function()
		local file = capture("ipv6-hbh")
		local want = tshark(file, { "frame.len", "ipv6.opt.jumbo", "tcp.len" })
		assert.are.equal(1, #want)
		local jumbo = want[1]["ipv6.opt.jumbo"]
		assert.are.equal(80040, jumbo) -- tcpdump: "HBH (jumbo: 80040)"
		local got, st, dumped = replay(file)
		assert.are.equal(0, st.errors)
		assert.are.same({ { len = want[1]["tcp.len"], iplen = jumbo, wirelen = want[1]["frame.len"] - 14 } }, got)
		assert.are.same({ want[1]["frame.len"] - 14 }, dumped)
		assert.are.equal(1, #replay(file, { expr = "len > 60000" }))
	end)

	it("IPv6 payload length 0, no Hop-by-Hop header: the frame's length", function()
		local file = capture("ipv6")
		-- made with a 32-byte TCP header and 79968 bytes of payload
		local real, len = 40 + 32 + 79968, 79968
		local want = tshark(file, { "frame.len" })
		local got, st = replay(file)
		assert.are.equal(0, st.errors)
		-- the real length is the whole IPv6 packet's, as frame.len - 14 is
		assert.are.equal(real, want[1]["frame.len"] - 14)
		assert.are.same({ { len = len, iplen = real - 40, wirelen = real } }, got)
	end)
end)
