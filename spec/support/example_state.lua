-- SPDX-License-Identifier: GPL-2.0-only
-- spec/support/example_state.lua: run an example script, then print its
-- session's maps and counters, so a spec can compare a live run with a
-- replay of the same traffic through the CLI, as a user runs them.
--
--   TCPINSPECT_SPEC_EXAMPLE=examples/port_bytes.lua \
--       tcpinspect [-r FILE | --mode M ...] spec/support/example_state.lua [example's args]
--
-- The example runs in this script's prelude environment with this script's
-- arguments; its own on_exit functions run first (they were registered
-- first), then this one prints, after the example's output:
--   STATE map=<name> <key fields> <value fields>   one line per entry, sorted,
--                                                   for each map the example opened
--   STATE stats <counter>=<n> ...                   every counter
-- Fields are "name=value" in name order.  The flows map's first_ts/last_ts
-- are left out: a live session's are CLOCK_MONOTONIC, a replay's are the
-- capture's (both are checked elsewhere).
-- luacheck: read globals on_exit session
local path = assert(os.getenv("TCPINSPECT_SPEC_EXAMPLE"), "TCPINSPECT_SPEC_EXAMPLE is not set")
local chunk = assert(loadfile(path, "t", _ENV))
chunk(...)

local SKIP = { first_ts = true, last_ts = true }

local function fields(t)
	if type(t) ~= "table" then return tostring(t) end
	local names = {}
	for k in pairs(t) do if not SKIP[k] then names[#names + 1] = k end end
	table.sort(names)
	for i, k in ipairs(names) do names[i] = k .. "=" .. tostring(t[k]) end
	return table.concat(names, " ")
end

on_exit(function()
	local s = session
	-- the maps the example opened (its aggregates option); the others raise
	for _, name in ipairs(s.aggregates) do
		local lines = {}
		for k, v in s:map(name):pairs() do
			lines[#lines + 1] = ("STATE map=%s %s %s"):format(name, fields(k), fields(v))
		end
		table.sort(lines)
		for _, l in ipairs(lines) do print(l) end
	end
	local st = s:stats()
	local names = {}
	for k in pairs(st) do names[#names + 1] = k end
	table.sort(names)
	for i, k in ipairs(names) do names[i] = k .. "=" .. st[k] end
	print("STATE stats " .. table.concat(names, " "))
end)
