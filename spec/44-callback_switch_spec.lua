-- SPDX-License-Identifier: GPL-2.0-only
-- on_packet(fn2, fields) called from inside a callback takes effect at the
-- next record: the callback running keeps its packet view (or its values),
-- the next record goes to fn2 with fn2's own fields.  Before, the running
-- poll kept calling the old function with the new field list ("attempt to
-- index a number value").  In a replay (unit tier) and live (#kernel: every
-- mode expected here, on lo).
local tcpinspect = require "tcpinspect"

-- The switching callbacks: fn1 (a view) for the first record, fn2 (sport,
-- len, flags as values) for the next `n2`, then fn3 (a view) for the rest.
-- Returns the session's callback and the log: one {who, sport, len, flags}
-- per record, and what fn1 read from its view after switching.
local function switcher(s, n2)
	local log, after = {}, {}
	local fn3 = function(p)
		log[#log + 1] = { "fn3", p.sport, p.len, p.flags }
	end
	local fn2 = function(sport, len, flags)
		assert(math.type(sport) == "integer" and math.type(len) == "integer", "fn2 got a view")
		log[#log + 1] = { "fn2", sport, len, flags }
		if #log == 1 + n2 then s:on_packet(fn3) end
	end
	local fn1 = function(p)
		log[#log + 1] = { "fn1", p.sport, p.len, p.flags }
		s:on_packet(fn2, { "sport", "len", "flags" })
		-- still this callback's view
		after[#after + 1] = { p.sport, p.len, p.flags }
	end
	return fn1, log, after
end

local function who(log)
	local t = {}
	for i, r in ipairs(log) do t[i] = r[1] end
	return table.concat(t, " ")
end

local function values(log)
	local t = {}
	for i, r in ipairs(log) do t[i] = { r[2], r[3], r[4] } end
	return t
end

describe("on_packet from inside a callback", function()
	it("replay: takes effect at the next record, with the new function's fields", function()
		-- the reference: every record's sport, len and flags, one callback
		local ref = {}
		do
			local s <close> = assert(tcpinspect.replay { file = "spec/fixtures/connections.pcap" })
			s:on_packet(function(p) ref[#ref + 1] = { p.sport, p.len, p.flags } end)
			assert.are.equal(30, s:poll(-1)) -- tcpdump reads 30 segments in it
		end
		local s <close> = assert(tcpinspect.replay { file = "spec/fixtures/connections.pcap" })
		local fn1, log, after = switcher(s, 10)
		s:on_packet(fn1)
		-- one poll delivers all 30: the switches happen inside it
		assert.are.equal(30, s:poll(-1))
		assert.are.equal("fn1" .. (" fn2"):rep(10) .. (" fn3"):rep(19), who(log))
		assert.are.same(ref, values(log))
		assert.are.same({ ref[1] }, after)
		-- the values themselves: the first segment is the SYN of a connection
		-- to port 18123, no payload
		assert.are.equal(0, ref[1][2])
		assert.are.equal(tcpinspect.SYN, ref[1][3])
	end)

	it("replay: on_packet(nil) from a callback ends delivery to it from the next record", function()
		local s <close> = assert(tcpinspect.replay { file = "spec/fixtures/connections.pcap" })
		local calls = 0
		s:on_packet(function()
			calls = calls + 1
			if calls == 5 then s:on_packet(nil) end
		end)
		assert.are.equal(30, s:poll(-1)) -- records delivered, with or without a callback
		assert.are.equal(5, calls)
		assert.are.equal(30, s:stats().delivered)
	end)
end)

describe("#kernel on_packet from inside a callback", function()
	local net = require "support.net"
	for _, mode in ipairs(net.modes()) do
		it(("[%s] takes effect at the next record, values as tcpdump saw them"):format(mode), function()
			local A, port = net.addr4(), net.port()
			local s <close> = net.open { mode = mode, filter = { port = port, host = A } }
			local fn1, log, after = switcher(s, 10)
			s:on_packet(fn1)
			local cap = net.tcpdump { filter = ("tcp port %d and host %s"):format(port, A) }
			local srv = net.server(A, port)
			local ok, err = pcall(function()
				for _ = 1, 3 do net.conversation(srv, A, port, { data = "switch" }) end
			end)
			srv:close()
			local pkts = cap:stop()
			assert(ok, err)
			assert(net.wait_until(function() return net.stats(s).delivered >= #pkts end, net.scale(10)))
			net.drain(s)
			assert.is_true(#pkts >= 12, "only " .. #pkts .. " segments")
			assert.are.equal(#pkts, #log)
			assert.are.equal("fn1" .. (" fn2"):rep(10) .. (" fn3"):rep(#pkts - 11), who(log))
			assert.are.same({ { log[1][2], log[1][3], log[1][4] } }, after)
			-- the same segments as tcpdump's, whatever the order across CPUs
			local function key(sport, len, flags) return ("%d/%d/%d"):format(sport, len, flags) end
			local want, got = {}, {}
			for _, p in ipairs(pkts) do want[#want + 1] = key(p.sport, p.len, p.flags) end
			for _, v in ipairs(values(log)) do got[#got + 1] = key(v[1], v[2], v[3]) end
			table.sort(want)
			table.sort(got)
			assert.are.same(want, got)
			net.say("[%s] on_packet switched inside callbacks: fn1 1, fn2 10, fn3 %d of %d segments",
				mode, #pkts - 11, #pkts)
		end)
	end
end)
