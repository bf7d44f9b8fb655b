-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: the compact ring record (issue 23, bpf/tcpinspect.h
-- TI_EVENT_COMPACT).  With snaplen 0 and sockets off a segment's record
-- takes 96 bytes of ring (88 and the kernel's 8-byte header), so a
-- one-page ring that nobody reads holds exactly 42 of them (43 * 96 >
-- 4095); with snaplen = 1 the record is whole (120 + 1 bytes, 136 of ring)
-- and the same ring holds 30.  The records that fit arrive whole: the
-- drop and socket fields read as in a whole record, 0 / none.
local net = require "support.net"

local function run_traffic(A, port, n)
	local cap = net.tcpdump{ filter = ("tcp port %d and host %s"):format(port, A) }
	local srv = net.server(A, port)
	local ok, err = pcall(function()
		for _ = 1, n do net.conversation(srv, A, port, { data = ("c"):rep(16) }) end
	end)
	srv:close()
	local pkts = cap:stop()
	assert(ok, err)
	return pkts
end

describe("#kernel compact record", function()
	for _, mode in ipairs(net.modes()) do
		for _, case in ipairs({ { snaplen = 0, fit = 42 }, { snaplen = 1, fit = 30 } }) do
			it(("[%s] snaplen=%d: a one-page ring holds %d records, the rest counted lost"):format(mode,
				case.snaplen, case.fit), function()
				local A, port = net.addr4(), net.port()
				local s <close> = net.open{ mode = mode, ring_size = 4096, snaplen = case.snaplen,
					wakeup = 1000, filter = { port = port, host = A } }
				local seen = {}
				s:on_packet(function(p)
					seen[#seen + 1] = { sport = p.sport, dport = p.dport, caplen = p.caplen,
						reason = p.reason, location = p.location, sk_cookie = p.sk_cookie,
						sk_state = p.sk_state, uid = p.uid }
				end)
				local pkts = run_traffic(A, port, 12) -- no polling meanwhile
				local drained = net.drain(s)
				local st = net.stats(s)
				assert.are.equal(#pkts, st.matched)
				assert.is_true(st.matched > case.fit + 10, "too little traffic to fill the ring")
				assert.are.equal(case.fit, st.delivered)
				assert.are.equal(case.fit, drained)
				assert.are.equal(st.matched - case.fit, st.dropped)
				for _, r in ipairs(seen) do
					assert.is_true(r.sport == port or r.dport == port)
					assert.are.equal(case.snaplen, r.caplen)
				end
				-- the compact record's left-off tail reads as a whole record's does
				local first = seen[1]
				for _, r in ipairs(seen) do
					assert.are.same({ first.reason, first.location, first.sk_cookie, first.sk_state, first.uid },
						{ r.reason, r.location, r.sk_cookie, r.sk_state, r.uid })
				end
				net.say("[%s] snaplen=%d: %d matched, %d delivered, %d lost; reason=%s sk_cookie=%s",
					mode, case.snaplen, st.matched, st.delivered, st.dropped, tostring(first.reason),
					tostring(first.sk_cookie))
			end)
		end
	end
end)
