-- SPDX-License-Identifier: GPL-2.0-only
-- `tcpinspect record` (issue 24, item 3), in every mode that must work here:
-- --seconds 30 -w DIR --max-files 1.  Conversations to port P1, SIGUSR1:
-- one file, tcpinspect-TIME-0001.pcap (0600, its path on stdout), holding
-- exactly the segments tcpdump saw of P1 (tshark's fields, segment by
-- segment); conversations to P2, SIGUSR1 again: the second file holds the
-- segments of P1 and P2, and the first is gone (--max-files 1).  SIGINT
-- ends it with exit 0 and "2 files written".  Without -w: exit 2 naming
-- -w; a -w that is no directory: exit 1 naming it.
local net = require "support.net"
local cli = require "support.cli"
local tshark = require "support.tshark"

local FIELDS = { "ip.src", "tcp.srcport", "ip.dst", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw", "tcp.flags",
	"tcp.len", "ip.id" }

-- per file (a list of ports each), the sorted lines (FIELDS, tab-separated)
-- of its segments that involve host and one of its ports; one tshark for
-- all of them (spec/support/tshark.lua: three starts a mode were most of
-- this spec's time in a TCG guest)
local function tshark_files(host, files, ports)
	local all, pf = {}, {}
	for _, list in ipairs(ports) do for _, p in ipairs(list) do all[p] = true end end
	for port in pairs(all) do pf[#pf + 1] = "tcp.port == " .. port end
	local lines = tshark.fields(files, FIELDS, { filter = ("ip.addr == %s and (%s)"):format(host,
		table.concat(pf, " or ")) })
	local by = {}
	for i = 1, #files do
		by[i] = {}
		for _, l in ipairs(lines[i]) do
			local sport, dport = tonumber(tshark.field(l, 2)), tonumber(tshark.field(l, 4))
			for _, port in ipairs(ports[i]) do
				if sport == port or dport == port then
					by[i][#by[i] + 1] = l
					break
				end
			end
		end
		table.sort(by[i])
	end
	return by
end

local function exists(path)
	local f = io.open(path)
	if f then f:close() end
	return f ~= nil
end

describe("#kernel #cli tcpinspect record", function()
	it("exits 2 without -w, 1 when -w is no directory", function()
		local r = cli.run{ "record", "-r", net.ROOT .. "/spec/fixtures/connections.pcap" }
		assert.are.equal(2, r.code)
		assert.matches("argument '-w': record needs the directory", r.err, 1, true)
		r = cli.run{ "record", "-r", net.ROOT .. "/spec/fixtures/connections.pcap", "-w", "/nonexistent/dir" }
		assert.are.equal(1, r.code)
		assert.matches("argument '-w': ENOTDIR: /nonexistent/dir is not a directory", r.err, 1, true)
	end)

	for _, mode in ipairs(net.modes()) do
		it(("[%s] SIGUSR1 twice with --max-files 1: the newest window file, the segments tcpdump saw"):format(mode),
			function()
				local host = net.addr4()
				local P1, P2 = net.port(1), net.port(1)
				local dir = net.must("mktemp -d /tmp/tcpinspect-rec70-XXXXXXXX"):match("^(%S+)")
				finally(function() os.execute("rm -rf " .. net.q(dir)) end)
				local cap = net.tcpdump{ filter = "tcp and host " .. host }
				local p = cli.start{ "record", "--mode", mode, "-w", dir, "--seconds", "30", "--max-files", "1",
					"--host", host }
				finally(function() p:kill() end)
				p:ready()
				local s1, s2 = net.server(host, P1), net.server(host, P2)
				for i = 1, 5 do net.conversation(s1, host, P1, { data = "one" .. i }) end
				net.kill(p.pid, "USR1")
				local first = net.wait_until(function() return p:stdout():match("([^\n]+)\n") end, net.scale(10))
				assert(first, "no file after SIGUSR1: " .. p:stderr())
				assert.matches("^" .. dir:gsub("%p", "%%%0") .. "/tcpinspect%-%d%d%d%d%d%d%d%dT%d%d%d%d%d%dZ%-0001%.pcap$",
					first)
				assert.are.equal("600", net.must("stat -c %a " .. net.q(first)):match("%d+"))
				-- read after the run, with the rest (the next SIGUSR1 removes it)
				local copy1 = dir .. "/first.copy"
				net.must(("cp %s %s"):format(net.q(first), net.q(copy1)))
				for i = 1, 5 do net.conversation(s2, host, P2, { data = "two" .. i }) end
				net.kill(p.pid, "USR1")
				local second = net.wait_until(function()
					return p:stdout():match("[^\n]+\n([^\n]+)\n")
				end, net.scale(10))
				assert(second, "no second file after SIGUSR1: " .. p:stderr())
				assert.matches("%-0002%.pcap$", second)
				p:interrupt()
				local r = p:wait()
				s1:close()
				s2:close()
				cap:stop()
				assert.are.equal(0, r.code, r.err)
				assert.matches("2 files written", r.err, 1, true)
				-- --max-files 1: the first is gone, the second stays
				assert.is_false(exists(first))
				assert.is_true(exists(second))
				local t = tshark_files(host, { copy1, second, cap.file, cap.file }, { { P1, P2 }, { P1, P2 }, { P1 },
					{ P1, P2 } })
				local got1, got2, want1, want2 = t[1], t[2], t[3], t[4]
				net.say("[%s] file 1: %d segments (tcpdump %d), file 2: %d (tcpdump %d)", mode, #got1, #want1,
					#got2, #want2)
				assert(#want1 >= 5 * 9, "tcpdump saw " .. #want1 .. " segments of P1")
				assert.are.same(want1, got1)
				assert.are.same(want2, got2)
			end)
	end
end)
