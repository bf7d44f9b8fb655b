-- SPDX-License-Identifier: GPL-2.0-only
-- json_export.lua: every incoming segment as a JSON object, one per line
-- (every documented packet field), for jq, a log shipper or a database.
--
--   tcpinspect examples/json_export.lua [--duration N] [--dport 443] [--output FILE]
--
-- Output (stdout, or FILE):
--   {"ts":123,"time":1700000000.1234,"family":4,"saddr":"127.0.0.1",...,"cpu":0}
-- and on stderr at exit:
--   SUMMARY json-export lines=N
local o = getopt { output = "" }
local out = o.output ~= "" and assert(io.open(o.output, "w")) or io.stdout
local n = 0

-- the events only: no aggregate map
open { aggregates = false }

on_packet(function(p)
	out:write(json.packet(p), "\n")
	n = n + 1
end)

on_exit(function()
	out:flush()
	if out ~= io.stdout then out:close() end
	io.stderr:write(string.format("SUMMARY json-export lines=%d\n", n))
end)
