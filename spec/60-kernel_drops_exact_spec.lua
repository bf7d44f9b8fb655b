-- SPDX-License-Identifier: GPL-2.0-only
-- Drops counted exactly (issue 21, "Drops are exact"): each deterministic
-- drop of an incoming TCP segment is reported once, by the kernel's reason,
-- and the number sent (hping3, counted again by tcpdump on the receiving
-- veth) == the number of on_drop records == the session's counters ==
-- the "drops" map's entries == the kernel's own counter's change where one
-- exists, read before and after in the receiving namespace (its MIBs are
-- per namespace: only this spec's traffic is in them).
--
-- Two namespaces joined by a veth with checksum offloads off (ethtool -K
-- rx off tx off, so the receiver checks every checksum itself); a session
-- filtering on the pair's addresses and the three test ports:
--   - K SYNs with a wrong TCP checksum (hping3 -b) to a closed port ->
--     K x TCP_CSUM == TcpInCsumErrors' change;
--   - K SYNs to a port an nftables rule drops -> K x NETFILTER_DROP == the
--     rule's counter;
--   - K data segments of an established connection, entirely before the
--     receive window (a replay of data the receiver took and acknowledged)
--     -> K x TCP_OLD_SEQUENCE (6.1: TCP_INVALID_SEQUENCE) ==
--     TcpExtDelayedACKLost's change (the duplicate ACK each one draws),
--     and K beyond the window's right edge -> K x TCP_INVALID_SEQUENCE ==
--     TcpExtBeyondWindow's change where the kernel has that MIB (6.18);
--   - K SYNs to a fourth closed port -> the filter keeps them out:
--     nothing of it reported, matched == the sum of the three ports'.
-- And the loss accounting of drop records under a full ring, and the
-- drops map as a table (full: kept + evicted_drops == matched).
-- IPv4 (hping3 crafts IPv4 only).  Timestamps are off in the receiving
-- namespace, so that a crafted segment (without the option) is judged by
-- its sequence alone, not by PAWS.
local net = require "support.net"

local K = 6
local P_CSUM, P_NFT, P_OOW, P_OTHER = 5001, 5002, 5003, 5004

local function mib_delta(a, b)
	local d = {}
	for k, v in pairs(b) do
		if v ~= (a[k] or 0) then d[k] = v - (a[k] or 0) end
	end
	return d
end

-- "seq S, ack A" of the first segment in `tcpdump -S` text matching pat
local function seqs(text, pat)
	for line in text:gmatch("[^\n]+") do
		if line:find(pat) then
			return tonumber(line:match("seq (%d+)")), tonumber(line:match("ack (%d+)"))
		end
	end
end

-- K segments from the client namespace (hping3 exits 1 when none is
-- answered: what it says it sent is what counts)
local function hping(pair, args)
	local _, out = net.sh(("ip netns exec %s timeout %d hping3 -q -c %d -i u20000 %s %s 2>&1"):format(
		pair.client, net.scale(30), K, args, pair.server4))
	assert(out:find(K .. " packets transmitted", 1, true), out)
end

local function run(mode)
	local pair = net.netns_pair()
	local r = { records = {}, other = 0 }
	local cap, srv, cli, s, scoped
	r.server_ino = tonumber((net.must("stat -L -c %i /run/netns/" .. pair.server)))
	local ok, err = pcall(function()
		for _, x in ipairs{ { pair.server, pair.sdev }, { pair.client, pair.cdev } } do
			net.must(("ip netns exec %s ethtool -K %s rx off tx off"):format(x[1], x[2]))
		end
		net.must(("ip netns exec %s sysctl -qw net.ipv4.tcp_timestamps=0"):format(pair.server))
		net.must(("ip netns exec %s nft add table inet ti60"):format(pair.server))
		net.must(("ip netns exec %s nft add chain inet ti60 input '{ type filter hook input priority 0; }'"):format(
			pair.server))
		net.must(("ip netns exec %s nft add rule inet ti60 input tcp dport %d counter drop"):format(pair.server, P_NFT))
		-- not scoped to the namespace: a drop after a socket took the
		-- segment (the sequence checks) has no device any more, and 6.1 names
		-- no socket either (doc/modes.md, "Drops"); the filter's addresses are
		-- this pair's alone
		s = net.open{ mode = mode, drops = true,
			filter = { saddr = pair.client4, daddr = pair.server4, dport = { P_CSUM, P_NFT, P_OOW } } }
		r.status = s.probes["skb:kfree_skb"]
		-- and one scoped to the receiving namespace: a drop after a socket
		-- took the segment has no device; its netns is then rx_sk's where
		-- the tracepoint has one (6.11+), else unknown (doc/modes.md)
		scoped = net.open{ mode = mode, drops = true, netns = pair.server, filter = { dport = P_OOW } }
		r.scoped = 0
		scoped:on_drop(function(p)
			if p.netns == r.server_ino then r.scoped = r.scoped + 1 end
		end)
		s:on_drop(function(p)
			if p.daddr == pair.server4 and p.probe == "skb:kfree_skb" then
				local k = p.dport .. " " .. p.reason
				r.records[k] = (r.records[k] or 0) + 1
			else
				r.other = r.other + 1
			end
		end)
		cap = net.tcpdump{ iface = pair.sdev, netns = pair.server, filter = "tcp and dst host " .. pair.server4,
			snaplen = 96 }
		local ccap = net.tcpdump{ iface = pair.cdev, netns = pair.client, filter = "tcp port " .. P_OOW }
		local before = net.mibs(pair.server)

		hping(pair, "-S -b -p " .. P_CSUM)
		hping(pair, "-S -p " .. P_NFT)
		hping(pair, "-S -p " .. P_OTHER)

		-- an established connection with 100 bytes taken and acknowledged
		srv = net.spawn(("ip netns exec %s timeout %d nc -l %d"):format(pair.server, net.scale(60), P_OOW))
		net.wait_until(function()
			local _, out = pair:exec(pair.server, "ss -Htln sport = :" .. P_OOW)
			return out:find("LISTEN", 1, true)
		end, 10)
		cli = net.spawn(("ip netns exec %s sh -c '(printf %%100s x; sleep %d) | timeout %d nc %s %d'"):format(
			pair.client, net.scale(60), net.scale(60), pair.server4, P_OOW))
		net.wait_until(function()
			local _, out = pair:exec(pair.server, "ss -Htn state established sport = :" .. P_OOW)
			return out:find("ESTAB", 1, true) or out:find(pair.client4, 1, true)
		end, 10)
		net.sleep(net.scale(0.5)) -- the data and its ACK
		-- the client's SYN as the server saw it, the server's SYN-ACK as the
		-- client saw it (captures take incoming segments only)
		local cpkts = ccap:stop()
		assert(#cpkts >= 2, "no SYN-ACK captured")
		local _, text = net.sh("tcpdump -nn -S -r " .. net.q(cap.file) .. " 2>/dev/null")
		local _, ctext = net.sh("tcpdump -nn -S -r " .. net.q(ccap.file) .. " 2>/dev/null")
		local syn = seqs(text, "%." .. P_OOW .. ": Flags %[S%]")
		local synack = seqs(ctext, "Flags %[S%.%]")
		local sport = tonumber(text:match("IP [%d%.]+%.(%d+) > [%d%.]+%." .. P_OOW .. ": Flags %[S%]"))
		assert(syn and synack and sport, text .. ctext)
		-- entirely before the window: bytes 1..10 again, taken long ago
		hping(pair, ("-A -s %d -k -p %d -M %d -L %d -d 10"):format(sport, P_OOW, (syn + 1) % 2 ^ 32,
			(synack + 1) % 2 ^ 32))
		-- beyond its right edge: 1 GiB ahead
		hping(pair, ("-A -s %d -k -p %d -M %d -L %d -d 10"):format(sport, P_OOW,
			math.tointeger((syn + 101 + 2 ^ 30) % 2 ^ 32), (synack + 1) % 2 ^ 32))

		r.mib = mib_delta(before, net.mibs(pair.server))
		r.mib_names = {}
		for k in pairs(before) do r.mib_names[k] = true end
		local pkts = cap:stop()
		net.drain(s)
		net.drain(scoped)
		r.sent = {}
		for _, p in ipairs(pkts) do
			local k = p.dport == P_OOW and p.len == 10 and "oow" or p.dport
			r.sent[k] = (r.sent[k] or 0) + 1
		end
		local _, rules = pair:exec(pair.server, "nft list ruleset")
		r.nft = tonumber(rules:match("counter packets (%d+)"))
		r.stats = net.stats(s)
		r.map = {}
		for k, v in s:map("drops"):pairs() do
			assert(k.family == 4 and k.saddr == pair.client4, k.saddr)
			r.map[k.dport .. " " .. k.reason] = v.packets
		end
	end)
	if s then s:close() end
	if scoped then scoped:close() end
	for _, pid in ipairs{ srv or false, cli or false } do
		if pid then net.kill(pid, "KILL") end
	end
	pair:destroy()
	assert(ok, err)
	return r
end

-- The reason for a segment entirely before the window, and for one beyond
-- it, and the MIB that counts each: the duplicate ACK an old data segment
-- draws (tcp_send_dupack), and where the kernel has it (6.18; not 6.1,
-- 6.12) TcpExtBeyondWindow.  6.1's sequence check gives
-- TCP_INVALID_SEQUENCE to both (TCP_OLD_SEQUENCE came later).  Measured:
-- 6.18 host, 6.1-cloud and 6.12-rt guests.
local function oow_expected(r)
	local major, minor = net.must("uname -r"):match("^(%d+)%.(%d+)")
	local old = tonumber(major) * 100 + tonumber(minor) < 612 and "TCP_INVALID_SEQUENCE" or "TCP_OLD_SEQUENCE"
	return { old = old, old_mib = "TcpExtDelayedACKLost", beyond = "TCP_INVALID_SEQUENCE",
		beyond_mib = r.mib_names.TcpExtBeyondWindow and "TcpExtBeyondWindow" or nil }
end

-- The drops map as a table: SYNs to N closed ports on one fresh address
-- (one key each, reason x port x source), into tables of max_flows = 4
-- entries per CPU (one bucket): full, so entries are replaced, each
-- counted in evicted_drops; every entry holds one drop, so what the map
-- keeps plus what it evicted is every matched drop, exactly.  Then the
-- operations: lookup by the reason's name, delete, count, clear; a v6
-- key among them.
local function table_run(mode, n)
	local host, port = net.addr4(), net.port(n + 1)
	local s <close> = net.open{ mode = mode, drops = true, events = false, max_flows = 4,
		filter = { daddr = { host, "::1" }, dport = ("%d-%d"):format(port, port + n) } }
	for i = 0, n - 1 do assert(net.connect_closed(host, port + i), "not refused") end
	assert(net.connect_closed("::1", port + n), "not refused")
	net.drain(s)
	local r = { stats = net.stats(s), keys = {}, sum = 0 }
	local m = s:map("drops")
	for k, v in m:pairs() do
		r.keys[#r.keys + 1] = k
		r.sum = r.sum + v.packets
		assert(v.first_ts > 0 and v.last_ts == v.first_ts and v.bytes == 0, "one SYN per key")
	end
	r.count = m:count()
	local k = r.keys[1]
	r.by_name = m:lookup{ reason = k.reason, dport = k.dport, saddr = k.saddr }
	for _, name in ipairs(require("tcpinspect").drop_reasons()) do
		if name == k.reason then r.reason_known = true end
	end
	r.deleted = m:delete{ reason = k.reason, dport = k.dport, saddr = k.saddr }
	r.deleted_again = m:delete{ reason = k.reason, dport = k.dport, saddr = k.saddr }
	r.after_delete = m:count()
	r.bad = select(2, pcall(m.lookup, m, { reason = "NO_SUCH_REASON", dport = 1, saddr = host }))
	r.cleared = m:clear()
	r.after_clear = m:count()
	return r
end

-- Loss accounting of drop records: N SYNs to a closed port (hping3 -c,
-- paced) into a one-page ring that nobody reads until they are all sent:
-- the ring fills, and every matched drop is delivered or counted lost,
-- exactly; the reasons and the drops map count them all the same.
local function flood_run(mode, n)
	local host, port = net.addr4(), net.port()
	local s <close> = net.open{ mode = mode, drops = true, ring_size = 4096, wakeup = 1,
		filter = { daddr = host, dport = port } }
	local r = { calls = 0, kept = 0 }
	s:on_drop(function(p)
		if p.reason == "NO_SOCKET" and p.dport == port and p.daddr == host then r.calls = r.calls + 1 end
	end)
	local _, out = net.sh(("timeout %d hping3 -q -S -c %d -i %s -p %d %s 2>&1"):format(net.scale(60), n,
		net.IN_VM and "u2000" or "u100", port, host))
	r.sent = tonumber(out:match("(%d+) packets transmitted"))
	net.drain(s)
	r.stats = net.stats(s)
	for k, v in s:map("drops"):pairs() do
		if k.reason == "NO_SOCKET" and k.dport == port then r.kept = r.kept + v.packets end
	end
	return r
end

describe("#kernel drops, exactly", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] a full ring: every matched drop delivered or counted lost, exactly #anymode"):format(mode), function()
			local n = net.IN_VM and 600 or 3000
			local r = flood_run(mode, n)
			local d = r.stats.drops
			assert.are.equal(n, r.sent)
			assert.are.equal(n, d.matched)
			assert.are.equal(n, d.reasons.NO_SOCKET)
			assert.are.equal(n, r.kept)
			assert.are.equal(0, r.stats.evicted_drops)
			assert.are.equal(d.matched, d.delivered + d.lost)
			assert.is_true(d.lost > 0, "the ring never filled")
			assert.are.equal(d.delivered, r.calls)
			assert.are.equal(d.seen, d.filtered + d.matched)
			net.say("[%s] drops under a full ring: %d SYNs, %d matched = %d delivered + %d lost; map %d", mode, r.sent,
				d.matched, d.delivered, d.lost, r.kept)
		end)

		it(("[%s] the drops map: a full table evicts, kept + evicted == matched; lookup, delete, clear #anymode"):format(mode),
			function()
				local N = 12 -- more keys than 2 CPUs' 4 entries each hold
				local r = table_run(mode, N)
				local d = r.stats.drops
				assert.are.equal(N + 1, d.matched)
				assert.are.equal(N + 1, d.reasons.NO_SOCKET)
				assert.is_true(r.stats.evicted_drops >= N + 1 - 4 * net.ncpus(), r.stats.evicted_drops)
				assert.are.equal(d.matched, r.sum + r.stats.evicted_drops)
				assert.are.equal(#r.keys, r.count)
				assert.is_true(r.reason_known)
				assert.are.equal(1, r.by_name.packets)
				assert.is_true(r.deleted)
				assert.is_false(r.deleted_again)
				assert.are.equal(r.count - 1, r.after_delete)
				assert.matches("map key field 'reason'", r.bad)
				assert.is_true(r.cleared)
				assert.are.equal(0, r.after_clear)
				net.say("[%s] drops map: %d drops, %d kept, %d evicted (max_flows 4, %d CPUs)", mode, d.matched, r.sum,
					r.stats.evicted_drops, net.ncpus())
			end)


		it(("[%s] checksum, nftables, out of window, the filter: sent == reported == the kernel's counters"):format(mode),
			function()
				local r = run(mode)
				local want = oow_expected(r)
				assert.are.equal("attached (tp_btf)", r.status)
				-- what was sent, as the receiving veth saw it
				assert.are.equal(K, r.sent[P_CSUM])
				assert.are.equal(K, r.sent[P_NFT])
				assert.are.equal(K, r.sent[P_OTHER])
				assert.are.equal(2 * K, r.sent.oow)
				-- the kernel's own counters
				assert.are.equal(K, r.mib.TcpInCsumErrors)
				assert.are.equal(K, r.nft)
				assert.are.equal(K, r.mib[want.old_mib])
				if want.beyond_mib then assert.are.equal(K, r.mib[want.beyond_mib]) end
				-- each drop once, by its reason; nothing of the fourth port
				local records = {
					[P_CSUM .. " TCP_CSUM"] = K,
					[P_NFT .. " NETFILTER_DROP"] = K,
					[P_OOW .. " " .. want.old] = K,
				}
				records[P_OOW .. " " .. want.beyond] = (records[P_OOW .. " " .. want.beyond] or 0) + K
				assert.are.same(records, r.records)
				assert.are.equal(0, r.other)
				-- the counters, the reasons and the drops map say the same
				local d = r.stats.drops
				assert.are.equal(4 * K, d.matched)
				assert.are.equal(4 * K, d.delivered)
				assert.are.equal(0, d.lost)
				assert.are.equal(0, d.errors)
				assert.are.equal(d.seen, d.filtered + d.matched)
				local reasons = { TCP_CSUM = K, NETFILTER_DROP = K, [want.old] = K }
				reasons[want.beyond] = (reasons[want.beyond] or 0) + K
				assert.are.same(reasons, d.reasons)
				assert.are.same(records, r.map)
				assert.are.equal(0, r.stats.evicted_drops)
				-- scoped to the namespace: the sequence drops carry rx_sk's netns
				-- where the tracepoint has rx_sk, and none without it
				local rx = require("tcpinspect").features().sockets_drops
				assert.are.equal(rx and 2 * K or 0, r.scoped)
				net.say("[%s] scoped to the namespace: %d of %d sequence drops (rx_sk: %s)", mode, r.scoped, 2 * K,
					tostring(rx))
				net.say("[%s] drops exact: %d x TCP_CSUM == InCsumErrors +%d, %d x NETFILTER_DROP == nft counter %d, " ..
					"%d x %s == %s +%d, %d x %s%s; %d to port %d filtered out",
					mode, K, r.mib.TcpInCsumErrors, K, r.nft, K, want.old, want.old_mib, r.mib[want.old_mib], K,
					want.beyond, want.beyond_mib and (" == %s +%d"):format(want.beyond_mib, r.mib[want.beyond_mib]) or "",
					K, P_OTHER)
			end)
	end
end)
