-- SPDX-License-Identifier: GPL-2.0-only
-- spec/soak/soak.lua: the two long runs of shared/docs/RELIABILITY.md, with
-- assertions (spec/soak/run starts them in a fresh network namespace, with
-- hping3 as the traffic source on its lo).
--
--   lua5.4 spec/soak/soak.lua rate PORT SECS
--       #6: hping3 --flood (the highest rate this machine generates) for SECS
--       seconds, a session at default sizes (ring 4 MB, wakeup default) with a
--       callback that counts: passes when dropped == 0, every matched segment
--       was delivered to the callback, and the counter identities hold.
--   lua5.4 spec/soak/soak.lua memory PORT SECS
--       #20: a steady rate for SECS seconds with a callback that keeps a
--       bounded per-flow table and reads the maps every interval; after a
--       warm-up (a tenth of the run, at least 10 s) RSS and the Lua heap
--       (after a full collection) must stay within a fixed bound of their
--       warm-up values: SOAK_RSS_KB (8192) and SOAK_HEAP_KB (2048).
--
-- Prints "ok N - ..." / "not ok N - ..." lines (TAP) and exits non-zero on a
-- failure.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local tcpinspect = require "tcpinspect"

local what, port, secs = arg[1], math.tointeger(tonumber(arg[2])), tonumber(arg[3])
assert(what and port and secs, "usage: soak.lua rate|memory PORT SECS")

local ntest = 0
local failed = false
local function check(ok, msg)
	ntest = ntest + 1
	print(("%s %d - %s"):format(ok and "ok" or "not ok", ntest, msg))
	if not ok then failed = true end
end

local function rss_kb()
	for line in io.lines("/proc/self/status") do
		local v = line:match("^VmRSS:%s+(%d+)")
		if v then return tonumber(v) end
	end
end

local function identity(st)
	return st.seen == st.filtered + st.matched
		and st.matched == st.sampled_out + st.delivered + st.dropped
end

if what == "rate" then
	local s = assert(tcpinspect.open { mode = "tc", dev = "lo", filter = { dport = port } })
	local n = 0
	s:on_packet(function() n = n + 1 end)
	local gen = io.popen(("timeout -s INT %d hping3 --flood -S -p %d 127.0.0.1 2>&1"):format(math.ceil(secs), port))
	local _, why = s:run { duration = secs + 2 }
	gen:read("a")
	gen:close()
	s:run { duration = 0.5 }
	local st = s:stats()
	io.stderr:write(("soak rate: %.0f s, seen %d, matched %d, delivered %d, dropped %d, callbacks %d (%.0f segments/s)\n")
		:format(secs, st.seen, st.matched, st.delivered, st.dropped, n, st.matched / secs))
	check(why == "duration", "the run ended by its duration")
	check(st.matched > secs * 1000, ("the generator reached a real rate (%d segments in %.0f s)"):format(st.matched, secs))
	check(st.dropped == 0, ("dropped == 0 at default sizes (%d dropped of %d)"):format(st.dropped, st.matched))
	check(n == st.delivered and st.delivered == st.matched,
		("every matched segment reached the callback (matched %d, delivered %d, callbacks %d)"):format(st.matched, st.delivered, n))
	check(identity(st), "seen == filtered + matched, matched == sampled_out + delivered + dropped")
	check(st.errors == 0, "errors == 0")
	s:close()
elseif what == "memory" then
	local RSS_BOUND = tonumber(os.getenv("SOAK_RSS_KB") or "") or 8192
	local HEAP_BOUND = tonumber(os.getenv("SOAK_HEAP_KB") or "") or 2048
	local warm = math.max(10, secs / 10)
	local s = assert(tcpinspect.open { mode = "tc", dev = "lo", filter = { dport = port } })
	local per_src, n = {}, 0
	s:on_packet(function(p)
		n = n + 1
		local k = p.sport % 1024 -- bounded: at most 1024 keys
		per_src[k] = (per_src[k] or 0) + p.len + 1
		if n % 1000 == 0 then local _ = p:copy() end
	end)
	-- about 2000 SYNs per second, steady
	local gen = io.popen(("timeout -s INT %d hping3 -S -i u500 -p %d 127.0.0.1 2>&1"):format(math.ceil(secs) + 2, port))
	local base_rss, base_heap, max_rss, max_heap = nil, nil, 0, 0
	local samples = 0
	s:run { duration = secs, interval = 5, on_interval = function(sess, elapsed)
		local flows = 0
		for _ in sess:map("flows"):pairs() do flows = flows + 1 end
		sess:map("ports"):lookup(port)
		collectgarbage("collect")
		local rss, heap = rss_kb(), collectgarbage("count")
		if elapsed >= warm then
			if not base_rss then
				base_rss, base_heap = rss, heap
			end
			max_rss, max_heap = math.max(max_rss, rss), math.max(max_heap, heap)
			samples = samples + 1
		end
		io.stderr:write(("soak memory: %4.0f s rss %d kB heap %.0f kB events %d flows %d\n")
			:format(elapsed, rss, heap, n, flows))
	end }
	gen:close()
	local st = s:stats()
	check(samples >= 2, ("sampled after warm-up (%d samples)"):format(samples))
	check(st.matched > secs * 100, ("a steady rate reached the session (%d segments in %.0f s)"):format(st.matched, secs))
	check(base_rss and max_rss - base_rss <= RSS_BOUND,
		("RSS within %d kB of its warm-up value (%s -> max %d kB)"):format(RSS_BOUND, tostring(base_rss), max_rss))
	check(base_heap and max_heap - base_heap <= HEAP_BOUND,
		("Lua heap within %d kB of its warm-up value (%.0f -> max %.0f kB)"):format(HEAP_BOUND, base_heap or -1, max_heap))
	check(st.dropped == 0, ("dropped == 0 (%d)"):format(st.dropped))
	check(identity(st), "counter identities hold")
	s:close()
else
	error("usage: soak.lua rate|memory PORT SECS")
end
print(("1..%d"):format(ntest))
os.exit(failed and 1 or 0)
