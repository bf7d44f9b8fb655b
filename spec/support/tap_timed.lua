-- SPDX-License-Identifier: GPL-2.0-only
-- spec/support/tap_timed.lua: busted's TAP output plus wall-clock times, as
-- TAP comments (a TAP reader and spec/run's counts ignore them):
--   # time 12.34 s  <file>: <full test name>   after each test's ok line: the
--                    time since the previous test ended (or its file began),
--                    so a file's setup and before_each count in its tests
--   # file 56.78 s  <file>                     when a file ends
-- spec/run uses it (`-o spec/support/tap_timed.lua`) and prints the slowest
-- files and tests of each suite (doc/HACKING.md, "Times").
local tap = require("busted.outputHandlers.TAP")
local system = require("system")

return function(options)
	local busted = require("busted")
	local handler = tap(options)
	local now = system.monotime
	local file_start, last, file_name

	local function file_of(element)
		local t = element and element.trace
		return file_name or (t and t.short_src) or "?"
	end

	busted.subscribe({ "file", "start" }, function(element)
		file_name = element.name
		file_start = now()
		last = file_start
		return nil, true
	end)
	busted.subscribe({ "file", "end" }, function(element)
		if file_start then
			io.write(string.format("# file %.2f s  %s\n", now() - file_start, element.name or file_of()))
			io.flush()
		end
		file_name, file_start = nil, nil
		return nil, true
	end)
	-- subscribed after TAP's own test-end handler, so the comment follows the ok line
	busted.subscribe({ "test", "end" }, function(element)
		local t = now()
		io.write(string.format("# time %.2f s  %s: %s\n", t - (last or t), file_of(element),
			handler.getFullName(element)))
		io.flush()
		last = t
		return nil, true
	end, { predicate = handler.cancelOnPending })
	return handler
end
