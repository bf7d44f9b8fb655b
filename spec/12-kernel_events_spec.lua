-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: the event path (ring buffer -> Lua callback).
--
-- Sampling keeps every SYN/FIN/RST; a one-page ring overflows and counts its
-- drops exactly; a callback that raises or yields gets a clean Lua error and
-- loses or repeats nothing; the packet view cannot be read after its
-- callback, and p:copy() can.
local net = require "support.net"
local tcpinspect = require "tcpinspect"

local SFR = tcpinspect.SYN | tcpinspect.FIN | tcpinspect.RST

-- One server address per test; returns the packets tcpdump saw.
local function run_traffic(A, port, n, data, drain_session)
	local cap = net.tcpdump{ filter = ("tcp port %d and host %s"):format(port, A) }
	local srv = net.server(A, port)
	local ok, err = pcall(function()
		for _ = 1, n do
			net.conversation(srv, A, port, { data = data })
			if drain_session then drain_session:poll(0) end
		end
	end)
	srv:close()
	local pkts = cap:stop()
	assert(ok, err)
	return pkts
end

local function wait_delivered(s, n)
	return net.wait_until(function() return net.stats(s).delivered >= n end, 10)
end

describe("#kernel events", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] sample=N: every SYN/FIN/RST is delivered, the rest 1 in N, counters exact"):format(mode), function()
			local A, port = net.addr4(), net.port()
			local s <close> = net.open{ mode = mode, sample = 4, filter = { port = port, host = A } }
			local calls, sfr = 0, 0
			s:on_packet(function(p)
				calls = calls + 1
				if p.flags & SFR ~= 0 then sfr = sfr + 1 end
			end)
			local pkts = run_traffic(A, port, 10, ("s"):rep(64), s)
			net.drain(s)
			local st = net.stats(s)
			local want_sfr = net.count(pkts, function(p) return p.flags & SFR ~= 0 end)
			assert.are.equal(40, want_sfr) -- SYN, SYN-ACK, FIN, FIN per connection
			assert.are.equal(want_sfr, sfr)
			assert.are.equal(#pkts, st.matched)
			assert.is_true(st.sampled_out > 0)
			assert.are.equal(calls, st.delivered)
			assert.are.equal(0, st.dropped)
			net.identity(st)
			-- of the others, about 1 in 4 (the counter is per CPU)
			local others = #pkts - want_sfr
			assert.is_true(st.delivered - want_sfr <= math.ceil(others / 4) + net.ncpus(),
				"too many non-SYN/FIN/RST delivered")
			net.say("[%s] sample=4: %d pkts, all %d SYN/FIN/RST delivered, %d of %d others delivered, sampled_out=%d",
				mode, #pkts, sfr, st.delivered - want_sfr, others, st.sampled_out)
		end)

		it(("[%s] a one-page ring overflows: dropped > 0, identities exact"):format(mode), function()
			local A, port = net.addr4(), net.port()
			local s <close> = net.open{ mode = mode, ring_size = 4096, filter = { port = port, host = A } }
			local calls = 0
			s:on_packet(function() calls = calls + 1 end)
			local pkts = run_traffic(A, port, 200, ("r"):rep(32)) -- no polling meanwhile
			local drained = net.drain(s)
			local st = net.stats(s)
			assert.are.equal(#pkts, st.matched)
			assert.is_true(st.dropped > 0, "no drops with a one-page ring")
			assert.are.equal(calls, st.delivered)
			assert.are.equal(drained, calls)
			assert.are.equal(st.matched, st.sampled_out + st.delivered + st.dropped)
			net.identity(st)
			net.say("[%s] ring_size=4096: %d pkts matched, delivered=%d dropped=%d, callbacks=%d",
				mode, st.matched, st.delivered, st.dropped, calls)
		end)

		it(("[%s] a callback that raises: error with traceback, nothing lost or repeated, stack balanced #anymode"):format(mode), function()
			local A, port = net.addr4(), net.port()
			local s <close> = net.open{ mode = mode, filter = { port = port, host = A } }
			local order = {}
			s:on_packet(function(p)
				order[#order + 1] = p.ts .. ":" .. p.seq .. ":" .. p.sport
				if #order == 3 then error("boom on event 3") end
			end)
			local pkts = run_traffic(A, port, 1, "abc")
			assert(wait_delivered(s, #pkts))
			local ok, err = pcall(s.poll, s, 0)
			assert.is_false(ok)
			assert.matches("boom on event 3", err)
			assert.matches("stack traceback", err)
			assert.are.equal(3, #order)
			-- the next poll goes on with event 4
			local n = select("#", s:poll(0))
			assert.are.equal(1, n)
			net.drain(s)
			assert.are.equal(#pkts, #order)
			local seen = {}
			for _, k in ipairs(order) do
				assert.is_nil(seen[k], "event redelivered: " .. k)
				seen[k] = true
			end
			assert.are.equal(#order, net.stats(s).delivered)

			assert.matches("^stack traceback:.*in function", s:traceback())

			-- a callback that always raises a table: each poll consumes exactly one
			-- event, and poll raises the very table the callback raised
			local calls = 0
			local raised = {}
			s:on_packet(function()
				calls = calls + 1
				raised[calls] = { code = calls }
				error(raised[calls])
			end)
			local pkts2 = run_traffic(A, port, 1, "abc")
			assert(wait_delivered(s, #pkts + #pkts2))
			local errors = 0
			for _ = 1, 1000 do
				local pok, perr = pcall(s.poll, s, 0)
				if pok then
					assert.are.equal(0, perr)
					break
				end
				errors = errors + 1
				assert.are.equal(raised[errors], perr) -- the same table, not a copy or a string
				assert.are.equal(errors, perr.code)
				assert.matches("^stack traceback:", s:traceback())
			end
			assert.are.equal(#pkts2, errors)
			assert.are.equal(#pkts2, calls)
			-- still balanced: one result
			s:on_packet(nil)
			assert.are.equal(1, select("#", s:poll(0)))
			net.say("[%s] raising callback: error on event 3 with traceback, then events 4..%d, %d raises for %d events",
				mode, #pkts, errors, #pkts2)
		end)

		it(("[%s] a callback that yields gets a clear error, no crash #anymode"):format(mode), function()
			local A, port = net.addr4(), net.port()
			local s <close> = net.open{ mode = mode, filter = { port = port, host = A } }
			local pkts = run_traffic(A, port, 1, "")
			assert(wait_delivered(s, #pkts))
			local tries = 0
			s:on_packet(function()
				tries = tries + 1
				coroutine.yield("from a callback")
			end)
			local co = coroutine.create(function() return s:poll(0) end)
			local ok, err = coroutine.resume(co)
			assert.is_false(ok)
			assert.matches("attempt to yield across a C%-call boundary", err)
			assert.are.equal("dead", coroutine.status(co))
			assert.are.equal(1, tries)
			-- the session still works and delivers the rest
			local rest = 0
			s:on_packet(function() rest = rest + 1 end)
			net.drain(s)
			assert.are.equal(#pkts - 1, rest)
		end)

		it(("[%s] the packet view is invalid after its callback; p:copy() survives #anymode"):format(mode), function()
			local A, port = net.addr4(), net.port()
			local s <close> = net.open{ mode = mode, filter = { port = port, host = A } }
			local kept, copy, fields
			s:on_packet(function(p)
				if not kept then
					kept, copy, fields = p, p:copy(), p:totable()
				end
			end)
			run_traffic(A, port, 1, "abc")
			net.drain(s)
			assert.is_not_nil(kept)
			local ok, err = pcall(function() return kept.sport end)
			assert.is_false(ok)
			assert.matches("packet view used outside its callback", err)
			assert.is_false((pcall(function() return kept:totable() end)))
			assert.is_false((pcall(function() return kept:copy() end)))
			assert.are.same(fields, copy:totable())
			for _, name in ipairs(tcpinspect.packet_fields()) do
				assert.are.equal(fields[name], copy[name], name)
			end
			assert.are.equal(A, fields.daddr)
			assert.are.equal(port, fields.dport)
			assert.are.equal("S", fields.flagstr)
		end)
	end
end)
