-- SPDX-License-Identifier: GPL-2.0-only
-- The CLI's drops (issue 21, item 3), live: `tcpinspect drops`, `watch
-- --drops`, `top --by reason` and `export`'s tcpinspect_drops_total, each
-- a command line run here against N SYNs to a closed port on a fresh
-- 127.X.Y.Z, in every mode that must work (host: tc, cgroup; the guests:
-- all four).  Exact: the drops table's NO_SOCKET x port row, the DROP
-- lines, the reason's row and the exporter's counter each equal N, the SYNs
-- tcpdump saw; M SYNs to the next port (closed too) are kept out by the
-- filter, exactly.  `export --no-drops` loads no drop hook and serves no
-- drop metric.
local net = require "support.net"
local cli = require "support.cli"
local dkjson = require "dkjson"
local http = require "socket.http"

local N, M = 5, 3

local function cleanups() return net.cleanups(finally) end

-- The command line for mode: tc attaches to lo only.
local function mode_args(mode, list)
	local a = {}
	for _, x in ipairs(list) do a[#a + 1] = x end
	a[#a + 1] = "--mode"
	a[#a + 1] = mode
	if mode == "tc" then
		a[#a + 1] = "--dev"
		a[#a + 1] = "lo"
	end
	return a
end

-- n SYNs to host:port and m to host:port+1 (both closed), under tcpdump:
-- { SYNs tcpdump saw to port, to port + 1 }
local function refused(host, port, n, m)
	local cap = net.tcpdump { filter = ("tcp and dst host %s and (dst port %d or dst port %d)"):format(host, port,
		port + 1) }
	for _ = 1, n do assert(net.connect_closed(host, port), "not refused") end
	for _ = 1, m do assert(net.connect_closed(host, port + 1), "not refused") end
	local pkts = cap:stop()
	local function syns_to(dport)
		return net.count(pkts, function(p) return p.dport == dport and p.flags & 0x12 == 0x02 end)
	end
	return { syns_to(port), syns_to(port + 1) }
end

-- Start a command filtered to host and port (its drops and nothing else
-- of this machine), wait until attached.
local function start(mode, words, host, port, defer)
	local a = mode_args(mode, words)
	for _, x in ipairs { "--daddr", host, "--dport", tostring(port) } do a[#a + 1] = x end
	local p = cli.start(a)
	defer(function() p:kill() end)
	return p:ready(net.scale(20))
end

-- Let the kernel's counters and the ring settle, then stop with SIGINT.
-- A command whose output is the kernel's maps and counters (drops, top --by
-- reason, export) waits less (MAPS): the drop hook counted each drop before
-- the sender's connect() returned; what comes through the ring (watch, top
-- --by process) needs its reader's polls.
local MAPS = net.scale(0.1)
local function finish(p, settle)
	net.sleep(settle or net.scale(0.5))
	p:interrupt()
	local r = p:wait(net.scale(30))
	assert.are.equal(0, r.code, r.err)
	return r
end

local function last_json(out)
	local last
	for _, l in ipairs(cli.lines(out)) do last = l end
	assert.is_string(last, "no output")
	return assert(dkjson.decode(last), last)
end

describe("#kernel cli drops", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] drops: N SYNs to a closed port -> the NO_SOCKET x port row == N, the other port filtered out #anymode #cli"):format(
			mode), function()
			local defer = cleanups()
			local host, port = net.addr4(), net.port(2)
			local p = start(mode, { "drops", "--json", "--interval", "0.2" }, host, port, defer)
			local syns = refused(host, port, N, M)
			local r = finish(p, MAPS)
			assert.are.same({ N, M }, syns)
			local v = last_json(r.out)
			assert.are.equal("drops", v.type)
			assert.is_true(v.final)
			-- one row: NO_SOCKET x port x the client's address, N packets
			assert.are.equal(1, #v.drops, r.out)
			local row = v.drops[1]
			assert.are.same({ "NO_SOCKET", port, 4, N }, { row.reason, row.dport, row.family, row.packets })
			assert.matches("^127%.", row.saddr)
			assert.are.equal(1, #v.reasons, r.out)
			assert.are.same({ "NO_SOCKET", N }, { v.reasons[1].reason, v.reasons[1].packets })
			-- the session's own drop counters agree, nothing lost
			assert.are.equal(N, v.stats.drops.matched)
			assert.are.equal(0, v.stats.drops.lost)
			assert.are.same({ NO_SOCKET = N }, v.stats.drops.reasons)
		end)

		it(("[%s] drops --netns NS with an expression: exactly that namespace's drops to the port #anymode #cli"):format(mode),
			function()
				local defer = cleanups()
				local ns = net.netns("cdrop")
				defer(function() ns:destroy() end)
				local port = net.port(2)
				local p = cli.start { "drops", "--mode", mode, "--netns", ns.name, "--json", "--interval", "0.2",
					("tcp dst port %d"):format(port) }
				defer(function() p:kill() end)
				p:ready(net.scale(20))
				local function refused_in_ns(dport)
					local _, out = ns:exec(("timeout %d bash -c 'echo > /dev/tcp/127.0.0.1/%d' 2>&1"):format(net.scale(2),
						dport))
					assert.truthy(out:find("refused", 1, true), out)
				end
				for _ = 1, N do refused_in_ns(port) end
				for _ = 1, M do refused_in_ns(port + 1) end -- the expression keeps these out
				for _ = 1, M do assert.is_true(net.connect_closed(net.addr4(), port)) end -- another namespace
				local v = last_json(finish(p, MAPS).out)
				assert.are.equal(1, #v.drops)
				local row = v.drops[1]
				assert.are.same({ "NO_SOCKET", port, "127.0.0.1", N }, { row.reason, row.dport, row.saddr, row.packets })
				-- the namespace's N + M seen, M filtered; the host's M not seen
				local d = v.stats.drops
				assert.are.same({ N + M, M, N }, { d.seen, d.filtered, d.matched })
			end)

		it(("[%s] drops --netns NS: a full accept queue's refusals, TCP_LISTEN_OVERFLOW == ListenDrops #anymode #cli"):format(mode),
			function()
				local defer = cleanups()
				local ns = net.netns("cov")
				defer(function() ns:destroy() end)
				local port = net.port(1)
				local p = cli.start { "drops", "--mode", mode, "--netns", ns.name, "--json", "--interval", "0.2",
					"--dport", tostring(port) }
				defer(function() p:kill() end)
				p:ready(net.scale(20))
				local before = net.mibs(ns.name).TcpExtListenDrops
				local ok, out = ns:exec(("timeout %d /usr/bin/python3 %s/spec/support/listeners.py overflow 127.0.0.1 %d 4")
					:format(net.scale(30), net.ROOT, port))
				assert(ok and out:find("done"), out)
				local delta = net.mibs(ns.name).TcpExtListenDrops - before
				local v = last_json(finish(p, MAPS).out)
				local got = 0
				for _, row in ipairs(v.drops) do
					assert.are.same({ "TCP_LISTEN_OVERFLOW", port }, { row.reason, row.dport })
					got = got + row.packets
				end
				net.say("[%s] drops: ListenDrops +%d, TCP_LISTEN_OVERFLOW rows %d", mode, delta, got)
				assert.is_true(delta > 0, "no listen drop happened")
				assert.are.equal(delta, got)
			end)

		it(("[%s] drops (text) and top --by reason: the reason's row and the port's row == N #anymode #cli"):format(mode), function()
			local defer = cleanups()
			local host, port = net.addr4(), net.port(2)
			local p1 = start(mode, { "drops" }, host, port, defer)
			local p2 = start(mode, { "top", "--by", "reason" }, host, port, defer)
			local syns = refused(host, port, N, M)
			local r1, r2 = finish(p1, MAPS), finish(p2, MAPS)
			assert.are.same({ N, M }, syns)
			local final = r1.out:match(".*(tcpinspect drops %(final%).*)$")
			assert.is_string(final, r1.out)
			assert.matches("\nNO_SOCKET +" .. N .. " ", final)
			assert.matches("\nNO_SOCKET +" .. port .. " +127%.[%d.]+ +" .. N .. " ", final)
			assert.is_nil(final:find(" " .. (port + 1) .. " ", 1, true), final)
			final = r2.out:match(".*(tcpinspect top %-%-by reason %(final%).*)$")
			assert.is_string(final, r2.out)
			assert.matches("\nNO_SOCKET +" .. N .. " ", final)
		end)

		it(("[%s] watch --drops prints N DROP lines"):format(mode), function()
			local defer = cleanups()
			local host, port = net.addr4(), net.port(2)
			local p = start(mode, { "watch", "--drops" }, host, port, defer)
			local syns = refused(host, port, N, M)
			local r = finish(p)
			assert.are.same({ N, M }, syns)
			local drops, segments = 0, 0
			for _, l in ipairs(cli.lines(r.out)) do
				if l:find(" DROP ", 1, true) then
					assert.matches(("> %s%%.%d: Flags %%[S%%], .* length 0 DROP NO_SOCKET %%(tcp_v4_rcv%%)$"):format(
						host:gsub("%.", "%%."), port), l)
					drops = drops + 1
				else
					assert.matches(("> %s%%.%d: Flags %%[S%%]"):format(host:gsub("%.", "%%."), port), l)
					segments = segments + 1
				end
			end
			assert.are.equal(N, drops, r.out)
			-- every mode's receive hook sees the N SYNs arrive too, except
			-- cgroup's: no socket takes them
			assert.are.equal(mode == "cgroup" and 0 or N, segments, r.out)
			assert.matches(("%d packets printed"):format(N + segments), r.err)
		end)

		it(("[%s] watch --drops --json: N lines with the reason and the kernel function #anymode #cli"):format(mode), function()
			local defer = cleanups()
			local host, port = net.addr4(), net.port(2)
			local p = start(mode, { "watch", "--drops", "--json" }, host, port, defer)
			refused(host, port, N, M)
			local r = finish(p)
			local drops = 0
			for _, l in ipairs(cli.lines(r.out)) do
				local v = assert(dkjson.decode(l), l)
				assert.are.equal(port, v.dport)
				if v.reason then
					assert.are.same({ "NO_SOCKET", "tcp_v4_rcv", "skb:kfree_skb" }, { v.reason, v.location, v.probe })
					drops = drops + 1
				end
			end
			assert.are.equal(N, drops, r.out)
		end)

		it(("[%s] top --by process: the listener's process owns the connections' segments, all counted"):format(mode),
			function()
				local defer = cleanups()
				local host, port = net.addr4(), net.port()
				local srv = net.server(host, port)
				defer(function() srv:close() end)
				local p = start(mode, { "top", "--by", "process", "--json", "--interval", "0.2" }, host, port, defer)
				local cap = net.tcpdump { filter = ("tcp and dst host %s and dst port %d"):format(host, port) }
				local K = 3
				net.conversations(srv, host, port, K, { data = "hello" })
				local segs = #cap:stop()
				local r = finish(p)
				local v = last_json(r.out)
				assert.are.same({ "top", "process", true }, { v.type, v.by, v.final })
				local comm = net.read_file("/proc/self/comm"):match("[^\n]+")
				local total, mine = 0, nil
				for _, row in ipairs(v.processes) do
					total = total + row.packets
					if row.pid == net.getpid() then mine = row end
				end
				-- every segment tcpdump saw to the port is in one row or another
				-- (pid nil: no socket the mode names), each delivered
				assert.are.equal(segs, total, r.out)
				assert.are.equal(segs, v.stats.matched, r.out)
				-- a row with a pid is this process's: it listens and accepts
				for _, row in ipairs(v.processes) do
					if row.pid then assert.are.same({ net.getpid(), comm }, { row.pid, row.comm }) end
				end
				-- every mode names the listener for the SYNs (tc: the lookup;
				-- cgroup: skb->sk; fentry/kprobe: sk_filter_trim_cap's socket,
				-- doc/modes.md): at least the K SYNs are this process's
				assert.is_table(mine, r.out)
				assert.is_true(mine.packets >= K, r.out)
			end)

		it(("[%s] export: tcpinspect_drops_total{reason=\"NO_SOCKET\"} == N; --no-drops: none #anymode #cli"):format(mode), function()
			local defer = cleanups()
			local host, port = net.addr4(), net.port(2)
			local lport = net.port(2)
			local p = start(mode, { "export", "--listen", "127.0.0.1:" .. lport }, host, port, defer)
			local q = start(mode, { "export", "--no-drops", "--listen", "127.0.0.1:" .. (lport + 1) }, host, port, defer)
			local syns = refused(host, port, N, M)
			assert.are.same({ N, M }, syns)
			net.sleep(net.scale(0.3))
			local body, code = http.request(("http://127.0.0.1:%d/metrics"):format(lport))
			assert.are.equal(200, code, body)
			local line = body:match('\ntcpinspect_drops_total{reason="NO_SOCKET"} (%d+)\n')
			assert.are.equal(tostring(N), line, body)
			local n = 0
			for _ in body:gmatch("\ntcpinspect_drops_total{") do n = n + 1 end
			assert.are.equal(1, n, body)
			-- per port, from the drops map: the one port, N
			local series = {}
			for l, v in body:gmatch('\n(tcpinspect_port_drops_total{[^}]*}) (%d+)') do series[l] = tonumber(v) end
			assert.are.same({ [('tcpinspect_port_drops_total{reason="NO_SOCKET",dport="%d"}'):format(port)] = N }, series)
			assert.matches('tcpinspect_probe_info{probe="skb:kfree_skb",status="attached %(', body)
			-- --no-drops: no drop hook, no drop metric (its segments still counted)
			local body2, code2 = http.request(("http://127.0.0.1:%d/metrics"):format(lport + 1))
			assert.are.equal(200, code2, body2)
			assert.is_nil(body2:find("tcpinspect_drops_total", 1, true), body2)
			assert.is_nil(body2:find("skb:kfree_skb", 1, true), body2)
			finish(p, MAPS)
			finish(q, MAPS)
		end)
	end
end)

-- Graceful absence: without CAP_PERFMON the drop hook cannot load.  The
-- commands that show only drops end (exit 1) saying why; watch --drops and
-- export go on without drops, their ready line saying why.
describe("#kernel cli drops without CAP_PERFMON", function()
	local WRAP = "setpriv --bounding-set=-all,+bpf,+net_admin"
	local WHY = "not attached: the drop hook (skb:kfree_skb) needs CAP_PERFMON (or CAP_SYS_ADMIN); run as root"
	for _, mode in ipairs(net.modes()) do
		if mode == "tc" or mode == "cgroup" then
			it(("[%s] drops and top --by reason exit 1 saying why; watch --drops and export go on without drops"):format(mode),
				function()
					local defer = cleanups()
					local host, port = net.addr4(), net.port(2)
					for _, words in ipairs { { "drops" }, { "top", "--by", "reason" } } do
						local r = cli.start(mode_args(mode, words), { wrap = WRAP }):wait(net.scale(30))
						assert.are.equal(1, r.code, r.err)
						assert.are.equal("", r.out)
						local want = ("tcpinspect: %s: no drops here: %s\n"):format(table.concat(words, " "), WHY)
						assert.are.equal(want, r.err:sub(-#want))
					end
					local a = mode_args(mode, { "watch", "--drops", "--daddr", host, "--dport", tostring(port) })
					local p = cli.start(a, { wrap = WRAP })
					defer(function() p:kill() end)
					p:ready(net.scale(20))
					assert.truthy(p:stderr():find("; skb:kfree_skb no drops: " .. WHY .. "); Ctrl-C to stop", 1, true),
						p:stderr())
					refused(host, port, N, 0)
					local r = finish(p)
					local lines = cli.lines(r.out)
					-- the segments, no drop (cgroup sees no segment no socket takes)
					assert.are.equal(mode == "cgroup" and 0 or N, #lines, r.out)
					assert.is_nil(r.out:find(" DROP ", 1, true), r.out)
					-- export: serves the rest, no drop metric
					local lport = net.port()
					local e = cli.start(mode_args(mode, { "export", "--listen", "127.0.0.1:" .. lport }), { wrap = WRAP })
					defer(function() e:kill() end)
					e:ready(net.scale(20))
					assert.truthy(e:stderr():find("; skb:kfree_skb no drops: " .. WHY .. "); serving", 1, true),
						e:stderr())
					local body, code = http.request(("http://127.0.0.1:%d/metrics"):format(lport))
					assert.are.equal(200, code, body)
					assert.matches("\ntcpinspect_seen_total %d+\n", body)
					assert.is_nil(body:find("tcpinspect_drops_total", 1, true), body)
					finish(e, MAPS)
				end)
		end
	end
end)
