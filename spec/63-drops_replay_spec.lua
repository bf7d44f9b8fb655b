-- SPDX-License-Identifier: GPL-2.0-only
-- Replay and fates (issue 21, item 4): a capture holds what arrived, not
-- what became of it.  The CLI's drop and socket views refuse -r with a
-- clear message (exit 2), export -r serves no drop metric, and scripts
-- that use drops (on_drop, p.reason, p.location, examples/why_refused.lua)
-- run unchanged on a capture: every segment delivered (as many as tcpdump
-- reads), no drop, the drop fields nil.  No root needed, except for
-- features() (it loads probe programs: tagged kernel).
local net = require "support.net"
local cli = require "support.cli"
local http = require "socket.http"
local tcpinspect = require "tcpinspect"

local FIX = net.ROOT .. "/spec/fixtures/"
local PCAP = FIX .. "port_scan.pcap" -- 40 SYNs to ports 21000-21039

-- the segments tcpdump reads from a capture
local function tcpdump_count(file)
	local ok, out = net.sh("tcpdump -nr " .. net.q(file) .. " tcp 2>/dev/null | wc -l")
	assert(ok, out)
	return tonumber(out:match("%d+"))
end

describe("replay: the CLI's drop and socket views refuse -r", function()
	local cases = {
		{ { "drops" }, "argument '-r': a capture holds no fates: 'tcpinspect drops' reads the kernel's drops, " ..
			"live only (without -r)" },
		{ { "watch", "--drops" }, "argument '--drops': a capture holds no fates: drops are the kernel's, seen " ..
			"live only (without -r)" },
		{ { "top", "--by", "reason" }, "argument '--by': a capture holds no fates: drop reasons are the kernel's, " ..
			"seen live only (without -r)" },
		{ { "top", "--by", "process" }, "argument '--by': a capture names no receiving socket: --by process is " ..
			"live only (without -r)" },
	}
	for _, c in ipairs(cases) do
		it(table.concat(c[1], " ") .. " -r: exit 2, saying why", function()
			local a = {}
			for _, w in ipairs(c[1]) do a[#a + 1] = w end
			a[#a + 1] = "-r"
			a[#a + 1] = PCAP
			local r = cli.run(a)
			assert.are.equal(2, r.code, r.err)
			assert.are.equal("", r.out)
			assert.matches("^Usage: tcpinspect " .. c[1][1], r.err)
			local want = "\n\ntcpinspect: error: " .. c[2] .. "\n"
			assert.are.equal(want, r.err:sub(-#want))
		end)
	end

	it("the same commands without -r are not refused for it (their usage is fine)", function()
		for _, c in ipairs(cases) do
			local a = {}
			for _, w in ipairs(c[1]) do a[#a + 1] = w end
			a[#a + 1] = "--help"
			local r = cli.run(a)
			assert.are.equal(0, r.code, r.err)
		end
	end)

	it("export -r serves the replay's metrics and no drop metric (exit 0)", function()
		local p = cli.start { "export", "-r", PCAP, "--listen", "127.0.0.1:0", "--duration", "3" }
		finally(function() p:kill() end)
		p:ready()
		local url = p:stderr():match("serving (http://%S+/metrics)")
		assert.is_string(url, p:stderr())
		local body, code = http.request(url)
		assert.are.equal(200, code, body)
		assert.matches("\ntcpinspect_info{mode=\"replay\",", body)
		assert.is_nil(body:find("tcpinspect_drops_total", 1, true), body)
		assert.is_nil(body:find("tcpinspect_port_drops_total", 1, true), body)
		assert.is_nil(body:find("skb:kfree_skb", 1, true), body)
		local r = p:wait()
		assert.are.equal(0, r.code, r.err)
	end)
end)

describe("replay: scripts that use drops run unchanged", function()
	it("on_drop never fires, p.reason and p.location are nil, every segment is delivered", function()
		local code = [[
			local s = open { drops = true }
			local drops, pkts, fields = 0, 0, 0
			s:on_drop(function() drops = drops + 1 end)
			on_packet(function(p)
				pkts = pkts + 1
				if p.reason == nil and p.location == nil then fields = fields + 1 end
			end)
			on_exit(function()
				printf("RESULT drops=%d packets=%d nil_fields=%d stats_drops=%s", drops, pkts, fields,
					tostring(s:stats().drops))
			end)
		]]
		local r = cli.run { "-q", "-r", PCAP, "-e", code }
		assert.are.equal(0, r.code, r.err)
		local n = tcpdump_count(PCAP)
		assert.are.equal(40, n)
		local kv = cli.kv(assert(cli.grep(r.out, "RESULT ")[1], r.out))
		assert.are.same({ 0, n, n, "nil" }, { kv.drops, kv.packets, kv.nil_fields, kv.stats_drops })
	end)

	it("examples/why_refused.lua on a capture: the SYNs counted, no drop, a note saying why", function()
		local r = cli.run { "-q", "-r", PCAP, net.ROOT .. "/examples/why_refused.lua" }
		assert.are.equal(0, r.code, r.err)
		assert.are.same({}, cli.grep(r.out, "REFUSED "))
		assert.are.same({ "NOTE why-refused: no drops here: a replay: a capture holds what arrived, not what " ..
			"became of it" }, cli.grep(r.out, "NOTE "))
		local sum = cli.kv(assert(cli.grep(r.out, "SUMMARY why-refused")[1], r.out))
		assert.are.same({ 0, tcpdump_count(PCAP), 0 }, { sum.ports, sum.syns, sum.drops })
	end)

	it("the receiving socket's fields are nil in a replay", function()
		local present, have = { "sk_state", "sk_cookie", "uid", "pid", "comm" }, {}
		for _, f in ipairs(tcpinspect.packet_fields()) do have[f] = true end
		for _, f in ipairs(present) do assert.is_true(have[f], f .. " is a packet field") end
		local s <close> = tcpinspect.replay { file = PCAP }
		local n = 0
		s:on_packet(function(p)
			n = n + 1
			for _, f in ipairs(present) do assert.is_nil(p[f], f) end
		end)
		while s:poll(-1) > 0 do end
		assert.are.equal(tcpdump_count(PCAP), n)
	end)
end)

describe("#kernel replay: features() says a replay has no fates", function()
	it("replay_drops and replay_sockets are false, with why", function()
		local f = tcpinspect.features()
		assert.is_false(f.replay_drops)
		assert.is_false(f.replay_sockets)
		assert.are.equal("a capture holds what arrived, not what became of it: on_drop never fires in a replay",
			f.reasons.replay_drops)
		assert.are.equal("a capture holds no sockets: a replay's socket fields are nil", f.reasons.replay_sockets)
	end)
end)
