-- SPDX-License-Identifier: GPL-2.0-only
-- spec/fuzz/allocfail.lua: the script spec/fuzz/allocfail runs under a
-- failing allocator: open -> events -> poll -> close, tc mode on lo.
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("TI_CPATH") or "build/asan/?.so;") .. package.cpath
local ti = require "tcpinspect"
local s = assert(ti.open { mode = "tc", dev = "lo", ring_size = 1 << 16, max_flows = 64,
	filter = { dport = "9,22", saddr = "127.0.0.0/8" } })
local sum = 0
s:on_packet(function(p)
	sum = sum + p.sport + p.len
	local c = p:copy()
	local t = p:totable()
	sum = sum + c.dport + t.flags
end)
local ip = string.pack(">BBI2I2I2BBI2c4c4", 0x45, 0, 40, 1, 0, 64, 6, 0, "\127\0\0\1", "\127\0\0\1")
local tcp = string.pack(">I2I2I4I4BBI2I2I2", 40000, 9, 1, 0, 0x50, 0x02, 65535, 0, 0)
s:test_run(string.rep("\0", 12) .. "\8\0" .. ip .. tcp, 4)
assert(s:poll(0) == 4)
local st = s:stats()
assert(st.delivered == 4)
s:map("flows"):count()
s:close()
