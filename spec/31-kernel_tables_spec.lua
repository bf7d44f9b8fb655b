-- SPDX-License-Identifier: GPL-2.0-only
-- The in-kernel aggregate tables under more keys than they hold (issue
-- "Under a flood"): flows and sources are fixed-size per-CPU tables
-- (bpf/ti_table.h) where a new key replaces the entry with the fewest
-- packets, counted in stats.evicted_flows / evicted_sources; the heavy
-- keys stay exact while one-segment keys churn.  Frames go through the
-- session's program with test_run (tc and cgroup), pinned to one CPU.
local net = require "support.net"

local CHILD = [[
local tcpinspect = require "tcpinspect"
local mode = ...
local function frame(src, sport, dport, payload)
	payload = payload or ""
	local ip = string.pack(">BBI2I2I2BBI2c4c4", 0x45, 0, 40 + #payload, 1, 0, 64, 6, 0,
		string.char(127, 0, src >> 8 & 255, src & 255), "\127\0\0\1")
	local tcp = string.pack(">I2I2I4I4BBI2I2I2", sport, dport, 1, 0, 0x50, 0x02, 65535, 0, 0)
	return string.rep("\0", 12) .. "\8\0" .. ip .. tcp .. payload
end
local s = assert(tcpinspect.open{ mode = mode, dev = mode == "tc" and "lo" or nil, events = false,
	max_flows = 16, filter = { dport = 9 } })
-- a heavy flow (50 segments of 10 bytes) and a heavy source, then 200
-- one-segment flows from 200 other sources
s:test_run(frame(1, 1000, 9, "0123456789"), 50)
for i = 1, 200 do s:test_run(frame(1000 + i, 2000 + i, 9)) end
local st = s:stats()
local heavy = s:map("flows"):lookup{ saddr = "127.0.0.1", daddr = "127.0.0.1", sport = 1000, dport = 9 }
local hsrc = s:map("sources"):lookup("127.0.0.1")
local nflows, pk = 0, 0
for _, v in s:map("flows"):pairs() do nflows = nflows + 1 pk = pk + v.packets end
local nsrc = s:map("sources"):count()
local port = s:map("ports"):lookup(9)
print(("MATCHED %d EVICTED_FLOWS %d EVICTED_SOURCES %d HEAVY %d/%d SRC %d FLOWS %d PKTS %d SOURCES %d PORT %d/%d")
	:format(st.matched, st.evicted_flows, st.evicted_sources, heavy and heavy.packets or -1,
		heavy and heavy.bytes or -1, hsrc and hsrc.packets or -1, nflows, pk, nsrc,
		port.packets, port.bytes))
-- pairs under churn: 20 new flows arrive between the steps of the loop (each
-- evicting an entry); a loop walks the map as it was when it began: every
-- key once, at most the table's 16 entries (with an LRU map and
-- get_next_key, an evicted previous key restarted the walk: duplicates)
local keys, dup, steps = {}, 0, 0
for k in s:map("flows"):pairs() do
	local id = k.saddr .. ":" .. k.sport
	if keys[id] then dup = dup + 1 end
	keys[id] = true
	steps = steps + 1
	for j = 1, 20 do s:test_run(frame(3000 + steps * 20 + j, 30000 + steps * 20 + j, 9)) end
end
print(("CHURN %d DUP %d"):format(steps, dup))
-- clear empties them; ports is a 65536-entry array cleared in one call
assert(s:map("flows"):clear() and s:map("sources"):clear() and s:map("ports"):clear())
print(("CLEARED %d %d %s"):format(s:map("flows"):count(), s:map("sources"):count(),
	tostring(s:map("ports"):lookup(9))))
s:close()
]]

describe("aggregate tables #kernel", function()
	for _, mode in ipairs(net.modes()) do
		if mode == "tc" or mode == "cgroup" then
			it(mode .. ": beyond capacity, evictions are counted and the heavy keys stay exact", function()
				local script = net.tmpfile(".lua")
				net.write_file(script, CHILD)
				-- one CPU: the table of one CPU, so the counts below are exact
				local _, out = net.sh("taskset -c 0 " .. net.lua_cmd(script, mode) .. " 2>&1")
				net.say("[%s] tables: %s", mode, (out:gsub("\n", " ")))
				local m = {}
				for k, v in out:gmatch("(%u[%u_]*) (%-?%d+)") do m[k] = tonumber(v) end
				assert.are.equal(250, m.MATCHED, out)
				-- 16 entries (4 buckets x 4 ways): every flow past a full bucket evicts one
				assert.are.equal(201 - m.FLOWS, m.EVICTED_FLOWS, out)
				assert.are.equal(201 - m.SOURCES, m.EVICTED_SOURCES, out)
				assert.is_true(m.FLOWS <= 16 and m.SOURCES <= 16, out)
				assert.is_true(m.EVICTED_FLOWS >= 185, out)
				assert.matches("HEAVY 50/500 SRC 50 ", out) -- never the entry with the fewest packets
				assert.are.equal(50 + (m.FLOWS - 1), m.PKTS, out) -- the rest hold one segment each
				assert.matches("PORT 250/500", out) -- ports is an array: exact for every port
				assert.matches("CHURN 16 DUP 0", out)
				assert.matches("CLEARED 0 0 nil", out)
			end)
		end
	end
end)
