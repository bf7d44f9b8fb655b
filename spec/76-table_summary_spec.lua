-- SPDX-License-Identifier: GPL-2.0-only
-- The tables' bucket summaries (bpf/ti_table.h): a segment picks its entry
-- from the summary (hash tags and packets per way), so the summary must
-- mirror the entries after user space deletes or clears them, else a new
-- key would take a freed way as an eviction, or pass over it.  Replayed
-- (the BPF program's own code, bpf/ti_rules.h) with max_flows = 4: one
-- bucket of 4 ways, every key in it, so placement and eviction are known:
--   t=1  A x3, B, C x2, D (flows; one source: 7 SYN-less segments)
--   delete B               -> a free way
--   t=2  E                 -> takes B's way: no eviction
--   t=3  F                 -> evicts the first of the fewest (E, 1 packet)
--   t=3  A                 -> a hit: A has 4
--   clear flows, sources   -> every way free
--   t=4  G                 -> no eviction
-- Without the summary's update in delete (kernel_maps.c, sum_free) E is
-- counted as an eviction; without it in clear, G is.
local pcapfile = require "support.pcapfile"
local ti = require "tcpinspect"

local function seg(sport, src)
	local tcp = string.pack(">I2I2I4I4BBI2I2I2", sport, 80, 1, 1, 5 << 4, 0x10, 65535, 0, 0)
	return string.pack(">BBI2I2I2BBI2c4c4", 0x45, 0, 20 + #tcp, 1, 0, 64, 6, 0, src, "\10\0\0\2") .. tcp
end

local S1, S2 = "\10\0\0\1", "\10\0\0\3"
local A, B, C, D, E, F, G = 1001, 1002, 1003, 1004, 1005, 1006, 1007
local frames = {}
for _, f in ipairs {
	{ 1, A }, { 1, A }, { 1, A }, { 1, B }, { 1, C }, { 1, C }, { 1, D },
	{ 2, E, S2 }, { 3, F }, { 3, A }, { 4, G },
} do
	frames[#frames + 1] = { sec = f[1], data = seg(f[2], f[3] or S1) }
end

local function key(sport, src)
	return { family = 4, saddr = src or "10.0.0.1", daddr = "10.0.0.2", sport = sport, dport = 80 }
end

local function flows(s)
	local got = {}
	for k, v in s:map("flows"):pairs() do
		got[k.sport] = v.packets
	end
	return got
end

describe("table summaries mirror the entries after delete and clear (replay, max_flows = 4)", function()
	local path = os.tmpname()
	setup(function() pcapfile.write(path, pcapfile.LINKTYPE_RAW, frames) end)
	teardown(function() os.remove(path) end)

	it("a deleted entry is free for the next key, a cleared table wholly", function()
		local s <close> = assert(ti.replay { file = path, max_flows = 4, events = false })
		s:poll(500) -- to t = 1.5 s (the clock starts at the first frame): the frames at 1 s
		assert.are.same({ [A] = 3, [B] = 1, [C] = 2, [D] = 1 }, flows(s))
		assert.are.equal(0, s:stats().evicted_flows)
		assert.is_true(s:map("flows"):delete(key(B)))
		assert.is_false(s:map("flows"):delete(key(B)))

		s:poll(1000) -- to t = 2.5: E takes B's free entry
		assert.are.same({ [A] = 3, [C] = 2, [D] = 1, [E] = 1 }, flows(s))
		assert.are.equal(0, s:stats().evicted_flows)
		assert.are.same({ S1 = 7, S2 = 1 }, {
			S1 = s:map("sources"):lookup { family = 4, saddr = "10.0.0.1" }.packets,
			S2 = s:map("sources"):lookup { family = 4, saddr = "10.0.0.3" }.packets,
		})

		s:poll(1000) -- to t = 3.5: F evicts E (the first way with the fewest packets), A hits
		assert.are.same({ [A] = 4, [C] = 2, [D] = 1, [F] = 1 }, flows(s))
		assert.are.equal(1, s:stats().evicted_flows)
		assert.is_nil(s:map("flows"):lookup(key(E, "10.0.0.3")))
		assert.are.equal(4, s:map("flows"):lookup(key(A)).packets)

		assert.is_true(s:map("flows"):clear())
		assert.is_true(s:map("sources"):clear())
		s:poll(-1) -- t = 4: G into an empty table
		assert.are.same({ [G] = 1 }, flows(s))
		assert.are.equal(1, s:stats().evicted_flows)
		assert.are.equal(0, s:stats().evicted_sources)
		assert.are.equal(1, s:map("sources"):lookup { family = 4, saddr = "10.0.0.1" }.packets)
		assert.are.equal(11, s:stats().matched)
	end)
end)
