-- SPDX-License-Identifier: GPL-2.0-only
-- retransmits.lua: incoming retransmissions.  Per flow, the highest
-- sequence end (seq + len) seen so far is kept; a segment with payload that
-- ends at or below it carries bytes already seen: a retransmission.  Only
-- segments with payload leave the kernel (filter len >= 1), and flows are
-- kept in a Lua table by a string key.  Sequence numbers wrap: compared
-- modulo 2^32.
--
--   tcpinspect examples/retransmits.lua [--duration N] [--dport 9000] [--quiet-lines]
--
-- Output, one line per retransmitted segment, then per flow at exit:
--   RETRANS flow=10.0.0.1:41234>10.0.0.2:9000 seq=1000:2448 len=1448
--   SUMMARY retransmits flow=10.0.0.1:41234>10.0.0.2:9000 count=7 segments=140
local o = getopt { quiet_lines = false }

open { filter = { len = { min = 1 } } }
local high, segs, retrans = {}, {}, {}

on_packet(function(p)
	local key = p.saddr .. ":" .. p.sport .. ">" .. p.daddr .. ":" .. p.dport
	local seq, len = p.seq, p.len
	local stop = (seq + len) & 0xffffffff
	local h = high[key]
	segs[key] = (segs[key] or 0) + 1
	if h == nil then
		high[key] = stop
	elseif (stop - h) & 0xffffffff == 0 or (stop - h) & 0xffffffff >= 0x80000000 then
		-- stop <= h (mod 2^32): nothing new in this segment
		retrans[key] = (retrans[key] or 0) + 1
		if not o.quiet_lines then
			printf("RETRANS flow=%s seq=%d:%d len=%d", key, seq, stop, len)
		end
	else
		high[key] = stop
	end
end)

on_exit(function()
	local list = topk.top(retrans, 1000)
	for _, e in ipairs(list) do
		printf("SUMMARY retransmits flow=%s count=%d segments=%d", e.key, e.value, segs[e.key])
	end
	if #list == 0 then print("SUMMARY retransmits none") end
end)
