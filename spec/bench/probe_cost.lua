-- SPDX-License-Identifier: GPL-2.0-only
-- spec/bench/probe_cost.lua: the BPF cost per segment of each hook under the
-- same traffic, from the kernel's own accounting (kernel.bpf_stats_enabled:
-- run_time_ns / run_cnt of the session's programs).  Made for the qemu
-- guests, where packet rates mean nothing (emulated time) but the ratio of
-- two hooks' costs measured alike does (make bench-vm).
--
--   lua5.4 spec/bench/probe_cost.lua [MODES] [ROUNDS] [SECS] [CONFIGS] [LOAD]
--   MODES: comma list (default fentry,kprobe,tc); CONFIGS: comma list of
--   bare, aggregates, callback (default all three); LOAD: est (default,
--   below) or flood (hping3 --flood -S to the closed port: a new flow on
--   every segment, what make bench's live section runs, so that its costs
--   are read without the rate's noise; on this host, tc mode):
--     bare        events = false, aggregates = false (the hook alone)
--     aggregates  events = false, aggregates on
--     callback    aggregates = false, on_packet(fn, {"len"}) (what watch needs)
--     drops       events = false, drops = true: aggregates and the drop hook
--                 (ns per program run, the drop hook's runs counted too)
--     agg:NAME    events = false, aggregates = {NAME}: one map alone
--                 (agg:flows, agg:sources, agg:ports, agg:len_hist); a
--                 number after it is max_flows (agg:flows:1024)
--   With BENCH_BASELINE_CORE (spec/bench/run's BENCH_BASELINE=<rev>) each
--   configuration also runs as CONFIG@base, the baseline's core in a child
--   process (--one), in the same rounds, and the table adds this/@base.
--   Each round runs every mode x configuration once, in random order, with
--   the same established-flow load (spec/bench/est_load.py) filtered to its
--   port; tc on lo.  Printed as one table: ns per segment per configuration
--   and mode, and each mode's ratio to the first.
package.path = "lua/?.lua;lua/?/init.lua;spec/bench/?.lua;" .. package.path
package.cpath = (os.getenv("TI_CPATH") or "build/?.so;") .. package.cpath

local ti = require "tcpinspect"
local C = require "common"

-- --one MODE CONFIG LOAD SECS: one measurement in this process, printed as
-- "ns/seg segments delivered lost" (a CONFIG@base trial runs so, with the
-- baseline's core)
local ONE = arg[1] == "--one" and { mode = arg[2], config = arg[3] }
local argv = ONE and { arg[2], "1", arg[5], arg[3], arg[4] } or arg
local modes, configs = {}, {}
for m in (argv[1] or "fentry,kprobe,tc"):gmatch("[^,]+") do modes[#modes + 1] = m end
local ROUNDS, SECS = tonumber(argv[2]) or 5, tonumber(argv[3]) or 2
for c in (argv[4] or "bare,aggregates,callback"):gmatch("[^,]+") do configs[#configs + 1] = c end
local LOAD = argv[5] or "est"
-- BENCH_BASELINE_CORE (spec/bench/run, BENCH_BASELINE=<rev>): every
-- configuration also as CONFIG@base, the baseline's core in a child
-- process, in the same shuffled rounds
local BASE_CORE = not ONE and os.getenv("BENCH_BASELINE_CORE")
if BASE_CORE then
	for i = 1, #configs do configs[#configs + 1] = configs[i] .. "@base" end
end
assert(LOAD == "est" or LOAD == "flood", "probe_cost: LOAD is est or flood")
local PORT = 47996
math.randomseed(os.time())

local CONFIG_OPTS = {
	bare = { events = false, aggregates = false },
	aggregates = { events = false },
	callback = { aggregates = false, fields = { "len" } },
	drops = { events = false, drops = true }, -- aggregates and the drop hook (skb:kfree_skb)
}

local function sh(cmd)
	local f = assert(io.popen(cmd))
	local out = f:read("a")
	f:close()
	return out
end

-- run_time_ns and run_cnt summed over this process's ti_ programs (one
-- bpftool call for all of them)
local function prog_stats(pid)
	local ids = {}
	local fds = sh("ls -l /proc/" .. pid .. "/fd 2>/dev/null")
	for fd in fds:gmatch(" (%d+) %-> anon_inode:bpf%-prog") do
		local f = io.open(("/proc/%d/fdinfo/%s"):format(pid, fd))
		local id = f and f:read("a"):match("prog_id:%s*(%d+)")
		if f then f:close() end
		if id then ids[id] = true end
	end
	local ns, cnt = 0, 0
	for line in sh("bpftool prog show 2>/dev/null"):gmatch("[^\n]+") do
		local id, name = line:match("^(%d+): %S+%s+name (%S+)")
		if id and ids[id] and name:match("^ti_") then
			ns = ns + tonumber(line:match("run_time_ns (%d+)") or 0)
			cnt = cnt + tonumber(line:match("run_cnt (%d+)") or 0)
		end
	end
	return ns, cnt
end

local sink = 0 -- luacheck: ignore 231 (written by the callback)

-- One measurement: open mode m in configuration c, run the load for SECS
-- while polling, return ns/segment, segments, delivered, lost.
local function measure(pid, m, c)
	if c:match("@base$") then
		local cpath = BASE_CORE:gsub("/tcpinspect/core%.so$", "/?.so;")
		local out = sh(("TI_CPATH='%s' %s spec/bench/probe_cost.lua --one %s %s %s %g"):format(cpath,
			arg[-1] or "lua5.4", m, c:gsub("@base$", ""), LOAD, SECS))
		local per, cnt, d, l = out:match("^(%S+) (%d+) (%d+) (%d+)")
		assert(cnt, "probe_cost: " .. c .. " failed: " .. out)
		return tonumber(per), tonumber(cnt), tonumber(d), tonumber(l)
	end
	local o = CONFIG_OPTS[c]
	local s = assert(ti.open { mode = m, dev = m == "tc" and "lo" or nil, events = o.events,
		aggregates = o.aggregates, drops = o.drops, max_flows = o.max_flows, filter = { port = PORT } })
	local n = 0
	if o.fields then s:on_packet(function(len) sink = len; n = n + 1 end, o.fields) end
	local ns0, cnt0 = prog_stats(pid)
	local load = assert(io.popen(LOAD == "flood"
		and ("timeout -s INT %g hping3 --flood -S -p %d 127.0.0.1 2>&1"):format(SECS, PORT)
		or ("python3 spec/bench/est_load.py %d %g 4 2>/dev/null"):format(PORT, SECS)))
	local t0 = C.now()
	while C.now() - t0 < SECS + 0.5 do s:poll(100) end
	load:read("a")
	load:close()
	while s:poll(0) > 0 do end
	local ns1, cnt1 = prog_stats(pid)
	local st = s:stats()
	s:close()
	if o.fields then assert(n == st.delivered, "callback calls differ from delivered") end
	return cnt1 > cnt0 and (ns1 - ns0) / (cnt1 - cnt0) or nil, cnt1 - cnt0, st.delivered, st.dropped
end

sh("sysctl -qw kernel.bpf_stats_enabled=1")
local pid
do
	local f = assert(io.open("/proc/self/stat"))
	pid = tonumber(f:read("a"):match("^(%d+)"))
	f:close()
end
local res, segs, lost, deliv = {}, {}, {}, {}
for _, c in ipairs(configs) do
	local name = c:gsub("@base$", "")
	if not CONFIG_OPTS[name] and name:match("^agg:") then -- one map alone: agg:flows, agg:ports ...
		local map, n = name:match("^agg:([%w_]+):?(%d*)$")
		CONFIG_OPTS[name] = { events = false, aggregates = { map }, max_flows = tonumber(n) }
	end
	assert(CONFIG_OPTS[name], "probe_cost: unknown configuration " .. c)
	for _, m in ipairs(modes) do
		res[c .. m], segs[c .. m], lost[c .. m], deliv[c .. m] = {}, 0, 0, 0
	end
end
if ONE then
	local per, cnt, d, l = measure(pid, ONE.mode, ONE.config)
	print(("%s %d %d %d"):format(per and ("%.1f"):format(per) or "nan", cnt, d, l))
	os.exit(0)
end
for _ = 1, ROUNDS do
	local order = {}
	for _, c in ipairs(configs) do
		for _, m in ipairs(modes) do order[#order + 1] = { c, m } end
	end
	for _, cm in ipairs(C.shuffle(order)) do
		local k = cm[1] .. cm[2]
		local per, cnt, d, l = measure(pid, cm[2], cm[1])
		if per then table.insert(res[k], per) end
		segs[k], deliv[k], lost[k] = segs[k] + cnt, deliv[k] + d, lost[k] + l
	end
end
sh("sysctl -qw kernel.bpf_stats_enabled=0")
local f = io.open("/proc/sys/kernel/osrelease")
local kernel = f and f:read("l") or "?"
if f then f:close() end
print(("== BPF run time per segment by hook and configuration, %s (bpf_stats: run_time_ns / run_cnt; "
	.. "%d rounds x %g s, shuffled; %s on lo, medians)"):format(kernel, ROUNDS, SECS,
	LOAD == "flood" and "hping3 SYN flood to a closed port" or "established load"))
local cols = { { "config", "configuration" } }
for _, m in ipairs(modes) do cols[#cols + 1] = { m, m .. " ns/seg", "%.0f" } end
for i = 2, #modes do
	cols[#cols + 1] = { modes[i] .. "/", ("%s/%s"):format(modes[i], modes[1]), "%.2f" }
end
if BASE_CORE then
	for _, m in ipairs(modes) do cols[#cols + 1] = { m .. "@", m .. " this/@base", "%.3f" } end
end
cols[#cols + 1] = { "lost", "segments:delivered/lost" }
local rows, parts, vs_base = {}, {}, {}
for _, c in ipairs(configs) do
	local row, dl = { config = c }, {}
	for _, m in ipairs(modes) do row[m] = C.median(res[c .. m]) end
	if BASE_CORE and not c:match("@base$") then
		for _, m in ipairs(modes) do
			local b = C.median(res[c .. "@base" .. m])
			row[m .. "@"] = row[m] and b and row[m] / b
			vs_base[#vs_base + 1] = ("%s %s %.0f/%.0f ns %.3f"):format(c, m, row[m] or 0 / 0, b or 0 / 0,
				row[m .. "@"] or 0 / 0)
		end
	end
	for i = 2, #modes do
		row[modes[i] .. "/"] = row[modes[i]] / row[modes[1]]
		parts[#parts + 1] = ("%s %s/%s %.2f"):format(c, modes[i], modes[1], row[modes[i] .. "/"])
	end
	for _, m in ipairs(modes) do dl[#dl + 1] = ("%d:%d/%d"):format(segs[c .. m], deliv[c .. m], lost[c .. m]) end
	row.lost = table.concat(dl, " ")
	rows[#rows + 1] = row
end
C.table(cols, rows)
print("  (segments: run_cnt of the session's programs over all rounds; then delivered/lost; per mode, in MODES order)")
print(("SUMMARY probe cost %s: %s"):format(kernel, table.concat(parts, ", ")))
if #vs_base > 0 then
	print(("SUMMARY probe cost %s against the baseline build (this/@base, medians): %s"):format(kernel,
		table.concat(vs_base, ", ")))
end
