-- SPDX-License-Identifier: GPL-2.0-only
-- payload_hist.lua: the distribution of TCP payload sizes, from the
-- kernel's log2 "len_hist" map (no per-packet events), printed like
-- bpftrace's hist().
--
--   tcpinspect examples/payload_hist.lua [--duration N] [--port 9000] [--every]
--
-- Output at exit (and every interval with --every):
--   @payload_bytes:
--   [0]                   12 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
--   [64, 128)              3 |@@@@@@@@@@@@@                                       |
--   TOTAL segments=15
local o = getopt { every = false }

open { events = false, aggregates = { "len_hist" } }

local function report()
	local h = hist.from_map(map("len_hist"))
	io.write(h:render("payload_bytes"))
	printf("TOTAL segments=%d", h:count())
end

if o.every then every(cli.interval or 1, report) end
on_exit(report)
