-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.exporter: serve a metrics registry over HTTP (Prometheus text
-- format), without ever blocking the caller.
--
--     local exporter = require "tcpinspect.exporter"
--     local srv = assert(exporter.server{ listen = "127.0.0.1:9464", registry = reg })
--     while running do
--         srv:step(0.1)      -- waits at most 0.1 s, serves what is ready
--     end
--     srv:close()
--
-- Built on luasocket.  Every socket is non-blocking; `step(timeout)` waits
-- in one `socket.select` (which also takes any object with `:getfd()`, such
-- as `exporter.fd_waiter(session:fd())`) and then does only what needs no
-- waiting.  A client has `REQUEST_TIMEOUT` seconds to send its request
-- headers (at most `MAX_REQUEST` bytes) and `WRITE_TIMEOUT` seconds to take
-- the answer; at most `MAX_CLIENTS` connections are open at once, at most
-- `max_per_source` (default `MAX_PER_SOURCE`) from one address.  So a
-- half-open connection, or a client sending one byte a second, costs a
-- socket until its deadline, never a wait; and none can keep a scraper
-- out: a connection that would exceed either limit closes the oldest idle
-- one (connected, no complete request yet) of its source, or else of the
-- table, to make room.
--
-- Answers: `GET /metrics` (or HEAD) 200 with the registry's text; `GET /`
-- a small page linking to it; other paths 404; other methods 405; a
-- malformed request line or an unsupported HTTP version 400 / 505; headers
-- over MAX_REQUEST 431; a client too slow with its request 408; a new
-- connection when every one in the table is busy answering 503.  Every
-- answer closes the connection.
-- @module tcpinspect.exporter
local socket = require "socket"

local M = {}

M.MAX_REQUEST = 8192
M.REQUEST_TIMEOUT = 5
M.WRITE_TIMEOUT = 10
M.MAX_CLIENTS = 64
M.MAX_PER_SOURCE = 8
M.DEFAULT_LISTEN = "127.0.0.1:9464"
M.CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

local REASON = {
	[200] = "OK", [400] = "Bad Request", [404] = "Not Found", [405] = "Method Not Allowed",
	[408] = "Request Timeout", [431] = "Request Header Fields Too Large", [500] = "Internal Server Error",
	[503] = "Service Unavailable", [505] = "HTTP Version Not Supported",
}

--- Split "ADDR:PORT" ("127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464",
-- "localhost:9464"; port 0 picks a free one).
-- @treturn[1] string host
-- @treturn[1] integer port
-- @treturn[2] nil
-- @treturn[2] string why
function M.parse_listen(s)
	if type(s) ~= "string" then return nil, "expected ADDR:PORT" end
	local host, port = s:match("^%[([%x:%.]+)%]:(%d+)$")
	if not host then host, port = s:match("^([%w%.%-]+):(%d+)$") end
	if not host then
		return nil, ("expected ADDR:PORT (127.0.0.1:9464, [::1]:9464, 0.0.0.0:9464), got '%s'"):format(s)
	end
	port = math.tointeger(tonumber(port))
	if not port or port > 65535 then
		return nil, ("port out of range 0-65535 in '%s'"):format(s)
	end
	return host, port
end

--- An object for socket.select that waits on a plain file descriptor (a
-- session's `s:fd()`).
function M.fd_waiter(fd)
	return { getfd = function() return fd end, dirty = function() return false end }
end

local Server = {}
Server.__index = Server

--- Listen.
-- @tparam table opts listen ("ADDR:PORT", default 127.0.0.1:9464);
--   registry (a tcpinspect.metrics registry) or handler
--   (function(method, path) -> code, content_type, body); max_per_source
--   (connections open at once from one address, default MAX_PER_SOURCE)
-- @treturn[1] server
-- @treturn[2] nil
-- @treturn[2] string why ("cannot listen on ...: address already in use")
function M.server(opts)
	local per_source = opts.max_per_source or M.MAX_PER_SOURCE
	if math.type(per_source) ~= "integer" or per_source < 1 then
		error("exporter: max_per_source: expected an integer >= 1, got " .. tostring(per_source), 2)
	end
	local host, port = M.parse_listen(opts.listen or M.DEFAULT_LISTEN)
	if not host then return nil, port end
	local addrinfo = socket.dns.getaddrinfo(host)
	local family = addrinfo and addrinfo[1] and addrinfo[1].family
	local srv = family == "inet6" and socket.tcp6() or socket.tcp4()
	srv:setoption("reuseaddr", true)
	local ok, err = srv:bind(host, port)
	if ok then ok, err = srv:listen(128) end
	if not ok then
		srv:close()
		return nil, ("cannot listen on %s: %s"):format(opts.listen or M.DEFAULT_LISTEN, err)
	end
	srv:settimeout(0)
	local self = setmetatable({ srv = srv, clients = {}, nclients = 0, bysource = {}, seq = 0,
		max_per_source = per_source, evicted = 0, registry = opts.registry,
		handler = opts.handler, listen = opts.listen or M.DEFAULT_LISTEN, served = 0, now = socket.gettime }, Server)
	self.addr, self.port = srv:getsockname()
	self.port = tonumber(self.port)
	self.url = ("http://%s:%d/metrics"):format(self.addr:find(":", 1, true) and "[" .. self.addr .. "]"
		or self.addr, self.port)
	return self
end

function Server:_drop(c)
	if self.clients[c] then
		self.clients[c] = nil
		self.nclients = self.nclients - 1
		local n = self.bysource[c.src] - 1
		self.bysource[c.src] = n > 0 and n or nil
	end
	c.sock:close()
end

-- The oldest idle connection (no complete request yet), of source src or
-- of any source.  Each candidate's pending bytes are read first (never
-- waiting): a scraper whose request has arrived is answered, not closed.
function Server:_oldest_idle(src)
	while true do
		local best
		for c in pairs(self.clients) do
			if c.reading and (not src or c.src == src) and (not best or c.seq < best.seq) then best = c end
		end
		if not best then return nil end
		self:_read(best)
		if self.clients[best] and best.reading then return best end
	end
end

local function response(code, ctype, body, head_only, extra)
	local h = {
		("HTTP/1.1 %d %s"):format(code, REASON[code] or "Error"),
		"Content-Type: " .. ctype,
		"Content-Length: " .. #body,
		"Connection: close",
	}
	if extra then h[#h + 1] = extra end
	return table.concat(h, "\r\n") .. "\r\n\r\n" .. (head_only and "" or body)
end

function Server:_answer(c, code, body, ctype, head_only, extra)
	c.out = response(code, ctype or "text/plain; charset=utf-8", body, head_only, extra)
	c.sent = 0
	c.reading = false
	c.deadline = self.now() + M.WRITE_TIMEOUT
	self:_write(c)
end

function Server:_handle(c, head)
	local line = head:match("^([^\r\n]*)")
	local method, target, version = line:match("^(%u+) (%S+) HTTP/(%d%.%d)$")
	if not method then return self:_answer(c, 400, "bad request\n") end
	if version ~= "1.1" and version ~= "1.0" then return self:_answer(c, 505, "HTTP/1.0 or 1.1 only\n") end
	if method ~= "GET" and method ~= "HEAD" then
		return self:_answer(c, 405, "GET or HEAD only\n", nil, false, "Allow: GET, HEAD")
	end
	local path = target:match("^[^?#]*")
	local head_only = method == "HEAD"
	if self.handler then
		local ok, code, ctype, body = pcall(self.handler, method, path)
		if not ok then return self:_answer(c, 500, "internal error\n") end
		return self:_answer(c, code, body, ctype, head_only)
	end
	if path == "/metrics" then
		local ok, body = pcall(self.registry.render, self.registry)
		if not ok then
			io.stderr:write("tcpinspect: export: ", tostring(body), "\n")
			return self:_answer(c, 500, "internal error\n")
		end
		self.served = self.served + 1
		return self:_answer(c, 200, body, M.CONTENT_TYPE, head_only)
	elseif path == "/" then
		return self:_answer(c, 200, "<html><head><title>tcpinspect</title></head><body>" ..
			"<h1>tcpinspect exporter</h1><p><a href=\"/metrics\">Metrics</a></p></body></html>\n",
			"text/html; charset=utf-8", head_only)
	end
	return self:_answer(c, 404, "not found: try /metrics\n")
end

function Server:_read(c)
	local data, err, partial = c.sock:receive(M.MAX_REQUEST + 1 - #c.buf)
	data = data or partial
	if data and #data > 0 then c.buf = c.buf .. data end
	local head = c.buf:match("^(.-\r?\n)\r?\n")
	if head then return self:_handle(c, head) end
	if #c.buf > M.MAX_REQUEST then return self:_answer(c, 431, "request headers too large\n") end
	if err == "closed" then return self:_drop(c) end
end

function Server:_write(c)
	local last, err, partial = c.sock:send(c.out, c.sent + 1)
	last = last or partial
	if last then c.sent = last end
	if c.sent >= #c.out or (err and err ~= "timeout") then
		self:_drop(c)
	end
end

function Server:_accept()
	for _ = 1, 16 do
		local sock = self.srv:accept()
		if not sock then return end
		sock:settimeout(0)
		local src = sock:getpeername() or "?"
		self.seq = self.seq + 1
		local c = { sock = sock, buf = "", reading = true, deadline = self.now() + M.REQUEST_TIMEOUT,
			src = src, seq = self.seq }
		-- room first: a source at its cap gives up its own oldest idle
		-- connection, a full table the oldest idle one of all
		local victim
		if (self.bysource[src] or 0) >= self.max_per_source then
			victim = self:_oldest_idle(src)
		elseif self.nclients >= M.MAX_CLIENTS then
			victim = self:_oldest_idle()
		end
		if victim then
			self:_drop(victim)
			self.evicted = self.evicted + 1
		end
		self.clients[c] = true
		self.nclients = self.nclients + 1
		self.bysource[src] = (self.bysource[src] or 0) + 1
		if self.nclients > M.MAX_CLIENTS or self.bysource[src] > self.max_per_source then
			-- every connection in the way is busy answering
			self:_answer(c, 503, "too many connections\n")
			if self.clients[c] then self:_drop(c) end
		end
	end
end

--- Wait at most `timeout` seconds (0: not at all) for sockets (and the
-- `extra` objects with :getfd()) to be ready, then serve.  Never blocks
-- longer than `timeout`.
-- @tparam[opt=0] number timeout
-- @tparam[opt] table extra objects with :getfd() to wait on too
-- @treturn table the extra objects that are readable
function Server:step(timeout, extra)
	local rd, wr, bysock = { self.srv }, {}, {}
	for c in pairs(self.clients) do
		bysock[c.sock] = c
		if c.reading then rd[#rd + 1] = c.sock else wr[#wr + 1] = c.sock end
	end
	if extra then for _, x in ipairs(extra) do rd[#rd + 1] = x end end
	local r, w = socket.select(rd, wr, timeout or 0)
	local ready_extra = {}
	for _, s in ipairs(r) do
		if s == self.srv then
			self:_accept()
		elseif bysock[s] then
			if self.clients[bysock[s]] then self:_read(bysock[s]) end
		else
			ready_extra[#ready_extra + 1] = s
		end
	end
	for _, s in ipairs(w) do
		local c = bysock[s]
		if c and self.clients[c] and not c.reading then self:_write(c) end
	end
	local now = self.now()
	for c in pairs(self.clients) do
		if now > c.deadline then
			if c.reading and #c.buf > 0 then
				-- started a request and stalled: tell it (one try, never waits)
				self:_answer(c, 408, "request timeout\n")
				if self.clients[c] then self:_drop(c) end
			else
				self:_drop(c)
			end
		end
	end
	return ready_extra
end

--- Close the listener and every connection.
function Server:close()
	for c in pairs(self.clients) do self:_drop(c) end
	if self.srv then self.srv:close() end
	self.srv = nil
end

-- ---- the kernel's metrics -------------------------------------------------------------

-- the core's counters (doc/reference.md "Counters"), in its order
M.STATS = require("tcpinspect.core").stat_names
M.STAT_HELP = {
	seen = "TCP segments the hook saw.",
	filtered = "Segments that did not match the filter.",
	matched = "Segments that matched the filter (counted in the maps).",
	sampled_out = "Matched segments skipped by --sample.",
	delivered = "Records committed to the ring buffer.",
	dropped = "Records lost because the ring buffer was full.",
	errors = "Segments whose headers could not be read.",
	evicted_flows = "Flow table entries replaced by a new flow (their counts left the table).",
	evicted_sources = "Source table entries replaced by a new source (their counts left the table).",
	evicted_drops = "Drop table entries replaced by a new key (their counts left the table).",
	busy = "Segments not inspected because every scratch slot of their CPU was in use.",
}

--- Register the session's counters, per-port and per-source maps, payload
-- histogram and info metrics in `reg`, read from the kernel at every render.
-- @tparam session s an open session: the maps it opened (s.aggregates) are served
-- @tparam registry reg
function M.kernel_metrics(s, reg)
	local p = reg.prefix
	local stats, have = {}, s:stats()
	for _, k in ipairs(M.STATS) do
		-- the conns_* counters exist with conns = true only
		stats[k] = have[k] ~= nil
			and reg:counter(p .. k .. "_total", nil, M.STAT_HELP[k] or ("The session's " .. k .. " counter."))
	end
	local segs = reg:counter(p .. "port_segments_total", { "dport" },
		"Matched TCP segments per destination port.")
	local bytes = reg:counter(p .. "port_bytes_total", { "dport" },
		{ help = "TCP payload bytes of matched segments per destination port.", follow = segs })
	local syns = reg:counter(p .. "source_syns_total", { "src" },
		"SYN segments without ACK (connection attempts) per source address.")
	-- len_hist: slot 0 counts empty payloads, slot k (1..17) payloads of
	-- 2^(k-1) to 2^k - 1 bytes: integer lengths, so le = 2^k - 1 is exact
	local les = { 0 }
	-- the maps the session opened (open's aggregates): those are served
	local open = {}
	for _, m in ipairs(s.aggregates or {}) do open[m] = true end
	local lenmap = open.len_hist and s:map("len_hist")
	local nslots = 0
	if lenmap then for k in lenmap:pairs() do nslots = math.max(nslots, k.slot + 1) end end
	for k = 1, nslots - 1 do les[#les + 1] = (1 << k) - 1 end
	local hist = reg:histogram(p .. "payload_bytes", nil, { buckets = les,
		help = "TCP payload length of matched segments, in bytes (the kernel's log2 len_hist; " ..
			"_sum is the sum of the per-port byte totals)." })
	local info = reg:gauge(p .. "info", { "mode", "version" },
		{ help = "The hook mode in use (value 1).", uncapped = true })
	local probe = reg:gauge(p .. "probe_info", { "probe", "status" },
		{ help = "Each probe and its state (value 1).", uncapped = true })
	local version = require("tcpinspect")._VERSION:match("(%d[%w%.%-]*)") or "0"
	info:set({ s.mode, version }, 1)
	for name, status in pairs(s.probes or {}) do probe:set({ name, status }, 1) end
	-- drops: where the session has the drop hook (drops = true, attached)
	local drops, port_drops
	if s:stats().drops then
		drops = reg:counter(p .. "drops_total", { "reason" },
			"Drops of incoming TCP segments that matched the filter, per kernel drop reason.")
	end
	if s:stats().drops and open.drops then
		port_drops = reg:counter(p .. "port_drops_total", { "reason", "dport" },
			"Drops of incoming TCP segments per kernel drop reason and destination port.")
	end
	reg:on_collect(function()
		local st = s:stats()
		for _, k in ipairs(M.STATS) do
			if stats[k] then stats[k]:set_total(nil, st[k]) end
		end
		if drops and st.drops then
			local list = {}
			for reason, n in pairs(st.drops.reasons) do list[#list + 1] = { reason, n } end
			table.sort(list, function(x, y) return x[2] > y[2] or (x[2] == y[2] and x[1] < y[1]) end)
			for _, e in ipairs(list) do drops:set_total(e[1], e[2]) end
			drops:sweep_totals()
		end
		if port_drops then
			local sums, list = {}, {}
			for k, v in s:map("drops"):pairs() do
				local key = tostring(k.reason) .. " " .. k.dport
				local e = sums[key]
				if not e then
					e = { { tostring(k.reason), k.dport }, 0 }
					sums[key] = e
					list[#list + 1] = e
				end
				e[2] = e[2] + v.packets
			end
			table.sort(list, function(x, y)
				return x[2] > y[2] or (x[2] == y[2] and (x[1][1] < y[1][1] or (x[1][1] == y[1][1] and x[1][2] < y[1][2])))
			end)
			for _, e in ipairs(list) do port_drops:set_total(e[1], e[2]) end
			port_drops:sweep_totals()
		end
		-- biggest first: while a family has room, values are kept in the
		-- order they come, so the first scrape keeps the top ones
		local sum, list = 0, {}
		if open.ports then
			for k, v in s:map("ports"):pairs() do
				list[#list + 1] = { k.dport, v.packets, v.bytes }
				sum = sum + v.bytes
			end
		end
		table.sort(list, function(x, y) return x[2] > y[2] or (x[2] == y[2] and x[1] < y[1]) end)
		for _, e in ipairs(list) do
			segs:set_total(e[1], e[2])
			bytes:set_total(e[1], e[3])
		end
		segs:sweep_totals()
		bytes:sweep_totals()
		list = {}
		if open.sources then
			for k, v in s:map("sources"):pairs() do
				if v.syns > 0 then list[#list + 1] = { k.saddr, v.syns } end
			end
		end
		table.sort(list, function(x, y) return x[2] > y[2] or (x[2] == y[2] and x[1] < y[1]) end)
		for _, e in ipairs(list) do syns:set_total(e[1], e[2]) end
		syns:sweep_totals()
		local counts = {}
		if lenmap then for k, v in lenmap:pairs() do counts[k.slot + 1] = v.count end end
		hist:set_buckets(counts, sum)
	end)
end

--- Handshake times' buckets, in seconds: 100 us (loopback, a LAN) to 10 s
-- (SYNs retransmitted).
M.HANDSHAKE_BUCKETS = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	2.5, 5, 10 }

--- The connection metrics of a session opened with `conns = true`:
-- `<prefix>connections_total{end}` (ended connections by how they ended:
-- fin, rst, idle, evicted) and the histogram `<prefix>handshake_seconds`
-- (the handshake time of each ended connection whose handshake was seen),
-- both fed by the session's `on_conn` callback (which this sets), so the
-- session must be polled (`serve`'s `poll`).
-- @param s the session
-- @param reg a tcpinspect.metrics registry
function M.conn_metrics(s, reg)
	local p = reg.prefix
	local ends = reg:counter(p .. "connections_total", { "end" },
		"Ended incoming TCP connections by how they ended (fin, rst, idle, evicted).")
	local hs = reg:histogram(p .. "handshake_seconds", nil, { buckets = M.HANDSHAKE_BUCKETS,
		help = "Handshake time of ended connections, from the client's SYN to the ACK that completes the " ..
			"handshake, as seen on the receiving side (tshark's tcp.analysis.initial_rtt), in seconds." })
	s:on_conn(function(c)
		ends:inc(c.end_reason or "unknown")
		local h = c.handshake
		if h then hs:observe(h) end
	end)
	-- what has ended by the scrape is counted in it
	reg:on_collect(function() s:poll(0) end)
end

--- The `tcpinspect export` loop: serve until the duration ends, a signal
-- (SIGINT, SIGTERM) or `should_stop()`; `poll()`, when given, is called
-- after every step (a session's `poll(0)`: its callbacks run).
-- @treturn string why: "duration", "interrupted", "stopped"
function M.serve(srv, opts)
	local tcpinspect = require "tcpinspect"
	tcpinspect.trap_signals { "INT", "TERM" }
	local t0 = tcpinspect.monotonic()
	while true do
		local wait = 0.25
		if opts.duration then wait = math.max(0, math.min(wait, t0 + opts.duration - tcpinspect.monotonic())) end
		srv:step(wait)
		if opts.poll then opts.poll() end
		if tcpinspect.signaled() then return "interrupted" end
		if opts.should_stop and opts.should_stop() then return "stopped" end
		if opts.duration and tcpinspect.monotonic() - t0 >= opts.duration then return "duration" end
	end
end

return M
