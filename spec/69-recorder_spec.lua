-- SPDX-License-Identifier: GPL-2.0-only
-- The flight recorder on replayed captures (issue 24, items 1, 2 and 4),
-- no root needed: session:recorder{} keeps the window, rec:dump writes it.
--
-- A dump of a replayed window holds the same segments as the input file,
-- byte for byte and with the same timestamps (the dump is LINUX_SLL2: its
-- 20-byte header, then the IP packet the input frame carries); `seconds`
-- cuts the window at the session's clock; `bytes` bounds it, the oldest
-- records going first and counted (added = records + pushed_out + expired,
-- added_bytes = bytes + pushed_out_bytes); `filter` keeps what libpcap's
-- own pcap_offline_filter keeps.
local tcpinspect = require "tcpinspect"
local core = require "tcpinspect.core"
local pcapfile = require "support.pcapfile"

local CORPUS = "spec/fixtures/filter_corpus.pcap" -- LINKTYPE_RAW, 3226 TCP segments
local CONNS = "spec/fixtures/connections.pcap" -- Ethernet, 30 segments
local SLL2 = 20

local tmpdir
setup(function()
	local p = assert(io.popen("mktemp -d /tmp/tcpinspect-rec-XXXXXXXX"))
	tmpdir = p:read("l")
	p:close()
end)
teardown(function()
	if tmpdir then os.execute("rm -rf '" .. tmpdir .. "'") end
end)

-- the input's TCP segments: {data = IP packet, ns = timestamp, len = wire length}
local function input(path)
	local cap = pcapfile.read(path)
	local pkts = cap.linktype == pcapfile.LINKTYPE_ETHERNET and pcapfile.to_raw(cap) or cap.packets
	local out = {}
	for i, p in ipairs(pkts) do
		out[i] = { data = p.data, ns = p.sec * 1000000000 + (p.nsec or p.usec * 1000), len = p.len }
	end
	return out
end

-- a dump's records, the SLL2 header taken off
local function dumped(path)
	local cap = pcapfile.read(path)
	assert.are.equal(276, cap.linktype) -- LINKTYPE_LINUX_SLL2
	local out = {}
	for i, p in ipairs(cap.packets) do
		out[i] = { data = p.data:sub(SLL2 + 1), ns = p.sec * 1000000000 + p.nsec, len = p.len - SLL2 }
	end
	return out
end

-- the records in the window of a replay of the whole file
local function replayed(path, ropts)
	local s = assert(tcpinspect.replay{ file = path, snaplen = 65535 })
	local rec = s:recorder(ropts or { seconds = 1e6 })
	local n = 0
	s:on_packet(function() n = n + 1 end)
	local total, why = s:run()
	assert.are.equal("end", why)
	assert.are.equal(n, total)
	return s, rec, n
end

local function same(want, got, what)
	assert.are.equal(#want, #got, what .. ": count")
	for i = 1, #want do
		assert(want[i].data == got[i].data, ("%s: record %d differs in its bytes"):format(what, i))
		assert.are.equal(want[i].ns, got[i].ns, what .. ": record " .. i .. "'s time")
		assert.are.equal(want[i].len, got[i].len, what .. ": record " .. i .. "'s length")
	end
end

-- 8-byte header and the record (120-byte event, caplen bytes), 8-aligned
local function rec_size(caplen)
	return 8 + ((120 + caplen + 7) & ~7)
end

describe("the flight recorder on a replay", function()
	it("dumps the same frames as the input file: bytes, times, lengths (corpus and an Ethernet capture)", function()
		for _, f in ipairs{ CORPUS, CONNS } do
			local want = input(f)
			local s, rec, n = replayed(f)
			assert.are.equal(#want, n)
			local out = tmpdir .. "/all.pcap"
			local segs, drops = rec:dump(out)
			assert.are.equal(#want, segs)
			assert.are.equal(0, drops)
			same(want, dumped(out), f)
			-- the file is 0600, like -w's
			local p = io.popen("stat -c %a '" .. out .. "'")
			assert.are.equal("600", p:read("l"))
			p:close()
			local st = rec:stats()
			assert.are.equal(#want, st.added)
			assert.are.equal(#want, st.records)
			assert.are.equal(#want, st.segments)
			assert.are.equal(0, st.pushed_out)
			assert.are.equal(1, st.dumps)
			assert.are.equal(#want, st.dumped)
			s:close()
		end
	end)

	it("seconds = X: exactly the frames stamped within X seconds of the session's clock", function()
		local want = input(CORPUS)
		local s, rec = replayed(CORPUS)
		-- the clock stands at the last frame (s:now() is a double: to 1 us)
		local now = want[#want].ns
		assert(math.abs(s:now() * 1e9 - now) < 1000, "clock " .. s:now())
		-- a cut half way between two frames a millisecond or more apart
		local k = #want // 2
		while want[k].ns - want[k - 1].ns < 1000000 do k = k + 1 end
		local cut = (want[k - 1].ns + want[k].ns) / 2
		local seconds = (now - cut) / 1e9
		local out = tmpdir .. "/cut.pcap"
		local segs = rec:dump(out, { seconds = seconds })
		-- (the corpus holds a frame stamped before the one ahead of it:
		-- time decides, not the place in the file)
		local expect = {}
		for i = 1, #want do
			if want[i].ns >= cut then expect[#expect + 1] = want[i] end
		end
		assert(#expect > 100 and #expect < #want - 100, #expect)
		assert.are.equal(#expect, segs)
		same(expect, dumped(out), "seconds = " .. seconds)
		-- and the window's own seconds expires what is older (counted)
		s:close()
		local s2, rec2 = replayed(CORPUS, { seconds = seconds })
		local st = rec2:stats()
		assert.are.equal(#want, st.added)
		assert.are.equal(st.added, st.records + st.expired + st.pushed_out)
		assert.are.equal(0, st.pushed_out)
		-- oldest first in the order records came: the same walk here
		local win_ns, head, expired = math.floor(seconds * 1e9), 1, 0
		for i = 1, #want do
			while head < i and want[head].ns + win_ns < want[i].ns do head, expired = head + 1, expired + 1 end
		end
		assert.are.equal(expired, st.expired)
		assert.are.equal(#want - expired, st.records)
		same(expect, (function()
			rec2:dump(out)
			return dumped(out)
		end)(), "recorder seconds")
		s2:close()
	end)

	it("bytes bounds the window: the oldest records go first, and what goes is counted exactly", function()
		local want = input(CORPUS)
		local cap = 128 << 10
		local s, rec = replayed(CORPUS, { seconds = 1e6, bytes = cap })
		local st = rec:stats()
		local added_bytes = 0
		for _, p in ipairs(want) do added_bytes = added_bytes + rec_size(#p.data) end
		assert.are.equal(#want, st.added)
		assert.are.equal(added_bytes, st.added_bytes)
		assert.are.equal(cap, st.capacity)
		assert(st.bytes <= cap, "window holds " .. st.bytes .. " bytes")
		assert.are.equal(st.added, st.records + st.pushed_out)
		assert.are.equal(0, st.expired)
		assert.are.equal(st.added_bytes, st.bytes + st.pushed_out_bytes)
		-- the newest records fill it: the next older one would not have fit
		-- beside them, less the end of the buffer a wrap leaves unused
		local held = 0
		for i = #want - st.records + 1, #want do held = held + rec_size(#want[i].data) end
		assert.are.equal(st.bytes, held)
		local older = rec_size(#want[#want - st.records].data)
		assert(held + older > cap - rec_size(65535), ("held %d + %d fits in %d"):format(held, older, cap))
		local out = tmpdir .. "/bounded.pcap"
		local segs = rec:dump(out)
		assert.are.equal(st.records, segs)
		local expect = {}
		for i = #want - st.records + 1, #want do expect[#expect + 1] = want[i] end
		same(expect, dumped(out), "bounded")
		s:close()
	end)

	it("snaplen keeps that many bytes of each segment, the length stays the segment's", function()
		local want = input(CORPUS)
		local _, rec = replayed(CORPUS, { seconds = 1e6, snaplen = 60 })
		local out = tmpdir .. "/snap.pcap"
		assert.are.equal(#want, (rec:dump(out)))
		local got = dumped(out)
		for i = 1, #want do
			assert(got[i].data == want[i].data:sub(1, 60), "record " .. i)
			assert.are.equal(want[i].len, got[i].len)
		end
	end)

	it("filter keeps the records libpcap's pcap_offline_filter keeps", function()
		local want = input(CORPUS)
		local _, rec = replayed(CORPUS)
		for _, expr in ipairs{ "tcp[tcpflags] & tcp-syn != 0", "dst port 7001 and tcp[tcpflags] & tcp-ack != 0",
			"ip6", "less 60" } do
			local expect = {}
			for _, p in ipairs(want) do
				if core.expr_match(expr, p.data, p.len, "pcap") then expect[#expect + 1] = p end
			end
			assert(#expect > 0 and #expect < #want, expr .. " selects " .. #expect)
			local out = tmpdir .. "/filter.pcap"
			assert.are.equal(#expect, (rec:dump(out, { filter = expr })))
			same(expect, dumped(out), expr)
		end
	end)

	it("refuses a symbolic link (ELOOP) and a missing directory (ENOENT), leaving the target alone", function()
		local _, rec = replayed(CONNS)
		local target = tmpdir .. "/target"
		local f = assert(io.open(target, "w"))
		f:write("keep")
		f:close()
		os.execute(("ln -s '%s' '%s/link'"):format(target, tmpdir))
		local ok, msg, errno = rec:dump(tmpdir .. "/link")
		assert.is_nil(ok)
		assert.are.equal("ELOOP", tcpinspect.errname(errno))
		assert.matches("^ELOOP: dump: .*symbolic link", msg)
		f = assert(io.open(target))
		assert.are.equal("keep", f:read("a"))
		f:close()
		ok, msg, errno = rec:dump(tmpdir .. "/no/such/dir.pcap")
		assert.is_nil(ok)
		assert.are.equal("ENOENT", tcpinspect.errname(errno))
		assert.matches("^ENOENT: dump: ", msg)
	end)

	it("raises on mistakes, naming the option", function()
		local function raises(option, fn, ...)
			local ok, err = pcall(fn, ...)
			assert.is_false(ok)
			assert.are.equal(option, type(err) == "table" and err.option or nil, tostring(err))
			return tostring(err)
		end
		local s = assert(tcpinspect.replay{ file = CONNS, snaplen = 64 })
		assert.matches("snaplen = 128", raises("snaplen", s.recorder, s, { snaplen = 128 }))
		raises("bytes", s.recorder, s, { bytes = 1000 })
		-- one record of the largest snaplen must fit
		local big = assert(tcpinspect.replay{ file = CONNS, snaplen = 65535 })
		assert.matches("cannot hold one record of snaplen 65535 %(65664 bytes%)",
			raises("bytes", big.recorder, big, { bytes = 64 << 10 }))
		big:close()
		raises("seconds", s.recorder, s, { seconds = -1 })
		raises("secs", s.recorder, s, { secs = 1 })
		local rec = s:recorder{ seconds = 10 }
		assert.has_error(function() s:recorder{} end,
			"tcpinspect: recorder: this session has a recorder already; close it (rec:close()) first")
		raises("filter", rec.dump, rec, tmpdir .. "/x.pcap", { filter = "tcp[" })
		raises("filter", rec.dump, rec, tmpdir .. "/x.pcap", { filter = 1 })
		raises("path", rec.dump, rec, nil)
		raises("sekonds", rec.dump, rec, tmpdir .. "/x.pcap", { sekonds = 1 })
		assert.is_true(rec:close())
		assert.is_true(rec:close())
		assert.has_error(function() rec:stats() end, "attempt to use a closed recorder")
		assert.is_truthy(s:recorder{}) -- a new one after close
		s:close()
		local s0 = assert(tcpinspect.replay{ file = CONNS })
		assert.matches("snaplen = 0", raises("snaplen", s0.recorder, s0, {}))
		local s1 = assert(tcpinspect.replay{ file = CONNS, snaplen = 64, events = false })
		raises("events", s1.recorder, s1, {})
	end)

	it("examples/port_scan.lua --dump DIR writes the window when it alerts: the input's SYNs", function()
		local want = input("spec/fixtures/port_scan.pcap") -- 40 SYNs
		local dir = tmpdir .. "/ex"
		os.execute("mkdir " .. dir)
		local p = assert(io.popen(("build/bin/tcpinspect -q examples/port_scan.lua -r spec/fixtures/port_scan.pcap " ..
			"-- --dump %s --threshold 5 2>&1"):format(dir)))
		local out = p:read("a")
		p:close()
		local path, segs, drops = out:match("DUMP port%-scan file=(%S+) segments=(%d+) drops=(%d+)")
		assert(path, out)
		assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/port%-scan%-%d+T%d+Z%-0001%.pcap$", path)
		assert.are.equal(#want, tonumber(segs))
		assert.are.equal(0, tonumber(drops))
		same(want, dumped(path), "port_scan --dump")
		assert.matches("ALERT port%-scan src=127%.0%.0%.1 ports=40", out)
	end)

	it("a closed session closes its recorder", function()
		local s, rec = replayed(CONNS)
		s:close()
		assert.has_error(function() rec:dump(tmpdir .. "/x.pcap") end, "attempt to use a closed recorder")
		assert.is_true(rec:close())
	end)
end)
