-- SPDX-License-Identifier: GPL-2.0-only
-- tshark's fields of several capture files from one tshark run: tshark
-- takes seconds to start in a TCG guest (about 8 s in 6.12-rt), so a spec
-- that reads two or three files pays that once.  The files are joined by
-- mergecap -a -I none (each file's frames on interfaces of their own, the
-- link types kept), and frame.interface_id tells them apart again.
-- Only for fields a frame holds by itself (addresses, ports, raw seq and
-- ack, flags, lengths): tshark's tcp.analysis.* (retransmission,
-- initial_rtt) follow a conversation across the merged files, and two
-- captures of the same connection would then flag each other's frames.
local net = require "support.net"

local M = {}

-- files: a list of paths, each holding one interface (what tcpdump -i and
-- tcpinspect write); fields: tshark field names; opts.filter: a display
-- filter (-Y) for every file; opts.wrap: a prefix for the command (e.g.
-- support.unpriv's SETPRIV .. "env HOME=/nonexistent ").  Returns a list,
-- per file in the order given, of its frames' lines (the fields joined by
-- tabs), in file order.
function M.fields(files, fields, opts)
	opts = opts or {}
	local merged, qs = net.tmpfile(".pcapng"), {}
	for i, f in ipairs(files) do qs[i] = net.q(f) end
	net.must(("mergecap -a -I none -w %s %s 2>&1"):format(net.q(merged), table.concat(qs, " ")))
	if opts.wrap then net.must("chmod 644 " .. net.q(merged)) end
	local args = { "-e frame.interface_id" }
	for _, f in ipairs(fields) do args[#args + 1] = "-e " .. f end
	local errf = net.tmpfile(".err")
	local p = assert(io.popen(("%stshark -r %s -n%s -T fields %s 2>%s"):format(opts.wrap or "", net.q(merged),
		opts.filter and " -Y " .. net.q(opts.filter) or "", table.concat(args, " "), net.q(errf))))
	local by = {}
	for i = 1, #files do by[i] = {} end
	for l in p:lines() do
		local id, rest = l:match("^(%d+)\t(.*)$")
		local t = assert(by[assert(tonumber(id), "tshark: " .. l) + 1], "tshark: interface " .. tostring(id))
		t[#t + 1] = rest
	end
	local ok = p:close()
	assert(ok, "tshark -r " .. merged .. ": " .. (net.read_file(errf) or ""))
	os.remove(merged)
	return by
end

-- the n-th (1-based) tab-separated value of a line
function M.field(line, n)
	local i = 0
	for v in (line .. "\t"):gmatch("([^\t]*)\t") do
		i = i + 1
		if i == n then return v end
	end
end

return M
