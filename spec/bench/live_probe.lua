-- SPDX-License-Identifier: GPL-2.0-only
-- spec/bench/live_probe.lua: one tcpinspect consumer for the real-traffic
-- benchmark (spec/bench/live.sh).  Opens a session, touches READY, runs until
-- STOP exists, then writes one line of key=value results to OUT.
--
--   lua5.4 spec/bench/live_probe.lua MODE KIND PORT READY STOP OUT
--   MODE: tc | cgroup     KIND: agg (events=false) | lua | lua-w1 (wakeup=1)
--                              | args (the 3 fields as callback arguments)
--                              | bare (events=false, aggregates=false: hook,
--                                parse, filter and counters only)
--                              | agg-nodrops, agg-drops, lua-drops: the
--                                drops cost (filter dport = PORT, so that
--                                each SYN is one NO_SOCKET drop and the
--                                RSTs back are not counted; drops = true
--                                in the last two, lua-drops with an
--                                on_drop callback instead of on_packet).
--                                The line then reports the drop path's
--                                matched, delivered, lost, and check=ok
--                                when every SYN the receive hook matched
--                                is exactly one NO_SOCKET drop (stats,
--                                reasons, the drops map), else
--                                check=FAIL and exit status 3
--                              | agg-conns: agg-nodrops with conns = true
--                                (max_conns BENCH_MAX_CONNS, 16384: fewer
--                                than the 65536 source ports hping3 cycles
--                                through, so the table fills; idle_timeout
--                                0.2 s, which caps the SYN-only timeout:
--                                hping3 comes back to each port every
--                                ~0.6 s, so entries expire between): the line adds
--                                the conns counters, the table's size at
--                                the end, and check=ok when it is within
--                                max_conns, SYN-only entries expired, no
--                                conn-end record was lost and every SYN
--                                matched was tracked, a hit on an entry,
--                                or counted untracked
--                              | agg-noflows: agg with every map but
--                                flows (ports, sources, len_hist): what
--                                the flows table costs under a flood of
--                                new flows, beside agg
--                              | lua1-noagg: a 1-field callback,
--                                on_packet(fn, {"len"}), with
--                                aggregates = false (what `watch` opens;
--                                live.sh's ti-tc-watch runs the command)
package.path = "lua/?.lua;lua/?/init.lua;spec/bench/?.lua;" .. package.path
package.cpath = (os.getenv("TI_CPATH") or "build/?.so;") .. package.cpath

local ti = require "tcpinspect"
local C = require "common"

local mode, kind, port, ready, stop, out = table.unpack(arg, 1, 6)
port = assert(tonumber(port))

local drops = kind:match("%-drops$") and true or nil
local conns = kind:match("%-conns$") and true or nil
local noagg = kind:match("%-noagg$") and true or nil
local noflows = kind:match("%-noflows$") and true or nil
local opts = { mode = mode, filter = { port = port } }
local max_conns = tonumber(os.getenv("BENCH_MAX_CONNS")) or 16384
if conns then
	opts.filter = { dport = port }
	opts.conns, opts.idle_timeout, opts.max_conns = true, 0.2, max_conns
	kind = kind:gsub("%-conns$", "")
end
if kind:match("drops$") then
	opts.filter = { dport = port }
	opts.drops = drops
	kind = kind:gsub("%-n?o?drops$", "")
end
if noagg then
	opts.aggregates = false
	kind = kind:gsub("%-noagg$", "")
end
if noflows then
	opts.aggregates = { "ports", "sources", "len_hist" }
	kind = kind:gsub("%-noflows$", "")
end
if mode == "tc" then opts.dev = "lo" end
if kind == "agg" or kind == "bare" then opts.events = false end
if kind == "bare" then opts.aggregates = false end
opts.max_flows = tonumber(os.getenv("BENCH_MAX_FLOWS")) -- nil: the default
if kind == "lua-w1" then opts.wakeup = 1 end
local s, err = ti.open(opts)
if not s then
	io.stderr:write("live_probe: open failed: ", tostring(err), "\n")
	os.exit(2)
end
local sink, n = 0, 0 -- luacheck: ignore 231
if drops and kind == "lua" then
	s:on_drop(function(p)
		sink = p.sport + p.len + p.flags
		n = n + 1
	end)
elseif kind == "args" then
	s:on_packet(function(sport, len, flags)
		sink = sport + len + flags
		n = n + 1
	end, { "sport", "len", "flags" })
elseif kind == "lua1" then
	s:on_packet(function(len)
		sink = len
		n = n + 1
	end, { "len" })
elseif kind ~= "agg" and kind ~= "bare" then
	s:on_packet(function(p)
		sink = p.sport + p.len + p.flags
		n = n + 1
	end)
end

local function cpu_ticks()
	local f = assert(io.open("/proc/self/stat"))
	local line = f:read("a")
	f:close()
	-- fields after the ")" of comm: state is field 3; utime 14, stime 15
	local rest = line:match("%) (.*)")
	local fields = {}
	for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
	return tonumber(fields[12]) + tonumber(fields[13])
end

local function exists(path)
	local f = io.open(path)
	if f then f:close() return true end
	return false
end

local st0, cpu0 = C.status(), cpu_ticks()
local t0 = C.now()
local f = assert(io.open(ready, "w"))
f:close()
local next_check = 0
s:run {
	poll_ms = 100,
	should_stop = function()
		local now = C.now()
		if now < next_check then return false end
		next_check = now + 0.05
		return exists(stop)
	end,
}
local secs = C.now() - t0
local st1, cpu1 = C.status(), cpu_ticks()
local stats = s:stats()
local check = ""
if drops then
	local d, kept = stats.drops, 0
	for k, v in s:map("drops"):pairs() do
		if k.reason == "NO_SOCKET" and k.dport == port then kept = kept + v.packets end
	end
	local ok = d.matched == stats.matched and (d.reasons.NO_SOCKET or 0) == d.matched and kept == d.matched
		and stats.evicted_drops == 0 and d.errors == 0 and (kind ~= "lua" or (d.lost == 0 and n == d.delivered))
	check = (" dseen=%d dmatched=%d dmap=%d dlost=%d check=%s"):format(d.seen, d.matched, kept, d.lost,
		ok and "ok" or "FAIL")
	-- the table reports the drop path's delivery
	stats = { seen = stats.seen, matched = d.matched, delivered = d.delivered, dropped = d.lost }
	if not ok then io.stderr:write("live_probe: drops do not add up:", check, "\n") end
end
if conns then
	local open = 0
	for _ in s:conns() do open = open + 1 end
	local ok = open <= max_conns and stats.conns_expired > 0 and stats.conns_lost == 0
		and stats.conns_opened + stats.conns_untracked <= stats.matched and stats.conns_opened > 0
	check = (" copened=%d cuntracked=%d cexpired=%d cevicted=%d clost=%d copen=%d check=%s"):format(
		stats.conns_opened, stats.conns_untracked, stats.conns_expired, stats.conns_evicted, stats.conns_lost,
		open, ok and "ok" or "FAIL")
	if not ok then io.stderr:write("live_probe: conns do not add up:", check, "\n") end
end
s:close()
local csw = (st1.voluntary_ctxt_switches - st0.voluntary_ctxt_switches)
	+ (st1.nonvoluntary_ctxt_switches - st0.nonvoluntary_ctxt_switches)
f = assert(io.open(out, "w"))
f:write(("seen=%d matched=%d delivered=%d dropped=%d callbacks=%d csw=%d vcsw=%d cpu_ticks=%d secs=%.3f%s\n")
	:format(stats.seen, stats.matched, stats.delivered, stats.dropped, n, csw,
		st1.voluntary_ctxt_switches - st0.voluntary_ctxt_switches, cpu1 - cpu0, secs, check))
f:close()
if check:find("check=FAIL", 1, true) then os.exit(3) end
