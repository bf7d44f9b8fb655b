-- SPDX-License-Identifier: GPL-2.0-only
-- The kernel layer's backends (luaext/kernel.h): what the ring's batched
-- wakeups count.  A record takes ti_record_size(snaplen) bytes of the ring
-- at most, and `wakeup` counts records of that size: with the largest
-- snaplen (the CLI's -s 0) and wakeup = 64, 63 full-size records wake
-- nobody and the 64th does.  (Before the size was computed once, the
-- wakeup mark was 64 records without their bytes: it fired after 2.)
local net = require "support.net"
local cqueues = require "cqueues"
local core = require "tcpinspect.core"
local socket = require "socket"

local WAKEUP = 64
local PAYLOAD = core.SNAPLEN_MAX -- each segment at least snaplen bytes from its IP header

-- Is the session's fd readable within secs?  (The fd alone: pollable()'s
-- timeout() would end the wait for records below the mark too.)
local function readable(s, secs)
	local ready
	local fd = s:fd()
	local ev = { pollfd = function() return fd end, events = function() return "r" end }
	local cq = cqueues.new()
	cq:wrap(function() ready = cqueues.poll(ev, secs) == ev end)
	assert(cq:loop())
	return ready
end

describe("kernel backends #kernel", function()
	for _, mode in ipairs(net.modes()) do
		it(("%s: snaplen %d, wakeup = %d wakes after %d full records, not before"):format(
			mode, PAYLOAD, WAKEUP, WAKEUP), function()
			local host, port = net.addr4(), net.port()
			local s <close> = net.open{ mode = mode, wakeup = WAKEUP, snaplen = core.SNAPLEN_MAX,
				ring_size = 1 << 22, filter = { dport = port, host = host, len = { min = 1 } } }
			local srv = net.server(host, port)
			local c = socket.tcp4()
			c:settimeout(net.scale(5))
			assert(c:connect(host, port))
			local conn = assert(srv:accept())
			conn:settimeout(net.scale(5))
			assert(c:setoption("tcp-nodelay", true))
			local chunk = ("x"):rep(PAYLOAD)
			-- one segment per send: the next waits until the server has read it
			local function send_one()
				assert(c:send(chunk))
				local have = 0
				while have < #chunk do
					local data, err, partial = conn:receive(#chunk - have)
					data = data or partial
					have = have + #(data or "")
					assert(not err or have == #chunk, err)
				end
			end
			for _ = 1, WAKEUP - 1 do send_one() end
			local st = net.stats(s)
			assert.equals(WAKEUP - 1, st.matched, "one segment per send")
			assert.equals(WAKEUP - 1, st.delivered)
			local early = readable(s, 0.3)
			send_one()
			local woke = readable(s, net.scale(2))
			c:close()
			conn:close()
			srv:close()
			assert.is_false(early, ("woken with %d full records pending, below the mark of %d"):format(
				WAKEUP - 1, WAKEUP))
			assert.is_true(woke, ("not woken with %d full records pending"):format(WAKEUP))
			local got, caplen = 0, {}
			s:on_packet(function(p) got = got + 1; caplen[#p:bytes()] = true end)
			assert.equals(WAKEUP, s:poll(0))
			assert.equals(WAKEUP, got)
			assert.same({ [core.SNAPLEN_MAX] = true }, caplen)
			net.say("[%s] snaplen %d wakeup %d: no wakeup at %d records, woken at %d", mode,
				core.SNAPLEN_MAX, WAKEUP, WAKEUP - 1, WAKEUP)
		end)
	end
end)

-- close() reports the dump file's last flush (before, it dropped it).
describe("kernel backends: close", function()
	it("returns nil, message, errno when the dump file's flush fails, then true", function()
		local tcpinspect = require "tcpinspect"
		local s = assert(tcpinspect.replay{ file = "spec/fixtures/tcpdump/smb_data_print-segv.pcapng" })
		assert.equals(s, s:dump("/dev/full")) -- the header waits in the buffer
		local ok, err, errno = s:close()
		assert.is_nil(ok)
		assert.equals("ENOSPC: dump: writing /dev/full failed: No space left on device; 0 packets written to it", err)
		assert.equals(28, errno)
		assert.is_true(s.closed)
		assert.is_true(s:close()) -- idempotent: the file is gone with the first
		local s2 <close> = assert(tcpinspect.replay{ file = "spec/fixtures/tcpdump/smb_data_print-segv.pcapng" })
		assert.is_true(s2:close())
	end)
end)

-- The room a record takes in the ring is computed once (bpf/tcpinspect.h:
-- TI_RING_SPACE, ti_record_size), and the BPF program, the wakeup mark and
-- the snaplen check all take it from there.
describe("kernel backends: the record size", function()
	local function read(path)
		local f = assert(io.open(path))
		local s = f:read("a")
		f:close()
		return (s:gsub("/%*.-%*/", ""))
	end
	it("is defined only in bpf/tcpinspect.h and used by its three users", function()
		local p = assert(io.popen("ls luaext/*.c luaext/*.h bpf/*.c bpf/*.h"))
		for f in p:lines() do
			if f ~= "bpf/tcpinspect.h" then
				local code = read(f)
				-- the ring's 8-byte header and 8-byte rounding, or the event plus snaplen
				assert.is_nil(code:find("8%s*%+%s*%(%(") , f .. " computes a ring record's room")
				assert.is_nil(code:find("sizeof%(struct ti_event%)%s*%+%s*[%w_%.>%-]*snaplen"),
					f .. " computes a record's size from snaplen")
			end
		end
		p:close()
		assert.truthy(read("luaext/kernel.c"):find("ti_record_size(o->snaplen)", 1, true))
		assert.truthy(read("luaext/options.c"):find("ti_record_size(o->snaplen)", 1, true))
		assert.truthy(read("bpf/tcpinspect.bpf.c"):find("TI_RING_SPACE(len)", 1, true))
	end)
end)
