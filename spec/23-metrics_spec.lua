-- SPDX-License-Identifier: GPL-2.0-only
-- tcpinspect.metrics (capped families, stable folding, the text format) and
-- tcpinspect.exporter's HTTP side, without a kernel: a fake clock for the
-- folding, real sockets on 127.0.0.1 for the server, Debian's promtool for
-- the format.
local metrics = require "tcpinspect.metrics"
local exporter = require "tcpinspect.exporter"
local script = require "tcpinspect.script"
local socket = require "socket"
local net = require "support.net"
local prom = require "support.prometheus"
local cli = require "support.cli"

local function promtool_ok(text)
	local f = net.tmpfile(".prom")
	net.write_file(f, text)
	local ok, out = net.sh("promtool check metrics < " .. net.q(f))
	assert(ok, "promtool check metrics:\n" .. out .. "\n" .. text)
end

local function clocked(opts)
	local t = { now = 0 }
	opts = opts or {}
	opts.clock = function() return t.now end
	return metrics.registry(opts), t
end

-- series of one family in a render: list of "name{labels}" and the sum
local function family(text, name)
	local values, names = prom.parse(text)
	local list, sum = names[name] or {}, 0
	for _, s in ipairs(list) do sum = sum + values[s] end
	return list, sum, values
end

describe("tcpinspect.metrics", function()
	it("renders counters, gauges and histograms in the text format promtool accepts", function()
		local reg = clocked()
		local c = reg:counter("alerts", { "src" }, "Alerts raised.")
		local g = reg:gauge("open_conns", { "port", "state" }, { help = "Open connections." })
		local h = reg:histogram("rtt_seconds", { "dst" }, { buckets = { 0.01, 0.1, 1 } })
		local plain = reg:counter("events_total")
		c:inc("10.0.0.1")
		c:inc({ src = "10.0.0.2" }, 2)
		g:set({ "80", 'we"ird\\' }, 3)
		g:inc({ port = "80", state = "x" }, 2)
		g:dec({ port = "80", state = "x" })
		h:observe("a", 0.005)
		h:observe("a", 0.5, 3)
		h:observe("b", 7)
		plain:inc()
		plain:inc(41)
		local text = reg:render()
		promtool_ok(text)
		assert.matches("# TYPE alerts_total counter\n", text, 1, true)
		assert.matches('alerts_total{src="10.0.0.2"} 2\n', text, 1, true)
		assert.matches('open_conns{port="80",state="we\\"ird\\\\"} 3\n', text, 1, true)
		assert.matches('open_conns{port="80",state="x"} 1\n', text, 1, true)
		assert.matches('rtt_seconds_bucket{dst="a",le="0.01"} 1\n', text, 1, true)
		assert.matches('rtt_seconds_bucket{dst="a",le="0.1"} 1\n', text, 1, true)
		assert.matches('rtt_seconds_bucket{dst="a",le="1"} 4\n', text, 1, true)
		assert.matches('rtt_seconds_bucket{dst="a",le="+Inf"} 4\n', text, 1, true)
		assert.matches('rtt_seconds_sum{dst="a"} 1.505\n', text, 1, true)
		assert.matches('rtt_seconds_count{dst="b"} 1\n', text, 1, true)
		assert.matches("\nevents_total 42\n", text, 1, true)
		assert.matches('tcpinspect_folded_values{metric="alerts_total"} 0\n', text, 1, true)
	end)

	it("refuses bad names, labels and amounts", function()
		local reg = clocked()
		assert.has_error(function() reg:counter("bad-name") end)
		assert.has_error(function() reg:counter("x", { "__x" }) end)
		assert.has_error(function() reg:histogram("h", { "le" }) end)
		assert.has_error(function() reg:histogram("h2", nil, { buckets = { 1, 1 } }) end)
		local c = reg:counter("c", { "a", "b" })
		assert.has_error(function() c:inc("only-one") end)
		assert.has_error(function() c:inc({ a = 1 }) end)
		assert.has_error(function() c:inc({ a = 1, b = 2 }, -1) end)
		assert.has_error(function() reg:gauge("c_total") end) -- already a counter
		assert.are.equal(c, reg:counter("c_total", { "a", "b" }))
	end)

	it("caps a family at N series plus 'other', with exact sums and the folded count", function()
		local reg = clocked { max_series = 3 }
		local c = reg:counter("syns", { "src" })
		local g = reg:gauge("level", { "k" })
		local h = reg:histogram("len", { "k" }, { buckets = { 10, 100 } })
		local total = 0
		for i = 1, 50 do
			c:inc("10.0.0." .. i, i)
			g:set("k" .. i, i)
			h:observe("k" .. i, i * 3)
			total = total + i
		end
		local text = reg:render()
		promtool_ok(text)
		local list, sum = family(text, "syns_total")
		assert.are.equal(4, #list)
		assert.are.equal(total, sum)
		list, sum = family(text, "level")
		assert.are.equal(4, #list)
		assert.are.equal(total, sum)
		list = family(text, "len_count")
		assert.are.equal(4, #list)
		local _, hsum = family(text, "len_count")
		assert.are.equal(50, hsum)
		assert.matches('syns_total{src="other"}', text, 1, true)
		assert.matches('tcpinspect_folded_values{metric="syns_total"} 47\n', text, 1, true)
		assert.matches('tcpinspect_max_series{metric="syns_total"} 3\n', text, 1, true)
		-- the gauge keeps the largest values
		for _, k in ipairs { "k48", "k49", "k50" } do assert.matches('level{k="' .. k .. '"}', text, 1, true) end
	end)

	it("keeps the top N by rate, stable while rates hold, counters monotonic through changes", function()
		local reg, t = clocked { max_series = 2 }
		local c = reg:counter("req", { "k" })
		local prev = {}
		local function scrape()
			local text = reg:render()
			local list, sum, values = family(text, "req_total")
			assert.is_true(#list <= 3)
			-- every series that stays is monotonic; "other" never goes down
			for _, s in ipairs(list) do
				if prev[s] then assert.is_true(values[s] >= prev[s], s .. " went down") end
			end
			prev = values
			return table.concat(list, " "), sum
		end
		local total = 0
		local function tick(rates)
			t.now = t.now + 1
			for k, n in pairs(rates) do
				c:inc(k, n)
				total = total + n
			end
		end
		-- a and b arrive first, c slightly faster than b: no flapping
		tick { a = 100, b = 50 }
		scrape()
		tick { a = 100, b = 50, c = 55 }
		local set = scrape()
		assert.are.equal('req_total{k="a"} req_total{k="b"} req_total{k="other"}', set)
		for _ = 1, 30 do
			tick { a = 100, b = 50, c = 55 }
			local s, sum = scrape()
			assert.are.equal(set, s)
			assert.are.equal(total, sum)
		end
		-- alternating bursts of b and c with the same mean: still no change
		for i = 1, 20 do
			tick(i % 2 == 0 and { a = 100, b = 80, c = 30 } or { a = 100, b = 20, c = 80 })
			local s, sum = scrape()
			assert.are.equal(set, s)
			assert.are.equal(total, sum)
		end
		-- d arrives at 4x b's rate: it takes b's place, once
		local changes, last = 0, set
		for _ = 1, 60 do
			tick { a = 100, b = 50, c = 50, d = 200 }
			local s, sum = scrape()
			assert.are.equal(total, sum)
			if s ~= last then changes, last = changes + 1, s end
		end
		assert.are.equal(1, changes)
		assert.are.equal('req_total{k="a"} req_total{k="d"} req_total{k="other"}', last)
	end)

	it("feeds counters from absolute totals (kernel maps) and follows a leader's kept set", function()
		local reg, t = clocked { max_series = 2 }
		local segs = reg:counter("segs", { "port" })
		local bytes = reg:counter("bytes", { "port" }, { follow = segs })
		for round = 1, 3 do
			t.now = round
			for p = 1, 5 do
				segs:set_total(p, p * 10 * round)
				bytes:set_total(p, p * 1000 * round)
			end
			local text = reg:render()
			local sl, ss = family(text, "segs_total")
			local bl, bs = family(text, "bytes_total")
			assert.are.equal(3, #sl)
			assert.are.equal(3, #bl)
			assert.are.equal(150 * round, ss)
			assert.are.equal(15000 * round, bs)
			assert.are.same((table.concat(sl, " "):gsub("segs", "x")), (table.concat(bl, " "):gsub("bytes", "x")))
		end
	end)

	it("replaces invalid UTF-8 in label values with U+FFFD: promtool accepts the exposition", function()
		local reg = clocked()
		local g = reg:gauge("iface_up", { "dev" }, "Interfaces.")
		local c = reg:counter("hits", { "dev", "src" }, "Hits.")
		-- a stray byte, a truncated sequence, an overlong '/', a surrogate,
		-- a code point past U+10FFFF, and valid text around them
		local bad = { "veth\xff0", "eth\xc3", "a\xc0\xafb", "s\xed\xa0\x80", "\xf4\x90\x80\x80x", "caf\xc3\xa9" }
		for i, v in ipairs(bad) do
			g:set(v, i)
			c:inc({ v, "10.0.0." .. i }, i)
		end
		local text = reg:render()
		promtool_ok(text)
		assert.is_truthy(utf8.len(text), "the exposition is valid UTF-8")
		assert.matches('iface_up{dev="veth\u{FFFD}0"} 1\n', text, 1, true)
		assert.matches('iface_up{dev="eth\u{FFFD}"} 2\n', text, 1, true)
		assert.matches('iface_up{dev="a\u{FFFD}\u{FFFD}b"} 3\n', text, 1, true)
		assert.matches('iface_up{dev="s\u{FFFD}\u{FFFD}\u{FFFD}"} 4\n', text, 1, true)
		assert.matches('iface_up{dev="\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}x"} 5\n', text, 1, true)
		assert.matches('iface_up{dev="caf\u{e9}"} 6\n', text, 1, true)
		assert.matches('hits_total{dev="veth\u{FFFD}0",src="10.0.0.1"} 1\n', text, 1, true)
		local list, sum = family(text, "hits_total")
		assert.are.equal(#bad, #list)
		assert.are.equal(21, sum)
		-- a value is one series whichever way it is written
		c:inc({ "veth\u{FFFD}0", "10.0.0.1" }, 1)
		list, sum = family(reg:render(), "hits_total")
		assert.are.equal(#bad, #list)
		assert.are.equal(22, sum)
	end)

	it("keys label sets unambiguously: {x\\0y, z} and {x, y\\0z} are two series", function()
		local reg = clocked()
		local c = reg:counter("pairs", { "a", "b" }, "Pairs.")
		local g = reg:gauge("levels", { "a", "b" }, "Levels.")
		c:inc({ "x\0y", "z" }, 1)
		c:inc({ "x", "y\0z" }, 2)
		c:inc({ "x\0", "" }, 4)
		c:inc({ "x", "\0" }, 8)
		g:set({ "x\0y", "z" }, 3)
		g:set({ "x", "y\0z" }, 5)
		local text = reg:render()
		promtool_ok(text)
		local list, sum, values = family(text, "pairs_total")
		assert.are.equal(4, #list)
		assert.are.equal(15, sum)
		assert.are.equal(1, values['pairs_total{a="x\0y",b="z"}'])
		assert.are.equal(2, values['pairs_total{a="x",b="y\0z"}'])
		list, sum = family(text, "levels")
		assert.are.equal(2, #list)
		assert.are.equal(8, sum)
	end)

	it("bounds gauges: max_series folds them, a value not set for gauge_ttl seconds is dropped", function()
		local reg, t = clocked { max_series = 3, gauge_ttl = 300 }
		local g = reg:gauge("conns", { "k" }, "Connections.")
		local info = reg:gauge("build", { "v" }, { help = "Info.", uncapped = true })
		info:set("1.0", 1)
		local function tracked()
			local n = 0
			for _ in pairs(g.info) do n = n + 1 end
			return n
		end
		for i = 1, 10 do g:set("k" .. i, i) end
		local text = reg:render()
		local list, sum = family(text, "conns")
		assert.are.equal(4, #list) -- k8, k9, k10 and other
		assert.are.equal(55, sum)
		assert.matches('tcpinspect_folded_values{metric="conns"} 7\n', text, 1, true)
		assert.are.equal(10, tracked())
		-- k1..k4 set again at t = 200; at t = 350 the others are 350 s old
		t.now = 200
		for i = 1, 4 do g:set("k" .. i, i) end
		assert.are.equal(55, select(2, family(reg:render(), "conns")))
		t.now = 350
		text = reg:render()
		promtool_ok(text)
		list, sum = family(text, "conns")
		assert.are.equal(4, tracked())
		assert.are.equal('conns{k="k2"} conns{k="k3"} conns{k="k4"} conns{k="other"}', table.concat(list, " "))
		assert.are.equal(10, sum)
		assert.matches('tcpinspect_folded_values{metric="conns"} 1\n', text, 1, true)
		-- inc and dec count as setting; the uncapped info gauge stays
		t.now = 600
		g:inc("k2")
		g:dec("k3", 2)
		t.now = 700
		text = reg:render()
		list, sum = family(text, "conns")
		assert.are.equal(2, tracked())
		-- nothing folds now: "other" (a series once shown) stays, at 0
		assert.are.equal('conns{k="k2"} conns{k="k3"} conns{k="other"}', table.concat(list, " "))
		assert.are.equal(3 + 1, sum)
		assert.matches('conns{k="other"} 0\n', text, 1, true)
		assert.matches('build{v="1.0"} 1\n', text, 1, true)
		-- 200 000 values set once cost nothing after gauge_ttl
		for i = 1, 200000 do g:set("v" .. i, 1) end
		assert.are.equal(4, #family(reg:render(), "conns"))
		assert.are.equal(200002, tracked())
		t.now = 1001
		text = reg:render()
		assert.are.equal(0, tracked())
		list, sum = family(text, "conns")
		assert.are.equal('conns{k="other"}', table.concat(list, " "))
		assert.are.equal(0, sum)
		assert.matches('tcpinspect_folded_values{metric="conns"} 0\n', text, 1, true)
		assert.has_error(function() metrics.registry { gauge_ttl = 0 } end)
		assert.has_error(function() reg:gauge("x", { "k" }, { ttl = "never" }) end)
	end)

	it("is in the script prelude as `metrics`", function()
		local names = script.prelude_names()
		local found = false
		for _, n in ipairs(names) do if n == "metrics" then found = true end end
		assert.is_true(found)
		local rt = script.new { options = {}, cli = {}, args = {}, name = "t.lua", max_series = 1,
			open = function() error("must not open") end, drive = function() error("must not run") end }
		local chunk = rt:load { code = [[
local c = metrics.counter("syn_flood_alerts_total", { "src" })
c:inc("a") c:inc("b") c:inc("c")
io.stdout:write("") return 0]] }
		assert.are.equal(0, (rt:execute(chunk)))
		local text = rt.registry:render()
		local list, sum = family(text, "syn_flood_alerts_total")
		assert.are.equal(2, #list)
		assert.are.equal(3, sum)
	end)
end)

describe("tcpinspect.exporter (HTTP)", function()
	local function serve(fn)
		local reg = metrics.registry()
		reg:counter("spec_hits", nil, "Hits."):inc(7)
		local srv = assert(exporter.server { listen = "127.0.0.1:0", registry = reg })
		local ok, err = pcall(fn, srv)
		srv:close()
		assert(ok, err)
	end
	-- send raw bytes, pump the server until the answer is complete
	local function request(srv, raw, limit)
		local c = socket.tcp4()
		c:settimeout(2)
		assert(c:connect("127.0.0.1", srv.port))
		c:settimeout(0)
		if raw then c:send(raw) end
		local got, t0 = {}, socket.gettime()
		while socket.gettime() - t0 < (limit or 3) do
			srv:step(0.01)
			local d, err, partial = c:receive(65536)
			d = d or partial
			if d and #d > 0 then got[#got + 1] = d end
			if err == "closed" then break end
		end
		c:close()
		local resp = table.concat(got)
		return tonumber(resp:match("^HTTP/1%.1 (%d+)")), resp, socket.gettime() - t0
	end

	it("answers /metrics, /, HEAD, and 4xx for bad requests", function()
		serve(function(srv)
			local code, resp = request(srv, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
			assert.are.equal(200, code)
			assert.matches("Content-Type: text/plain; version=0.0.4", resp, 1, true)
			assert.matches("\r\n\r\n# HELP spec_hits_total Hits.\n# TYPE spec_hits_total counter\nspec_hits_total 7\n",
				resp, 1, true)
			code, resp = request(srv, "HEAD /metrics?x=1 HTTP/1.0\r\n\r\n")
			assert.are.equal(200, code)
			assert.matches("\r\n\r\n$", resp)
			assert.are.equal(200, (request(srv, "GET / HTTP/1.1\r\n\r\n")))
			assert.are.equal(404, (request(srv, "GET /nope HTTP/1.1\r\n\r\n")))
			code, resp = request(srv, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
			assert.are.equal(405, code)
			assert.matches("Allow: GET, HEAD", resp, 1, true)
			assert.are.equal(400, (request(srv, "hello\r\n\r\n")))
			assert.are.equal(505, (request(srv, "GET /metrics HTTP/2.0\r\n\r\n")))
			assert.are.equal(431, (request(srv, "GET /metrics HTTP/1.1\r\nX: " .. ("a"):rep(10000) .. "\r\n\r\n")))
		end)
	end)

	it("serves a scraper while others stall (silent, slow), and drops them at their deadline", function()
		local saved = exporter.REQUEST_TIMEOUT
		exporter.REQUEST_TIMEOUT = 0.5
		local ok, err = pcall(serve, function(srv)
			local silent = socket.tcp4()
			assert(silent:connect("127.0.0.1", srv.port))
			local slow = socket.tcp4()
			assert(slow:connect("127.0.0.1", srv.port))
			slow:send("GET /met")
			srv:step(0.01)
			local code, _, secs = request(srv, "GET /metrics HTTP/1.1\r\n\r\n")
			assert.are.equal(200, code)
			assert.is_true(secs < 0.5, ("%.3f s"):format(secs))
			-- past the deadline: the silent one is closed, the slow one gets 408
			local t0 = socket.gettime()
			while socket.gettime() - t0 < 1 do srv:step(0.05) end
			assert.are.equal(0, srv.nclients)
			silent:settimeout(1)
			local _, e = silent:receive(1)
			assert.are.equal("closed", e)
			slow:settimeout(1)
			local line = slow:receive("*l")
			assert.are.equal("HTTP/1.1 408 Request Timeout", line)
			silent:close()
			slow:close()
		end)
		exporter.REQUEST_TIMEOUT = saved
		assert(ok, err)
	end)

	-- an idle connection from src (nil: 127.0.0.1)
	local function idle(srv, src)
		local c = socket.tcp4()
		if src then assert(c:bind(src, 0)) end
		c:settimeout(2)
		assert(c:connect("127.0.0.1", srv.port))
		return c
	end
	-- closed by the server? (the client reads EOF at once, or nothing)
	local function closed(c)
		c:settimeout(0.05)
		local _, e = c:receive(1)
		return e == "closed"
	end

	it("a full table closes its oldest idle connection for a new one", function()
		local saved = exporter.MAX_CLIENTS
		exporter.MAX_CLIENTS = 3
		local ok, err = pcall(function()
			local reg = metrics.registry()
			reg:counter("spec_hits", nil, "Hits."):inc(7)
			local srv = assert(exporter.server { listen = "127.0.0.1:0", registry = reg, max_per_source = 100 })
			local held = {}
			for i = 1, 3 do
				held[i] = idle(srv, "127.0.0." .. (10 + i))
				srv:step(0.05)
			end
			assert.are.equal(3, srv.nclients)
			-- the request takes the place of the oldest (held[1]), and is answered
			assert.are.equal(200, (request(srv, "GET /metrics HTTP/1.1\r\n\r\n")))
			assert.is_true(closed(held[1]))
			assert.is_false(closed(held[2]))
			assert.is_false(closed(held[3]))
			assert.are.equal(2, srv.nclients)
			assert.are.equal(1, srv.evicted)
			for _, c in ipairs(held) do c:close() end
			srv:close()
		end)
		exporter.MAX_CLIENTS = saved
		assert(ok, err)
	end)

	it("caps connections per source address: the source's own oldest idle one makes room", function()
		local reg = metrics.registry()
		local srv = assert(exporter.server { listen = "127.0.0.1:0", registry = reg, max_per_source = 3 })
		local ok, err = pcall(function()
			local a, b = {}, {}
			for i = 1, 3 do a[i] = idle(srv, "127.0.0.2") srv:step(0.05) end
			for i = 1, 2 do b[i] = idle(srv, "127.0.0.3") srv:step(0.05) end
			assert.are.equal(5, srv.nclients)
			a[4] = idle(srv, "127.0.0.2")
			srv:step(0.05)
			srv:step(0.05)
			-- 127.0.0.2 still has 3, its first is gone; 127.0.0.3 untouched
			assert.are.equal(5, srv.nclients)
			assert.are.same({ ["127.0.0.2"] = 3, ["127.0.0.3"] = 2 }, srv.bysource)
			assert.is_true(closed(a[1]))
			for i = 2, 4 do assert.is_false(closed(a[i]), "a" .. i) end
			for i = 1, 2 do assert.is_false(closed(b[i]), "b" .. i) end
			for _, c in ipairs(a) do c:close() end
			for _, c in ipairs(b) do c:close() end
			assert.has_error(function() exporter.server { listen = "127.0.0.1:0", registry = reg, max_per_source = 0 } end)
		end)
		srv:close()
		assert(ok, err)
	end)

	-- a server in its own process (so that curl can scrape it while this one
	-- holds the idle clients); returns its port and a stop function
	local function server_child()
		local path, portfile = net.tmpfile(".lua"), net.tmpfile(".port")
		net.write_file(path, ([[
local socket = require "socket"
local metrics = require "tcpinspect.metrics"
local exporter = require "tcpinspect.exporter"
local reg = metrics.registry()
reg:counter("spec_hits", nil, "Hits."):inc(7)
local srv = assert(exporter.server { listen = "127.0.0.1:0", registry = reg })
local f = io.open(%q, "w") f:write(srv.port, "\n") f:close()
local t0 = socket.gettime()
while socket.gettime() - t0 < 60 do srv:step(0.1) end
srv:close()
]]):format(portfile))
		local pid = net.spawn("exec " .. net.lua_cmd(path))
		local port = net.wait_until(function()
			local s = net.read_file(portfile)
			return s and tonumber(s:match("^(%d+)\n"))
		end, 10)
		assert(port, "the server child did not start")
		return port, function() net.kill(pid, "KILL") os.remove(path) os.remove(portfile) end
	end

	for _, case in ipairs {
		{ "one source (127.0.0.1)", function() return nil end },
		{ "200 sources (127.0.1.1-200)", function(i) return "127.0.1." .. i end },
	} do
		it("with 200 idle clients held open (" .. case[1] .. "), curl's scrape answers in under 1 s", function()
			local port, stop = server_child()
			local held = {}
			local ok, err = pcall(function()
				for i = 1, 200 do
					held[i] = idle({ port = port }, case[2](i))
				end
				socket.sleep(0.3) -- the server has taken them all
				local times = {}
				for k = 1, 5 do
					local _, out = net.sh(("curl -s -m 5 -o /dev/null -w '%%{http_code} %%{time_total}' " ..
						"http://127.0.0.1:%d/metrics"):format(port))
					local code, secs = out:match("^(%d+) ([%d.]+)")
					assert.are.equal("200", code, "scrape " .. k .. ": " .. out)
					assert.is_true(tonumber(secs) < 1, ("scrape %d took %s s"):format(k, secs))
					times[k] = secs
				end
				-- the server kept at most 64 of them open (the rest were closed for room)
				local alive = 0
				for _, c in ipairs(held) do if not closed(c) then alive = alive + 1 end end
				assert.is_true(alive <= exporter.MAX_CLIENTS, alive .. " idle clients open")
				net.say("200 idle clients (%s): 5 curl scrapes of 200 in %s s; %d idle still open",
					case[1], table.concat(times, ", "), alive)
			end)
			for _, c in ipairs(held) do c:close() end
			stop()
			assert(ok, err)
		end)
	end

	it("parses --listen and reports a port in use", function()
		assert.are.same({ "0.0.0.0", 9464 }, { exporter.parse_listen("0.0.0.0:9464") })
		assert.are.same({ "::1", 9464 }, { exporter.parse_listen("[::1]:9464") })
		assert.is_nil((exporter.parse_listen("9464")))
		assert.is_nil((exporter.parse_listen("127.0.0.1:70000")))
		local a = assert(exporter.server { listen = "127.0.0.1:0", registry = metrics.registry() })
		local b, err = exporter.server { listen = "127.0.0.1:" .. a.port, registry = metrics.registry() }
		a:close()
		assert.is_nil(b)
		assert.matches("cannot listen on 127.0.0.1:%d+: address already in use", err)
	end)
end)

describe("export arguments", function()
	it("exits 2 for a bad --listen or --max-series, before loading anything", function()
		for _, case in ipairs {
			{ { "export", "--listen", "nope" }, "argument '%-%-listen': expected ADDR:PORT" },
			{ { "export", "--listen", "127.0.0.1:99999" }, "port out of range" },
			{ { "export", "--max-series", "0" }, "argument '%-%-max%-series': expected an integer >= 1" },
			{ { "export", "--max-per-source", "0" }, "argument '%-%-max%-per%-source': expected an integer >= 1" },
			{ { "-e", "print(1)", "--max-per-source", "x" }, "argument '%-%-max%-per%-source'" },
			{ { "-e", "print(1)", "--listen", "x:y" }, "argument '%-%-listen'" },
		} do
			local r = cli.run(case[1])
			assert.are.equal(2, r.code, table.concat(case[1], " ") .. "\n" .. r.err)
			assert.matches(case[2], r.err)
		end
		local r = cli.run { "export", "--help" }
		assert.are.equal(0, r.code)
		assert.matches("%-%-max%-series", r.out)
		assert.matches("%-%-max%-per%-source", r.out)
	end)
end)
