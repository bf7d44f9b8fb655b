-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.script: the environment a `tcpinspect SCRIPT` or
-- `tcpinspect -e CODE` runs in (the "prelude"), and its event loop.
--
-- A script is a Lua chunk run with its own global table, which falls back
-- to Lua's globals and adds the prelude names (see doc/cli.md):
--
--     session   the session opened from the command-line options (lazily)
--     open(t)   open it now with extra options, merged under the command line's
--     options   the open() options the command line asked for (a copy)
--     cli       the parsed command line (duration, interval, json, ...)
--     args      the script's arguments (also `arg` and `...`)
--     getopt(defaults) parse "--name value" script arguments
--     on_packet(fn)  on_conn(fn)  every(s, fn)  after(s, fn)  on_exit(fn)  stop()  elapsed()
--     map(name)  stats()  printf(fmt, ...)  flagstr(n)
--     SYN ACK FIN RST PSH URG ECE CWR
--     tcpinspect  fmt  hist  topk  json  timer
--     metrics   counter/gauge/histogram families (tcpinspect.metrics), served
--               on --listen while the loop runs
--
-- Lazy session: nothing is loaded into the kernel until the script reads
-- `session` (or calls open, map, stats), or its main chunk returns having
-- registered a handler (on_packet, every, after, on_exit).  So a script may
-- call `open{...}` first with its own options (say, an in-kernel filter) and
-- a script that only does its own thing with `tcpinspect.open` gets no
-- extra session.  When the chunk returns and the prelude session exists,
-- the runtime runs the loop (for `--duration`, or until `stop()`, Ctrl-C or
-- SIGTERM), then calls the on_exit functions and closes the session.
-- @module tcpinspect.script
local tcpinspect = require "tcpinspect"
local timer = require "tcpinspect.timer"
local metrics = require "tcpinspect.metrics"

local M = {}

-- ---- exits ------------------------------------------------------------------
-- An error object that ends the command with an exit status and a message;
-- tables pass through pcall and error() unchanged.
local Exit = {}
Exit.__index = Exit
Exit.__tostring = function(e) return e.msg or ("exit " .. e.code) end

--- Raise an error that ends the command with `code`, printing `msg`.
-- `usage = true` adds the usage text (for bad arguments, code 2).
function M.fail(code, msg, usage)
	error(setmetatable({ code = code, msg = msg, usage = usage }, Exit), 0)
end

--- Is err an exit made by `fail`?
function M.is_exit(err)
	return getmetatable(err) == Exit
end

--- Is err Lua's Ctrl-C error ("interrupted!", raised by the lua5.4
-- interpreter's SIGINT handler)?
function M.is_interrupt(err)
	return type(err) == "string" and err:find("interrupted!", 1, true) ~= nil
end

-- ---- errors -----------------------------------------------------------------

--- Give an error the position of the caller `level` levels above the
-- function calling this (as `error(msg, level)` would), when it has none:
-- an error object of the library (a "tcpinspect.error" table: a copy with
-- the position in its message) or a "tcpinspect: ..." string.  Anything
-- else is returned unchanged.
function M.at_caller(err, level)
	local info = debug.getinfo(level + 2, "Sl")
	if not info or info.currentline < 0 then return err end
	local where = info.short_src .. ":" .. info.currentline .. ": "
	local mt = getmetatable(err)
	if type(err) == "table" and mt and type(err.message) == "string"
		and err.message:sub(1, 12) == "tcpinspect: " then
		local c = {}
		for k, v in pairs(err) do c[k] = v end
		c.message = where .. err.message
		return setmetatable(c, mt)
	elseif type(err) == "string" and err:sub(1, 12) == "tcpinspect: " then
		return where .. err
	end
	return err
end

--- A message handler for xpcall: a string error gets a traceback (unless
-- it has one already, from a session callback); other values pass unchanged.
function M.traceback(err)
	if type(err) == "string" and not err:find("\nstack traceback:\n", 1, true) then
		return debug.traceback(err, 2)
	end
	return err
end

--- Keep only the frames of the script `name` (its file name, or
-- "(command line)" for -e) in a message's traceback: the others are the
-- runtime's and the library's own.  Messages without a traceback, or whose
-- traceback has no frame of the script, are returned unchanged.
function M.short_traceback(msg, name)
	if type(msg) ~= "string" or not name then return msg end
	local head, tb = msg:match("^(.-\n)stack traceback:\n(.*)$")
	if not head then return msg end
	-- traceback lines name a file by its short_src, which keeps the tail of
	-- a long path: match on the tail
	local tail = #name > 40 and name:sub(-40) or name
	local lines = {}
	for line in tb:gmatch("[^\n]+") do
		if line:find(tail .. ":", 1, true) then lines[#lines + 1] = line end
	end
	if #lines == 0 then return msg end
	return head .. "stack traceback:\n" .. table.concat(lines, "\n")
end

-- ---- options ----------------------------------------------------------------

local function copy(t)
	if type(t) ~= "table" then return t end
	local c = {}
	for k, v in pairs(t) do c[k] = copy(v) end
	return c
end
M.copy = copy

--- Merge the script's open() options under the command line's: a key the
-- command line gave wins; filter keys merge one by one.
-- @tparam table base the command line's options
-- @tparam[opt] table extra the script's
-- @treturn table
function M.merge(base, extra)
	local o = copy(base or {})
	for k, v in pairs(extra or {}) do
		if k == "filter" and type(v) == "table" and type(o.filter) == "table" then
			for fk, fv in pairs(v) do
				if o.filter[fk] == nil then o.filter[fk] = copy(fv) end
			end
		elseif o[k] == nil then
			o[k] = copy(v)
		end
	end
	return o
end

--- Parse a script's "--name value" / "--name=value" / "--flag" arguments
-- against a table of defaults; values take the type of the default.
-- Positional arguments are returned in the list part.  A mistake raises an
-- exit with status 2 naming the argument.
-- @tparam table args
-- @tparam table defaults name -> default (number, string or boolean)
-- @treturn table
function M.getopt(args, defaults)
	local out = {}
	for k, v in pairs(defaults) do out[k] = v end
	local i = 1
	while i <= #args do
		local a = args[i]
		local name, value = a:match("^%-%-([%w_-]+)=(.*)$")
		if not name then name = a:match("^%-%-([%w_-]+)$") end
		if name then
			local key = name:gsub("-", "_")
			local def = defaults[key]
			if def == nil then
				M.fail(2, string.format("unknown script argument '--%s' (known: %s)", name,
					(function()
						local ks = {}
						for k in pairs(defaults) do ks[#ks + 1] = "--" .. k:gsub("_", "-") end
						table.sort(ks)
						return table.concat(ks, ", ")
					end)()))
			end
			if type(def) == "boolean" and value == nil then
				out[key] = true
			else
				if value == nil then
					i = i + 1
					value = args[i]
					if value == nil then M.fail(2, string.format("script argument '--%s' needs a value", name)) end
				end
				if type(def) == "number" then
					local n = tonumber(value)
					if not n then
						M.fail(2, string.format("script argument '--%s': expected a number, got '%s'", name, value))
					end
					out[key] = n
				elseif type(def) == "boolean" then
					out[key] = value == "true" or value == "1" or value == "yes"
				else
					out[key] = value
				end
			end
		else
			out[#out + 1] = a
		end
		i = i + 1
	end
	return out
end

-- ---- the runtime ------------------------------------------------------------

local Runtime = {}
Runtime.__index = Runtime

--- A script runtime.
-- @tparam table cfg
--   options: open() options from the command line;
--   cli: the parsed command line (duration, interval, ...);
--   args: the script's arguments; name: the script's name (arg[0]);
--   open: function(options) -> session (raises exits on failure);
--   drive: function(session, run_options) -> why ("duration", "stopped", "interrupted");
--   listen: "ADDR:PORT" to serve the script's metrics on (optional);
--   max_series: the metrics' cap (default 100)
-- @treturn runtime
function M.new(cfg)
	local self = setmetatable({ cfg = cfg, packet_fns = {}, conn_fns = {}, exit_fns = {}, wants_loop = false,
		registry = metrics.registry { max_series = cfg.max_series } }, Runtime)
	-- every()/after()/elapsed() follow the session's clock (session:now():
	-- a replay's is the capture's time), the default clock before it opens
	-- (the loop restarts the timers once it has)
	local default, last = timer.default_clock(), nil
	self.sched = timer.new { clock = function()
		local s = self.session
		if s and not s.closed and s.now then last = s:now() end
		return last or default()
	end }
	self.env = self:_make_env()
	return self
end

-- The session callback: the on_packet functions in order (with `extra`,
-- one about to be added).
function Runtime:_dispatch(extra)
	local fns = self.packet_fns
	if extra then
		fns = { table.unpack(fns) }
		fns[#fns + 1] = extra
	end
	if #fns == 1 then return fns[1] end
	return function(p)
		for i = 1, #fns do fns[i](p) end
	end
end

-- The session's on_conn callback: the on_conn functions in order.
function Runtime:_conn_dispatch()
	local fns = self.conn_fns
	if #fns == 1 then return fns[1] end
	return function(c)
		for i = 1, #fns do fns[i](c) end
	end
end

--- Open the prelude session (once).
-- @tparam[opt] table extra the script's options, merged under the command line's
function Runtime:open(extra)
	if self.session then
		error("tcpinspect: the prelude session is already open; call open{} before using 'session'", 0)
	end
	local o = M.merge(self.cfg.options, extra)
	if #self.packet_fns > 0 and o.events == false then
		error("tcpinspect: open: events = false, but on_packet was called: no packet would come", 0)
	end
	-- on_conn before the session: connection tracking is on
	if #self.conn_fns > 0 and o.conns == nil then o.conns = true end
	local s = self.cfg.open(o, extra)
	self.session = s
	self.conns = o.conns
	if #self.packet_fns > 0 then
		s:on_packet(self:_dispatch())
	end
	if #self.conn_fns > 0 then
		s:on_conn(self:_conn_dispatch())
	end
	return s
end

function Runtime:_make_env()
	local rt = self
	local cfg = self.cfg
	local args = cfg.args or {}
	local P = {}
	P.tcpinspect = tcpinspect
	P.fmt = require "tcpinspect.format"
	P.hist = require "tcpinspect.hist"
	P.topk = require "tcpinspect.topk"
	P.json = require "tcpinspect.json"
	P.timer = timer
	local reg = self.registry
	P.metrics = {
		counter = function(name, labels, o) return reg:_family("counter", name, labels, o, 2) end,
		gauge = function(name, labels, o) return reg:_family("gauge", name, labels, o, 2) end,
		histogram = function(name, labels, o) return reg:_family("histogram", name, labels, o, 2) end,
		render = function() return reg:render() end,
		registry = reg,
	}
	for _, f in ipairs { "FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR" } do
		P[f] = tcpinspect[f]
	end
	P.flagstr = tcpinspect.flagstr
	P.options = copy(cfg.options or {})
	P.cli = copy(cfg.cli or {})
	P.args = args
	P.arg = { [0] = cfg.name }
	for i, a in ipairs(args) do P.arg[i] = a end

	-- open the session for a prelude function called from the script; a
	-- mistake is reported at the script's line
	local function open_here(extra, level)
		local ok, s = pcall(rt.open, rt, extra)
		if not ok then error(M.at_caller(s, level + 1), 0) end
		return s
	end
	local function session_here(level)
		rt.wants_loop = true
		return rt.session or open_here(nil, level + 1)
	end
	function P.open(extra)
		if extra ~= nil and type(extra) ~= "table" then
			error("tcpinspect: open: expected an options table, got " .. type(extra), 2)
		end
		if rt.session then
			error("tcpinspect: the prelude session is already open; call open{} before using 'session'", 2)
		end
		rt.wants_loop = true
		local s = open_here(extra, 1) -- not a tail call: the level counts this frame
		return s
	end
	function P.on_packet(fn)
		if type(fn) ~= "function" then error("tcpinspect: on_packet: expected a function, got " .. type(fn), 2) end
		if rt.session then
			-- the library refuses a session opened with events = false
			local ok, err = pcall(rt.session.on_packet, rt.session,
				rt:_dispatch(fn))
			if not ok then error((err:gsub("^[^\n]-:%d+: tcpinspect: ", "tcpinspect: ")), 2) end
		end
		rt.wants_loop = true
		rt.packet_fns[#rt.packet_fns + 1] = fn
	end
	function P.on_conn(fn)
		if type(fn) ~= "function" then error("tcpinspect: on_conn: expected a function, got " .. type(fn), 2) end
		rt.wants_loop = true
		rt.conn_fns[#rt.conn_fns + 1] = fn
		if rt.session then
			-- the library refuses a session opened without conns = true
			local ok, err = pcall(rt.session.on_conn, rt.session, rt:_conn_dispatch())
			if not ok then
				rt.conn_fns[#rt.conn_fns] = nil
				error((tostring(err):gsub("^[^\n]-:%d+: tcpinspect: ", "tcpinspect: ")), 2)
			end
		end
	end
	function P.every(seconds, fn)
		rt.wants_loop = true
		return rt.sched:every(seconds, fn)
	end
	function P.after(seconds, fn)
		rt.wants_loop = true
		return rt.sched:after(seconds, fn)
	end
	function P.on_exit(fn)
		if type(fn) ~= "function" then error("tcpinspect: on_exit: expected a function, got " .. type(fn), 2) end
		rt.wants_loop = true
		rt.exit_fns[#rt.exit_fns + 1] = fn
	end
	function P.stop()
		rt.stopping = true
		if rt.session then rt.session:stop() end
	end
	function P.elapsed()
		return rt.sched:elapsed()
	end
	function P.map(name)
		return session_here(1):map(name)
	end
	function P.stats()
		return session_here(1):stats()
	end
	function P.printf(f, ...)
		local ok, line = pcall(string.format, f, ...)
		if not ok then
			error((line:gsub("^bad argument #(%d+) to '[%w%.]*format'", "bad argument #%1 to 'printf'")), 2)
		end
		io.write(line, "\n")
	end
	function P.getopt(defaults)
		return M.getopt(args, defaults)
	end

	return setmetatable({}, {
		__index = function(_, k)
			if k == "session" then return session_here(1) end
			local v = P[k]
			if v ~= nil then return v end
			return _G[k]
		end,
	}), P
end

--- The prelude's names (for docs and tests).
function M.prelude_names()
	local rt = M.new { options = {}, cli = {}, args = {}, open = function() end }
	local _, P = rt:_make_env()
	local names = { "session" }
	for k in pairs(P) do names[#names + 1] = k end
	table.sort(names)
	return names
end

--- Load a script file or a code string in the runtime's environment.
-- @tparam table what {file=path} or {code=string}
-- @treturn function the chunk
function Runtime:load(what)
	local chunk, err
	-- the source as tracebacks name it, to keep only the script's frames
	self.source = what.code and "(command line)" or what.file
	if what.code then
		chunk, err = load(what.code, "=(command line)", "t", self.env)
	else
		chunk, err = loadfile(what.file, "t", self.env)
	end
	if not chunk then M.fail(1, err) end
	return chunk
end

--- Run a loaded chunk with the script's arguments, then (when the prelude
-- session is wanted) the loop, the on_exit functions and the close.
-- Interruptions (Ctrl-C) end the loop or the chunk cleanly.
-- @treturn integer exit status
-- @treturn string why the loop ended, or nil without a loop
-- A script error: run the on_exit functions (why "error"), close the
-- session, and raise the error again with its traceback cut after the
-- script's own frames.  An on_exit function that raises too is reported
-- on stderr; the first error is the one raised.
function Runtime:_fail(err)
	for _, fn in ipairs(self.exit_fns) do
		local ok, e2 = xpcall(fn, M.traceback, self.sched:elapsed(), "error")
		if not ok and not M.is_interrupt(e2) and not M.is_exit(e2) then
			io.stderr:write("tcpinspect: on_exit: ", tostring(M.short_traceback(e2, self.source)), "\n")
		end
	end
	io.stdout:flush()
	self:close()
	error(M.short_traceback(err, self.source), 0)
end

function Runtime:execute(chunk)
	if self.cfg.listen then
		-- listen before the script runs (and before the ready line): a
		-- scraper may connect as soon as the session is attached
		local exporter = require "tcpinspect.exporter"
		local srv, err = exporter.server { listen = self.cfg.listen, registry = self.registry,
			max_per_source = self.cfg.max_per_source }
		if not srv then M.fail(1, "tcpinspect: " .. err) end
		self.server = srv
		self.wants_loop = true
	end
	local res = table.pack(xpcall(chunk, M.traceback, table.unpack(self.cfg.args or {})))
	local why
	if not res[1] then
		if M.is_interrupt(res[2]) then
			why = "interrupted"
		elseif M.is_exit(res[2]) then
			self:close()
			error(res[2], 0)
		else
			self:_fail(res[2])
		end
	end
	if not why and self.wants_loop then
		if not self.session then
			-- opened at the end of the chunk: without on_packet, no events
			local extra
			if #self.packet_fns == 0 and (self.cfg.options or {}).events == nil then
				extra = { events = false }
			end
			local ok, err = pcall(self.open, self, extra)
			if not ok then
				if M.is_exit(err) then error(err, 0) end
				self:_fail(err)
			end
		end
		if self.stopping then
			why = "stopped"
		else
			self.sched:restart()
			local srv = self.server
			local ok, w = xpcall(self.cfg.drive, M.traceback, self.session, self.sched:run_options {
				duration = self.cfg.cli and self.cfg.cli.duration,
				-- serve between polls, never waiting (poll_ms bounds the latency)
				should_stop = srv and function() srv:step(0) return false end,
			})
			if not ok then
				if M.is_exit(w) then
					self:close()
					error(w, 0)
				end
				self:_fail(w)
			end
			why = w
		end
	end
	-- the connections still open end as a replay's end of file ends them
	-- (on_conn: "fin" if a FIN came, else "open"), before the on_exit
	-- functions: a live run's log is then the replay's of its traffic
	if why and self.session and self.conns then
		local ok, err = pcall(self.session.end_conns, self.session)
		if not ok and not M.is_interrupt(err) then self:_fail(err) end
	end
	if why or self.session then
		for _, fn in ipairs(self.exit_fns) do
			local ok, err = xpcall(fn, M.traceback, self.sched:elapsed(), why)
			if not ok and not M.is_interrupt(err) then
				self:close()
				error(M.short_traceback(err, self.source), 0)
			end
		end
	end
	io.stdout:flush()
	if why and self.session and self.cfg.summary then
		self.cfg.summary(self.session, self.sched:elapsed(), why)
	end
	self:close()
	if not why and res[1] and math.type(res[2]) == "integer" then
		return res[2], nil
	end
	return 0, why
end

--- Close the prelude session (detaching its probes).
function Runtime:close()
	if self.server then
		self.server:close()
		self.server = nil
	end
	if self.session then
		self.session:close()
	end
end

return M
