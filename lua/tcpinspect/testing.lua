-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.testing: run a script on a capture in this process, for tests.
--
--     local testing = require "tcpinspect.testing"
--     local r = testing.run { script = "port_scan.lua", file = "port_scan.pcap" }
--     assert.are.equal("ALERT port-scan src=127.0.0.1 ports=40 window=2s\n" ..
--                      "SUMMARY port-scan alerts=1\n", r.output)
--     assert.are.equal(40, r.stats.seen)
--
-- The script runs as `tcpinspect -r FILE SCRIPT ARGS...` runs it (the same
-- prelude and runtime, tcpinspect.script), on the replay of the capture,
-- with no child process, no PATH and no root.  What it prints (print,
-- printf, io.write) is captured, not written; after its on_exit functions,
-- every map and the counters are read before the session closes.
-- @module tcpinspect.testing
local tcpinspect = require "tcpinspect"
local script = require "tcpinspect.script"
local core = require "tcpinspect.core"

local M = {}

local KNOWN = { script = true, code = true, file = true, args = true, options = true, cli = true }

-- Order map entries by their key fields (in name order; numbers as numbers).
local function key_before(a, b)
	local ka, kb = a.key, b.key
	if type(ka) ~= "table" or type(kb) ~= "table" then return tostring(ka) < tostring(kb) end
	local names = {}
	for k in pairs(ka) do names[#names + 1] = k end
	table.sort(names)
	for _, k in ipairs(names) do
		local x, y = ka[k], kb[k]
		if x ~= y then
			if type(x) == "number" and type(y) == "number" then return x < y end
			return tostring(x) < tostring(y)
		end
	end
	return false
end

local function copy(t)
	if type(t) ~= "table" then return t end
	local c = {}
	for k, v in pairs(t) do c[k] = v end
	return c
end

-- Every map the session opened (open's aggregates): name -> list of
-- { key =, value = }, sorted by key.
local function read_maps(s)
	local maps = {}
	for _, name in ipairs(s.aggregates or core.map_names) do
		local list = {}
		for k, v in s:map(name):pairs() do list[#list + 1] = { key = copy(k), value = copy(v) } end
		table.sort(list, key_before)
		maps[name] = list
	end
	return maps
end

-- A script's message, from the runtime's exits (tcpinspect.script.fail)
local function message(err)
	if script.is_exit(err) then
		return ("tcpinspect: %s (exit %d)"):format(tostring(err.msg or "exit"), err.code)
	end
	return err
end

--- Run a script on a capture and return what it printed, its maps and counters.
-- @tparam table t
--   script: the script's file (or code: its text, as `-e CODE`);
--   file: the capture (pcap or pcapng, as `-r FILE`);
--   args: the script's arguments (a list of strings, as after the script's name);
--   options: open() options, as the command line's (say, `filter`), merged
--     over the script's own `open{}` as the command line's are;
--   cli: what the script reads as `cli` (say, `interval`, `duration`)
-- @treturn table `output` (the text printed), `maps` (map name -> list of
--   `{key=, value=}` sorted by key; empty when no session opened), `stats`
--   (the counters; nil without a session), `why` (how the loop ended:
--   "end", "duration", "stopped"; nil without a loop), `elapsed` (capture
--   seconds), `code` (the exit status: the integer the script returned, else 0)
-- @raise a mistake in `t`, an error of the script (with its traceback), or
--   a replay that cannot open ("tcpinspect: ...")
function M.run(t)
	if type(t) ~= "table" then error("tcpinspect: testing.run: expected a table, got " .. type(t), 2) end
	for k in pairs(t) do
		if not KNOWN[k] then
			error(("tcpinspect: testing.run: unknown key '%s' (known: args, cli, code, file, options, script)")
				:format(tostring(k)), 2)
		end
	end
	if (t.script == nil) == (t.code == nil) then
		error("tcpinspect: testing.run: give one of 'script' (a file) or 'code'", 2)
	end
	if type(t.file) ~= "string" then
		error("tcpinspect: testing.run: 'file': expected a capture's path, got " .. type(t.file), 2)
	end
	local options = script.copy(t.options or {})
	options.file = t.file

	local result = { maps = {} }
	local out = assert(io.tmpfile())
	local rt = script.new {
		options = options,
		cli = t.cli or {},
		args = t.args or {},
		name = t.script or "-e",
		open = function(o)
			local s, msg = tcpinspect.replay(o)
			if not s then error("tcpinspect: " .. tostring(msg), 0) end
			return s
		end,
		drive = function(s, run_opts)
			local n, why = s:run(run_opts)
			if not n then error("tcpinspect: " .. tostring(why), 0) end
			return why
		end,
		-- before the session closes, after the script's on_exit functions
		summary = function(s, elapsed, why)
			result.maps, result.stats, result.elapsed, result.why = read_maps(s), s:stats(), elapsed, why
		end,
	}
	-- the script's output: print and io's stdout here, printf and io.write
	-- through io.output()
	rawset(rt.env, "print", function(...)
		local n = select("#", ...)
		for i = 1, n do
			out:write(tostring((select(i, ...))), i < n and "\t" or "")
		end
		out:write("\n")
	end)
	rawset(rt.env, "io", setmetatable({ stdout = out }, { __index = io }))
	local saved = io.output()
	io.output(out)
	local ok, code = pcall(function()
		return rt:execute(rt:load(t.code and { code = t.code } or { file = t.script }))
	end)
	io.output(saved)
	out:seek("set")
	result.output = out:read("a")
	out:close()
	if not ok then error(message(code), 0) end
	result.code = code
	return result
end

return M
