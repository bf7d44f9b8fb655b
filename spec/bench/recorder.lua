-- SPDX-License-Identifier: GPL-2.0-only
-- spec/bench/recorder.lua: the flight recorder's memory under a SYN flood
-- (make bench, section "recorder"; issue 24).
--
-- hping3 --flood -S to a closed port on lo for BENCH_REC_SECS seconds (5),
-- read by a tc session with snaplen = 128 and filter dport = PORT, in two
-- child processes one after the other: without a recorder, and with
-- session:recorder{ bytes = 16 MiB, seconds = 3600 } (only the bytes bound
-- acts).  Each child polls all the while and reports its peak RSS (VmHWM),
-- the session's counters and the recorder's.  The check: the recorder's
-- peak RSS is within 16 MiB + 10 % of the other's; the records it pushed
-- out are counted (added = records + pushed_out + expired); the session's
-- loss accounting adds up (also reported: the process's CPU time per
-- delivered record, os.clock(), poll and the window's copy included) (matched = sampled_out + delivered + dropped, and
-- every delivered record reached the window: added = delivered).
--
--   lua5.4 spec/bench/recorder.lua                 (the parent: both runs)
--   lua5.4 spec/bench/recorder.lua child on|off SECS PORT
package.path = "lua/?.lua;lua/?/init.lua;spec/bench/?.lua;" .. package.path
package.cpath = (os.getenv("TI_CPATH") or "build/?.so;") .. package.cpath

local ti = require "tcpinspect"
local C = require "common"

local BYTES = 16 << 20

if arg[1] == "child" then
	local on, secs, port = arg[2] == "on", tonumber(arg[3]), tonumber(arg[4])
	local s = assert(ti.open{ mode = "tc", dev = "lo", snaplen = 128, filter = { dport = port } })
	local rec = on and assert(s:recorder{ bytes = BYTES, seconds = 3600 })
	local before = C.status().VmRSS
	os.execute(("timeout %d hping3 --flood -S -p %d 127.0.0.1 >/dev/null 2>&1 &"):format(secs, port))
	local t0 = C.now()
	while C.now() - t0 < secs + 1 do s:poll(100) end
	for _ = 1, 20 do s:poll(0) end
	local st, m = s:stats(), C.status()
	local cpu = os.clock()
	local line = ("recorder=%s rss_before_kib=%d hwm_kib=%d matched=%d delivered=%d dropped=%d sampled_out=%d " ..
		"cpu_ns_per_record=%.0f"):format(on and "on" or "off", before, m.VmHWM, st.matched, st.delivered, st.dropped,
		st.sampled_out, cpu * 1e9 / math.max(st.delivered, 1))
	local ok = st.matched == st.sampled_out + st.delivered + st.dropped
	if rec then
		local r = rec:stats()
		line = line .. (" added=%d records=%d bytes=%d pushed_out=%d pushed_out_bytes=%d expired=%d"):format(
			r.added, r.records, r.bytes, r.pushed_out, r.pushed_out_bytes, r.expired)
		ok = ok and r.added == st.delivered and r.added == r.records + r.pushed_out + r.expired
			and r.added_bytes == r.bytes + r.pushed_out_bytes and r.bytes <= BYTES
	end
	print(line .. " accounting=" .. (ok and "ok" or "FAIL"))
	s:close()
	os.exit(ok and 0 or 3)
end

local secs = tonumber(os.getenv("BENCH_REC_SECS") or "5")
local port = tonumber(os.getenv("BENCH_REC_PORT") or "47996")
print(("== recorder: SYN flood on lo for %d s, tc, snaplen 128, bytes = 16 MiB"):format(secs))
local res = {}
for _, which in ipairs{ "off", "on" } do
	local p = assert(io.popen(("%s spec/bench/recorder.lua child %s %d %d"):format(arg[-1] or "lua5.4", which, secs,
		port)))
	local line = p:read("a")
	local ok = p:close()
	io.write("  ", line)
	res[which] = { ok = ok, hwm = tonumber(line:match("hwm_kib=(%d+)")), pushed = tonumber(line:match("pushed_out=(%d+)")) }
end
local off, on = res.off.hwm, res.on.hwm
local limit = off + BYTES // 1024 + off // 10
local pass = res.off.ok and res.on.ok and on and off and on <= limit and (res.on.pushed or 0) > 0
print(("SUMMARY recorder: peak RSS %d KiB without, %d KiB with 16 MiB (+%d KiB; limit %d KiB = 16 MiB + 10 %%), " ..
	"%d records pushed out, accounting %s: %s"):format(off or -1, on or -1, (on or 0) - (off or 0), limit,
	res.on.pushed or -1, (res.off.ok and res.on.ok) and "ok" or "FAIL", pass and "ok" or "FAIL"))
os.exit(pass and 0 or 1)
