-- SPDX-License-Identifier: GPL-2.0-only
-- Aggregates opt in per map (issue 23, item 1): open's aggregates = true,
-- false or a list of map names; the maps left out are not updated (the
-- rodata bits in bpf/ti_rules.h), hold one entry, and raise when read.
--
-- Replay (no root): each selection fills exactly its maps, with the counts
-- of the full session on spec/fixtures/connections.pcap (30 segments,
-- tcpdump's reading: 6 flows, 4 destination ports, 1 source with 3 SYNs);
-- the others raise naming `aggregates` and the map; wrong values raise
-- naming the option.  CLI (no root): what each command passes to open().
-- Host kernel (tc, cgroup): a live session with {"ports"} counts exactly
-- the segments tcpdump saw to its port, `flows` raises, and the maps left
-- out hold one entry (bpftool); `tcpinspect watch` holds no aggregate map
-- larger than one entry.
local tcpinspect = require "tcpinspect"

local FIX = "spec/fixtures/connections.pcap"
local MAPS = { "flows", "ports", "sources", "len_hist" }

-- every entry of map m as a sorted list of "key=value" lines
local function dump(s, m)
	local t = {}
	for k, v in s:map(m):pairs() do
		local parts = {}
		for _, f in ipairs { "family", "saddr", "daddr", "sport", "dport", "slot" } do
			local ok, x = pcall(function() return k[f] end)
			if ok then parts[#parts + 1] = f .. "=" .. tostring(x) end
		end
		for _, f in ipairs { "packets", "bytes", "syns", "count", "flags_seen" } do
			local ok, x = pcall(function() return v[f] end)
			if ok then parts[#parts + 1] = f .. "=" .. tostring(x) end
		end
		t[#t + 1] = table.concat(parts, " ")
	end
	table.sort(t)
	return t
end

local function replay(aggregates)
	local s = assert(tcpinspect.replay { file = FIX, aggregates = aggregates, events = false })
	s:run()
	return s
end

describe("aggregates (replay)", function()
	local full
	setup(function()
		local s <close> = replay(nil)
		full = {}
		for _, m in ipairs(MAPS) do full[m] = dump(s, m) end
	end)

	it("the default (true) opens every map, with the capture's counts", function()
		assert.are.equal(6, #full.flows)
		assert.are.equal(4, #full.ports)
		assert.are.equal(1, #full.sources)
		-- bytes: the payloads of all 30 (tshark -e tcp.len sums 39)
		assert.are.equal("family=4 saddr=127.0.0.1 packets=30 bytes=39 syns=3", full.sources[1])
		local n = 0
		local s <close> = replay(true)
		for _, v in s:map("len_hist"):pairs() do n = n + v.count end
		assert.are.equal(30, n)
		assert.are.same(MAPS, s.aggregates)
		for _, m in ipairs(MAPS) do assert.are.same(full[m], dump(s, m)) end
	end)

	for _, sel in ipairs { { "ports" }, { "sources" }, { "flows", "len_hist" }, { "len_hist", "ports", "sources" },
		false } do
		local name = sel and table.concat(sel, ",") or "false"
		it(("{%s} fills exactly those maps, the others raise"):format(name), function()
			local s <close> = replay(sel)
			local on = {}
			for _, m in ipairs(sel or {}) do on[m] = true end
			local want = {}
			for _, m in ipairs(MAPS) do if on[m] then want[#want + 1] = m end end
			assert.are.same(want, s.aggregates)
			for _, m in ipairs(MAPS) do
				if on[m] then
					assert.are.same(full[m], dump(s, m))
				else
					local ok, err = pcall(s.map, s, m)
					assert.is_false(ok)
					assert.are.equal("aggregates", err.option)
					assert.matches("map '" .. m .. "' is not open", tostring(err), 1, true)
					assert.matches("aggregates = {\"" .. m .. "\", ...}", tostring(err), 1, true)
				end
			end
			-- the counters count every segment whatever is aggregated
			assert.are.equal(30, s:stats().matched)
		end)
	end

	it("raises naming the option for a wrong value", function()
		local cases = {
			{ "yes", "expected true, false or a list of map names" },
			{ 1, "expected true, false or a list of map names" },
			{ { "flow" }, "unknown map 'flow'; did you mean 'flows'?" },
			{ { "ports", 3 }, "expected map names" },
			{ { x = "ports" }, "expected a list of map names" },
			{ { "drops" }, "drops = true" },
		}
		for _, c in ipairs(cases) do
			local ok, err = pcall(tcpinspect.replay, { file = FIX, aggregates = c[1] })
			assert.is_false(ok)
			assert.are.equal("aggregates", err.option)
			assert.matches("option 'aggregates'", tostring(err), 1, true)
			assert.matches(c[2], tostring(err), 1, true)
		end
	end)

	it("drops: in true only with drops = true, and listed with it", function()
		local s <close> = assert(tcpinspect.replay { file = FIX, drops = true })
		assert.are.same({ "flows", "ports", "sources", "len_hist", "drops" }, s.aggregates)
		local s2 <close> = assert(tcpinspect.replay { file = FIX, drops = true, aggregates = { "drops" } })
		assert.are.same({ "drops" }, s2.aggregates)
		local s3 <close> = assert(tcpinspect.replay { file = FIX })
		local ok, err = pcall(s3.map, s3, "drops")
		assert.is_false(ok)
		assert.matches("drops = true", tostring(err), 1, true)
	end)
end)

describe("aggregates (CLI: each command opens what it shows)", function()
	local cli = require "tcpinspect.cli"
	-- the options each command passes to open(), without opening anything
	local function opened(argv)
		local saved, got = tcpinspect.open, nil
		tcpinspect.open = function(o)
			got = o
			error("stop here", 0)
		end
		local err = io.stderr
		io.stderr = io.open("/dev/null", "w") -- luacheck: ignore
		local ok, why = pcall(cli.main, argv)
		io.stderr:close()
		io.stderr = err -- luacheck: ignore
		tcpinspect.open = saved
		assert(ok, why)
		assert(got, "open() was not called by " .. table.concat(argv, " "))
		return got.aggregates
	end

	it("watch, stats, record and conns open none; top, drops and export what they print or serve", function()
		assert.is_false(opened { "watch" })
		assert.is_false(opened { "watch", "--drops" })
		assert.is_false(opened { "stats" })
		assert.is_false(opened { "conns" })
		assert.is_false(opened { "record", "-w", "/tmp" })
		assert.are.same({ "flows", "ports", "sources" }, opened { "top" })
		assert.are.same({ "flows", "ports", "sources" }, opened { "top", "--by", "flow" })
		assert.is_false(opened { "top", "--by", "netns" })
		assert.are.same({ "drops" }, opened { "top", "--by", "reason" })
		assert.are.same({ "drops" }, opened { "drops" })
		assert.are.same({ "ports", "sources", "len_hist", "drops" }, opened { "export" })
		assert.are.same({ "ports", "sources", "len_hist" }, opened { "export", "--no-drops" })
	end)
end)

-- ---- host kernel ----------------------------------------------------------------

-- the BPF maps process pid holds: name -> max_entries
local function maps_of(net, pid)
	local t = {}
	local _, out = net.sh("ls -l /proc/" .. pid .. "/fd")
	for fd, what in out:gmatch(" (%d+) %-> anon_inode:(%S+)") do
		if what:find("bpf%-map") or what:find("bpf_map") then
			local info = net.read_file(("/proc/%d/fdinfo/%s"):format(pid, fd)) or ""
			local id = info:match("map_id:%s*(%d+)")
			local _, show = net.sh("bpftool map show id " .. id)
			local name = show:match("name (%S+)")
			if name then t[name] = tonumber(info:match("max_entries:%s*(%d+)")) end
		end
	end
	return t
end

describe("#kernel aggregates", function()
	local net = require "support.net"
	local N = 5
	for _, mode in ipairs(net.modes()) do
		if mode == "tc" or mode == "cgroup" or os.getenv("TCPINSPECT_IN_VM") then
			it(("[%s] {\"ports\"}: the port's segments counted exactly, flows raises, the rest one entry")
				:format(mode), function()
				local port = net.port()
				local host = net.addr4()
				local s <close> = net.open { mode = mode, aggregates = { "ports" }, events = false,
					filter = { port = port, host = host } }
				assert.are.same({ "ports" }, s.aggregates)
				local sizes = maps_of(net, net.getpid())
				assert.are.equal(1, sizes.flows)
				assert.are.equal(1, sizes.sources)
				assert.are.equal(1, sizes.flows_sum) -- the tables' summaries (bpf/ti_table.h)
				assert.are.equal(1, sizes.sources_sum)
				assert.are.equal(1, sizes.len_hist)
				assert.are.equal(65536, sizes.ports)
				local cap = net.tcpdump { filter = ("tcp dst port %d and host %s"):format(port, host) }
				local srv = net.server(host, port)
				local ok, err = pcall(net.conversations, srv, host, port, N, { data = ("y"):rep(100) })
				srv:close()
				local pkts = cap:stop()
				assert(ok, err)
				net.drain(s)
				assert.is_true(#pkts >= 3 * N) -- the capture itself is sane
				local pv = s:map("ports"):lookup(port)
				assert.are.equal(#pkts, pv.packets)
				assert.are.equal(N * 100, pv.bytes)
				local got, e = pcall(s.map, s, "flows")
				assert.is_false(got)
				assert.are.equal("aggregates", e.option)
			end)
		end
	end

	it("`tcpinspect watch` holds no aggregate map larger than one entry", function()
		local cli = require "support.cli"
		local p = cli.start { "watch", "--mode", net.modes()[1], "-c", "1000000" }
		p:ready()
		local sizes = maps_of(net, p.pid)
		p:interrupt()
		local r = p:wait()
		assert.are.equal(0, r.code, r.err)
		for _, m in ipairs { "flows", "ports", "sources", "len_hist", "drops", "flows_sum", "sources_sum", "drops_sum" } do
			assert.are.equal(1, sizes[m], m .. ": " .. tostring(sizes[m]))
		end
	end)
end)
