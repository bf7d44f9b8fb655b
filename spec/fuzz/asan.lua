-- SPDX-License-Identifier: GPL-2.0-only
-- spec/fuzz/asan.lua: lifetime and error-path scenarios for the ASan/LSan
-- build of the core (spec/fuzz/run asan).  tc mode on lo, root.  Events come
-- from s:test_run() so that every count is exact.  Any failed check raises;
-- ASan/LSan/UBSan reports make the run fail too (see spec/fuzz/run).
package.path = "lua/?.lua;lua/?/init.lua;spec/bench/?.lua;" .. package.path
package.cpath = (os.getenv("TI_CPATH") or "build/asan/?.so;") .. package.cpath

local ti = require "tcpinspect"
local C = require "common"

local function ti_progs()
	local n = 0
	local f = assert(io.popen("bpftool prog show 2>/dev/null"))
	for line in f:lines() do
		if line:match("name ti_") then n = n + 1 end
	end
	f:close()
	return n
end

local BASE = ti_progs()
local passed, failed = 0, 0

local function open()
	return assert(ti.open { mode = "tc", dev = "lo", ring_size = 1 << 16, max_flows = 64 })
end

local function check(name, fn)
	local ok, err = xpcall(fn, debug.traceback)
	collectgarbage()
	collectgarbage()
	local left = ti_progs() - BASE
	if ok and left ~= 0 then
		ok, err = false, ("%d ti_ BPF programs left behind"):format(left)
	end
	if ok then
		passed = passed + 1
		print("ok     " .. name)
	else
		failed = failed + 1
		print("FAILED " .. name .. ": " .. tostring(err))
	end
end

local function frame(sport) return C.frame { sport = sport } end

check("double close", function()
	local s = open()
	s:close()
	s:close()
	assert(s.closed == true)
	assert(tostring(s) == "tcpinspect.session (closed)")
	local ok, err = pcall(s.poll, s, 0)
	assert(not ok and err:match("closed session"), err)
	ok, err = pcall(s.stats, s)
	assert(not ok and err:match("closed session"), err)
end)

check("close through <close> while an error unwinds", function()
	local inner
	local ok, err = pcall(function()
		local s <close> = open()
		inner = s
		s:on_packet(function() end)
		s:test_run(frame(1), 3)
		error("boom")
	end)
	assert(not ok and err:match("boom"), err)
	assert(inner.closed == true, "<close> did not close the session")
	assert(ti_progs() == BASE, "programs left after <close>")
	inner:close()
end)

check("<close> when the callback error unwinds out of poll", function()
	local ok, err = pcall(function()
		local s <close> = open()
		s:on_packet(function() error("from callback") end)
		s:test_run(frame(1), 2)
		s:poll(0)
	end)
	assert(not ok and err:match("from callback"), err)
end)

check("garbage collection without close", function()
	for _ = 1, 3 do
		local s = open()
		s:on_packet(function(p) return p.sport end)
		s:test_run(frame(2), 5)
		s:poll(0)
	end
	collectgarbage()
	collectgarbage()
	assert(ti_progs() == BASE, "programs left after GC")
end)

check("map and packet copy outlive a collected session", function()
	local m, copy
	do
		local s = open()
		s:on_packet(function(p) copy = p:copy() end)
		s:test_run(frame(3), 1)
		s:poll(0)
		m = s:map("flows")
		s:close()
	end
	collectgarbage()
	assert(copy.sport == 3 and copy:totable().sport == 3)
	local ok, err = pcall(m.count, m)
	assert(not ok and err:match("closed session"), err)
end)

check("packet view kept past its callback", function()
	local s = open()
	local kept
	s:on_packet(function(p) kept = p end)
	s:test_run(frame(4), 1)
	assert(s:poll(0) == 1)
	for _, f in ipairs(ti.packet_fields()) do
		local ok, err = pcall(function() return kept[f] end)
		assert(not ok and err:match("outside its callback"), f .. ": " .. tostring(err))
	end
	for _, m in ipairs { "copy", "totable" } do
		local ok, err = pcall(function() return kept[m](kept) end)
		assert(not ok and err:match("outside its callback"), m .. ": " .. tostring(err))
	end
	assert(tostring(kept) == "tcpinspect.packet (expired view)")
	s:close()
	s = nil -- luacheck: ignore 311 (drop the last reference before collecting)
	collectgarbage()
	collectgarbage()
	-- the session is gone; the view must still be a safe object
	local ok = pcall(function() return kept.sport end)
	assert(not ok)
	assert(tostring(kept) == "tcpinspect.packet (expired view)")
end)

check("callback raising on event 3", function()
	local s <close> = open()
	local got = {}
	s:on_packet(function(p)
		got[#got + 1] = p.sport
		if #got == 3 then error("fail on three") end
	end)
	for i = 1, 5 do s:test_run(frame(i), 1) end
	local ok, err = pcall(s.poll, s, 0)
	assert(not ok and err:match("fail on three") and err:match("traceback"), err)
	assert(#got == 3)
	local n = s:poll(0)
	assert(n == 2, "second poll delivered " .. tostring(n))
	assert(table.concat(got, ",") == "1,2,3,4,5", table.concat(got, ","))
	local st = s:stats()
	assert(st.delivered == 5 and st.dropped == 0)
	-- a non-string error value
	s:on_packet(function() error({}) end)
	s:test_run(frame(6), 1)
	ok = pcall(s.poll, s, 0)
	assert(not ok)
end)

check("callback that yields", function()
	local s <close> = open()
	s:on_packet(function() coroutine.yield(1) end)
	s:test_run(frame(7), 2)
	local co = coroutine.create(function() return s:poll(0) end)
	local ok, err = coroutine.resume(co)
	assert(not ok and tostring(err):match("yield"), tostring(err))
	-- outside any coroutine
	s:test_run(frame(8), 1)
	ok, err = pcall(s.poll, s, 0)
	assert(not ok and tostring(err):match("yield"), tostring(err))
	s:on_packet(nil)
	s:poll(0)
end)

check("close and poll from inside the callback", function()
	local s <close> = open()
	local e1, e2
	s:on_packet(function()
		local ok
		ok, e1 = pcall(s.close, s)
		assert(not ok)
		ok, e2 = pcall(s.poll, s, 0)
		assert(not ok)
	end)
	s:test_run(frame(9), 1)
	assert(s:poll(0) == 1)
	assert(e1:match("inside its own callback") and e2:match("inside a callback"), e1 .. " / " .. e2)
	assert(not s.closed)
end)

check("callback replaced and session closed between polls", function()
	local s = open()
	s:on_packet(function() s:on_packet(function() end) end)
	s:test_run(frame(10), 3)
	assert(s:poll(0) == 3)
	s:test_run(frame(11), 3)
	s:close()
	local ok = pcall(s.poll, s, 0)
	assert(not ok)
end)

check("on_packet(fn, fields) from inside a callback: the next record, the old one collected", function()
	local s = open()
	local got = {}
	local fn2 = function(sport, len)
		got[#got + 1] = math.type(sport) .. "/" .. math.type(len)
		if #got == 3 then s:on_packet(nil) end
	end
	s:on_packet(function(p)
		got[#got + 1] = "view"
		s:on_packet(fn2, { "sport", "len" })
		collectgarbage() -- this function is referenced by the running poll only
		got[#got] = got[#got] .. ":" .. p.sport
	end)
	s:test_run(frame(13), 5)
	assert(s:poll(0) == 5)
	collectgarbage()
	assert(table.concat(got, " ") == "view:13 integer/integer integer/integer", table.concat(got, " "))
end)

check("many sessions opened and collected", function()
	for _ = 1, 10 do
		local s = open()
		s:set_filter { dport = 9, saddr = "127.0.0.0/8" }
		s:test_run(frame(12), 4)
		s:map("ports"):count()
		for _ in s:map("flows"):pairs() do end
	end
end)

print(("%d passed, %d failed"):format(passed, failed))
os.exit(failed == 0 and 0 or 1, true)
