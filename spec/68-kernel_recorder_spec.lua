-- SPDX-License-Identifier: GPL-2.0-only
-- The flight recorder live (issue 24, "Done when"), in every mode that must
-- work here (host: tc, cgroup; the guests: all four).
--
-- Exact window: traffic to port A for 3 s, nothing for 5 s, traffic to
-- port B (and SYNs to a closed port C: drops) for 2 s, then
-- rec:dump(path, { seconds = 5 }): A ended 2 s before the window, B began
-- 3 s inside it (it was 6, 6, 4 and 8: margins of 2 s and 4 s for 6 s more
-- per mode; a conversation takes about 60 ms, in a guest too).  The dump
-- holds every segment of B and C that a tcpdump capture taken at the same
-- time holds, compared through
-- tshark segment by segment (addresses, ports, raw seq and ack, flags,
-- length, IP id), and none of A; each SYN to C is in it as a drop too
-- (the second count dump returns), and the receive hook's own record of
-- it too where that hook sees a segment no socket takes (not cgroup).  The
-- last second of B is left in the ring: the dump drains it, and the next
-- polls still deliver it to the callbacks (their counts equal the kernel's
-- delivered counter).  Then: a dump through a symbolic link fails with
-- ELOOP and leaves its target alone, and a dump to a full disk (a 16 KiB
-- tmpfs) fails with ENOSPC and the number of packets the file holds, which
-- is what tcpdump reads back from it, as -w does (spec/39).
local net = require "support.net"
local socket = require "socket"
local tcpinspect = require "tcpinspect"
local tshark = require "support.tshark"

local SNAP = 128

-- tshark's fields of the frames of files that involve host, one string a
-- segment, per file: one tshark for both files (tshark takes seconds to
-- start in a TCG guest)
local FIELDS = { "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
	"tcp.len", "ip.id" }
local function tshark_files(files, host)
	return tshark.fields(files, FIELDS, { filter = "ip.addr == " .. host })
end

local function field(line, name)
	for i, f in ipairs(FIELDS) do
		if f == name then return tshark.field(line, i) end
	end
end

local function multiset(lines, pred)
	local t, n = {}, 0
	for _, l in ipairs(lines) do
		if pred(l) then
			t[l] = (t[l] or 0) + 1
			n = n + 1
		end
	end
	return t, n
end

local function on_port(port)
	return function(l)
		return tonumber(field(l, "tcp.srcport")) == port or tonumber(field(l, "tcp.dstport")) == port
	end
end

describe("#kernel the flight recorder", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] A 3 s, idle 5 s, B 2 s: dump seconds = 5 holds every B segment tcpdump saw, no A, the drops"):format(
			mode), function()
			local host = net.addr4()
			local A, B = net.port(1), net.port(1)
			local C = net.port(1) -- closed
			local dir = net.must("mktemp -d /tmp/tcpinspect-rec68-XXXXXXXX"):match("^(%S+)")
			local cleanup = { "rm -rf " .. net.q(dir) }
			finally(function()
				for i = #cleanup, 1, -1 do os.execute(cleanup[i]) end
			end)
			local s <close> = net.open{ mode = mode, snaplen = SNAP, drops = true,
				filter = { expr = "host " .. host } }
			-- the window: an hour (tshark under TCG takes longer than 30 s, and
			-- the disk-full dump below needs the records still there); the
			-- dump's own seconds = 5 cuts it
			local rec = s:recorder{ seconds = 3600, bytes = 16 << 20 }
			local segs_cb, drops_cb, drops_c = 0, 0, 0
			s:on_packet(function() segs_cb = segs_cb + 1 end)
			s:on_drop(function(p)
				drops_cb = drops_cb + 1
				if p.dport == C and p.flags & tcpinspect.SYN ~= 0 then drops_c = drops_c + 1 end
			end)
			local cap = net.tcpdump{ filter = "tcp and host " .. host }
			local srv_a, srv_b = net.server(host, A), net.server(host, B)
			local function phase(seconds, port, srv, poll_until)
				local t0 = socket.gettime()
				local n = 0
				while socket.gettime() - t0 < seconds do
					if srv then
						net.conversation(srv, host, port, { data = "x" .. n })
						n = n + 1
						if port == B and n % 5 == 0 then net.connect_closed(host, C) end
					end
					if socket.gettime() - t0 < poll_until then s:poll(0) end
					net.sleep(srv and 0.05 or 0.1)
				end
				return n
			end
			local na = phase(3, A, srv_a, 3)
			phase(5, nil, nil, 5)
			local nb = phase(2, B, srv_b, 1) -- the last second stays in the ring
			local out = dir .. "/window.pcap"
			local segs, drops = rec:dump(out, { seconds = 5 })
			assert(segs, drops)
			local pkts = cap:stop()
			srv_a:close()
			srv_b:close()
			net.say("[%s] %d conversations to A, %d to B; dump: %d segments, %d drops; tcpdump: %d packets",
				mode, na, nb, segs, drops, #pkts)
			assert(na >= 5 and nb >= 5, "too little traffic")

			local t = tshark_files({ cap.file, out }, host)
			local want, got = t[1], t[2]
			assert.are.equal(segs + drops, #got)
			-- none of A
			local _, got_a = multiset(got, on_port(A))
			assert.are.equal(0, got_a)
			-- every segment of B and C tcpdump holds, as many times
			local want_b, nwant_b = multiset(want, function(l) return on_port(B)(l) or on_port(C)(l) end)
			local got_b = multiset(got, function(l) return on_port(B)(l) or on_port(C)(l) end)
			assert(nwant_b >= 10 * nb, "tcpdump saw " .. nwant_b .. " B segments")
			for l, n in pairs(want_b) do
				assert((got_b[l] or 0) >= n, ("tcpdump holds %d of [%s], the dump %d"):format(n, l, got_b[l] or 0))
			end
			-- and nothing else: each frame beyond tcpdump's is a drop of a SYN to C
			local syn_c = 0
			for l, n in pairs(want_b) do
				if tonumber(field(l, "tcp.dstport")) == C then syn_c = syn_c + n end
			end
			assert(syn_c >= 1, "SYNs to C: " .. syn_c)
			local extra = 0
			for l, n in pairs(got_b) do extra = extra + n - (want_b[l] or 0) end
			local _, nwant_ab = multiset(want, function(l) return not on_port(A)(l) end)
			assert.are.equal(nwant_b, nwant_ab) -- tcpdump saw only A, B and C
			-- the drops: each SYN to C, once
			net.drain(s)
			assert.are.equal(syn_c, drops_c)
			assert.are.equal(drops_cb, drops_c)
			assert.are.equal(syn_c, drops)
			-- cgroup_skb runs for a socket's segments: no record of a SYN no
			-- socket takes (its drop record is its only one); every other
			-- hook has one, beside the drop's
			local seen_by_hook = mode == "cgroup" and 0 or syn_c
			assert.are.equal(seen_by_hook, extra)
			assert.are.equal(segs, nwant_b - syn_c + seen_by_hook)

			-- what the dump drained was delivered after all, and it adds up
			local st, rs = net.stats(s), rec:stats()
			net.identity(st)
			assert.are.equal(st.delivered, segs_cb)
			assert.are.equal(0, st.dropped)
			assert.are.equal(st.delivered + drops_cb, rs.added)
			assert.are.equal(rs.added, rs.records + rs.pushed_out + rs.expired)
			assert.are.equal(0, rs.pushed_out)
			assert.are.equal(0, rs.lost_undelivered)
			assert.are.equal(0, rs.undelivered)
			assert(rs.drained > 0, "the dump drained nothing from the ring")

			-- a symbolic link: ELOOP, the target untouched
			net.write_file(dir .. "/target", "keep")
			net.must(("ln -s %s %s"):format(net.q(dir .. "/target"), net.q(dir .. "/link")))
			local ok, msg, errno = rec:dump(dir .. "/link", { seconds = 5 })
			assert.is_nil(ok)
			assert.are.equal("ELOOP", tcpinspect.errname(errno), msg)
			assert.are.equal("keep", net.read_file(dir .. "/target"))
			-- a full disk: ENOSPC, the packets in the file, which tcpdump reads
			local full = dir .. "/full"
			net.must("mkdir " .. net.q(full) .. " && mount -t tmpfs -o size=16k tcpinspect-rec68 " .. net.q(full))
			cleanup[#cleanup + 1] = "umount " .. net.q(full)
			ok, msg, errno = rec:dump(full .. "/w.pcap")
			assert.is_nil(ok)
			assert.are.equal("ENOSPC", tcpinspect.errname(errno), msg)
			local m = tonumber(msg:match("^ENOSPC: dump: writing .* failed: No space left on device; (%d+) packets written to it$"))
			assert(m and m > 0, msg)
			local _, txt = net.sh("tcpdump -n -r " .. net.q(full .. "/w.pcap") .. " 2>/dev/null")
			local n = 0
			for _ in txt:gmatch("[^\n]+") do n = n + 1 end
			assert.are.equal(m, n)
			-- the recorder still works after both
			assert.is_truthy(rec:dump(dir .. "/again.pcap"))
		end)
	end
end)
