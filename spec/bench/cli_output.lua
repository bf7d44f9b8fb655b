-- SPDX-License-Identifier: GPL-2.0-only
-- spec/bench/cli_output.lua: how fast the CLI's per-packet outputs go:
-- `watch` lines (tcpinspect.format) and `--json` lines (tcpinspect.json via
-- its fast path; dkjson for comparison), against an empty callback, through the real ring and packet view.
-- Records come from BPF_PROG_TEST_RUN on a crafted frame (no traffic needed).
-- Root, tc mode.  Writes to /dev/null; prints events/s per output, median of
-- BENCH_ROUNDS (5) rounds of N (50000) records.
--
--   lua5.4 -e 'package.path="lua/?.lua;spec/?.lua;"..package.path package.cpath="build/?.so;"..package.cpath' spec/bench/cli_output.lua
local common = require "bench.common"
local tcpinspect = require "tcpinspect"
local fmt = require "tcpinspect.format"
local json = require "tcpinspect.json"

local N = tonumber(os.getenv("BENCH_N") or 50000)
local ROUNDS = tonumber(os.getenv("BENCH_ROUNDS") or 5)

local s = assert(tcpinspect.open { mode = "tc", dev = "lo", ring_size = 1 << 24,
	filter = { sport = 40000, dport = 9 } })
local frame = common.frame { sport = 40000, dport = 9, flags = 0x18, payload = string.rep("x", 100) }
local out = assert(io.open("/dev/null", "w"))

local outputs = {
	empty = function() end,
	fields = function(p) local _, _, _, _, _, _, _ = p.saddr, p.sport, p.daddr, p.dport, p.flagstr, p.seq, p.len end,
	watch = function(p) out:write(fmt.packet(p), "\n") end,
	json = function(p) out:write(json.packet(p), "\n") end,
	totable = function(p) local _ = p:totable() end,
	dkjson = function(p) out:write(json.packet_dkjson(p), "\n") end,
}
local names = { "empty", "fields", "watch", "totable", "json", "dkjson" }

local function once(fn)
	s:on_packet(fn)
	s:poll(0)
	s:test_run(frame, N)
	local t0 = common.now()
	local got = 0
	while got < N do
		local n = s:poll(0)
		if n == 0 then break end
		got = got + n
	end
	return got / (common.now() - t0), got
end

local res = {}
for _ = 1, ROUNDS do
	for _, name in ipairs(names) do
		local rate, got = once(outputs[name])
		assert(got == N, name .. ": got " .. got .. " of " .. N)
		res[name] = res[name] or {}
		table.insert(res[name], rate)
	end
end
for _, name in ipairs(names) do
	table.sort(res[name])
	print(string.format("%-8s %10.0f events/s  (%s)", name, res[name][(#res[name] + 1) // 2],
		fmt.rate(res[name][(#res[name] + 1) // 2], "lines/s")))
end
local st = s:stats()
print(string.format("dropped %d of %d", st.dropped, st.matched))
s:close()
