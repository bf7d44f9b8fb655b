-- SPDX-License-Identifier: GPL-2.0-only
-- Connections on the live path (issue 22; conns = true, bpf/ti_conn.h) in
-- every mode this kernel runs: two namespaces joined by a veth, no delay.
-- A client makes connections with known payloads, closes four by FIN and
-- two by RST and holds one idle past idle_timeout; tcpdump captures the
-- incoming segments of each side beside the session.  Per connection
-- (each receiver's direction is one): segments and payload bytes equal
-- the capture's, the ends are as sent (the server's halves fin / rst, the
-- idle one idle), the handshake is measured on the server's halves only.
-- Then SYNs that nothing answers (their SYN-ACKs dropped): their entries
-- hold only a SYN and end before idle_timeout (conntrack's short SYN
-- timeout); and a table of 4 under 40 SYNs: opened + untracked == the
-- SYNs seen, evictions counted and handed out, never more than 4 open.
local net = require "support.net"

local TRAFFIC = net.ROOT .. "/spec/support/conn_traffic.py"
local PORT = 7641
local SPECS = { "100:fin", "2000:fin", "50000:fin", "7:fin", "3000:rst", "1:rst" }
local IDLE_TIMEOUT = 3

local function key(saddr, sport, daddr, dport)
	return ("%s:%d>%s:%d"):format(saddr, sport, daddr, dport)
end

-- poll s until done() or the timeout
local function poll_until(s, done, timeout)
	local t0 = os.time()
	while not done() and os.time() - t0 < timeout do s:poll(100) end
	return done()
end

local function run(mode)
	local pair = net.netns_pair()
	local srv, cli, s, scap, ccap
	local r = { ended = {}, order = {} }
	local ok, err = pcall(function()
		srv = net.spawn(("ip netns exec %s timeout %d python3 %s server %s %d"):format(
			pair.server, net.scale(120), TRAFFIC, pair.server4, PORT))
		net.wait_until(function()
			local _, out = pair:exec(pair.server, "ss -Htln sport = :" .. PORT)
			return out:find("LISTEN", 1, true)
		end, 10)
		s = net.open{ mode = mode, conns = true, idle_timeout = IDLE_TIMEOUT, filter = { host = pair.server4 } }
		s:on_conn(function(c)
			local t = c:totable()
			t.at = os.time()
			local k = key(t.saddr, t.sport, t.daddr, t.dport)
			r.ended[k] = r.ended[k] or t -- a later entry of the key (after the end) is not this one
			r.order[#r.order + 1] = k
		end)
		scap = net.tcpdump{ iface = pair.sdev, netns = pair.server, filter = "tcp and host " .. pair.server4 }
		ccap = net.tcpdump{ iface = pair.cdev, netns = pair.client, filter = "tcp and host " .. pair.server4 }
		local specs = {}
		for _, x in ipairs(SPECS) do specs[#specs + 1] = x end
		specs[#specs + 1] = ("300:idle:%d"):format(IDLE_TIMEOUT + 3)
		local out = net.tmpfile(".txt")
		cli = net.spawn(("ip netns exec %s timeout %d python3 %s client %s %d %s"):format(
			pair.client, net.scale(120), TRAFFIC, pair.server4, PORT, table.concat(specs, " ")), out)
		-- the conns, as the client printed them
		r.conns = {}
		assert(net.wait_until(function()
			r.conns = {}
			for line in (net.read_file(out) or ""):gmatch("[^\n]+") do
				local sport, size, e = line:match("^(%d+) (%d+) (%a+)$")
				if sport then r.conns[#r.conns + 1] = { sport = tonumber(sport), size = tonumber(size), ["end"] = e } end
			end
			return #r.conns == #specs
		end, net.scale(60)), "the client did not open its connections: " .. (net.read_file(out) or ""))
		local idle = r.conns[#r.conns]
		r.idle_key = key(pair.client4, idle.sport, pair.server4, PORT)
		-- the idle one ends idle while the client still holds it
		assert(poll_until(s, function() return r.ended[r.idle_key] end, net.scale(IDLE_TIMEOUT + 10)),
			"the idle connection did not end")
		r.idle_open = net.alive(cli)
		net.wait_exit(cli, net.scale(30))
		-- the FIN halves end IDLE_TIMEOUT (the FIN timeout, 5 s, at most idle_timeout) after their last segment; the clients' RST
		-- halves idle_timeout after theirs: wait for both halves of each (at most
		-- that long; the asserts below name what did not end)
		poll_until(s, function()
			for _, c in ipairs(r.conns) do
				if not r.ended[key(pair.client4, c.sport, pair.server4, PORT)]
					or not r.ended[key(pair.server4, PORT, pair.client4, c.sport)] then
					return false
				end
			end
			return true
		end, IDLE_TIMEOUT + 2)
		r.spkts, r.cpkts = scap:stop(), ccap:stop()
		r.stats = s:stats()

		-- SYNs that stay SYNs: to the listening port (cgroup mode sees only
		-- segments that reach a socket), their SYN-ACKs dropped in the
		-- client's namespace, so that nothing answers them: 10 entries of
		-- one SYN each
		net.must(("ip netns exec %s nft add table inet ti64"):format(pair.client))
		net.must(("ip netns exec %s nft add chain inet ti64 input '{ type filter hook input priority 0; }'"):format(
			pair.client))
		net.must(("ip netns exec %s nft add rule inet ti64 input tcp sport %d tcp flags syn drop"):format(
			pair.client, PORT))
		local s2 = net.open{ mode = mode, conns = true, idle_timeout = 30,
			filter = { daddr = pair.server4, dport = PORT } }
		local syn_ends = {}
		s2:on_conn(function(c)
			if c.daddr == pair.server4 then syn_ends[#syn_ends + 1] = { c.history, c.end_reason, c.duration } end
		end)
		local t0 = os.time()
		net.must(("ip netns exec %s hping3 -q -S -c 10 -i u10000 -s 20000 -p %d %s 2>&1 || true"):format(
			pair.client, PORT, pair.server4))
		poll_until(s2, function() return #syn_ends == 10 end, net.scale(15))
		r.syn_ends, r.syn_secs = syn_ends, os.time() - t0
		r.stats2 = s2:stats()
		s2:close()

		-- the bound: 4 entries, 40 SYNs (hping3 moves its source port each time)
		local s3 = net.open{ mode = mode, conns = true, max_conns = 4, idle_timeout = 30,
			filter = { daddr = pair.server4, dport = PORT } }
		local ends, most = {}, 0
		s3:on_conn(function(c) ends[c.end_reason] = (ends[c.end_reason] or 0) + 1 end)
		-- the SYNs that arrived, as the server's side captures them (hping3
		-- in a guest does not always get all it counts onto the wire)
		local syncap = net.tcpdump{ iface = pair.sdev, netns = pair.server,
			filter = ("tcp[tcpflags] == tcp-syn and dst host %s and dst port %d"):format(pair.server4, PORT) }
		for round = 1, 4 do
			-- its own source ports each run (hping3 would start each at the same one)
			net.must(("ip netns exec %s hping3 -q -S -c 10 -i u10000 -s %d -p %d %s 2>&1 || true"):format(
				pair.client, 30000 + round * 100, PORT, pair.server4))
			s3:poll(50)
			local n = 0
			for _ in s3:conns() do n = n + 1 end
			if n > most then most = n end
		end
		s3:poll(50)
		r.bound = { stats = s3:stats(), ends = ends, most = most, syns = #syncap:stop() }
		s3:close()
	end)
	for _, pid in ipairs{ cli, srv } do
		if pid and net.alive(pid) then net.kill(pid, "KILL") end
	end
	if s then s:close() end
	pair:destroy()
	assert(ok, err)
	return r, pair
end

describe("conns live #kernel", function()
	for _, mode in ipairs(net.modes()) do
		it("in " .. mode .. " mode: each connection's segments, bytes and end as sent and captured", function()
			local r, pair = run(mode)
			-- per direction, from the captures (tcpdump -Q in on each side)
			local want = {}
			for _, p in ipairs(r.spkts) do
				local k = key(p.saddr, p.sport, p.daddr, p.dport)
				want[k] = want[k] or { segments = 0, bytes = 0 }
				want[k].segments, want[k].bytes = want[k].segments + 1, want[k].bytes + p.len
			end
			for _, p in ipairs(r.cpkts) do
				local k = key(p.saddr, p.sport, p.daddr, p.dport)
				want[k] = want[k] or { segments = 0, bytes = 0 }
				want[k].segments, want[k].bytes = want[k].segments + 1, want[k].bytes + p.len
			end
			for _, c in ipairs(r.conns) do
				local up = key(pair.client4, c.sport, pair.server4, PORT)
				local down = key(pair.server4, PORT, pair.client4, c.sport)
				local got, gotd = r.ended[up], r.ended[down]
				assert(got, mode .. ": no conn " .. up)
				assert(gotd, mode .. ": no conn " .. down)
				local e = c["end"] == "idle" and "idle" or c["end"]
				assert.are.equal(e, got.end_reason, mode .. " " .. up)
				if c["end"] ~= "idle" then
					assert.are.same(want[up], { segments = got.segments, bytes = got.bytes }, mode .. " " .. up)
					assert.are.same(want[down], { segments = gotd.segments, bytes = gotd.bytes }, mode .. " " .. down)
					assert.are.equal(c.size, got.bytes)
				else
					assert.are.equal(c.size, got.bytes, mode .. " idle bytes")
				end
				-- the server's half saw the SYN and the handshake's ACK; the client's saw neither
				assert.are.equal("S", got.history:sub(1, 1))
				assert.is_true(got.handshake > 0 and got.handshake < 1, mode .. " handshake")
				assert.is_nil(gotd.handshake)
				assert.are.equal("H", gotd.history:sub(1, 1))
				assert.are.equal(c["end"] == "fin" and "fin" or "idle", gotd.end_reason, mode .. " " .. down)
				assert.are.equal(0, got.retransmits)
			end
			assert.is_true(r.idle_open, mode .. ": the idle connection ended while the client held it")
			-- 7 connections, 2 halves each; the idle one's RST opened one more
			assert.are.equal(0, r.stats.conns_untracked)
			assert.are.equal(0, r.stats.conns_lost)
			assert.is_true(r.stats.conns_opened >= 14)
			-- SYN-only: 10 entries of one SYN, ended idle before idle_timeout (30 s)
			assert.are.equal(10, #r.syn_ends, mode .. ": SYN-only entries ended")
			for _, x in ipairs(r.syn_ends) do assert.are.same({ "S", "idle" }, { x[1], x[2] }) end
			assert.is_true(r.syn_secs < 30, mode .. ": SYN-only entries ended after " .. r.syn_secs .. " s, not before idle_timeout")
			-- the bound: every SYN made an entry or was counted untracked; evictions handed out
			local b = r.bound
			net.say("%s: conns bound: %d SYNs, opened %d untracked %d evicted %d, most open %d", mode,
				b.syns, b.stats.conns_opened, b.stats.conns_untracked, b.stats.conns_evicted, b.most)
			-- (hping3's SYNs each from a new port: one connection each)
			assert.is_true(b.syns >= 30, mode .. ": " .. b.syns .. " SYNs of 40 arrived")
			assert.are.equal(b.syns, b.stats.matched)
			assert.are.equal(b.syns, b.stats.conns_opened + b.stats.conns_untracked)
			assert.is_true(b.stats.conns_untracked > 0)
			assert.is_true(b.stats.conns_evicted > 0)
			assert.are.equal(b.stats.conns_evicted, b.ends.evicted)
			assert.is_true(b.most <= 4)
		end)
	end
end)
