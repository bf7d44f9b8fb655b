-- SPDX-License-Identifier: GPL-2.0-only
-- The `tcpinspect` command (build/bin/tcpinspect), run as a process.
--
-- Bad arguments need no kernel (open() checks options before loading
-- anything).  The rest is tagged #kernel and runs against real loopback
-- traffic to a fresh 127.X.Y.Z address (see support.net: other tests on a
-- shared machine use 127.0.0.1), filtered to that address in the kernel.
local net = require "support.net"
local cli = require "support.cli"
local dkjson = require "dkjson"
local fmt = require "tcpinspect.format"
local tcpinspect = require "tcpinspect"
local OPTIONAL = require("tcpinspect.json").OPTIONAL

describe("cli arguments", function()
	local function bad(args, pattern)
		local r = cli.run(args)
		assert.are.equal(2, r.code, "exit status of " .. table.concat(args, " ") .. ":\n" .. r.err)
		assert.matches(pattern, r.err)
		assert.matches("Usage: tcpinspect", r.err)
		return r
	end
	it("exits 2 naming the bad argument", function()
		bad({ "watch", "--dport", "99999" }, "argument '%-%-dport': '99999': ports are 0%-65535")
		bad({ "watch", "--mode", "xdp" }, "'%-%-mode' must be one of 'auto', 'fentry', 'kprobe', 'tc', 'cgroup'")
		bad({ "watch", "--bogus" }, "unknown option '%-%-bogus'")
		bad({ "top", "--saddr", "10.0.0.0/33" }, "argument '%-%-saddr': '10.0.0.0/33' is not an IPv4/IPv6 address")
		bad({ "stats", "--flags", "syn,nope" }, "argument '%-%-flags': unknown TCP flag 'nope'")
		bad({ "watch", "--duration", "soon" }, "argument '%-%-duration': expected seconds > 0, got 'soon'")
		bad({ "watch", "--len", "9-2" }, "argument '%-%-len': min 9 is greater than max 2")
		bad({ "watch", "--dev", "nosuch0" }, "argument '%-%-dev': no interface named 'nosuch0'")
		bad({ "watch", "-c", "0" }, "argument '%-%-count': expected an integer >= 1")
		bad({}, "give a command")
		bad({ "-e", "print(1)", "--port", "1-2-3" }, "argument '%-%-port'")
	end)
	it("prints help and exits 0", function()
		local r = cli.run { "--help" }
		assert.are.equal(0, r.code)
		assert.matches("tcpinspect watch", r.out)
		r = cli.run { "top", "-h" }
		assert.are.equal(0, r.code)
		assert.matches("%-%-sort", r.out)
	end)
	it("exits 1 when a script raises, with its message", function()
		local r = cli.run { "-e", "error('boom')" }
		assert.are.equal(1, r.code)
		assert.matches("boom", r.err)
		-- a script that cannot be read is a bad argument (doc/cli.md: exit 2)
		r = cli.run { "/nonexistent/x.lua" }
		assert.are.equal(2, r.code)
		assert.matches("\ntcpinspect: error: cannot open script /nonexistent/x.lua: No such file or directory\n$", r.err)
	end)
	it("runs a script that needs no session, with its arguments", function()
		local f = net.tmpfile(".lua")
		net.write_file(f, "local a, b = ... print('ARGS', a, b, #arg, arg[0]) return 3\n")
		local r = cli.run { f, "one", "--two" }
		assert.are.equal(3, r.code)
		assert.are.equal(("ARGS\tone\t--two\t2\t%s\n"):format(f), r.out)
	end)
end)

-- A server on a fresh loopback address, and a second fresh address for the
-- client to bind (else the kernel picks 127.0.0.1 as its source).
local function loop_server()
	local addr, port = net.addr4(), net.port()
	local srv = net.server(addr, port)
	return addr, port, srv, net.addr4()
end

-- The loopback segments of one conversation, as tcpdump sees them on lo
-- ("sport>dport flags len"), in order.
local function tcpdump_seq(pkts)
	local t = {}
	for _, p in ipairs(pkts) do t[#t + 1] = ("%d>%d %s %d"):format(p.sport, p.dport, p.flagstr, p.len) end
	return t
end

describe("command #kernel #cli", function()
	it("watch: lines parse back to the segments sent, as tcpdump saw them", function()
		local addr, port, srv, caddr = loop_server()
		local cap = net.tcpdump { iface = "lo", filter = ("host %s and tcp port %d"):format(addr, port) }
		local p = cli.start { "watch", "--host", addr, "--port", tostring(port), "--duration", "20" }
		local ok, err = pcall(function()
			p:ready()
			local info = net.conversation(srv, addr, port, { data = "hello", bind = caddr })
			local pkts = cap:stop()
			assert.is_true(#pkts >= 8)
			net.wait_until(function() return #cli.lines(p:stdout()) >= #pkts end, 5)
			p:interrupt()
			local r = p:wait()
			assert.are.equal(0, r.code)
			local got = {}
			for _, line in ipairs(cli.lines(r.out)) do
				local t = fmt.parse_packet(line)
				assert.is_table(t, "unparsable line: " .. line)
				assert.are.same({ addr, caddr }, t.sport == port and { t.saddr, t.daddr } or { t.daddr, t.saddr })
				assert.are.equal(4, t.family)
				got[#got + 1] = ("%d>%d %s %d"):format(t.sport, t.dport, t.flagstr, t.len)
			end
			assert.are.same(tcpdump_seq(pkts), got)
			-- the handshake and the data, from the client's port
			assert.are.equal(("%d>%d S 0"):format(info.sport, port), got[1])
			assert.are.equal(("%d>%d S. 0"):format(port, info.sport), got[2])
			assert.are.equal(("%d>%d . 0"):format(info.sport, port), got[3])
			assert.are.equal(("%d>%d P. 5"):format(info.sport, port), got[4])
			assert.matches(("%d packets printed"):format(#got), r.err)
		end)
		p:kill()
		srv:close()
		assert(ok, err)
	end)

	it("watch --json: every documented field, values of the segments sent", function()
		local addr, port, srv, caddr = loop_server()
		local p = cli.start { "watch", "--json", "--host", addr, "--dport", tostring(port), "-c", "4",
			"--duration", "20" }
		local ok, err = pcall(function()
			p:ready()
			local info = net.conversation(srv, addr, port, { data = "abc", bind = caddr })
			local r = p:wait() -- -c 4: exits by itself
			assert.are.equal(0, r.code)
			local lines = cli.lines(r.out)
			assert.are.equal(4, #lines)
			local fields = require("tcpinspect.json").fields -- packet_fields() but line
			local flagseq = {}
			for _, line in ipairs(lines) do
				local v = dkjson.decode(line)
				assert.is_table(v, line)
				-- every field but the drop's and the socket's (nil here: no
				-- drops, no sockets), which a line leaves out
				local want = 0
				for _, f in ipairs(fields) do
					if OPTIONAL[f] then
						assert.is_nil(v[f], "field " .. f .. " in " .. line)
					else
						assert.is_not_nil(v[f], "field " .. f .. " in " .. line)
						want = want + 1
					end
				end
				local n = 0
				for _ in pairs(v) do n = n + 1 end
				assert.are.equal(want, n)
				assert.are.equal(caddr, v.saddr)
				assert.are.equal(addr, v.daddr)
				assert.are.equal(port, v.dport)
				assert.are.equal(info.sport, v.sport)
				assert.are.equal(4, v.family)
				assert.are.equal(tcpinspect.flagstr(v.flags), v.flagstr)
				assert.is_true(math.abs(v.time - os.time()) < 60)
				flagseq[#flagseq + 1] = v.flagstr .. ":" .. v.len
			end
			assert.are.same({ "S:0", ".:0", "P.:3", ".:0" }, { flagseq[1], flagseq[2], flagseq[3],
				flagseq[4] == "F.:0" and ".:0" or flagseq[4] })
		end)
		p:kill()
		srv:close()
		assert(ok, err)
	end)

	it("SIGINT: final report, exit 0, no program or link of the process left", function()
		local addr, port, srv = loop_server()
		local p = cli.start { "watch", "--host", addr, "--port", tostring(port) }
		local ok, err = pcall(function()
			p:ready()
			local ids = net.bpf_ids(p.pid)
			assert.is_true(#ids.progs + #ids.links > 0, "the running command holds BPF objects")
			net.conversation(srv, addr, port, { data = "x" })
			net.wait_until(function() return #cli.lines(p:stdout()) >= 8 end, 5)
			p:interrupt()
			local r = p:wait()
			assert.are.equal(0, r.code)
			assert.matches("packets printed in [^\n]*%(interrupted%); seen %d+", r.err)
			assert.is_true(#cli.lines(r.out) >= 8)
			for _, id in ipairs(ids.progs) do assert.is_false(net.prog_exists(id), "prog " .. id) end
			for _, id in ipairs(ids.links) do assert.is_false(net.link_exists(id), "link " .. id) end
		end)
		p:kill()
		srv:close()
		assert(ok, err)
	end)

	it("SIGINT during a script: on_exit runs, exit 0", function()
		local p = cli.start { "-e", "on_exit(function(_, why) print('BYE', why) end)", "--port", "1" }
		local ok, err = pcall(function()
			p:ready()
			net.sleep(0.3)
			p:interrupt()
			local r = p:wait()
			assert.are.equal(0, r.code, r.err)
			assert.are.equal("BYE\tinterrupted\n", r.out)
		end)
		p:kill()
		assert(ok, err)
	end)

	it("SIGTERM prints the final report, exits 0 and leaves no program of it", function()
		local p = cli.start { "stats", "--port", "1" }
		local ok, err = pcall(function()
			p:ready()
			local ids = net.bpf_ids(p.pid)
			assert.is_true(#ids.progs + #ids.links > 0)
			p:terminate()
			local r = p:wait()
			assert.are.equal(0, r.code, r.err)
			assert.matches("seen=%d+", r.out)
			assert.is_true(net.wait_until(function()
				for _, id in ipairs(ids.progs) do if net.prog_exists(id) then return false end end
				for _, id in ipairs(ids.links) do if net.link_exists(id) then return false end end
				return true
			end, 5) or false)
		end)
		p:kill()
		assert(ok, err)
	end)

	it("-e one-liner: on_packet with the flag constants, the kernel filter from the command line", function()
		local addr, port, srv, caddr = loop_server()
		local p = cli.start { "-e",
			"on_packet(function(p) if p.flags & SYN ~= 0 and p.flags & ACK == 0 then print('SYN', p.saddr, p.dport) end end)",
			"--host", addr, "--dport", tostring(port), "--duration", "20" }
		local ok, err = pcall(function()
			p:ready()
			net.conversations(srv, addr, port, 3, { data = "hi", bind = caddr })
			net.wait_until(function() return #cli.lines(p:stdout()) >= 3 end, 5)
			p:interrupt()
			local r = p:wait()
			assert.are.equal(0, r.code)
			local want = ("SYN\t%s\t%d\n"):format(caddr, port)
			assert.are.equal(want:rep(3), r.out)
		end)
		p:kill()
		srv:close()
		assert(ok, err)
	end)

	it("-e with every() and the in-kernel maps", function()
		local addr, port, srv, caddr = loop_server()
		local p = cli.start { "-e", [[
			local ticks = 0
			every(0.2, function() ticks = ticks + 1 end)
			on_exit(function()
				local n = 0
				for k, v in map("ports"):pairs() do
					if k.dport == tonumber(args[1]) then n = v.packets end
				end
				printf("TICKS %s PORTPKTS %d", ticks >= 3 and "ok" or ticks, n)
			end)]], tostring(port), "--host", addr, "--duration", "1.5" }
		local ok, err = pcall(function()
			p:ready()
			net.conversations(srv, addr, port, 2, { bind = caddr })
			local r = p:wait()
			assert.are.equal(0, r.code, r.err)
			local n = tonumber(r.out:match("PORTPKTS (%d+)"))
			assert.matches("TICKS ok", r.out)
			assert.is_true(n >= 8, r.out) -- 2 x (SYN, ACK, FIN, ACK) at least
		end)
		p:kill()
		srv:close()
		assert(ok, err)
	end)

	it("top: the flows, ports and sources of the traffic sent", function()
		local addr, port, srv, caddr = loop_server()
		local p = cli.start { "top", "--host", addr, "--interval", "0.5", "--duration", "20" }
		local ok, err = pcall(function()
			p:ready()
			local info = net.conversation(srv, addr, port, { data = string.rep("z", 3000), bind = caddr })
			net.sleep(0.7)
			p:interrupt()
			local r = p:wait()
			assert.are.equal(0, r.code)
			local final = r.out:match("tcpinspect top %(final%).*$")
			assert.is_string(final, r.out)
			local flow = ("%s.%d > %s.%d"):format(caddr, info.sport, addr, port)
			local row = final:match(flow:gsub("%p", "%%%0") .. "[^\n]*")
			assert.is_string(row, final)
			assert.matches("2.93 KiB", row) -- 3000 payload bytes
			assert.matches("FSP%.", row) -- tcpdump's order: FIN SYN RST PSH ACK
			assert.matches("\n" .. port .. " +%d+ +2.93 KiB", final)
			assert.matches("\n" .. addr:gsub("%p", "%%%0") .. " +%d+ +2.93 KiB", final)
			assert.matches("\n" .. caddr:gsub("%p", "%%%0") .. " +%d+ +2.93 KiB +%S+ +1\n", final)
		end)
		p:kill()
		srv:close()
		assert(ok, err)
	end)

	it("stats --json: one line per interval, counters that add up", function()
		local addr, port, srv = loop_server()
		local p = cli.start { "stats", "--json", "--host", addr, "--interval", "0.3", "--duration", "1.5" }
		local ok, err = pcall(function()
			p:ready()
			net.conversations(srv, addr, port, 2)
			local r = p:wait()
			assert.are.equal(0, r.code)
			local lines = cli.lines(r.out)
			assert.is_true(#lines >= 4, r.out)
			local last = dkjson.decode(lines[#lines])
			assert.is_true(last.final)
			assert.is_true(last.matched >= 8) -- 2 conversations
			assert.are.equal(last.seen, last.filtered + last.matched)
			for _, k in ipairs { "seen", "filtered", "matched", "sampled_out", "delivered", "dropped", "errors" } do
				assert.is_number(last[k])
			end
		end)
		p:kill()
		srv:close()
		assert(ok, err)
	end)
end)
