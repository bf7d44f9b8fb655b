-- SPDX-License-Identifier: GPL-2.0-only
-- spec/bench/synthetic.lua: the synthetic event rate into Lua, the BPF cost
-- per packet, and memory over a long run (make bench, sections 1 and 3).
--
-- The tc program is driven with BPF_PROG_TEST_RUN (s:test_run) on a crafted
-- IPv4 TCP SYN frame, which runs parse -> filter -> aggregate -> emit in the
-- caller's context and writes into the ring; s:poll(0) then drains the ring
-- into the Lua callback.  Producer and consumer alternate in one thread, so
--   end-to-end rate  = delivered / (BPF time + Lua time)
--   consumer rate    = delivered / time inside poll(0)   (what Lua can take)
-- Every configuration runs in short chunks, interleaved in a shuffled order
-- per round, and the median over rounds is reported.
--
--   lua5.4 spec/bench/synthetic.lua [rate|bpf|expr|memory|all]
-- Env: BENCH_SYN_SECS (seconds per chunk, default 1), BENCH_SYN_ROUNDS
-- (default 3), BENCH_MEM_EVENTS (default 10000000).
package.path = "lua/?.lua;lua/?/init.lua;spec/bench/?.lua;" .. package.path
package.cpath = (os.getenv("TI_CPATH") or "build/?.so;") .. package.cpath

local ti = require "tcpinspect"
local C = require "common"

local what = arg[1] or "all"
local SECS = C.env_num("BENCH_SYN_SECS", 1)
local ROUNDS = C.env_num("BENCH_SYN_ROUNDS", 3)
local MEM_EVENTS = C.env_num("BENCH_MEM_EVENTS", 10000000)
local RING = 1 << 22
local WAKEUP_NEVER = 1 << 20 -- capped by the core at ring_size/2: no forced wakeups here
math.randomseed(os.time())

local FRAME = C.frame()
local NEWPORT = 0 -- the next new flow's source port
local sink = 0 -- luacheck: ignore 231 (written by the callbacks so field reads are not optimised away)

local callbacks = {
	read3 = function(p) sink = p.sport + p.len + p.flags end,
	args3 = function(sport, len, flags) sink = sport + len + flags end,
	args1 = function(len) sink = len end,
	empty = function(_) end,
	none = false,
	table6 = function(p)
		sink = { saddr = p.saddr, daddr = p.daddr, sport = p.sport, dport = p.dport,
			len = p.len, flags = p.flags }
	end,
}

local function open(opts)
	opts.mode = "tc"
	opts.dev = "lo"
	opts.ring_size = opts.ring_size or RING
	local s, err = ti.open(opts)
	if not s then
		io.stderr:write("bench: tcpinspect.open failed: ", tostring(err), "\n")
		os.exit(2)
	end
	return s
end

-- Check once that test_run records reach the callback (pkt_type HOST).
local function sanity()
	local s = open {}
	local n = 0
	s:on_packet(function(p)
		assert(p.sport == 40000 and p.dport == 9 and p.flags == 2 and p.len == 0,
			"test_run record decoded wrong")
		n = n + 1
	end)
	s:test_run(FRAME, 100)
	s:poll(0)
	local st = s:stats()
	s:close()
	if n ~= 100 or st.delivered ~= 100 then
		io.stderr:write(("bench: test_run on lo delivered %d of 100 records (seen %d): "
			.. "the frame is not PACKET_HOST here\n"):format(n, st.seen))
		os.exit(2)
	end
end

-- One chunk: alternate test_run(B) and poll(0) for secs seconds.
local function chunk(s, B, secs, acc)
	local st0, iw0, s0 = C.status(), C.irq_work(), s:stats()
	local t0 = C.now()
	local tpoll, bpf, runs, ev = 0, 0, 0, 0
	repeat
		local _, ns = s:test_run(FRAME, B)
		bpf = bpf + ns * B
		runs = runs + B
		local a = C.now()
		ev = ev + s:poll(0)
		tpoll = tpoll + (C.now() - a)
	until C.now() - t0 >= secs
	local wall = C.now() - t0
	local st1, iw1, s1 = C.status(), C.irq_work(), s:stats()
	acc.rate[#acc.rate + 1] = ev / wall
	acc.crate[#acc.crate + 1] = ev / tpoll
	acc.luans[#acc.luans + 1] = tpoll * 1e9 / ev
	acc.bpfns[#acc.bpfns + 1] = bpf / runs
	acc.lost = (acc.lost or 0) + (s1.dropped - s0.dropped)
	acc.ev = (acc.ev or 0) + ev
	acc.runs = (acc.runs or 0) + runs
	acc.iw = (acc.iw or 0) + (iw1 - iw0)
	acc.csw = (acc.csw or 0) + (st1.voluntary_ctxt_switches - st0.voluntary_ctxt_switches)
		+ (st1.nonvoluntary_ctxt_switches - st0.nonvoluntary_ctxt_switches)
end

local results = {}

local RATE_CONFIGS = {
	{ name = "3-field callback", cb = "read3", wakeup = 64, B = 1024 },
	{ name = "3 fields as arguments", cb = "args3", fields = { "sport", "len", "flags" }, wakeup = 64, B = 1024 },
	{ name = "1 field as argument", cb = "args1", fields = { "len" }, wakeup = 64, B = 1024 },
	{ name = "empty callback", cb = "empty", wakeup = 64, B = 1024 },
	{ name = "no callback", cb = "none", wakeup = 64, B = 1024 },
	{ name = "6-field table/event", cb = "table6", wakeup = 64, B = 1024 },
	{ name = "3-field, batch 256", cb = "read3", wakeup = 64, B = 256 },
	{ name = "3-field, batch 4096", cb = "read3", wakeup = 64, B = 4096 },
	{ name = "3-field, wakeup=1", cb = "read3", wakeup = 1, B = 1024 },
	{ name = "3-field, no forced wakeup", cb = "read3", wakeup = WAKEUP_NEVER, B = 1024 },
}

-- BENCH_SYN_CONFIGS: a comma list of names (or parts of names) to run only
-- those configurations of section 1.
local function rate_configs()
	local want = os.getenv("BENCH_SYN_CONFIGS")
	local list = {}
	for i, c in ipairs(RATE_CONFIGS) do
		local keep = not want or want == ""
		for w in (want or ""):gmatch("[^,]+") do
			if c.name:find(w, 1, true) then keep = true end
		end
		if keep then list[#list + 1] = { i = i, c = c } end
	end
	return list
end

-- `rate-round`: one round of section 1 in this process (every selected
-- configuration once, shuffled), printed as "i rate crate luans lost ev iw
-- csw" lines: a second build cannot load into the same Lua state (both
-- register the same metatables), so each build's rounds run in children.
local function rate_round_child()
	local runs = {}
	for _, e in ipairs(rate_configs()) do
		local c = e.c
		local r = { i = e.i, c = c, s = open { wakeup = c.wakeup } }
		r.s:on_packet(callbacks[c.cb] or nil, c.fields)
		r.acc = { rate = {}, crate = {}, luans = {}, bpfns = {} }
		runs[#runs + 1] = r
	end
	for _, r in ipairs(C.shuffle(runs)) do
		collectgarbage()
		chunk(r.s, r.c.B, SECS, r.acc)
	end
	for _, r in ipairs(runs) do
		local a = r.acc
		print(r.i, a.rate[1], a.crate[1], a.luans[1], a.lost, a.ev, a.iw, a.csw)
		r.s:close()
	end
end

local function rate_round_in(dir, into)
	local cpath = dir and ("TI_CPATH='" .. dir .. "/?.so;' ") or ""
	local p = assert(io.popen(cpath .. "lua5.4 spec/bench/synthetic.lua rate-round"))
	for line in p:lines() do
		local v = {}
		for x in line:gmatch("[^\t]+") do v[#v + 1] = tonumber(x) end
		if #v == 8 then
			local a = into[v[1]] or { rate = {}, crate = {}, luans = {}, lost = 0, ev = 0, iw = 0, csw = 0 }
			into[v[1]] = a
			a.rate[#a.rate + 1], a.crate[#a.crate + 1], a.luans[#a.luans + 1] = v[2], v[3], v[4]
			a.lost, a.ev, a.iw, a.csw = a.lost + v[5], a.ev + v[6], a.iw + v[7], a.csw + v[8]
		end
	end
	assert(p:close(), "bench: a rate-round child failed")
end

-- The baseline build's directory (for TI_CPATH) from BENCH_BASELINE_CORE
-- (spec/bench/run, BENCH_BASELINE=<rev>), said in the section's header;
-- nil without one.
local function baseline_dir()
	local core = os.getenv("BENCH_BASELINE_CORE")
	if core == nil or core == "" then return nil end
	print(("  baseline: %s, build %s; each round runs both builds, in random order")
		:format(os.getenv("BENCH_BASELINE") or "?", core))
	return core:match("^(.*)/tcpinspect/core%.so$")
end

-- With BENCH_BASELINE_CORE (spec/bench/run, BENCH_BASELINE=<rev>) every
-- round runs both builds, in random order, each in a child process.
local function rate_section()
	print(("== 1. Synthetic event rate into Lua (tc program via BPF_PROG_TEST_RUN on lo; "
		.. "%d rounds x %.1f s per config, shuffled; medians)"):format(ROUNDS, SECS))
	local base_dir = baseline_dir()
	local this, base = {}, {}
	for _ = 1, ROUNDS do
		local order = { { nil, this } }
		if base_dir then order[2] = { base_dir, base } end
		for _, b in ipairs(C.shuffle(order)) do rate_round_in(b[1], b[2]) end
	end
	local rows = {}
	for _, e in ipairs(rate_configs()) do
		local c, a = e.c, this[e.i]
		local row = {
			name = c.name, wakeup = c.wakeup == WAKEUP_NEVER and "ring/2" or tostring(c.wakeup),
			B = c.B, rate = C.median(a.rate), crate = C.median(a.crate),
			luans = C.median(a.luans), lost = a.lost,
			iw = a.iw * 1000 / a.ev, csw = a.csw * 1000 / a.ev,
		}
		if base_dir then
			local b = base[e.i]
			row.bcrate, row.bluans, row.blost = C.median(b.crate), C.median(b.luans), b.lost
			row.change = row.crate / row.bcrate
		end
		rows[#rows + 1] = row
		results[c.name] = row
	end
	local cols = {
		{ "name", "config" }, { "wakeup", "wakeup" }, { "B", "batch" },
		{ "rate", "events/s e2e", C.si }, { "crate", "consumer ev/s", C.si },
		{ "luans", "Lua ns/ev", "%.0f" },
		{ "lost", "lost" }, { "iw", "irq_work/1k", "%.1f" }, { "csw", "ctxsw/1k", "%.2f" },
	}
	if base_dir then
		cols[#cols + 1] = { "bcrate", "baseline consumer ev/s", C.si }
		cols[#cols + 1] = { "bluans", "baseline Lua ns/ev", "%.0f" }
		cols[#cols + 1] = { "blost", "baseline lost" }
		cols[#cols + 1] = { "change", "consumer this/baseline", "%.2f" }
	end
	C.table(cols, rows)
	local function r(name, k) return results[name] and results[name][k or "luans"] or 0 / 0 end
	local nocb = r("no callback")
	print(("  callback cost over no callback: 3 fields %.0f ns/ev, 3 fields as arguments %.0f ns/ev, "
		.. "empty %.0f ns/ev, 6-field table %.0f ns/ev"):format(r("3-field callback") - nocb,
			r("3 fields as arguments") - nocb, r("empty callback") - nocb, r("6-field table/event") - nocb))
	print("  e2e = delivered / (BPF test_run time + poll time), one thread; consumer = delivered / poll time.")
	print("  irq_work/1k = IRQ-work interrupts (the ring's forced wakeups) per 1000 events, whole machine.")
	print()
	print(("SUMMARY synthetic: 3-field callback %s ev/s e2e, %s ev/s consumer (%.0f ns/ev), lost %s; "
		.. "wakeup=1 %s ev/s; no forced wakeup %s ev/s e2e"):format(C.si(r("3-field callback", "rate")),
		C.si(r("3-field callback", "crate")), r("3-field callback"), tostring(r("3-field callback", "lost")),
		C.si(r("3-field, wakeup=1", "rate")), C.si(r("3-field, no forced wakeup", "rate"))))
end

local BPF_CONFIGS = {
	{ name = "filter miss (dport=1)", opts = { filter = { dport = 1 } } },
	{ name = "no aggregates, no events", opts = { events = false, aggregates = false } },
	{ name = "aggregates only (events=false)", opts = { events = false } },
	{ name = "aggregates only, a new flow per packet", opts = { events = false }, newflows = true },
	{ name = "events on, default wakeup=64", opts = {} },
	{ name = "events on, wakeup=1", opts = { wakeup = 1 } },
	{ name = "events on, no forced wakeup", opts = { wakeup = WAKEUP_NEVER } },
	{ name = "events only, no forced wakeup", opts = { wakeup = WAKEUP_NEVER, aggregates = false } },
}

-- One round of section 1b in this process: each configuration's ns/run for
-- `reps` shuffled batches of 1024, as { [i] = {ns, ...} }.
local function bpf_round(reps)
	local runs = {}
	for i, c in ipairs(BPF_CONFIGS) do
		local o = {}
		for k, v in pairs(c.opts) do o[k] = v end
		runs[i] = { i = i, s = open(o), ns = {}, newflows = c.newflows }
	end
	for _ = 1, reps do
		local order = {}
		for i, r in ipairs(runs) do order[i] = r end
		for _, r in ipairs(C.shuffle(order)) do
			if r.newflows then
				-- 256 packets, each of a flow not seen before (source port), one
				-- test_run each: what a SYN flood from random ports costs
				local total = 0
				for _ = 1, 256 do
					NEWPORT = NEWPORT % 60000 + 1
					local _, ns = r.s:test_run(C.frame { sport = NEWPORT + 1024 }, 1)
					total = total + ns
				end
				r.ns[#r.ns + 1] = total / 256
			else
				local _, ns = r.s:test_run(FRAME, 1024)
				r.ns[#r.ns + 1] = ns
			end
			r.s:poll(0)
		end
	end
	local out = {}
	for i, r in ipairs(runs) do
		out[i] = r.ns
		r.s:close()
	end
	return out
end

-- `bpf-round REPS`: one round, printed as "i ns" lines, for bpf_section's
-- children (a second build cannot load into the same Lua state: both
-- register the same metatables).
local function bpf_round_child(reps)
	for i, list in ipairs(bpf_round(reps)) do
		for _, ns in ipairs(list) do print(i, ns) end
	end
end

-- Run one round in a child process with the core.so of dir (nil: this build).
local function bpf_round_in(dir, reps, into)
	local cpath = dir and ("TI_CPATH='" .. dir .. "/?.so;' ") or ""
	local p = assert(io.popen(cpath .. "lua5.4 spec/bench/synthetic.lua bpf-round " .. reps))
	for line in p:lines() do
		local i, ns = line:match("^(%d+)\t([%d.]+)$")
		if i then
			into[tonumber(i)] = into[tonumber(i)] or {}
			table.insert(into[tonumber(i)], tonumber(ns))
		end
	end
	assert(p:close(), "bench: a bpf-round child failed")
end

-- BENCH_BASELINE_CORE=path/to/tcpinspect/core.so (spec/bench/run sets it
-- from BENCH_BASELINE=<git revision>): every configuration is measured with
-- that build too, round by round in alternation, for before/after figures
-- from one run.
local function bpf_section()
	print("== 1b. BPF cost per packet (BPF_PROG_TEST_RUN duration / repeat; batches of 1024, ring drained between)")
	local base_dir = baseline_dir()
	local this, base = {}, {}
	for _ = 1, ROUNDS * 2 do
		local order = { { nil, this } }
		if base_dir then order[2] = { base_dir, base } end
		for _, b in ipairs(C.shuffle(order)) do bpf_round_in(b[1], 5, b[2]) end
	end
	local rows, miss = {}, nil
	for i, c in ipairs(BPF_CONFIGS) do
		local m = C.median(this[i])
		miss = miss or m
		rows[i] = { name = c.name, ns = m, ratio = m / miss }
		results["bpf " .. c.name] = m
		if base_dir then
			rows[i].base = C.median(base[i])
			rows[i].change = m / rows[i].base
		end
	end
	local cols = { { "name", "config" }, { "ns", "ns/run", "%.0f" }, { "ratio", "x filter miss", "%.1f" } }
	if base_dir then
		cols[#cols + 1] = { "base", "baseline ns/run", "%.0f" }
		cols[#cols + 1] = { "change", "this / baseline", "%.2f" }
	end
	C.table(cols, rows)
	print("  (ns/run includes the test_run harness itself: skb setup per run, eth_type_trans.)")
	print()
	print(("SUMMARY bpf: ns/packet miss %.0f, aggregates only %.0f, events (wakeup 64) %.0f, "
		.. "events (no forced wakeup) %.0f"):format(results["bpf filter miss (dport=1)"],
		results["bpf aggregates only (events=false)"], results["bpf events on, default wakeup=64"],
		results["bpf events on, no forced wakeup"]))
end

-- Section 1c: the cost of a filter expression (filter.expr: libpcap's
-- classic BPF run by bpf/ti_cbpf.h, one instruction per bpf_loop
-- iteration) against the native filter keys for the same predicate, side
-- by side in the same rounds, on the same frame (IPv4 SYN 127.0.0.1:40000
-- -> 127.0.0.1:9).  No aggregates, no events: the filter is what differs.
local EXPR_CONFIGS = {
	{ "no filter", {}, nil },
	{ "dst port 9 (match)", { dport = 9 }, "tcp dst port 9" },
	{ "dst port 1 (miss)", { dport = 1 }, "tcp dst port 1" },
	{ "dst host + dst port (match)", { daddr = "127.0.0.1", dport = 9 }, "dst host 127.0.0.1 and tcp dst port 9" },
	{ "SYN flag (match)", { flags = "syn" }, "tcp[tcpflags] & tcp-syn != 0" },
	{ "4 ports, either side (match on the 4th)", { port = "7000,443,8080,9" },
		"tcp port 7000 or tcp port 443 or tcp port 8080 or tcp port 9" },
	{ "src net /8 and not SYN-ACK (match)", { saddr = "127.0.0.0/8" },
		"src net 127.0.0.0/8 and tcp[tcpflags] & (tcp-syn|tcp-ack) != (tcp-syn|tcp-ack)" },
}

local function expr_section()
	print("== 1c. Filter expression (filter.expr) against the native filter, same predicate " ..
		"(ns/run, BPF_PROG_TEST_RUN, batches of 1024; events and aggregates off)")
	local runs = {}
	for _, c in ipairs(EXPR_CONFIGS) do
		local row = { name = c[1] }
		row.native = open { filter = next(c[2]) and c[2] or nil, events = false, aggregates = false }
		if c[3] then
			row.expr = open { filter = { expr = c[3] }, events = false, aggregates = false }
			row.insns = #require("tcpinspect.core").expr_compile(c[3])
		end
		row.nns, row.ens = {}, {}
		runs[#runs + 1] = row
	end
	for _ = 1, ROUNDS * 10 do
		local order = {}
		for _, r in ipairs(runs) do
			order[#order + 1] = { r.native, r.nns }
			if r.expr then order[#order + 1] = { r.expr, r.ens } end
		end
		for _, o in ipairs(C.shuffle(order)) do
			local _, ns = o[1]:test_run(FRAME, 1024)
			table.insert(o[2], ns)
		end
	end
	local rows, base = {}, nil
	for _, r in ipairs(runs) do
		local n = C.median(r.nns)
		base = base or n
		local e = r.expr and C.median(r.ens)
		rows[#rows + 1] = { name = r.name, native = n, expr = e or 0 / 0, insns = r.insns or 0,
			diff = e and e - n or 0 / 0, per = e and r.insns and (e - base) / r.insns or 0 / 0 }
		results["expr " .. r.name] = e
		results["native " .. r.name] = n
		r.native:close()
		if r.expr then r.expr:close() end
	end
	C.table({ { "name", "predicate" }, { "native", "native ns/run", "%.0f" }, { "expr", "expr ns/run", "%.0f" },
		{ "diff", "expr - native", "%.0f" }, { "insns", "cBPF insns" },
		{ "per", "ns per insn (over no filter)", "%.1f" } }, rows)
	print("  (the expression runs after the native keys, over the first bytes the hook copies: up to 256)")
	print()
	print(("SUMMARY expr: dst port 9 native %.0f ns vs expr %.0f ns; 4 ports native %.0f vs expr %.0f; " ..
		"no filter %.0f"):format(results["native dst port 9 (match)"], results["expr dst port 9 (match)"],
		results["native 4 ports, either side (match on the 4th)"],
		results["expr 4 ports, either side (match on the 4th)"], results["native no filter"]))
end

local function memory_section()
	print(("== 3. Memory over a long synthetic run (%s events, 3-field callback, batch 4096)")
		:format(C.si(MEM_EVENTS)))
	local s = open { wakeup = WAKEUP_NEVER }
	s:on_packet(callbacks.read3)
	local marks = { 1000000, MEM_EVENTS // 2, MEM_EVENTS }
	if MEM_EVENTS < 10000000 then marks = { MEM_EVENTS // 10, MEM_EVENTS // 2, MEM_EVENTS } end
	local rows, mi, ev = {}, 1, 0
	local st = C.status()
	rows[1] = { at = "start", heap = collectgarbage("count"), rss = st.VmRSS, hwm = st.VmHWM }
	collectgarbage()
	rows[1].heapgc = collectgarbage("count")
	local t0 = C.now()
	while mi <= #marks do
		s:test_run(FRAME, 4096)
		ev = ev + s:poll(0)
		if ev >= marks[mi] then
			local heap = collectgarbage("count")
			collectgarbage()
			st = C.status()
			rows[#rows + 1] = { at = C.si(ev), heap = heap, heapgc = collectgarbage("count"),
				rss = st.VmRSS, hwm = st.VmHWM }
			mi = mi + 1
		end
	end
	local secs = C.now() - t0
	local stt = s:stats()
	s:close()
	C.table({ { "at", "events" }, { "heap", "Lua heap KiB", "%.1f" },
		{ "heapgc", "after full GC", "%.1f" }, { "rss", "VmRSS KiB" }, { "hwm", "peak RSS KiB" } }, rows)
	print(("  %s events in %.1f s, delivered %d, lost %d (wakeup = ring/2, so no forced wakeups)")
		:format(C.si(ev), secs, stt.delivered, stt.dropped))
	print()
	local first, last = rows[2], rows[#rows]
	print(("SUMMARY memory: peak RSS %d KiB; RSS %d -> %d KiB and Lua heap %.1f -> %.1f KiB "
		.. "from %s to %s events; lost %d"):format(last.hwm, first.rss, last.rss, first.heapgc,
		last.heapgc, first.at, last.at, stt.dropped))
end

if what == "rate-round" then
	rate_round_child()
	return
end
if what == "bpf-round" then
	bpf_round_child(tonumber(arg[2]) or 5)
	return
end
sanity()
if what == "rate" or what == "all" then rate_section() end
if what == "bpf" or what == "all" then bpf_section() end
if what == "expr" or what == "bpf" or what == "all" then expr_section() end
if what == "memory" or what == "all" then memory_section() end
