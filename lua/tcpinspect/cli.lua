-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.cli: the `tcpinspect` command: its commands (watch, ...,
-- listed once, in COMMANDS at the end of this file), scripts and -e.
-- Parsing the command line is tcpinspect.args's.
--
-- `main(argv)` returns the exit status: 0 (also after Ctrl-C or SIGTERM),
-- 1 when the environment fails (no privilege, no usable hook) or a script
-- raises, 2 for bad arguments.  Usage and every option: doc/cli.md.
-- @module tcpinspect.cli
local tcpinspect = require "tcpinspect"
local args = require "tcpinspect.args"
local fmt = require "tcpinspect.format"
local json = require "tcpinspect.json"
local topk = require "tcpinspect.topk"
local script = require "tcpinspect.script"
local metrics = require "tcpinspect.metrics"
local exporter = require "tcpinspect.exporter"
local record = require "tcpinspect.record"
local core = require "tcpinspect.core"

local M = {}

local STATS = core.stat_names
M.STATS = STATS

-- the commands' names, as messages and suggestions list them (set from
-- the command table at the end of this file)
local COMMAND_NAMES = {}

-- ---- open -------------------------------------------------------------------

-- Open, turning mistakes in command-line values into exit 2 and environment
-- failures into exit 1.
-- A filter expression the library refused: tcpdump prints libpcap's
-- message and exits 1; so do we (a command's name mistyped as an
-- expression gets a hint).
local function expression_error(err)
	if type(err) == "table" and err.option == "filter.expr" then
		local msg = "tcpinspect: " .. tostring(err.reason)
		local word = err.reason:match("^'([%w]+)'")
		local hint = word and args.suggest(word, COMMAND_NAMES)
		if hint then msg = msg .. string.format(" (a command goes first: did you mean '%s'?)", hint) end
		script.fail(1, msg)
	end
end

local function open_session(o, usage, from_cli)
	-- -r FILE: the same options, replayed from the file
	local ok, s, msg = pcall(o.file and tcpinspect.replay or tcpinspect.open, o)
	if not ok then
		expression_error(s)
		local flag = args.cli_option(s, from_cli)
		if flag and (from_cli == nil or from_cli[flag]) then
			script.fail(2, string.format("argument '%s': %s", flag, args.cli_words(s.reason)), usage)
		end
		error(s, 0)
	end
	if not s then script.fail(1, "tcpinspect: " .. args.cli_words(tostring(msg))) end
	return s
end

--- Check the command line's open() options without loading anything, so a
-- script with a lazy session still gets exit 2 for a bad --dport at start.
local function check_options(o, usage, given)
	if o.file then
		-- a replay: replay{} checks them when it opens (cheap, nothing loaded)
		o = script.copy(o)
		o.file, o.snaplen, o.dev = nil, nil, nil
	end
	local ok, err = pcall(tcpinspect.check_options, o)
	if ok then return end
	expression_error(err)
	local flag = args.cli_option(err, given)
	if flag and given[flag] then
		script.fail(2, string.format("argument '%s': %s", flag, args.cli_words(err.reason)), usage)
	end
	error(err, 0)
end

-- the drop hook's name in session.probes
local DROP_HOOK = "skb:kfree_skb"

local probes_text
function probes_text(s)
	-- the drop hook (drops = true) is named apart, with its state or why
	-- it is not attached
	local drop = s.probes and s.probes[DROP_HOOK]
	if drop then
		local probes = {}
		for k, v in pairs(s.probes) do if k ~= DROP_HOOK then probes[k] = v end end
		local text = drop:find("^attached") and drop:gsub("^attached", "drops", 1) or "no drops: " .. drop
		return probes_text({ mode = s.mode, probes = probes }) .. "; " .. DROP_HOOK .. " " .. text
	end
	if s.mode == "tc" then
		-- "tc/ingress: 5 interfaces in 3 network namespaces" (another
		-- namespace's interface is "NAME@INODE"; "@INODE" alone: one not entered)
		local n, ns, nss, skipped = 0, {}, 0, 0
		for name, status in pairs(s.probes or {}) do
			if status:find("^attached") then
				n = n + 1
				local where = name:match("@(%d+)$") or "here"
				if not ns[where] then ns[where], nss = true, nss + 1 end
			else
				skipped = skipped + 1
			end
		end
		return string.format("tc/ingress: %d interface%s in %d network namespace%s%s", n, n == 1 and "" or "s",
			nss, nss == 1 and "" or "s", skipped > 0 and (", %d skipped (session.probes)"):format(skipped) or "")
	end
	local names = {}
	-- tc's probe names carry interface names: printed as tcpdump would
	for name in pairs(s.probes or {}) do names[#names + 1] = fmt.printable(name) end
	table.sort(names)
	return table.concat(names, ", ")
end

-- ---- the loop -----------------------------------------------------------------

local FLUSH_EVERY = 0.02 -- seconds: stdout's longest wait under a flood (M.drive)

--- Run a session until --duration, Ctrl-C, SIGTERM or stop(); flush stdout
-- every FLUSH_EVERY seconds, the polls' wait no longer than that: a line is
-- out within two of them, and under a flood stdout is written (2) per full
-- buffer (stdio's, 4 KiB on a pipe or /dev/null) or per 20 ms, not once per
-- poll's few lines (issue 23; spec/77 counts the write calls).
-- @treturn string why: "duration", "stopped", "interrupted"
function M.drive(s, run_opts)
	-- the signals that end a terminal's programs (Ctrl-C, kill, a hang-up,
	-- Ctrl-\, a reader that went away) interrupt the poll wait; run()
	-- returns "signal" and the session detaches (netlink filters included)
	tcpinspect.trap_signals { "INT", "TERM", "HUP", "QUIT", "PIPE" }
	local user_stop, flushed = run_opts.should_stop, tcpinspect.monotonic()
	run_opts.should_stop = function(n)
		local now = tcpinspect.monotonic()
		if now - flushed >= FLUSH_EVERY then
			io.stdout:flush()
			flushed = now
		end
		return user_stop ~= nil and user_stop(n) or false
	end
	run_opts.poll_ms = run_opts.poll_ms or math.floor(FLUSH_EVERY * 1000)
	local ok, n, why = pcall(s.run, s, run_opts)
	io.stdout:flush()
	if not ok then
		if script.is_interrupt(n) then return "interrupted" end
		error(n, 0)
	end
	if n == nil then script.fail(1, "tcpinspect: " .. args.cli_words(tostring(why))) end
	if why == "signal" then return "interrupted", n end
	return why, n
end

-- ---- terminal -------------------------------------------------------------------

--- Is stdout a terminal?  luaposix when it is there, then lua-term, then test(1).
function M.isatty()
	local ok, unistd = pcall(require, "posix.unistd")
	if ok and unistd.isatty then return unistd.isatty(1) == 1 end
	local okt, term = pcall(require, "term.core")
	if okt and term.isatty then return term.isatty(io.stdout) end
	return os.execute("test -t 1") == true
end

--- The wall-clock time (whole seconds since the epoch) a report is about:
-- now, or for a replay the capture's time (its clock is the capture's).
function M.wall(s)
	if s.mode == "replay" then return math.floor(s:now()) end
	return os.time()
end

local function stats_line(st, elapsed, rates, when)
	local parts = { string.format("%s elapsed=%.3f", os.date("%H:%M:%S", when), elapsed) }
	for _, k in ipairs(STATS) do
		if st[k] ~= nil then parts[#parts + 1] = k .. "=" .. st[k] end -- conns_*: with conns only
	end
	if rates then parts[#parts + 1] = "seen/s=" .. fmt._short(rates) end
	return table.concat(parts, " ")
end

local function stats_summary(st)
	local parts = {}
	for _, k in ipairs(STATS) do
		if st[k] ~= nil then parts[#parts + 1] = k .. " " .. st[k] end -- conns_*: with conns only
	end
	return table.concat(parts, ", ")
end

--- The end-of-run line every command prints on stderr (unless -q):
-- "8 packets printed in 1.5s (duration); seen 8, filtered 0, ...".
-- @tparam string what "8 packets printed", "3 reports printed", ...
function M.summary(what, elapsed, why, st)
	local d = st.drops
	return string.format("%s in %s (%s); %s%s", what, fmt.duration(elapsed), why, stats_summary(st),
		d and string.format("; drops %d, lost %d", d.matched, d.lost) or "")
end

--- The line printed once the probes are attached ("ready").
function M.ready_line(who, s)
	return string.format("%s: incoming TCP segments, %s mode (%s); Ctrl-C to stop", who, s.mode, probes_text(s))
end

-- ---- watch -------------------------------------------------------------------------

local function cmd_watch(a, s, say, usage)
	local out, packet = io.stdout, fmt.packet
	local count, printed = a.count, 0
	if a.json then packet = json.packet end
	if a.relinquish_privileges then
		-- tcpdump -Z: attached; the file is opened as the user
		local ok, err, errno = tcpinspect.drop_privileges(a.relinquish_privileges)
		if not ok and tcpinspect.errname(errno) == "ENOENT" then
			script.fail(2, "argument '-Z': " .. tostring(err), usage)
		elseif not ok then
			script.fail(1, "tcpinspect: argument '-Z': " .. tostring(err))
		end
	end
	if a.write then
		-- tcpdump -w: the file gets the segments, the terminal nothing
		local ok, err = s:dump(a.write)
		if not ok then script.fail(1, "tcpinspect: argument '-w': " .. tostring(err)) end
		out = { write = function() end }
	end
	local dump = (a.X and not a.json and fmt.hex_ascii) or (a.A and not a.json and fmt.ascii) or nil
	-- a Lua function per segment counts what it prints; without one (the
	-- lines written from C, or -w alone) the count is what was delivered
	local counted = dump or a.json or count or a.drops
	if a.drops then
		-- --drops: the drops among the segments, "... DROP REASON (location)";
		-- -c counts them too.  Without the drop hook the segments still come,
		-- and the ready line says why there are no drops.
		local drop_line = a.json and json.packet or M.drop_line
		s:on_drop(function(p)
			if count and printed >= count then return end
			printed = printed + 1
			out:write(drop_line(p), "\n")
			if count and printed >= count then s:stop() end
		end)
	end
	if dump or a.json then
		s:on_packet(function(p)
			if count and printed >= count then return end
			printed = printed + 1
			if dump then
				out:write(packet(p), dump(p:bytes()), "\n")
			else
				out:write(packet(p), "\n")
			end
			if count and printed >= count then s:stop() end
		end)
	elseif counted then
		-- -c, --drops: the line itself (the packet field made in C), counted here
		s:on_packet(function(line)
			if count and printed >= count then return end
			printed = printed + 1
			out:write(line, "\n")
			if count and printed >= count then s:stop() end
		end, { "line" })
	elseif not a.write then
		-- the lines written to stdout from C: no Lua call per segment
		s:on_packet(io.stdout)
	end
	say(M.ready_line("watch", s))
	-- times are the session's (session:now(): a replay's is the capture's)
	local t0 = s:now()
	local why, n = M.drive(s, { duration = a.duration, interval = a.interval or 1 })
	if not counted then printed = n or s:stats().delivered end
	local ok, err = s:dump(nil) -- flushed and closed
	if not ok then script.fail(1, "tcpinspect: argument '-w': " .. tostring(err)) end
	say(M.summary(printed .. (a.write and " packets written" or " packets printed"),
		s:now() - t0, why, s:stats()))
	return 0
end

--- A drop's line for watch --drops: the segment's, then "DROP REASON
-- (location)", e.g. "... length 0 DROP NO_SOCKET (tcp_v4_rcv)".
function M.drop_line(p)
	return string.format("%s DROP %s (%s)", fmt.packet(p), fmt.printable(tostring(p.reason)),
		fmt.printable(tostring(p.location)))
end

--- For a command that shows drops only: exit 1 when the session's drop
-- hook is not attached, saying why (session.probes).
function M.check_drop_hook(s, who)
	if s:stats().drops then return end
	local why = (s.probes or {})[DROP_HOOK] or "no drop hook"
	script.fail(1, string.format("tcpinspect: %s: no drops here: %s", who, why))
end

-- ---- stats -------------------------------------------------------------------------

local function cmd_stats(a, s, say)
	local prev_seen, prev_t, reports = 0, 0, 0
	local function report(_, elapsed, final)
		reports = reports + 1
		local st = s:stats()
		-- the final line's rate is the average over the whole run, as top's
		if final then prev_seen, prev_t = 0, 0 end
		local rate = (st.seen - prev_seen) / math.max(elapsed - prev_t, 1e-9)
		prev_seen, prev_t = st.seen, elapsed
		if a.json then
			local t = { elapsed = elapsed, time = M.wall(s), final = final or false, seen_per_s = rate }
			for _, k in ipairs(STATS) do t[k] = st[k] end
			io.write(json.encode(t), "\n")
		else
			io.write(final and "final " or "", stats_line(st, elapsed, rate, M.wall(s)), "\n")
		end
	end
	say(M.ready_line("stats", s))
	-- times are the session's (session:now(): a replay's is the capture's)
	local t0 = s:now()
	local why = M.drive(s, { duration = a.duration, interval = a.interval or 1,
		on_interval = function(sess, elapsed) report(sess, elapsed) end })
	local elapsed = s:now() - t0
	report(s, elapsed, true)
	say(M.summary(reports .. " reports printed", elapsed, why, s:stats()))
	return 0
end

-- ---- record ------------------------------------------------------------------------

-- The window of the last --seconds, written to a new file in -w DIR on
-- SIGUSR1 (the newest --max-files kept); INT, TERM and the rest end it.
local function cmd_record(a, s, say, usage)
	if not a.write then script.fail(2, "argument '-w': record needs the directory its files go to", usage) end
	local r, err = record.new(s, { dir = a.write, seconds = a.seconds or 30, bytes = a.bytes or 64 * 1024 * 1024,
		max_files = a.max_files })
	if not r then script.fail(1, "tcpinspect: argument '-w': " .. args.cli_words(tostring(err))) end
	tcpinspect.trap_signals { "INT", "TERM", "HUP", "QUIT", "PIPE", "USR1" }
	local f = io.open("/proc/self/stat")
	local pid = f and f:read("l"):match("^%d+") or "PID"
	if f then f:close() end
	say(M.ready_line("record", s) .. (" (window %gs, %s; kill -USR1 %s writes it to %s)"):format(
		a.seconds or 30, fmt.bytes(a.bytes or 64 * 1024 * 1024), pid, a.write))
	local t0, written, why = s:now(), 0
	while true do
		local left = a.duration and a.duration - (s:now() - t0)
		if left and left <= 0 then why = "duration" break end
		local ok, n, w = pcall(s.run, s, { duration = left, should_stop = function() io.stdout:flush() return false end })
		if not ok then
			if script.is_interrupt(n) then why = "interrupted" break end
			error(n, 0)
		end
		if n == nil then script.fail(1, "tcpinspect: " .. args.cli_words(tostring(w))) end
		if w ~= "signal" then why = w break end
		if tcpinspect.signaled() ~= "USR1" then why = "interrupted" break end
		local path, segs, drops = r:dump()
		if not path then
			-- a full disk is no reason to stop recording: say so, go on
			io.stderr:write(fmt.printable("tcpinspect: record: " .. tostring(segs)), "\n")
		else
			written = written + 1
			io.stdout:write(path, "\n")
			io.stdout:flush()
			say(("wrote %s: %d segments, %d drops"):format(path, segs, drops))
		end
	end
	local st = r:stats()
	say(M.summary(("%d files written (window: %d records, %d pushed out)"):format(written, st.records,
		st.pushed_out), s:now() - t0, why, s:stats()))
	r:close()
	return 0
end

-- ---- top ---------------------------------------------------------------------------

local function flow_label(k)
	return string.format("%s.%d > %s.%d", k.saddr, k.sport, k.daddr, k.dport)
end

--- Read the maps into tables with rates against the previous read.
-- @return table {flows=, ports=, sources=} lists best first
function M.top_snapshot(s, prev, dt, rows, sort)
	local by = sort == "packets" and { "packets", "bytes" } or { "bytes", "packets" }
	local snap = { flows = {}, ports = {}, sources = {} }
	local function read(mapname, label_of, extra)
		local cur = {}
		local old = prev[mapname] or {}
		for k, v in s:map(mapname):pairs() do
			local label = label_of(k)
			local o = old[label]
			local e = { label = label, packets = v.packets, bytes = v.bytes,
				pps = (v.packets - (o and o.packets or 0)) / dt,
				bps = (v.bytes - (o and o.bytes or 0)) / dt }
			if extra then extra(e, k, v) end
			cur[label] = e
		end
		prev[mapname] = cur
		local list = {}
		for _, e in ipairs(topk.top(cur, rows, by)) do list[#list + 1] = e.value end
		snap[mapname] = list
	end
	read("flows", flow_label, function(e, k, v)
		e.family, e.saddr, e.sport, e.daddr, e.dport = k.family, k.saddr, k.sport, k.daddr, k.dport
		e.flags = fmt.flags(v.flags_seen)
	end)
	read("ports", function(k) return tostring(k.dport) end, function(e, k) e.dport = k.dport end)
	read("sources", function(k) return k.saddr end, function(e, k, v)
		e.saddr, e.family, e.syns = k.saddr, k.family, v.syns
	end)
	return snap
end

--- The text of one `top` block.
function M.top_text(snap, head)
	local out = { head, "" }
	local function line(...) out[#out + 1] = table.concat({ ... }, " ") end
	local P = fmt.pad
	line(P("FLOW", 47), P("PACKETS", -9), P("BYTES", -10), P("PKT/S", -8), P("BYTES/S", -12), "FLAGS")
	for _, e in ipairs(snap.flows) do
		line(P(e.label, 47), P(e.packets, -9), P(fmt.bytes(e.bytes), -10), P(fmt.rate(e.pps), -8),
			P(fmt.byterate(e.bps), -12), e.flags)
	end
	out[#out + 1] = ""
	line(P("DPORT", 7), P("PACKETS", -9), P("BYTES", -10), P("PKT/S", -8), P("BYTES/S", -12))
	for _, e in ipairs(snap.ports) do
		line(P(e.dport, 7), P(e.packets, -9), P(fmt.bytes(e.bytes), -10), P(fmt.rate(e.pps), -8),
			P(fmt.byterate(e.bps), -12))
	end
	out[#out + 1] = ""
	line(P("SOURCE", 39), P("PACKETS", -9), P("BYTES", -10), P("PKT/S", -8), P("SYNS", -8))
	for _, e in ipairs(snap.sources) do
		line(P(e.saddr, 39), P(e.packets, -9), P(fmt.bytes(e.bytes), -10), P(fmt.rate(e.pps), -8),
			P(e.syns, -8))
	end
	return table.concat(out, "\n") .. "\n"
end

-- ---- top --by netns -----------------------------------------------------------

--- Names of network namespaces by inode: "NAME" from `ip netns`, else
-- "pid N (comm)" of a process in it; this process's own is "this
-- namespace".  The lookup is the kernel layer's (`core.netns_path`: a
-- /run/netns entry first, else a /proc/PID/ns/net), done once per inode;
-- an inode not found is looked up again after `rescan()`.
-- @tparam[opt] function path_of inode -> path or nil (default core.netns_path)
-- @treturn function name_of(inode)
-- @treturn function rescan()
function M.netns_namer(path_of)
	path_of = path_of or core.netns_path
	local own = core.netns_inode()
	local names = {}
	local function lookup(ino)
		if ino == own then return "this namespace" end
		if math.type(ino) ~= "integer" or ino <= 0 or ino > 0xffffffff then return nil end
		local path = path_of(ino)
		local name = path and path:match("^/run/netns/(.+)$")
		if name then return name end
		local pid = path and path:match("^/proc/(%d+)/")
		if not pid then return nil end
		local f = io.open("/proc/" .. pid .. "/comm")
		local comm = f and f:read("l")
		if f then f:close() end
		return string.format("pid %s (%s)", pid, comm or "?")
	end
	return function(ino)
		if names[ino] == nil then names[ino] = lookup(ino) or false end
		return names[ino] or "?"
	end, function()
		for ino, name in pairs(names) do
			if not name then names[ino] = nil end
		end
	end
end

-- top's loop, whatever it groups by (and drops', conns --open's): the
-- ready line (top's unless given), a report every interval and a final
-- one, the summary line
local function run_reports(a, s, say, t0, report, count, ready)
	say(ready or M.ready_line("top", s))
	local why = M.drive(s, { duration = a.duration, interval = a.interval or 1,
		on_interval = function(_, elapsed) report(elapsed) end })
	local elapsed = s:now() - t0
	report(elapsed, true)
	say(M.summary(count() .. " reports printed", elapsed, why, s:stats()))
	return 0
end

-- The rows of a table of counts per key (top --by netns, --by process):
-- cur is key -> {packets=, bytes=}; each row is make(key, e) with those
-- counts and their rates over dt (since the last report; the whole run in
-- the final one), prev keeping the counts each rate starts from.  Returns
-- the best `rows` of them by `by`.
local function rate_rows(cur, prev, dt, final, rows, by, make)
	local t = {}
	for key, e in pairs(cur) do
		local o = (not final and prev[key]) or { packets = 0, bytes = 0 }
		local r = make(key, e)
		r.packets, r.bytes = e.packets, e.bytes
		r.pps, r.bps = (e.packets - o.packets) / dt, (e.bytes - o.bytes) / dt
		t[tostring(key)] = r
		prev[key] = { packets = e.packets, bytes = e.bytes }
	end
	local list = {}
	for _, e in ipairs(topk.top(t, rows, by)) do list[#list + 1] = e.value end
	return list
end

local function cmd_top_netns(a, s, say)
	local rows, tty = a.top or 10, not a.json and M.isatty()
	local by = a.sort == "packets" and { "packets", "bytes" } or { "bytes", "packets" }
	local cur, prev, reports = {}, {}, 0
	local name_of, rescan = M.netns_namer()
	local t0, last = s:now(), 0
	s:on_packet(function(netns, len)
		local e = cur[netns]
		if not e then
			e = { packets = 0, bytes = 0 }
			cur[netns] = e
		end
		e.packets = e.packets + 1
		e.bytes = e.bytes + len
	end, { "netns", "len" })
	local function report(elapsed, final)
		reports = reports + 1
		rescan()
		local dt = final and math.max(elapsed, 1e-9) or math.max(elapsed - last, 1e-9)
		local list = rate_rows(cur, prev, dt, final, rows, by,
			function(ino) return { netns = ino, name = name_of(ino) } end)
		last = elapsed
		local st = s:stats()
		if a.json then
			io.write(json.encode { type = "top", by = "netns", final = final or false, elapsed = elapsed,
				time = M.wall(s), netns = list, stats = st }, "\n")
			return
		end
		local P = fmt.pad
		local out = { string.format("tcpinspect top --by netns%s  %s  incoming TCP, %s mode  elapsed %s  seen %d  matched %d",
			final and " (final)" or "", os.date("%H:%M:%S", M.wall(s)), s.mode, fmt.duration(elapsed), st.seen, st.matched), "" }
		out[#out + 1] = table.concat({ P("NETNS", 11), P("NAME", 28), P("PACKETS", -9), P("BYTES", -10),
			P("PKT/S", -8), P("BYTES/S", -12) }, " ")
		for _, e in ipairs(list) do
			out[#out + 1] = table.concat({ P(e.netns, 11), P(fmt.printable(e.name), 28), P(e.packets, -9),
				P(fmt.bytes(e.bytes), -10),
				P(fmt.rate(e.pps), -8), P(fmt.byterate(e.bps), -12) }, " ")
		end
		if tty then io.write("\27[H\27[2J") end
		io.write(table.concat(out, "\n"), "\n", tty and "" or "\n")
	end
	return run_reports(a, s, say, t0, report, function() return reports end)
end

local function cmd_top(a, s, say)
	if a.by == "netns" then return cmd_top_netns(a, s, say) end
	local rows, tty = a.top or 10, not a.json and M.isatty()
	local prev, last, reports = {}, 0, 0
	local t0 = s:now() -- the session's clock: a replay's is the capture's
	local function report(elapsed, final)
		reports = reports + 1
		-- the final block's rates are averages over the whole run
		if final then prev, last = {}, 0 end
		local snap = M.top_snapshot(s, prev, math.max(elapsed - last, 1e-9), rows, a.sort)
		last = elapsed
		local st = s:stats()
		if a.json then
			io.write(json.encode { type = "top", final = final or false, elapsed = elapsed, time = M.wall(s),
				flows = snap.flows, ports = snap.ports, sources = snap.sources, stats = st }, "\n")
			return
		end
		local head = string.format("tcpinspect top%s  %s  incoming TCP, %s mode  elapsed %s  seen %d  matched %d  flows %d",
			final and " (final)" or "", os.date("%H:%M:%S", M.wall(s)), s.mode, fmt.duration(elapsed),
			st.seen, st.matched, s:map("flows"):count())
		if tty then io.write("\27[H\27[2J") end
		io.write(M.top_text(snap, head), tty and "" or "\n")
	end
	return run_reports(a, s, say, t0, report, function() return reports end)
end

-- ---- drops ---------------------------------------------------------------------------

local function has_option(name)
	for _, n in ipairs(core.option_names) do if n == name then return true end end
	return false
end

--- The drops table's rows, from the kernel's `drops` map (reason x
-- destination port x source; reasons by the running kernel's names).
-- @treturn function read(visit): visit(reason, dport, family, saddr, packets, bytes) per row
function M.drop_rows(s)
	return function(visit)
		for k, v in s:map("drops"):pairs() do visit(k.reason, k.dport, k.family, k.saddr, v.packets, v.bytes) end
	end
end

--- Read the drops into lists, best first, with rates against the
-- previous read (`prev`, updated): `rows` (reason x port x source) and
-- `reasons` (each reason's totals).
function M.drops_snapshot(read, prev, dt, n, sort)
	local by = sort == "bytes" and { "bytes", "packets" } or { "packets", "bytes" }
	local cur, reasons = {}, {}
	read(function(reason, dport, family, saddr, packets, bytes)
		local label = reason .. " " .. dport .. " " .. saddr
		local o = prev[label]
		local e = { label = label, reason = reason, dport = dport, family = family, saddr = saddr,
			packets = packets, bytes = bytes, pps = (packets - (o and o.packets or 0)) / dt,
			bps = (bytes - (o and o.bytes or 0)) / dt }
		cur[label] = e
		local r = reasons[reason]
		if not r then
			r = { label = reason, reason = reason, packets = 0, bytes = 0, pps = 0, bps = 0 }
			reasons[reason] = r
		end
		r.packets, r.bytes, r.pps, r.bps = r.packets + packets, r.bytes + bytes, r.pps + e.pps, r.bps + e.bps
	end)
	for k in pairs(prev) do prev[k] = nil end
	for k, e in pairs(cur) do prev[k] = e end
	local snap = { rows = {}, reasons = {} }
	for _, e in ipairs(topk.top(cur, n, by)) do snap.rows[#snap.rows + 1] = e.value end
	for _, e in ipairs(topk.top(reasons, n, by)) do snap.reasons[#snap.reasons + 1] = e.value end
	return snap
end

local function reasons_text(out, list)
	local P = fmt.pad
	out[#out + 1] = table.concat({ P("REASON", 28), P("PACKETS", -9), P("BYTES", -10), P("PKT/S", -8) }, " ")
	for _, e in ipairs(list) do
		out[#out + 1] = table.concat({ P(fmt.printable(e.reason), 28), P(e.packets, -9), P(fmt.bytes(e.bytes), -10),
			P(fmt.rate(e.pps), -8) }, " ")
	end
end

--- The text of one `drops` block (with `reasons_only`: top --by reason's).
function M.drops_text(snap, head, reasons_only)
	local out = { head, "" }
	reasons_text(out, snap.reasons)
	if reasons_only then return table.concat(out, "\n") .. "\n" end
	out[#out + 1] = ""
	local P = fmt.pad
	out[#out + 1] = table.concat({ P("REASON", 28), P("DPORT", 7), P("SOURCE", 39), P("PACKETS", -9),
		P("BYTES", -10), P("PKT/S", -8) }, " ")
	for _, e in ipairs(snap.rows) do
		out[#out + 1] = table.concat({ P(fmt.printable(e.reason), 28), P(e.dport, 7), P(e.saddr, 39),
			P(e.packets, -9), P(fmt.bytes(e.bytes), -10), P(fmt.rate(e.pps), -8) }, " ")
	end
	return table.concat(out, "\n") .. "\n"
end

-- drops, and top --by reason: the same reports, top's loop
local function drops_reports(a, s, say, who, reasons_only)
	M.check_drop_hook(s, who)
	local read = M.drop_rows(s)
	local rows, tty = a.top or 10, not a.json and M.isatty()
	local prev, last, reports = {}, 0, 0
	local t0 = s:now()
	local function report(elapsed, final)
		reports = reports + 1
		if final then prev, last = {}, 0 end
		local snap = M.drops_snapshot(read, prev, math.max(elapsed - last, 1e-9), rows, a.sort)
		last = elapsed
		local st = s:stats()
		local d = st.drops or {}
		if a.json then
			local t = { type = reasons_only and "top" or "drops", final = final or false, elapsed = elapsed,
				time = M.wall(s), reasons = snap.reasons, stats = st }
			if reasons_only then t.by = "reason" else t.drops = snap.rows end
			io.write(json.encode(t), "\n")
			return
		end
		local head = string.format("tcpinspect %s%s  %s  incoming TCP drops, %s mode  elapsed %s  drops %d  lost %d",
			who, final and " (final)" or "", os.date("%H:%M:%S", M.wall(s)), s.mode, fmt.duration(elapsed),
			d.matched or 0, d.lost or 0)
		if tty then io.write("\27[H\27[2J") end
		io.write(M.drops_text(snap, head, reasons_only), tty and "" or "\n")
	end
	return run_reports(a, s, say, t0, report, function() return reports end,
		(M.ready_line(who, s):gsub("incoming TCP segments", "drops of incoming TCP segments")))
end

local function cmd_drops(a, s, say)
	return drops_reports(a, s, say, "drops")
end

-- ---- top --by process ------------------------------------------------------------

-- the receiving socket's process, per segment (sockets = true)
local function cmd_top_process(a, s, say)
	local rows, tty = a.top or 10, not a.json and M.isatty()
	local by = a.sort == "packets" and { "packets", "bytes" } or { "bytes", "packets" }
	local cur, prev, reports, last = {}, {}, 0, 0
	local t0 = s:now()
	s:on_packet(function(pid, comm, len)
		local key = pid and (pid .. " " .. tostring(comm)) or "-"
		local e = cur[key]
		if not e then
			e = { pid = pid, comm = comm, packets = 0, bytes = 0 }
			cur[key] = e
		end
		e.packets, e.bytes = e.packets + 1, e.bytes + len
	end, { "pid", "comm", "len" })
	local function report(elapsed, final)
		reports = reports + 1
		local dt = final and math.max(elapsed, 1e-9) or math.max(elapsed - last, 1e-9)
		local list = rate_rows(cur, prev, dt, final, rows, by,
			function(_, e) return { pid = e.pid, comm = e.comm } end)
		last = elapsed
		local st = s:stats()
		if a.json then
			io.write(json.encode { type = "top", by = "process", final = final or false, elapsed = elapsed,
				time = M.wall(s), processes = list, stats = st }, "\n")
			return
		end
		local P = fmt.pad
		local out = { string.format("tcpinspect top --by process%s  %s  incoming TCP, %s mode  elapsed %s  " ..
			"seen %d  matched %d",
			final and " (final)" or "", os.date("%H:%M:%S", M.wall(s)), s.mode, fmt.duration(elapsed), st.seen,
			st.matched), "" }
		out[#out + 1] = table.concat({ P("PID", 8), P("COMM", 16), P("PACKETS", -9), P("BYTES", -10),
			P("PKT/S", -8), P("BYTES/S", -12) }, " ")
		for _, e in ipairs(list) do
			-- no socket took the segment (or none the kernel names): "-"
			out[#out + 1] = table.concat({ P(e.pid or "-", 8), P(fmt.printable(e.comm or "-"), 16), P(e.packets, -9),
				P(fmt.bytes(e.bytes), -10), P(fmt.rate(e.pps), -8), P(fmt.byterate(e.bps), -12) }, " ")
		end
		if tty then io.write("\27[H\27[2J") end
		io.write(table.concat(out, "\n"), "\n", tty and "" or "\n")
	end
	return run_reports(a, s, say, t0, report, function() return reports end)
end

-- top, whatever it groups by
local function cmd_top_by(a, s, say)
	if a.by == "reason" then return drops_reports(a, s, say, "top --by reason", true) end
	if a.by == "process" then return cmd_top_process(a, s, say) end
	return cmd_top(a, s, say)
end

-- ---- conns -------------------------------------------------------------------------

-- the open connections, as tables (the views of s:conns() are reused)
local function open_conns(s)
	local list = {}
	for c in s:conns() do list[#list + 1] = c:totable() end
	return list
end

--- The rows of the open-connection table: the best `rows` of `list` by
-- bytes (default) or segments, ties by start then the flow, so the order
-- is stable.
function M.conns_rows(list, rows, sort)
	local a, b = "bytes", "segments"
	if sort == "segments" then a, b = b, a end
	table.sort(list, function(x, y)
		if x[a] ~= y[a] then return x[a] > y[a] end
		if x[b] ~= y[b] then return x[b] > y[b] end
		if x.start ~= y.start then return x.start < y.start end
		return fmt.conn_flow(x) < fmt.conn_flow(y)
	end)
	local out = {}
	for i = 1, math.min(rows, #list) do out[i] = list[i] end
	return out
end

--- The text of one block of `conns --open`: a head line, then a row per
-- open connection (`list`, already cut to the rows wanted).
function M.conns_text(list, head)
	local P = fmt.pad
	local out = { head, "" }
	out[#out + 1] = table.concat({ P("CONNECTION", 47), P("DURATION", -9), P("SEGS", -8), P("BYTES", -10),
		P("HANDSHAKE", -10), P("RETR", -5), P("ZWIN", -5), "HISTORY" }, " ")
	for _, c in ipairs(list) do
		out[#out + 1] = table.concat({ P(fmt.conn_flow(c), 47), P(fmt.duration(c.duration or 0), -9),
			P(c.segments, -8), P(fmt.bytes(c.bytes), -10), P(c.handshake and fmt.duration(c.handshake) or "-", -10),
			P(c.retransmits, -5), P(c.zero_windows, -5), fmt.printable(c.history or "-") }, " ")
	end
	return table.concat(out, "\n") .. "\n"
end

-- conns --open: the open connections every interval, as top shows flows
local function conns_table(a, s, say)
	local rows, tty = a.top or 20, not a.json and M.isatty()
	local reports, ended = 0, 0
	s:on_conn(function() ended = ended + 1 end)
	local function report(elapsed, final)
		reports = reports + 1
		local all = open_conns(s)
		local list = M.conns_rows(all, rows, a.sort)
		local st = s:stats()
		if a.json then
			io.write(json.encode { type = "conns", final = final or false, elapsed = elapsed, time = M.wall(s),
				open = #all, ended = ended, conns = list, stats = st }, "\n")
			return
		end
		local head = string.format("tcpinspect conns --open%s  %s  incoming TCP, %s mode  elapsed %s  open %d  ended %d",
			final and " (final)" or "", os.date("%H:%M:%S", M.wall(s)), s.mode, fmt.duration(elapsed), #all, ended)
		if tty then io.write("\27[H\27[2J") end
		io.write(M.conns_text(list, head), tty and "" or "\n")
	end
	return run_reports(a, s, say, s:now(), report, function() return reports end, M.ready_line("conns --open", s))
end

-- conns: a line per ended connection (the conn log)
local function cmd_conns(a, s, say)
	if a.open then return conns_table(a, s, say) end
	local out = io.stdout
	local line = a.json and json.conn or fmt.conn
	local count, printed = a.count, 0
	if not a.json then out:write(fmt.conn_header(), "\n") end
	s:on_conn(function(c)
		if count and printed >= count then return end
		printed = printed + 1
		out:write(line(c), "\n")
		if count and printed >= count then s:stop() end
	end)
	say(M.ready_line("conns", s))
	local t0 = s:now()
	local why = M.drive(s, { duration = a.duration, interval = a.interval or 1 })
	local still = 0
	for _ in s:conns() do still = still + 1 end
	say(M.summary(string.format("%d connections printed (%d still open)", printed, still), s:now() - t0, why,
		s:stats()))
	return 0
end

-- ---- export ------------------------------------------------------------------------

local function cmd_export(a, s, say)
	local reg = metrics.registry { max_series = a.max_series }
	-- drops (unless --no-drops): where the hook is not attached, the
	-- ready line says why and the rest is served
	exporter.kernel_metrics(s, reg)
	-- connections (unless --no-conns): ended ones counted by how they
	-- ended, their handshake times
	if not a.no_conns then exporter.conn_metrics(s, reg) end
	local srv, err = exporter.server { listen = a.listen, registry = reg, max_per_source = a.max_per_source }
	if not srv then script.fail(1, "tcpinspect: export: " .. err) end
	say(string.format("export: incoming TCP segments, %s mode (%s); serving %s; Ctrl-C to stop", s.mode,
		probes_text(s), srv.url))
	local ok, why = pcall(exporter.serve, srv, { duration = a.duration,
		poll = not a.no_conns and function() s:poll(0) end or nil })
	srv:close()
	if not ok then error(why, 0) end
	say(string.format("export: %s; %d scrapes served; %s", why, srv.served, stats_summary(s:stats())))
	return 0
end

-- ---- scripts ------------------------------------------------------------------------

--- Does -e CODE read its arguments (`...`, `arg`, `args`, `getopt`)?  A
-- look at the source's words: a name inside a string counts too, which
-- only ever keeps the hint below quiet.
function M.reads_args(code)
	return code:find("...", 1, true) ~= nil or code:find("%f[%w_]args?%f[^%w_]") ~= nil
		or code:find("%f[%w_]getopt%f[^%w_]") ~= nil
end

--- A -e one-liner's trailing words are its arguments.  When the code never
-- reads them and they compile as a filter expression, they were most
-- likely meant as one (tcpdump's habit): say so on stderr, with --expr.
-- @treturn string|nil the hint printed
function M.unread_args_hint(code, rest)
	if M.reads_args(code) then return nil end
	local words = table.concat(rest, " ")
	local ok = pcall(tcpinspect.check_options, { filter = { expr = words } })
	if not ok then return nil end
	local q = "'" .. words:gsub("'", "'\\''") .. "'"
	local msg = string.format("tcpinspect: -e: the code does not read its arguments (%s), which compile as a " ..
		"filter expression; to filter with it, give --expr %s", words, q)
	io.stderr:write(msg, "\n")
	return msg
end

local function cmd_run(a, rest, usage, say, given)
	if not a.e and not a.script then
		script.fail(2, "give a command (" .. table.concat(COMMAND_NAMES, ", ") .. "), a script, or -e CODE", true)
	end
	if a.e and a.script then
		-- with -e, what looked like a script name is the code's first argument
		table.insert(rest, 1, a.script)
		a.script = nil
	end
	local f = a.script and not a.e and io.open(a.script, "r")
	if f then f:close() end
	if a.script and not a.e and not f then
		-- neither a script file nor a command: a typo of a command?
		local hint = args.suggest(a.script, COMMAND_NAMES)
		if hint then
			script.fail(2, string.format("unknown command '%s'; did you mean '%s'? (commands: %s; " ..
				"or a script file)", a.script, hint, table.concat(COMMAND_NAMES, ", ")), true)
		elseif not a.script:find("[/.]") then
			script.fail(2, string.format("'%s' is neither a command (%s) nor a script file",
				a.script, table.concat(COMMAND_NAMES, ", ")), true)
		end
		-- a script that cannot be read is a bad argument (exit 2), as a
		-- missing file is to tcpdump -r
		local _, why = io.open(a.script, "r")
		script.fail(2, string.format("cannot open script %s", tostring(why)), true)
	end
	check_options(args.open_options(a), usage, given)
	if a.e and #rest > 0 then M.unread_args_hint(a.e, rest) end
	local rt = script.new {
		options = args.open_options(a),
		cli = a,
		args = rest,
		name = a.script or "-e",
		open = function(o)
			local s = open_session(o, usage, given)
			say(M.ready_line(a.script or "-e", s))
			return s
		end,
		drive = M.drive,
		listen = a.listen,
		max_series = a.max_series,
		max_per_source = a.max_per_source,
		summary = function(s, elapsed, why)
			say(M.summary((a.script or "-e") .. " ran", elapsed, why, s:stats()))
		end,
	}
	local chunk = rt:load(a.e and { code = a.e } or { file = a.script })
	local code = rt:execute(chunk)
	return code
end

-- ---- the commands -------------------------------------------------------------------

-- serving Prometheus metrics: the export command, and scripts
local function serving(what)
	return {
		{ "--listen", what .. " (0.0.0.0:9464: every interface).", args.listen_addr, argname = "<addr:port>" },
		{ "--max-series", "At most N label values per metric family; the rest fold into 'other' " ..
			"(default 100).", args.posint "--max-series", argname = "<n>" },
		{ "--max-per-source", "At most N connections from one address; a new one closes that " ..
			"address's oldest idle one (default 8).", args.posint "--max-per-source", argname = "<n>" },
	}
end

local WATCH = {
	description = "One line per incoming TCP segment, in tcpdump's style (absolute sequence numbers).",
	epilog = "A trailing filter expression, as tcpdump takes it (pcap-filter(7), from the IP header on), " ..
		"is run in the kernel: tcpinspect watch 'dst port 443 and not src host 10.1.2.3'.  " ..
		"Arguments after '--' are the expression too.  See doc/cli.md.",
	options = {
		{ "-c --count", "Exit after this many segments.", args.posint "--count", argname = "<n>" },
		{ flag = "-X", "After each line, the captured bytes in hex and ASCII, as tcpdump -X (sets -s 0 " ..
			"unless -s is given)." },
		{ flag = "-A", "After each line, the captured bytes in ASCII, as tcpdump -A (sets -s 0 unless " ..
			"-s is given)." },
		{ "-w --write", "Write the segments to a pcap file (LINUX_SLL2) instead of printing " ..
			"them; '-' is stdout.  A new file is 0600; a symbolic link is refused.", args.nonempty "-w",
			argname = "<file>" },
		{ "-Z --relinquish-privileges", "As tcpdump -Z: once attached, become this user " ..
			"(groups, gid, uid) before opening the -w file, which the user then owns.", args.nonempty "-Z",
			argname = "<user>" },
		{ flag = "--drops", "Also a line per drop of an incoming segment the filter matches: the " ..
			"segment's, then DROP REASON (kernel function)." },
	},
	drops = function(a) return a.drops end,
	-- the lines come from the events: no aggregate map
	aggregates = function() return false end,
	replay = function(a)
		if a.drops then return "--drops", "a capture holds no fates: drops are the kernel's, seen live only (without -r)" end
	end,
}

local TOP = {
	description = "The top flows, destination ports and sources, from the kernel's maps, every interval.",
	options = {
		{ "-n --top", "Rows per table (default 10).", args.posint "--top", argname = "<n>" },
		{ "--sort", "Order rows by bytes (default) or packets.", choices = { "bytes", "packets" } },
		{ "--by", "Group by flow (default: flows, ports and sources), netns (one row per " ..
			"network namespace), reason (drops per kernel drop reason; turns drops on) or process (the " ..
			"receiving socket's pid and comm; turns the socket lookup on).",
			choices = { "flow", "netns", "reason", "process" } },
	},
	-- --by netns and process count the events' fields (the maps have
	-- neither); --by reason reads the drops map
	events = function(a) return a.by == "netns" or a.by == "process" end,
	drops = function(a) return a.by == "reason" end,
	-- the maps it prints: flows, ports and sources; --by reason drops';
	-- --by netns and process none (the events)
	aggregates = function(a)
		if a.by == "reason" then return { "drops" } end
		if a.by == "netns" or a.by == "process" then return false end
		return { "flows", "ports", "sources" }
	end,
	-- by reason: where the lookup can run, for the listen overflows
	sockets = function(a) return a.by == "process" or a.by == "reason" and core.sockets_ok() end,
	replay = function(a)
		if a.by == "reason" then
			return "--by", "a capture holds no fates: drop reasons are the kernel's, seen live only (without -r)"
		elseif a.by == "process" then
			return "--by", "a capture names no receiving socket: --by process is live only (without -r)"
		end
	end,
}

local DROPS = {
	description = "The drops of incoming TCP segments, by kernel drop reason, destination port and source, " ..
		"every interval.",
	options = {
		{ "-n --top", "Rows per table (default 10).", args.posint "--top", argname = "<n>" },
		{ "--sort", "Order rows by packets (default) or bytes.", choices = { "packets", "bytes" } },
	},
	events = function() return false end,
	drops = function() return true end,
	aggregates = function() return { "drops" } end,
	-- where the lookup can run: a full accept queue's refusals are seen
	-- through the listener (TCP_LISTEN_OVERFLOW; doc/modes.md)
	sockets = function() return core.sockets_ok() end,
	replay = function()
		return "-r", "a capture holds no fates: 'tcpinspect drops' reads the kernel's drops, live only (without -r)"
	end,
}

local RECORD = {
	description = "The flight recorder: keep the last --seconds of segments in memory, and write them to a " ..
		"new pcap file in -w DIR on SIGUSR1 (kill -USR1 PID).  See doc/cli.md.",
	options = {
		{ "-w --write", "The directory the files go to (it must exist); each file is " ..
			"tcpinspect-TIME-N.pcap, 0600.", args.nonempty "-w", argname = "<dir>" },
		{ "--seconds", "The window: the last this many seconds (default 30).", args.seconds "--seconds",
			argname = "<s>" },
		{ "--bytes", "The most memory the window takes (default 64M); the oldest segments go first.",
			args.size "--bytes", argname = "<size>" },
		{ "--max-files", "Keep the newest N files this command wrote, removing older ones (as tcpdump -W).",
			args.posint "--max-files", argname = "<n>" },
		{ flag = "--drops", "Keep the drops of incoming segments in the window too." },
	},
	drops = function(a) return a.drops end,
	aggregates = function() return false end,
	replay = function(a)
		if a.drops then return "--drops", "a capture holds no fates: drops are the kernel's, seen live only (without -r)" end
	end,
}

local STATS_CMD = {
	description = "The session's counters, every interval.",
	options = { { flag = "--events", "Deliver events through the ring too (counts delivered/dropped)." } },
	events = function(a) return a.events end,
	aggregates = function() return false end,
}

-- connection tracking's options (conns, export)
local CONN_OPTIONS = {
	{ "--idle-timeout", "Seconds without a segment after which a connection ends as idle (open's " ..
		"idle_timeout; SYN-only entries expire sooner).", args.seconds "--idle-timeout", argname = "<s>" },
	{ "--max-conns", "At most N connections tracked at once; a new one evicts (open's max_conns).",
		args.posint "--max-conns", argname = "<n>" },
}

local EXPORT = {
	description = "Serve the counters, per-port and per-source maps and the payload histogram as Prometheus " ..
		"metrics on http://ADDR:PORT/metrics.  See doc/cli.md.",
	options = serving "Serve the metrics on ADDR:PORT, default 127.0.0.1:9464",
	events = function() return false end,
	-- drops by default (a replay has none: left out, no message)
	drops = function(a) return not a.no_drops and not a.read end,
	-- what it serves: per port, per source, the length histogram, drops'
	aggregates = function(_, o)
		return o.drops and { "ports", "sources", "len_hist", "drops" } or { "ports", "sources", "len_hist" }
	end,
}
EXPORT.options[#EXPORT.options + 1] = { flag = "--no-drops", "Leave the drop metrics out (no drop hook is loaded)." }
EXPORT.options[#EXPORT.options + 1] = { flag = "--no-conns", "Leave the connection metrics out (no connection " ..
	"tracking)." }
for _, o in ipairs(CONN_OPTIONS) do EXPORT.options[#EXPORT.options + 1] = o end
EXPORT.conns = function(a) return not a.no_conns end

local CONNS = {
	description = "One line per ended incoming TCP connection (a conn log: duration, segments, bytes, " ..
		"handshake time, retransmissions, zero windows, history, how it ended); --open: a live table of " ..
		"the open ones.",
	epilog = "A trailing filter expression is run in the kernel, as for watch.  See doc/cli.md.",
	options = {
		{ "-c --count", "Exit after this many connections.", args.posint "--count", argname = "<n>" },
		{ flag = "--open", "A table of the open connections every interval, instead of the log." },
		{ "-n --top", "Rows of the --open table (default 20).", args.posint "--top", argname = "<n>" },
		{ "--sort", "Order the --open table by bytes (default) or segments.", choices = { "bytes", "segments" } },
	},
	events = function() return false end,
	conns = function() return true end,
	aggregates = function() return false end,
}
for _, o in ipairs(CONN_OPTIONS) do CONNS.options[#CONNS.options + 1] = o end

-- A script or -e CODE: the parser of everything that is not a command.
local RUN = {
	prog = "tcpinspect",
	usage = {
		{ "[options] SCRIPT [ARGS...]", "run a Lua script (with the prelude)" },
		{ "[options] -e CODE", "run a one-liner (with the prelude)" },
		{ "--version", "the versions of tcpinspect, libbpf and the kernel" },
	},
	epilog = "Options may come before or after the command or script.  Arguments after the script\n" ..
		"that are not tcpinspect options, and everything after '--', go to the script;\n" ..
		"a filter expression for the script or -e is --expr EXPR or -F FILE.\n" ..
		"'tcpinspect COMMAND --help' shows a command's options.  See doc/cli.md.",
	options = {
		{ "-e", "Lua code to run, with the prelude (see doc/cli.md).", args.nonempty "-e", argname = "<code>" },
		{ argument = "script", "A Lua script to run, with the prelude." },
	},
}
for _, o in ipairs(serving "Serve the script's `metrics` (Prometheus) on ADDR:PORT") do
	RUN.options[#RUN.options + 1] = o
end

--- The commands, each once: usage, help, dispatch and suggestions take
-- this table (doc/cli.md documents each; spec/48 checks that).  A row:
-- name, summary (for the help), what its parser adds (WATCH, ...), and
-- the function that runs it with the session open.
local COMMANDS = {
	{ name = "watch", summary = "one tcpdump-style line per segment", parse = WATCH, run = cmd_watch },
	{ name = "top", summary = "top flows, ports and sources", parse = TOP, run = cmd_top_by },
	{ name = "drops", summary = "drops by reason, port and source", parse = DROPS, run = cmd_drops },
	{ name = "stats", summary = "counters every interval", parse = STATS_CMD, run = cmd_stats },
	{ name = "conns", summary = "one line per ended connection", parse = CONNS, run = cmd_conns },
	{ name = "export", summary = "Prometheus metrics on --listen", parse = EXPORT, run = cmd_export },
	{ name = "record", summary = "keep the last seconds, write them on SIGUSR1", parse = RECORD, run = cmd_record },
}
M.COMMANDS = COMMANDS

-- the command table as tcpinspect.args takes it: the commands, then "run"
-- (scripts and -e, the parser of the top-level help)
local PARSE = {}
do
	local forms, width, lines = {}, 0, {}
	for _, c in ipairs(COMMANDS) do
		COMMAND_NAMES[#COMMAND_NAMES + 1] = c.name
		forms[#forms + 1] = { c.name .. " [options]", c.summary }
		PARSE[#PARSE + 1] = { name = c.name, description = c.parse.description, epilog = c.parse.epilog,
			options = c.parse.options }
	end
	for _, u in ipairs(RUN.usage) do forms[#forms + 1] = u end
	for _, f in ipairs(forms) do width = math.max(width, #f[1]) end
	for _, f in ipairs(forms) do lines[#lines + 1] = ("   tcpinspect %-" .. width .. "s  %s"):format(f[1], f[2]) end
	PARSE[#PARSE + 1] = { name = "run", prog = RUN.prog, epilog = RUN.epilog, options = RUN.options,
		description = "Watch incoming TCP segments from the kernel, in Lua.\n\nCommands:\n" ..
			table.concat(lines, "\n") }
end

local function parsers() return args.parsers(PARSE) end

--- Split argv (see tcpinspect.args.split) against the commands' parsers.
function M.split(argv)
	return args.split(argv, parsers())
end

-- ---- main -------------------------------------------------------------------------

-- messages quote names from the system (interfaces, paths): printable,
-- lines and a traceback's tabs kept
local function print_err(msg)
	io.stderr:write((tostring(msg):gsub("[^\n\t]+", fmt.printable)), "\n")
end

--- Run the command.
-- @tparam table argv the arguments (like `arg`)
-- @treturn integer exit status
function M.main(argv)
	argv = argv or {}
	local list = {}
	for i = 1, #argv do list[#list + 1] = argv[i] end
	local P = parsers()
	local r, a, bad = args.parse(list, P)
	local usage = r.usage
	if bad == 1 then
		print_err(a)
		return 1
	elseif bad then
		io.stderr:write(usage, "\n\ntcpinspect: error: ", fmt.printable(a), "\n")
		return 2
	end
	if a.help then
		io.stdout:write(r.parser:get_help(), "\n")
		return 0
	end
	if a.version then
		local v = tcpinspect.versions()
		io.stdout:write("tcpinspect ", v.tcpinspect, "\nlibbpf ", v.libbpf, "\nkernel ", v.kernel, "\n")
		return 0
	end
	-- -v: libbpf's whole log on stderr (libbpf-tools' -v)
	if a.verbose then tcpinspect.set_debug(true) end
	-- which command-line options were given (to blame the right one)
	local given = {}
	for _, t in ipairs(r.own) do given[t:match("^(%-%-[^=]+)") or t] = true end
	local say = a.quiet and function() end or function(msg) print_err("tcpinspect: " .. msg) end

	local session
	local run_ok, code = pcall(function()
		if r.cmd == "run" then
			return cmd_run(a, r.rest, usage, say, given)
		end
		local c
		for _, row in ipairs(COMMANDS) do if row.name == r.cmd then c = row end end
		local o = args.open_options(a)
		-- events only for what reads them (watch; top --by netns; stats --events)
		if c.parse.events and not c.parse.events(a) then o.events = false end
		-- what became of the segments is the kernel's: a capture has none of it
		local flag, why
		if c.parse.replay and o.file then flag, why = c.parse.replay(a) end
		if flag then script.fail(2, string.format("argument '%s': %s", flag, why), usage) end
		if c.parse.drops and c.parse.drops(a) then o.drops = true end
		if c.parse.conns and c.parse.conns(a) then o.conns = true end
		-- each command opens the aggregate maps it shows, no other
		if c.parse.aggregates then o.aggregates = c.parse.aggregates(a, o) end
		if c.parse.sockets and c.parse.sockets(a) then
			if not has_option("sockets") then
				script.fail(1, string.format("tcpinspect: %s: this build has no socket lookup (open's sockets option)",
					r.cmd))
			end
			o.sockets = true
		end
		session = open_session(o, usage, given)
		return c.run(a, session, say, usage)
	end)
	if session then session:close() end
	io.stdout:flush()
	if run_ok then return code end
	if script.is_exit(code) then
		if code.usage then
			io.stderr:write(usage, "\n\ntcpinspect: error: ", fmt.printable(code.msg), "\n")
		elseif code.msg then
			print_err(code.msg)
		end
		return code.code
	end
	if script.is_interrupt(code) then return 0 end
	-- one "tcpinspect: " prefix: library messages have it already (after
	-- the position of the script line that made the mistake)
	local msg = tostring(code)
	local first = msg:match("^[^\n]*")
	if not (first:match("^tcpinspect: ") or first:match("^[^\n]-:%d+: tcpinspect: ")) then
		msg = "tcpinspect: " .. msg
	end
	print_err(msg)
	return 1
end

return M
