-- SPDX-License-Identifier: GPL-2.0-only
-- Embedding in an event loop: a cqueues controller drives a session through
-- the pollfd()/events()/timeout() protocol of session:pollable() (luv or a
-- host loop can use session:fd()).  Every segment tcpdump saw reaches the
-- callback; with wakeup=1 the loop is woken by the ring's fd, and with the
-- default batching the records below the mark arrive by timeout().
local net = require "support.net"
local cqueues = require "cqueues"

local N = 5 -- connections per test

-- Run a cqueues loop that waits on the session and polls it until want
-- events arrived or the deadline passed.  Returns events, wakeups by the fd.
local function drive(s, want, secs)
	local cq = cqueues.new()
	local got, by_fd = 0, 0
	s:on_packet(function() got = got + 1 end)
	local ev = s:pollable()
	cq:wrap(function()
		local deadline = cqueues.monotime() + secs
		while got < want and cqueues.monotime() < deadline do
			if cqueues.poll(ev, s:timeout()) == ev then by_fd = by_fd + 1 end
			s:poll(0)
		end
	end)
	assert(cq:loop())
	return got, by_fd
end

describe("event loop embedding #kernel", function()
	for _, mode in ipairs(net.modes()) do
		for _, wakeup in ipairs{ 1, 64 } do
			it(("%s: cqueues drives the session (wakeup=%d) #anymode"):format(mode, wakeup), function()
				local host, port = net.addr4(), net.port()
				local s <close> = net.open{ mode = mode, wakeup = wakeup, filter = { port = port, host = host } }
				assert.equals("r", s:pollable():events())
				assert.is_true(s.events)
				assert.is_true(s:pollable():pollfd() >= 0)
				local cap = net.tcpdump{ filter = ("tcp port %d and host %s"):format(port, host) }
				local srv = net.server(host, port)
				local ok, err = pcall(net.conversations, srv, host, port, N, { data = "ping" })
				srv:close()
				local pkts = cap:stop()
				assert(ok, err)
				local got, by_fd = drive(s, #pkts, net.scale(5))
				assert.equals(#pkts, got)
				local st = net.stats(s)
				assert.equals(#pkts, st.matched)
				assert.equals(st.matched, st.delivered)
				if wakeup == 1 then assert.is_true(by_fd >= 1, "never woken by the fd") end
				net.say("[%s] cqueues wakeup=%d: %d segments, %d fd wakeups", mode, wakeup, got, by_fd)
			end)
		end
	end
end)
