-- SPDX-License-Identifier: GPL-2.0-only
-- spec/bench/watch_line.lua: CPU per line of `tcpinspect watch`'s callback
-- on a replay (no root): spec/fixtures/filter_corpus.pcap replayed REPS
-- times (3226 segments each, half IPv6) with aggregates = false, lines to
-- /dev/null, against a 1-field callback ({"len"}, no output) and a view
-- with format.packet.  Run from a tree's top directory; a tree without the
-- packet field `line` (before issue 23's change) runs its own watch
-- callback (the 12 fields and format.segment), so two trees compare alike:
--
--   lua5.4 spec/bench/watch_line.lua [REPS]     (default 40: 129040 lines)
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local tcpinspect = require "tcpinspect"
local fmt = require "tcpinspect.format"
local core = require "tcpinspect.core"
local out = assert(io.open("/dev/null", "w"))
local REPS = tonumber(arg[1]) or 40
local function run(setup, counted)
	local n, t0 = 0, os.clock()
	for _ = 1, REPS do
		local s <close> = assert(tcpinspect.replay { file = "spec/fixtures/filter_corpus.pcap", aggregates = false })
		setup(s, function() n = n + 1 end)
		repeat
			local got = s:poll(-1)
			if counted then n = n + got end -- no callback to count them
		until got == 0
	end
	return (os.clock() - t0) / n * 1e6, n
end
local new = core.segment_line ~= nil
local res = {}
res.len = run(function(s, inc) s:on_packet(function() inc() end, { "len" }) end)
res.watch = run(function(s, inc)
	if new then
		s:on_packet(function(line) inc(); out:write(line, "\n") end, { "line" })
	else
		local seg = fmt.segment
		s:on_packet(function(...) inc(); out:write(seg(...), "\n") end, fmt.SEGMENT_FIELDS)
	end
end)
-- on_packet(file): the lines written from C, no Lua call (what watch does
-- since on_packet took a file); a tree without it runs its callback again
local file_mode = pcall(function()
	local s <close> = assert(tcpinspect.replay { file = "spec/fixtures/connections.pcap" })
	s:on_packet(out)
end)
res.file = file_mode and run(function(s) s:on_packet(out) end, true) or res.watch
local nlines
res.packet, nlines = run(function(s, inc) s:on_packet(function(p) inc(); out:write(fmt.packet(p), "\n") end) end)
print(string.format("%s lines=%d  us/line: len-callback %.3f  line-callback %.3f  on_packet(file) %.3f%s  " ..
	"view+format.packet %.3f  (file-len %.3f)", new and "NEW" or "OLD", nlines, res.len, res.watch, res.file,
	file_mode and "" or " (none: the callback)", res.packet, res.file - res.len))
