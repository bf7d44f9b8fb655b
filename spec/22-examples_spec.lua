-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: every script in examples/ against real traffic, its output
-- asserted.  Scan and flood detectors run inside the server namespace of a
-- veth pair made here (two client addresses in the client namespace: one
-- misbehaves, one makes normal connections); the others on loopback with
-- fresh 127.X.Y.Z addresses, filtered to them in the kernel.
local net = require "support.net"
local cli = require "support.cli"
local dkjson = require "dkjson"
local OPTIONAL = require("tcpinspect.json").OPTIONAL

local EX = net.ROOT .. "/examples/"

-- Run an example in the background (optionally in a namespace) and wait
-- until its session is attached.
local function example(name, args, netns)
	local a = { EX .. name }
	for _, x in ipairs(args or {}) do a[#a + 1] = x end
	return cli.start(a, { netns = netns }):ready()
end

local function cleanups() return net.cleanups(finally) end

-- A veth pair with a second client address and a listener on the server's
-- port 8080; defer(fn) registers the pair's destruction.
local function scene(defer)
	local pair = net.netns_pair()
	defer(function() pair:destroy() end)
	pair.client4b = pair.client4:gsub("%.2$", ".3")
	net.must(("ip -n %s addr add %s/24 dev %s"):format(pair.client, pair.client4b, pair.cdev))
	-- a listener that accepts and discards, for the normal client
	local loop = net.spawn(("ip netns exec %s sh -c 'while :; do nc -l %s 8080 >/dev/null || exit; done'"):format(
		pair.server, pair.server4))
	defer(function() net.kill(loop, "KILL") end)
	net.wait_until(function()
		local _, out = pair:exec(pair.server, "ss -Hltn")
		return out:find(":8080", 1, true)
	end, 5)
	return pair
end

-- n ordinary connections from src to the server's port 8080
local function normal_client(pair, src, n)
	local ok, out = pair:exec(pair.client, ("sh -c 'for i in $(seq %d); do echo hello | " ..
		"nc -N -w 2 -s %s %s 8080; sleep 0.05; done'"):format(n, src, pair.server4))
	assert(ok, out)
end

-- Ctrl-C once the traffic is over (HACKING.md: --duration only bounds the
-- run): the rings are read (a poll is never more than 100 ms away: 0.5 s,
-- 1.5 s in a guest, not net.scale's 5), then the example's on_exit runs its
-- last window and its summary
local function stop(p)
	net.sleep(net.IN_VM and 1.5 or 0.5)
	p:interrupt()
	return p:wait(net.scale(30))
end

local function summary(out, what)
	local l = out:match("SUMMARY " .. what .. "[^\n]*")
	assert.is_string(l, "no SUMMARY " .. what .. " line in:\n" .. out)
	return l, cli.kv(l)
end

describe("examples #kernel #examples", function()
	it("syn_flood.lua alerts for the flooding source only", function()
		local defer = cleanups()
		local pair = scene(defer)
		-- threshold 30 SYN/s: the normal client's 5 + 3 connections stay far
		-- below it, the flood far above, also under qemu's emulation (slow)
		local p = example("syn_flood.lua", { "--duration", tostring(net.scale(30)), "--threshold", "30", "--window", "1" }, pair.server)
		defer(function() p:kill() end)
		normal_client(pair, pair.client4b, 5)
		-- 400 SYNs at about 1 ms intervals from client4
		pair:exec(pair.client, ("hping3 -q -S -p 8081 -c 400 -i u1000 -a %s %s"):format(pair.client4, pair.server4))
		normal_client(pair, pair.client4b, 3)
		local r = stop(p)
		assert.are.equal(0, r.code, r.err)
		local alerts = cli.grep(r.out, "ALERT syn-flood")
		assert.is_true(#alerts >= 1, r.out)
		local total = 0
		for _, l in ipairs(alerts) do
			local kv = cli.kv(l)
			assert.are.equal(pair.client4, kv.src, l)
			assert.is_true(tonumber(kv.rate:match("%d+")) >= 30, l)
			total = total + kv.syns
		end
		assert.is_true(total >= 300, r.out) -- most of the 400 fell in alerting windows
		assert.is_nil(r.out:find("src=" .. pair.client4b, 1, true))
		local _, kv = summary(r.out, "syn%-flood")
		assert.are.equal(1, kv.sources)
	end)

	it("port_scan.lua names the scanning source and not the normal client", function()
		local defer = cleanups()
		local pair = scene(defer)
		local p = example("port_scan.lua", { "--duration", tostring(net.scale(30)), "--threshold", "20", "--window", "2" }, pair.server)
		defer(function() p:kill() end)
		normal_client(pair, pair.client4b, 5)
		-- 100 closed ports, each answered by a RST
		pair:exec(pair.client, ("nc -z -w 1 -s %s %s 9100-9199"):format(pair.client4, pair.server4))
		normal_client(pair, pair.client4b, 3)
		local r = stop(p)
		assert.are.equal(0, r.code, r.err)
		local alerts = cli.grep(r.out, "ALERT port-scan")
		assert.is_true(#alerts >= 1, r.out)
		local ports = 0
		for _, l in ipairs(alerts) do
			local kv = cli.kv(l)
			assert.are.equal(pair.client4, kv.src, l)
			ports = ports + kv.ports
		end
		assert.are.equal(100, ports) -- every scanned port, counted once (a window may split them)
		assert.is_nil(r.out:find("src=" .. pair.client4b, 1, true))
		local _, kv = summary(r.out, "port%-scan")
		assert.are.equal(#alerts, kv.alerts)
	end)

	it("retransmits.lua: the connection's retransmissions == tshark's, its segments and bytes the capture's", function()
		local defer = cleanups()
		local pair = scene(defer)
		-- the data sender's side loses segments: netem loss 30% where the kernel
		-- has sch_netem, else a small tbf that tail-drops bursts (this
		-- machine's kernel has tbf but no netem)
		local ok_netem = pair:exec(pair.client, ("tc qdisc add dev %s root netem loss 30%%"):format(pair.cdev))
		if not ok_netem then
			net.must(("ip netns exec %s tc qdisc add dev %s root tbf rate 4mbit burst 4000 limit 4000"):format(
				pair.client, pair.cdev))
		end
		local sink = net.spawn(("ip netns exec %s nc -l %s 9000 >/dev/null"):format(pair.server, pair.server4))
		net.wait_until(function()
			local _, out = pair:exec(pair.server, "ss -Hltn")
			return out:find(":9000", 1, true)
		end, 5)
		-- what arrives in the server's namespace, beside the script
		local cap = net.tcpdump { netns = pair.server, iface = pair.sdev, filter = "tcp dst port 9000" }
		defer(function() if net.alive(cap.pid) then net.kill(cap.pid, "KILL") end end)
		local p = example("retransmits.lua", { "--duration", tostring(net.scale(30)), "--dport", "9000" }, pair.server)
		defer(function() p:kill() net.kill(sink, "KILL") end)
		-- 100 KB with a 10 s idle limit (90 s under emulation: a 6.12-rt guest's
		-- nc gave up mid-stream at 10, a 6.1-cloud one at 30): under 30 % loss
		-- the sender's RTO backs off for seconds (a SYN lost 4 times waits
		-- 1+2+4+8 s), and nc must not give up mid-stream
		local ok, out = pair:exec(pair.client, ("sh -c 'head -c 100000 /dev/zero | nc -N -w %d -s %s %s 9000'")
			:format(net.IN_VM and 90 or 10, pair.client4, pair.server4))
		assert(ok, out)
		-- the connection ends 5 s after its FIN (or at exit, as the script runtime ends what is open): its line comes then
		net.wait_until(function() return #cli.grep(p:stdout(), "RETRANS ") >= 1 end, net.scale(5))
		net.sleep(net.scale(0.5))
		p:interrupt()
		local r = p:wait(net.scale(30))
		assert.are.equal(0, r.code, r.err)
		local pkts = cap:stop()
		-- tshark's retransmissions and out-of-order segments of the capture
		net.must("chmod 644 " .. net.q(cap.file))
		local ok2, flagged = net.sh(require("support.unpriv").SETPRIV .. "env HOME=/nonexistent tshark -r " ..
			net.q(cap.file) .. " -n -Y 'tcp.analysis.retransmission or tcp.analysis.out_of_order' -T fields " ..
			"-e tcp.srcport 2>/dev/null")
		assert(ok2, flagged)
		local want = #cli.lines(flagged)
		local bytes = 0
		for _, x in ipairs(pkts) do bytes = bytes + x.len end
		local _, kv = summary(r.out, "retransmits")
		assert.are.equal(want, kv.count, r.out)
		-- and the sender's own counter agrees that it retransmitted
		assert.is_true(net.snmp(pair.client).RetransSegs >= 1)
		assert.is_true(want >= 1, "tshark saw no retransmission")
		local lines = cli.grep(r.out, "RETRANS flow=")
		assert.are.equal(1, #lines, r.out)
		kv = cli.kv(lines[1])
		local flow = "^" .. pair.client4:gsub("%.", "%%.") .. ":%d+>" .. pair.server4:gsub("%.", "%%.") .. ":9000$"
		assert.matches(flow, kv.flow)
		assert.are.same({ want, #pkts, 100000, "fin" }, { kv.count, kv.segments, kv.bytes, kv["end"] }, lines[1])
		assert.are.equal(100000, bytes)
		net.say("retransmits.lua: %d retransmissions of %d segments, as tshark flags them", want, #pkts)
	end)

	it("zero_window.lua sees a receiver that stops reading", function()
		local defer = cleanups()
		local pair = scene(defer)
		-- a small receive buffer in the server namespace, a server that never reads
		net.must(("ip netns exec %s sysctl -q -w net.ipv4.tcp_rmem='4096 4096 4096'"):format(pair.server))
		local srv = net.spawn(("ip netns exec %s %s -e %s"):format(pair.server, net.LUA, net.q(([[
			local socket = require "socket"
			local s = assert(socket.bind("%s", 9001))
			local c = assert(s:accept())
			socket.sleep(6)]]):format(pair.server4))))
		net.wait_until(function()
			local _, out = pair:exec(pair.server, "ss -Hltn")
			return out:find(":9001", 1, true)
		end, 5)
		-- the zero windows travel server -> client: watch in the client namespace
		local p = example("zero_window.lua", { "--duration", tostring(net.scale(30)), "--port", "9001" }, pair.client)
		defer(function() p:kill() net.kill(srv, "KILL") end)
		pair:exec(pair.client, ("sh -c 'head -c 2000000 /dev/zero | timeout 3 nc -w 3 %s 9001'"):format(pair.server4))
		local r = stop(p)
		assert.are.equal(0, r.code, r.err)
		local l, kv = summary(r.out, "zero%-window flow")
		local flow = "^" .. pair.server4:gsub("%.", "%%.") .. "%.9001>" .. pair.client4:gsub("%.", "%%.") .. "%.%d+$"
		assert.matches(flow, kv.flow)
		assert.is_string(l)
		assert.is_true(kv.count >= 1)
		assert.are.equal(kv.count, #cli.grep(r.out, "ZEROWIN "))
	end)

	it("new_connections.lua logs each accepted connection once: its handshake, segments, end", function()
		local defer = cleanups()
		local addr, port, caddr = net.addr4(), net.port(), net.addr4()
		local srv = net.server(addr, port)
		defer(function() srv:close() end)
		local p = example("new_connections.lua", { "--duration", tostring(net.scale(30)), "--host", addr })
		defer(function() p:kill() end)
		local cap = net.tcpdump { filter = ("tcp and src host %s and dst host %s and dst port %d"):format(caddr, addr,
			port) }
		local infos = net.conversations(srv, addr, port, 3, { bind = caddr, data = "hello" })
		local pkts = cap:stop()
		-- each ends 5 s after its FIN (the other half, the server's
		-- answers, started with a SYN-ACK: not a new connection)
		net.wait_until(function() return #cli.grep(p:stdout(), "NEW ") >= 3 end, net.scale(10))
		p:interrupt()
		local r = p:wait()
		assert.are.equal(0, r.code, r.err)
		local lines = cli.grep(r.out, "NEW ")
		assert.are.equal(3, #lines, r.out)
		local by = {}
		for _, l in ipairs(lines) do
			local kv = cli.kv(l)
			by[kv.sport] = kv
		end
		for _, info in ipairs(infos) do
			local kv = by[info.sport]
			assert.is_table(kv, "no line for sport " .. info.sport .. ":\n" .. r.out)
			local segs = net.count(pkts, function(x) return x.sport == info.sport end)
			assert.are.same({ caddr, addr, port, segs, "fin" }, { kv.src, kv.dst, kv.dport, kv.segments, kv["end"] })
			assert.is_true(type(kv.handshake) == "number" and kv.handshake > 0 and kv.handshake < net.scale(1),
				tostring(kv.handshake))
		end
		local _, kv = summary(r.out, "new%-connections")
		assert.are.equal(3, kv.count)
	end)

	it("rst_storm.lua alerts for a source of many resets", function()
		local defer = cleanups()
		local addr = net.addr4()
		local base = net.port(60)
		local p = example("rst_storm.lua", { "--duration", tostring(net.scale(30)), "--host", addr, "--threshold", "20", "--window", "1" })
		defer(function() p:kill() end)
		for i = 0, 59 do net.connect_closed(addr, base + i) end
		local r = stop(p)
		assert.are.equal(0, r.code, r.err)
		local alerts = cli.grep(r.out, "ALERT rst-storm")
		assert.is_true(#alerts >= 1, r.out)
		for _, l in ipairs(alerts) do assert.are.equal(addr, cli.kv(l).src) end
		local _, kv = summary(r.out, "rst%-storm")
		assert.are.equal(60, kv.total)
	end)

	it("payload_hist.lua prints the in-kernel payload histogram", function()
		local defer = cleanups()
		local addr, port, caddr = net.addr4(), net.port(), net.addr4()
		local srv = net.server(addr, port)
		defer(function() srv:close() end)
		local p = example("payload_hist.lua", { "--duration", tostring(net.scale(30)), "--host", addr, "--port", tostring(port) })
		defer(function() p:kill() end)
		-- 3 conversations: 100 bytes each way, and 1500 bytes each way
		net.conversations(srv, addr, port, 3, { data = string.rep("a", 100), bind = caddr })
		net.conversation(srv, addr, port, { data = string.rep("b", 1500), bind = caddr })
		local r = stop(p)
		assert.are.equal(0, r.code, r.err)
		assert.matches("@payload_bytes:\n", r.out)
		local rows = {}
		for label, count in r.out:gmatch("\n(%[[^%]%)]*[%]%)]) +(%d+) |") do rows[label] = tonumber(count) end
		assert.are.equal(6, rows["[64, 128)"], r.out)
		assert.are.equal(2, rows["[1K, 2K)"], r.out)
		assert.is_true(rows["[0]"] >= 4 * 6, r.out) -- handshakes, acks, fins
		local total = tonumber(r.out:match("TOTAL segments=(%d+)"))
		local sum = 0
		for _, c in pairs(rows) do sum = sum + c end
		assert.are.equal(total, sum)
	end)

	it("top_talkers.lua ranks the sources by bytes", function()
		local defer = cleanups()
		local addr, port, big, small = net.addr4(), net.port(), net.addr4(), net.addr4()
		local srv = net.server(addr, port)
		defer(function() srv:close() end)
		local p = example("top_talkers.lua", { "--duration", tostring(net.scale(30)), "--host", table.concat({ addr, big, small }, ",") })
		defer(function() p:kill() end)
		net.conversation(srv, addr, port, { data = string.rep("x", 20000), bind = big })
		net.conversation(srv, addr, port, { data = string.rep("y", 100), bind = small })
		local r = stop(p)
		assert.are.equal(0, r.code, r.err)
		-- the last block: the server echoed 20100 bytes, big sent 20000, small 100
		local last = r.out:match(".*(TOP rank=1 .-)END[^\n]*\n$")
		assert.is_string(last, r.out)
		local ranks = cli.grep(last, "TOP ")
		assert.are.equal(3, #ranks, last)
		local got = {}
		for i, l in ipairs(ranks) do
			local kv = cli.kv(l)
			got[i] = { kv.rank, kv.src, kv.bytes }
		end
		assert.are.same({ { 1, addr, 20100 }, { 2, big, 20000 }, { 3, small, 100 } }, got)
	end)

	it("port_bytes.lua counts packets and bytes per destination port", function()
		local defer = cleanups()
		local addr, p1, p2, caddr = net.addr4(), net.port(), net.port(), net.addr4()
		local s1, s2 = net.server(addr, p1), net.server(addr, p2)
		defer(function() s1:close() s2:close() end)
		local p = example("port_bytes.lua", { "--duration", tostring(net.scale(30)), "--host", addr })
		defer(function() p:kill() end)
		net.conversation(s1, addr, p1, { data = string.rep("x", 3000), bind = caddr })
		net.conversation(s2, addr, p2, { data = string.rep("y", 500), bind = caddr })
		local r = stop(p)
		assert.are.equal(0, r.code, r.err)
		local last = r.out:match(".*END[^\n]*\n(.-)END[^\n]*\n$") or r.out
		local bytes = {}
		for _, l in ipairs(cli.grep(last, "PORT ")) do
			local kv = cli.kv(l)
			bytes[kv.dport] = kv.bytes
		end
		assert.are.equal(3000, bytes[p1], last)
		assert.are.equal(500, bytes[p2], last)
	end)

	it("why_refused.lua names the closed port's drops by reason, exactly, and not the open port", function()
		local defer = cleanups()
		local addr, closed, open_port = net.addr4(), net.port(), net.port()
		local srv = net.server(addr, open_port)
		defer(function() srv:close() end)
		-- Ctrl-C once the traffic is over; --duration only bounds a run that
		-- never gets it
		local p = example("why_refused.lua", { "--duration", tostring(net.scale(6)), "--daddr", addr })
		defer(function() p:kill() end)
		local n = 4
		local cap = net.tcpdump { filter = ("tcp and dst host %s and dst port %d"):format(addr, closed) }
		for _ = 1, n do assert(net.connect_closed(addr, closed), "not refused") end
		local syns = net.count(cap:stop(), function(x) return x.flags & 0x12 == 0x02 end)
		net.conversation(srv, addr, open_port, { data = "hello" })
		net.sleep(net.scale(0.5))
		p:interrupt()
		local r = p:wait(net.scale(30))
		assert.are.equal(0, r.code, r.err)
		assert.are.equal(n, syns)
		local lines = cli.grep(r.out, "REFUSED ")
		assert.are.equal(1, #lines, r.out)
		local kv = cli.kv(lines[1])
		assert.are.same({ closed, n, n, "NO_SOCKET:" .. n, "tcp_v4_rcv:" .. n },
			{ kv.dport, kv.syns, kv.drops, kv.reasons, kv.where })
		assert.matches('why="no socket listens on the port"', lines[1])
		local _, sum = summary(r.out, "why%-refused")
		-- the open port's SYN counted, no drop there
		assert.are.same({ 1, n + 1, n }, { sum.ports, sum.syns, sum.drops })
	end)

	it("why_refused.lua: a full accept queue's refusals, as many as ListenDrops, with the listener's state",
		function()
			local defer = cleanups()
			local ns = net.netns("why")
			defer(function() ns:destroy() end)
			local port = 24000 + math.random(0, 999)
			local p = cli.start({ EX .. "why_refused.lua", "--netns", ns.name, "--dport", tostring(port) }):ready()
			defer(function() p:kill() end)
			local before = net.mibs(ns.name).TcpExtListenDrops
			-- a backlog-1 listener that never accepts, 4 attempts left to the SYN retries
			local ok, out = ns:exec(("timeout %d /usr/bin/python3 %s/spec/support/listeners.py overflow 127.0.0.1 %d 4")
				:format(net.scale(30), net.ROOT, port))
			assert(ok and out:find("done"), out)
			local n = net.mibs(ns.name).TcpExtListenDrops - before
			assert.is_true(n > 0, "no listen drop happened")
			net.sleep(net.scale(0.5))
			p:interrupt()
			local r = p:wait(net.scale(30))
			assert.are.equal(0, r.code, r.err)
			local lines = cli.grep(r.out, "REFUSED ")
			assert.are.equal(1, #lines, r.out)
			local kv = cli.kv(lines[1])
			assert.are.same({ port, n, "TCP_LISTEN_OVERFLOW:" .. n, "LISTEN" }, { kv.dport, kv.drops, kv.reasons, kv.state })
			assert.matches('why="the listener\'s accept queue is full"', lines[1])
		end)

	it("json_export.lua writes every field of every segment", function()
		local defer = cleanups()
		local addr, port, caddr = net.addr4(), net.port(), net.addr4()
		local srv = net.server(addr, port)
		defer(function() srv:close() end)
		local p = example("json_export.lua", { "--duration", tostring(net.scale(30)), "--host", addr, "--port", tostring(port) })
		defer(function() p:kill() end)
		local info = net.conversation(srv, addr, port, { data = "hello", bind = caddr })
		local r = stop(p)
		assert.are.equal(0, r.code, r.err)
		local lines = cli.lines(r.out)
		assert.is_true(#lines >= 8, r.out)
		local fields = require("tcpinspect.json").fields -- every packet field but `line`
		local payload = 0
		for _, l in ipairs(lines) do
			local v = dkjson.decode(l)
			for _, f in ipairs(fields) do
				if not OPTIONAL[f] then assert.is_not_nil(v[f], f) end -- a drop's and a socket's: nil here
			end
			assert.is_true(v.sport == info.sport or v.dport == info.sport)
			payload = payload + v.len
		end
		assert.are.equal(10, payload) -- "hello" and its echo
		assert.matches("SUMMARY json%-export lines=" .. #lines, r.err)
	end)
end)
