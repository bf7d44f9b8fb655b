-- SPDX-License-Identifier: GPL-2.0-only
-- Two sessions in two processes at once (RELIABILITY 19), each with its own
-- filter: each sees exactly its own segments, as tcpdump counted them.
local net = require "support.net"

local N = 4 -- connections per port

describe("two processes #kernel", function()
	for _, mode in ipairs(net.modes()) do
		it(mode .. ": each session sees exactly its own port's segments", function()
			local host = net.addr4()
			local p1 = net.port(2)
			local p2 = p1 + 1
			local a = net.session_child({ open = { mode = mode, filter = { port = p1, host = host } } })
			local b = net.session_child({ open = { mode = mode, filter = { port = p2, host = host } } })
			local ok, err = pcall(function()
				a:ready()
				b:ready()
				local cap = net.tcpdump{ filter = ("tcp portrange %d-%d and host %s"):format(p1, p2, host) }
				for _, port in ipairs{ p1, p2, p2 } do -- twice as many on p2
					local srv = net.server(host, port)
					local okc, errc = pcall(net.conversations, srv, host, port, N, { data = "x" })
					srv:close()
					assert(okc, errc)
				end
				local pkts = cap:stop()
				local ra, rb = a:stop(), b:stop()
				local function only(port)
					local t = {}
					for _, p in ipairs(pkts) do
						if p.sport == port or p.dport == port then t[#t + 1] = p end
					end
					return net.by_flow(t)
				end
				local want1, want2 = only(p1), only(p2)
				assert.are.same(want1, ra.flows)
				assert.are.same(want2, rb.flows)
				local n1 = net.count(pkts, function(p) return p.sport == p1 or p.dport == p1 end)
				local n2 = net.count(pkts, function(p) return p.sport == p2 or p.dport == p2 end)
				assert.are.equal(n1 + n2, #pkts)
				assert.is_true(n2 > n1)
				assert.are.equal(n1, ra.stats.delivered)
				assert.are.equal(n2, rb.stats.delivered)
				assert.are.equal(N, ra.syns)
				assert.are.equal(2 * N, rb.syns)
				net.say("[%s] two processes: %d and %d segments, each exactly its own", mode, n1, n2)
			end)
			a:kill()
			b:kill()
			assert(ok, err)
		end)
	end
end)
