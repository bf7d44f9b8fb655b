-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: `tcpinspect export` scraped by Debian's real prometheus.
--
-- Everything runs inside a network namespace made here (its own lo): the
-- exporter, prometheus, the traffic, the scrapers.  Other specs on a shared
-- machine count loopback traffic in the root namespace; nothing of theirs
-- reaches this one, and nothing of this one reaches them.
--
-- The exporter's command line is the ExecStart line of
-- examples/deploy/tcpinspect-export.service (with a mode, an interface and
-- a port filter added); prometheus runs examples/deploy/prometheus.yml with
-- a 1 s scrape interval.  On the host the mode is tc on the namespace's lo;
-- in the guest (TCPINSPECT_IN_VM, 6.12 only: tag cli) it is fentry.  The
-- folding and stalled-scraper specs exercise user-space code that is the
-- same in every mode: they run on the host only (hostonly), which keeps the
-- guest's time to the prometheus round trip (about 35 s under TCG).
local net = require "support.net"
local cli = require "support.cli"
local prom = require "support.prometheus"

local MODE = net.IN_VM and "fentry" or "tc"
local PROM_ADDR = "127.0.0.1:19090"
local CONN_PORT, SYN_PORT = 19101, 19102
local SYN_SRC = "127.0.0.9"
local N, M, DATALEN = 6, 40, 200

local function cleanups() return net.cleanups(finally) end

-- The unit's command line, as words, without the binary.
local function unit_args()
	local unit = assert(net.read_file(net.ROOT .. "/examples/deploy/tcpinspect-export.service"))
	local line = assert(unit:match("\nExecStart=([^\n]+)"), "no ExecStart in the unit")
	local words = {}
	for w in line:gmatch("%S+") do words[#words + 1] = w end
	assert.matches("/tcpinspect$", words[1])
	table.remove(words, 1)
	return words
end

local function listen_of(args)
	for i, a in ipairs(args) do
		if a == "--listen" then return args[i + 1] end
	end
	return "127.0.0.1:9464"
end

-- The exporter in ns: the unit's command line plus extra options.
local function start_export(ns, defer, extra)
	local args = unit_args()
	local mode_args = { "--mode", MODE }
	if MODE == "tc" then mode_args[#mode_args + 1] = "--dev" mode_args[#mode_args + 1] = "lo" end
	for _, list in ipairs { mode_args, extra or {} } do
		for _, a in ipairs(list) do args[#args + 1] = a end
	end
	local p = cli.start(args, { netns = ns })
	defer(function() p:kill() end)
	p:ready()
	return p, listen_of(args)
end

-- Debian's prometheus on the deploy config, 1 s scrapes.
local function start_prometheus(ns, defer, target)
	local cfg = assert(net.read_file(net.ROOT .. "/examples/deploy/prometheus.yml"))
	local n1, n2, n3
	cfg, n1 = cfg:gsub("scrape_interval: %d+s", "scrape_interval: 1s")
	cfg, n2 = cfg:gsub("scrape_timeout: %d+s", "scrape_timeout: 1s")
	cfg, n3 = cfg:gsub("'127%.0%.0%.1:9464'", "'" .. target .. "'")
	assert(n1 == 1 and n2 == 1 and n3 == 1, "examples/deploy/prometheus.yml changed shape:\n" .. cfg)
	local p = prom.start(ns, cfg, PROM_ADDR)
	defer(function() p:stop() end)
	return p
end

local function metrics_text(ns, listen)
	local code, body, secs = prom.get(ns, "http://" .. listen .. "/metrics")
	assert.are.equal(200, code, tostring(body))
	return body, secs
end

local function promtool_ok(text)
	local f = net.tmpfile(".prom")
	net.write_file(f, text)
	local ok, out = net.sh("promtool check metrics < " .. net.q(f))
	assert(ok, "promtool check metrics:\n" .. out .. "\n" .. text)
end

-- a listener on CONN_PORT in ns: an echo server in a child process
local function echo_server(ns, defer, port)
	local ch = net.session_child({ open = false, listen = { "127.0.0.1", port } }, { netns = ns })
	defer(function() ch:kill() end)
	ch:ready()
	return ch
end

local function hping(ns, src, port, count)
	net.must(("ip netns exec %s timeout %d hping3 -q -S -p %s -c %d -i u2000 -a %s 127.0.0.1 2>&1"):format(
		net.q(ns), net.scale(30), port, count, src))
end

describe("export #kernel #cli #export", function()
	it(("[%s] prometheus reads the port counter and the SYN counter that were sent"):format(MODE), function()
		local defer = cleanups()
		local ns = net.netns("ex")
		defer(function() ns:destroy() end)
		echo_server(ns.name, defer, CONN_PORT)
		local exp, listen = start_export(ns.name, defer, { "--dport", CONN_PORT .. "," .. SYN_PORT })
		local p = start_prometheus(ns.name, defer, listen)
		assert.are.equal(1, p:await('up{job="tcpinspect"}', 1))
		assert.are.equal(1, p:value(('tcpinspect_info{mode="%s"}'):format(MODE)))

		local cap = net.tcpdump { netns = ns.name, iface = "lo", filter = "tcp port " .. CONN_PORT }
		net.must("ip netns exec " .. ns.name .. " " ..
			net.lua_cmd(net.ROOT .. "/spec/support/client_child.lua", "127.0.0.1", CONN_PORT, N, DATALEN))
		local pkts = cap:stop()
		hping(ns.name, SYN_SRC, SYN_PORT, M)
		local to_port = net.count(pkts, function(x) return x.dport == CONN_PORT end)
		local syns = net.count(pkts, function(x) return x.dport == CONN_PORT and x.flags & 0x12 == 0x02 end)
		local bytes = 0
		for _, x in ipairs(pkts) do if x.dport == CONN_PORT then bytes = bytes + x.len end end
		assert.are.equal(N, syns)
		assert.are.equal(N * DATALEN, bytes)

		local checks = {
			{ ('tcpinspect_port_segments_total{dport="%d"}'):format(CONN_PORT), to_port },
			{ ('tcpinspect_port_bytes_total{dport="%d"}'):format(CONN_PORT), N * DATALEN },
			{ ('tcpinspect_port_segments_total{dport="%d"}'):format(SYN_PORT), M },
			{ ('tcpinspect_source_syns_total{src="%s"}'):format(SYN_SRC), M },
			{ 'tcpinspect_source_syns_total{src="127.0.0.1"}', N },
			{ "tcpinspect_matched_total", to_port + M },
			{ "tcpinspect_payload_bytes_count", to_port + M },
			{ "tcpinspect_payload_bytes_sum", N * DATALEN },
			{ 'tcpinspect_payload_bytes_bucket{le="0"}', to_port + M - N },
			-- connections (issue 22): the N conversations end by FIN (a second
			-- after it), each with its handshake; the M SYNs to the closed port
			-- are M SYN-only entries, which expire as idle (5 s)
			{ 'tcpinspect_connections_total{end="fin"}', N },
			{ 'tcpinspect_connections_total{end="idle"}', M },
			{ "tcpinspect_handshake_seconds_count", N },
			{ "tcpinspect_conns_opened_total", N + M },
			{ 'tcpinspect_handshake_seconds_bucket{le="+Inf"}', N },
		}
		local got = p:await_all(checks, net.scale(20))
		for _, e in ipairs(checks) do
			assert.are.equal(e[2], got[e[1]], e[1])
		end
		-- loopback handshakes: each well under 10 ms
		local hs = p:value("tcpinspect_handshake_seconds_sum")
		assert.is_true(hs > 0 and hs < N * 0.01, tostring(hs))
		-- the exposition itself passes promtool
		promtool_ok((metrics_text(ns.name, listen)))
		exp:terminate()
		local r = exp:wait()
		assert.are.equal(0, r.code, r.err)
		net.say("[%s] export -> prometheus: port %d segments=%d bytes=%d, src %s syns=%d, src 127.0.0.1 syns=%d; " ..
			"connections fin=%d idle=%d, handshakes %d (sum %.6f s)", MODE, CONN_PORT, to_port, N * DATALEN, SYN_SRC, M,
			N, N, M, N, hs)
	end)

	it(("[%s] --no-conns: no connection tracking, no connection metric"):format(MODE), function()
		local defer = cleanups()
		local ns = net.netns("nc")
		defer(function() ns:destroy() end)
		echo_server(ns.name, defer, CONN_PORT)
		local exp, listen = start_export(ns.name, defer, { "--dport", tostring(CONN_PORT), "--no-conns" })
		net.must("ip netns exec " .. ns.name .. " " ..
			net.lua_cmd(net.ROOT .. "/spec/support/client_child.lua", "127.0.0.1", CONN_PORT, 2, DATALEN))
		local text = metrics_text(ns.name, listen)
		assert.is_nil(text:find("tcpinspect_connections_total", 1, true), text)
		assert.is_nil(text:find("tcpinspect_handshake_seconds", 1, true), text)
		assert.is_nil(text:find("tcpinspect_conns_opened_total", 1, true), text) -- conns_*: with conns only
		assert.matches(('tcpinspect_port_bytes_total{dport="%d"} %d'):format(CONN_PORT, 2 * DATALEN), text)
		exp:terminate()
		assert.are.equal(0, exp:wait().code)
	end)

	it(("[%s] --max-series 3: at most 4 series per family, exact sums, no flapping #hostonly"):format(MODE), function()
		local defer = cleanups()
		local ns = net.netns("ms")
		defer(function() ns:destroy() end)
		local MAX = 3
		local _, listen = start_export(ns.name, defer, { "--dport", "19200-19299", "--max-series", tostring(MAX) })
		local p = start_prometheus(ns.name, defer, listen)
		assert.are.equal(1, p:await('up{job="tcpinspect"}', 1))
		-- 8 sources, SYN counts far enough apart that the top 3 are clear;
		-- each source sweeps ports 19200 up (hping3 -p ++19200)
		local counts = { 2, 4, 6, 8, 10, 14, 20, 30 }
		local total, ports = 0, 0
		for i, c in ipairs(counts) do
			hping(ns.name, "127.0.0." .. (20 + i), "++19200", c)
			total = total + c
			ports = math.max(ports, c)
		end
		-- prometheus sees every SYN, summed over the kept series and "other"
		assert.are.equal(total, p:await("sum(tcpinspect_source_syns_total)", total))
		assert.are.equal(total, p:await("sum(tcpinspect_port_segments_total)", total))
		assert.are.equal(#counts - MAX,
			p:await('tcpinspect_folded_values{metric="tcpinspect_source_syns_total"}', #counts - MAX))
		assert.are.equal(ports - MAX,
			p:await('tcpinspect_folded_values{metric="tcpinspect_port_segments_total"}', ports - MAX))
		-- five scrapes in a row: the same series, the same values
		local first
		for i = 1, 5 do
			local text = metrics_text(ns.name, listen)
			local values, names = prom.parse(text)
			for _, fam in ipairs { "tcpinspect_source_syns_total", "tcpinspect_port_segments_total",
				"tcpinspect_port_bytes_total" } do
				assert.is_true(#names[fam] <= MAX + 1, fam .. ": " .. #names[fam] .. " series")
			end
			local sum = 0
			for _, s in ipairs(names.tcpinspect_source_syns_total) do sum = sum + values[s] end
			assert.are.equal(total, sum)
			local set = table.concat(names.tcpinspect_source_syns_total, " ") .. " | " ..
				table.concat(names.tcpinspect_port_segments_total, " ")
			if i == 1 then first = set else assert.are.equal(first, set, "series changed at scrape " .. i) end
			if i == 1 then promtool_ok(text) end
			net.sleep(1)
		end
		-- the top sources are kept (30, 20, 14 SYNs: .28 .27 .26), the rest fold
		assert.matches('src="127.0.0.28"', first, 1, true)
		assert.matches('src="127.0.0.27"', first, 1, true)
		assert.matches('src="127.0.0.26"', first, 1, true)
		assert.matches('src="other"', first, 1, true)
		-- prometheus saw no other series in these scrapes (a flapping value
		-- would add a series to the window)
		assert.are.equal(MAX + 1, p:value("count(count_over_time(tcpinspect_source_syns_total[5s]))"))
		assert.are.equal(MAX + 1, p:value("count(count_over_time(tcpinspect_port_segments_total[5s]))"))
		net.say("[%s] --max-series %d: %d sources (%d SYNs), %d ports: %d series each, sums exact, stable",
			MODE, MAX, #counts, total, ports, MAX + 1)
	end)

	it(("[%s] a stalled and a slow scraper stop neither the events nor another scraper #hostonly"):format(MODE), function()
		local defer = cleanups()
		local ns = net.netns("st")
		defer(function() ns:destroy() end)
		local listen = "127.0.0.1:19465"
		-- a script counting SYNs from its packet events, served on --listen
		local script = net.tmpfile(".lua")
		net.write_file(script, [[
local syns = metrics.counter("spec_syn_events", { "dport" }, "SYN events seen by on_packet")
on_packet(function(p)
	if p.flags & SYN ~= 0 and p.flags & ACK == 0 then syns:inc(p.dport) end
end)
]])
		local args = { script, "--mode", MODE, "--dport", tostring(SYN_PORT), "--listen", listen }
		if MODE == "tc" then args[#args + 1] = "--dev" args[#args + 1] = "lo" end
		local sp = cli.start(args, { netns = ns.name })
		defer(function() sp:kill() end)
		sp:ready()
		-- the export command too, on its own port
		local _, elisten = start_export(ns.name, defer, { "--dport", tostring(SYN_PORT) })
		-- for each: a connection that sends nothing, and one that sends a
		-- byte a second; both bounded in time
		local stalled = {}
		for _, l in ipairs { listen, elisten } do
			local host, port = l:match("^(.*):(%d+)$")
			stalled[#stalled + 1] = net.spawn(("exec ip netns exec %s timeout 30 sh -c 'sleep 30 | nc %s %s'"):format(
				ns.name, host, port))
			stalled[#stalled + 1] = net.spawn(("exec ip netns exec %s timeout 30 sh -c " ..
				"'for i in $(seq 30); do printf G; sleep 1; done | nc %s %s'"):format(ns.name, host, port))
		end
		defer(function() for _, pid in ipairs(stalled) do net.kill(pid, "KILL") end end)
		net.wait_until(function()
			local _, out = ns:exec("ss -Htn state established")
			local n = 0
			for _ in out:gmatch("19465") do n = n + 1 end
			return n >= 4 -- both ends of two connections
		end, 5)
		hping(ns.name, SYN_SRC, SYN_PORT, M)
		-- another scraper gets its answer at once, with every event counted
		local want = ('spec_syn_events_total{dport="%d"} %d'):format(SYN_PORT, M)
		local text, secs
		net.wait_until(function()
			text, secs = metrics_text(ns.name, listen)
			return text:find(want, 1, true)
		end, 10, 0.2)
		assert.matches(want, text, 1, true)
		-- a scraper blocked behind a stalled one would wait for its 5 s deadline
		local limit = net.IN_VM and 2.5 or 1
		assert.is_true(secs < limit, ("scrape took %.3f s"):format(secs))
		promtool_ok(text)
		local etext, esecs = metrics_text(ns.name, elisten)
		assert.matches(('tcpinspect_source_syns_total{src="%s"} %d'):format(SYN_SRC, M), etext, 1, true)
		assert.is_true(esecs < limit, ("export scrape took %.3f s"):format(esecs))
		-- and the stalled connections are closed by the server at its
		-- deadline (5 s), long before their own 30 s
		local function open_conns()
			local _, out = ns:exec(("ss -Htn state established '( sport = :%s or sport = :%s )'"):format(
				listen:match("%d+$"), elisten:match("%d+$")))
			return select(2, out:gsub("\n", "\n"))
		end
		assert.is_truthy(net.wait_until(function() return open_conns() == 0 end, 12),
			"stalled connections still open after 12 s")
		-- bad requests get 4xx, and the script still serves
		local code = prom.get(ns.name, "http://" .. listen .. "/nope")
		assert.are.equal(404, code)
		sp:interrupt()
		local r = sp:wait()
		assert.are.equal(0, r.code, r.err)
		net.say("[%s] stalled + slow scrapers: %d SYN events counted, a second scrape took %.3f s (export %.3f s)",
			MODE, M, secs, esecs)
	end)

	it(("[%s] --max-per-source 2: a third idle client from one address closes the first #hostonly"):format(MODE),
		function()
		local defer = cleanups()
		local ns = net.netns("ps")
		defer(function() ns:destroy() end)
		local _, listen = start_export(ns.name, defer, { "--max-per-source", "2" })
		local host, port = listen:match("^(.*):(%d+)$")
		local function count(filter)
			local _, out = ns:exec(("ss -Htn state established '( %s = :%s )'"):format(filter, port))
			return select(2, out:gsub("\n", "\n"))
		end
		-- the server's side of its established connections
		local function served() return count("sport") end
		local idle = {}
		defer(function() for _, pid in ipairs(idle) do net.kill(pid, "KILL") end end)
		for i = 1, 3 do
			idle[i] = net.spawn(("exec ip netns exec %s timeout 20 sh -c 'sleep 20 | nc %s %s'"):format(
				ns.name, host, port))
			-- (a connection is in the table once the server's side is established)
			assert.is_truthy(net.wait_until(function() return served() == math.min(i, 2) end, 5),
				("after client %d: %d served"):format(i, served()))
			net.sleep(0.3) -- accepted by the loop (it steps every 0.25 s at most)
		end
		-- the server closed one: two established on its side and on the clients'
		-- (the first client's is closing), all three nc processes still waiting
		net.sleep(0.5)
		assert.are.equal(2, served())
		assert.are.equal(2, count("dport"))
		for i = 1, 3 do assert.is_true(net.alive(idle[i]), "nc " .. i) end
		local text, secs = metrics_text(ns.name, listen)
		assert.matches("tcpinspect_seen_total", text, 1, true)
		net.say("[%s] --max-per-source 2: 3 idle clients -> 2 open, the first closed; a scrape took %.3f s", MODE, secs)
	end)

	it("[tc] an interface named with invalid UTF-8 (a veth in a netns): promtool accepts the exposition #hostonly",
		function()
		local defer = cleanups()
		local ns = net.netns("u8")
		defer(function() ns:destroy() end)
		-- Linux takes any byte but '/', ':' and blanks in a name: a stray
		-- 0xff, and 0xc3 (a two-byte lead) before an ASCII 'x'
		local dev = "v\xff\xc3x"
		net.must(("ip -n %s link add %s type veth peer name %s"):format(ns.name, net.q(dev), "u8peer"))
		net.must(("ip -n %s link set %s up"):format(ns.name, net.q(dev)))
		net.must(("ip -n %s link set u8peer up"):format(ns.name))
		local listen = "127.0.0.1:19467"
		local p = cli.start({ "export", "--mode", "tc", "--dev", dev .. ",lo", "--listen", listen,
			"--duration", "30" }, { netns = ns.name })
		defer(function() p:kill() end)
		p:ready()
		local text = metrics_text(ns.name, listen)
		promtool_ok(text)
		assert.is_truthy(utf8.len(text), "the exposition is valid UTF-8")
		-- the probe's label: the name with U+FFFD for each byte that starts
		-- no valid sequence
		local want = 'probe="tc/ingress:v\u{FFFD}\u{FFFD}x"'
		assert.matches(want, text, 1, true)
		assert.matches('probe="tc/ingress:lo"', text, 1, true)
		p:terminate()
		assert.are.equal(0, p:wait().code)
		net.say("[tc] export --dev 'v\\xff\\xc3x': %s, promtool check metrics passes", want)
	end)

	it(("[%s] examples/syn_flood.lua --listen: Prometheus text with one alert per ALERT line #hostonly"):format(MODE),
		function()
		local defer = cleanups()
		local ns = net.netns("sf")
		defer(function() ns:destroy() end)
		local listen = "127.0.0.1:19466"
		local args = { net.ROOT .. "/examples/syn_flood.lua", "--mode", MODE, "--duration", "20",
			"--threshold", "30", "--window", "1", "--listen", listen }
		if MODE == "tc" then args[#args + 1] = "--dev" args[#args + 1] = "lo" end
		local sp = cli.start(args, { netns = ns.name })
		defer(function() sp:kill() end)
		sp:ready()
		hping(ns.name, SYN_SRC, SYN_PORT, 300)
		-- wait until a window passed with no new alert, then compare
		local alerts
		net.wait_until(function()
			local n = #cli.grep(sp:stdout(), "ALERT syn-flood")
			if n > 0 and n == alerts then return true end
			alerts = n
			net.sleep(1.2)
		end, 15)
		assert.is_true(alerts >= 1, sp:stdout())
		local text = metrics_text(ns.name, listen)
		promtool_ok(text)
		assert.matches(('syn_flood_alerts_total{src="%s"} %d\n'):format(SYN_SRC, alerts), text, 1, true)
		sp:interrupt()
		assert.are.equal(0, sp:wait().code)
		net.say("[%s] syn_flood.lua --listen: %d ALERT lines = syn_flood_alerts_total", MODE, alerts)
	end)
end)
