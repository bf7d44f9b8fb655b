-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.args: the `tcpinspect` command line, parsed.
--
-- The commands themselves, and the one table that names them, are in
-- `tcpinspect.cli`; this module turns a command table and an argv into
-- argparse's parsers, splits argv into the command, its options, a
-- script's arguments and a filter expression, and maps the options onto
-- `open()`'s.  Usage and every option: doc/cli.md.
-- @module tcpinspect.args
local argparse = require "argparse"
local core = require "tcpinspect.core"
local script = require "tcpinspect.script"
local exporter = require "tcpinspect.exporter"

local M = {}

-- ---- option converters ------------------------------------------------------

function M.seconds(name)
	return function(s)
		local n = tonumber(s)
		if not n or n <= 0 or n ~= n or n == math.huge then
			return nil, string.format("argument '%s': expected seconds > 0, got '%s'", name, s)
		end
		return n
	end
end

function M.posint(name)
	return function(s)
		local n = math.tointeger(tonumber(s))
		if not n or n < 1 then
			return nil, string.format("argument '%s': expected an integer >= 1, got '%s'", name, s)
		end
		return n
	end
end

function M.size(name)
	return function(s)
		local num, unit = s:match("^(%d+)([KkMmGg]?)$")
		local n = math.tointeger(tonumber(num))
		if not n then
			return nil, string.format("argument '%s': expected bytes like 262144, 256K or 4M, got '%s'", name, s)
		end
		local mult = ({ [""] = 1, k = 1024, m = 1024 * 1024, g = 1024 * 1024 * 1024 })[unit:lower()]
		if n > math.maxinteger // mult then -- n * mult would wrap around
			return nil, string.format("argument '%s': '%s' is too large", name, s)
		end
		return n * mult
	end
end

-- -s: tcpdump's snapshot length; 0 is the most a record holds, as
-- tcpdump's -s 0 is its largest
local function snaplen_arg(s)
	local n = math.tointeger(tonumber(s))
	if not n or n < 0 then
		return nil, string.format("argument '-s': expected bytes >= 0, got '%s'", s)
	end
	return n
end

function M.listen_addr(s)
	local host, err = exporter.parse_listen(s)
	if not host then return nil, "argument '--listen': " .. err end
	return s
end

function M.nonempty(name)
	return function(s)
		if s == "" then return nil, string.format("argument '%s': empty value", name) end
		return s
	end
end

-- open() option name (an error's `option` field) -> the command-line option
local OPTNAME = {
	mode = "--mode", family = "--family", sample = "--sample", ring_size = "--ring-size",
	dev = "--dev", cgroup = "--cgroup", netns = "--netns", container = "--container",
	["filter.sport"] = "--sport", ["filter.dport"] = "--dport",
	["filter.port"] = "--port", ["filter.saddr"] = "--saddr", ["filter.daddr"] = "--daddr",
	["filter.host"] = "--host", ["filter.flags"] = "--flags", ["filter.len"] = "--len",
	["filter.len.min"] = "--len", ["filter.len.max"] = "--len", file = "-r", snaplen = "-s",
	["filter.dev"] = "-i", idle_timeout = "--idle-timeout", max_conns = "--max-conns",
}

--- A library message in the command line's words: the open() options it
-- names as `key='value'` (a list may follow: `mode='kprobe', 'tc' or
-- 'cgroup'`) or `key=` become their command-line options (`--mode kprobe,
-- tc or cgroup`, `--cgroup`).  Only the keys of the option table (OPTNAME,
-- the same one that maps an error's `option` field to its flag) are
-- changed; anything else (`kernel.perf_event_paranoid=2`) is left as it is.
-- Environment failures are plain strings (nil, "ENAME: message", errno):
-- their text is the only structured part there is.
function M.cli_words(msg)
	if type(msg) ~= "string" then return msg end
	local out, pos = {}, 1
	while true do
		local s, e, key = msg:find("%f[%w_%.]([%a_]+)=", pos)
		if not s then break end
		local flag = OPTNAME[key]
		local val = flag and msg:match("^'([^']*)'", e + 1)
		if flag and val then
			-- key='a', 'b' or 'c'
			out[#out + 1] = msg:sub(pos, s - 1) .. flag .. " " .. val
			pos = e + #val + 3
			while true do
				local sep, v = msg:match("^(, )'([^']*)'", pos)
				if not sep then sep, v = msg:match("^(,? or )'([^']*)'", pos) end
				if not sep then break end
				out[#out + 1] = sep .. v
				pos = pos + #sep + #v + 2
			end
		elseif flag and not msg:sub(e + 1, e + 1):match("[%w_'\"]") then
			-- a bare key= (no value)
			out[#out + 1] = msg:sub(pos, s - 1) .. flag
			pos = e + 1
		else
			out[#out + 1] = msg:sub(pos, e)
			pos = e + 1
		end
	end
	out[#out + 1] = msg:sub(pos)
	return table.concat(out)
end

--- The command-line option an error of the core is about (its `option`
-- field, see doc/reference.md "Errors"), or nil.
function M.cli_option(err, given)
	local flag = type(err) == "table" and err.option and OPTNAME[err.option] or nil
	-- -i sets dev and filter.dev
	if given and (err.option == "dev" or err.option == "filter.dev") and given["-i"] then flag = "-i" end
	return flag
end

--- The name of `names` closest to `name` if it is close enough to be a
-- typo, or nil: the core's rule (`core.suggest`, the one every "did you
-- mean" of the library uses), on the names without their leading dashes.
function M.suggest(name, names)
	local bare, strip = {}, {}
	for _, n in ipairs(names) do
		local b = n:gsub("^%-+", "")
		bare[#bare + 1], strip[b] = b, n
	end
	local hit = core.suggest((name:gsub("^%-+", "")), bare)
	return hit and strip[hit]
end

-- The message for an unknown option of command `cmd`, with what to use instead.
function M.unknown_option(opt, cmd, P)
	local name = opt:match("^(%-%-?[^=]+)") or opt
	local msg = string.format("unknown option '%s'", name)
	local names, owners = {}, {}
	for c, p in pairs(P) do
		for _, o in ipairs(p._options) do
			for _, alias in ipairs(o._aliases) do
				if c == cmd then
					names[#names + 1] = alias
				else
					owners[alias] = owners[alias] or {}
					table.insert(owners[alias], "'tcpinspect " .. c .. "'")
				end
			end
		end
	end
	table.sort(names)
	if owners[name] and cmd ~= "run" then
		-- every command that has it (-w: watch's file, record's directory)
		table.sort(owners[name])
		return string.format("%s: '%s' is an option of %s", msg, name, table.concat(owners[name], " and "))
	end
	local long = {}
	for _, n in ipairs(names) do if n:sub(1, 2) == "--" then long[#long + 1] = n end end
	local hint = name:sub(1, 2) == "--" and M.suggest(name, long)
	if hint then return string.format("%s; did you mean '%s'?", msg, hint) end
	return msg
end

-- ---- parsers --------------------------------------------------------------------

-- the core's modes, "auto" (the default) first
local MODES, TRIED = { "auto" }, {}
for _, m in ipairs(core.mode_names) do
	if m ~= "auto" then MODES[#MODES + 1], TRIED[#TRIED + 1] = m, m end
end

-- The options every command takes.  An entry: { "-x --long", help, conv,
-- argname = , choices = }, or { flag = "-x --long", help }.
local COMMON = {
	{ "--mode", ("Hook: auto (default: %s in turn), %s."):format(table.concat(TRIED, ", "),
		table.concat(TRIED, ", ")), choices = MODES, argname = "<mode>" },
	{ "--family", "Only IPv4 (4, ipv4) or IPv6 (6, ipv6) segments; 'any' (default).", argname = "<family>" },
	{ "--sport", "Source ports: 22, 8000-8100, or a comma list.", M.nonempty "--sport", argname = "<ports>" },
	{ "--dport", "Destination ports: 22, 8000-8100, or a comma list.", M.nonempty "--dport", argname = "<ports>" },
	{ "--port", "Either port: 22, 8000-8100, or a comma list.", M.nonempty "--port", argname = "<ports>" },
	{ "--saddr", "Source addresses, CIDRs or host names, comma separated.", M.nonempty "--saddr",
		argname = "<cidrs>" },
	{ "--daddr", "Destination addresses, CIDRs or host names, comma separated.", M.nonempty "--daddr",
		argname = "<cidrs>" },
	{ "--host", "Either address: addresses, CIDRs or host names, comma separated.", M.nonempty "--host",
		argname = "<cidrs>" },
	{ "--flags", "Segments with any of these flags: " .. table.concat(core.flag_names, ",") .. ".",
		M.nonempty "--flags", argname = "<flags>" },
	{ "--len", "Payload length: N, MIN-MAX, MIN- or -MAX bytes.", M.nonempty "--len", argname = "<bytes>" },
	{ "--dev", "Interfaces for tc mode (default: every interface that is up), comma separated.",
		M.nonempty "--dev", argname = "<ifaces>" },
	{ "-i --interface", "tcpdump's -i: only segments received on this interface (any mode); tc " ..
		"attaches there. 'any' (default): every interface.", M.nonempty "-i", argname = "<iface>" },
	{ "-s --snapshot-length", "Capture this many bytes of each segment from its IP header on " ..
		"(p:bytes(), -X, -A, -w); 0: the most a record holds (" .. core.SNAPLEN_MAX .. ").", snaplen_arg,
		argname = "<snaplen>" },
	{ "--cgroup", "Only sockets in this cgroup v2 directory (cgroup mode: where it attaches, " ..
		"default the root; fentry/kprobe: a filter on early demux's socket).", M.nonempty "--cgroup",
		argname = "<path>" },
	{ "--netns", "Only this network namespace: a name from 'ip netns', a path " ..
		"(/proc/PID/ns/net, /run/netns/NAME) or an inode number.", M.nonempty "--netns", argname = "<ns>" },
	{ "--container", "Only this process's container: its network namespace (cgroup mode: its cgroup).",
		M.posint "--container", argname = "<pid>" },
	{ "--sample", "Deliver one segment in N (counters still count all).", M.posint "--sample", argname = "<n>" },
	{ "--ring-size", "Ring buffer bytes, a power-of-two multiple of the page (262144, 4M).",
		M.size "--ring-size", argname = "<bytes>" },
	{ "-r --read", "Read the segments of a pcap file instead of the kernel's (no root needed); " ..
		"time is the capture's.", M.nonempty "-r", argname = "<file>" },
	{ "--expr", "A filter expression (pcap-filter(7)) run in the kernel, as a command's trailing words; " ..
		"scripts and -e take it here (their trailing words are their arguments).", M.nonempty "--expr",
		argname = "<expr>" },
	{ "-F", "Read the filter expression from FILE, as tcpdump -F ('#' to the end of a line is a " ..
		"comment; an expression on the command line is then ignored).", M.nonempty "-F", argname = "<file>" },
	{ "--duration", "Stop after this many seconds (default: until Ctrl-C).", M.seconds "--duration",
		argname = "<s>" },
	{ "--interval", "Seconds between reports (default 1).", M.seconds "--interval", argname = "<s>" },
	{ flag = "--json", "JSON lines instead of text." },
	{ flag = "-q --quiet", "No 'ready' and summary lines on stderr." },
	{ flag = "-v --verbose", "Debug output: libbpf's whole log on stderr (as libbpf-tools' -v)." },
	{ flag = "-h --help", "Show this help and exit." },
	{ flag = "-V --version", "Print the versions of tcpinspect, libbpf and the kernel, and exit." },
}

local function add_options(p, list)
	for _, o in ipairs(list) do
		if o.flag then
			p:flag(o.flag, o[1])
		elseif o.argument then
			p:argument(o.argument, o[1]):args "?"
		else
			local opt = p:option(o[1]):description(o[2])
			if o[3] then opt:convert(o[3]) end
			if o.choices then opt:choices(o.choices) end
			if o.argname then opt:argname(o.argname) end
		end
	end
end

--- argparse's parser of each command of a command table (see
-- tcpinspect.cli): name -> parser.
function M.parsers(commands)
	local P = {}
	for _, c in ipairs(commands) do
		local p = argparse():name(c.prog or ("tcpinspect " .. c.name)):description(c.description)
			:add_help(false)
		if c.epilog then p:epilog(c.epilog) end
		add_options(p, COMMON)
		add_options(p, c.options or {})
		P[c.name] = p
	end
	return P
end

-- the options of a parser: name -> true if it takes a value, false if a flag
local function known_options(p)
	local t = {}
	for _, o in ipairs(p._options) do
		for _, name in ipairs(o._aliases) do t[name] = o._maxargs > 0 end
	end
	return t
end

--- Split argv into the command, tcpinspect's own tokens and the script's
-- arguments.  A known option anywhere is tcpinspect's (with its value);
-- after the script name, anything else (and everything after "--") is the
-- script's.
-- @tparam table argv
-- @tparam table P the parsers (`parsers(commands)`); the script runner's is `P.run`
-- @treturn string the command's name, or "run" (a script or -e)
-- @treturn table tokens for the command's parser
-- @treturn table the script's arguments
-- @treturn table the words of a command's filter expression (its
-- positional arguments, and everything after "--"), as tcpdump takes
-- them: joined with spaces
function M.split(argv, P)
	-- before the command is known, an option of any command is taken as one
	-- (the command's parser then names a misplaced one)
	local any, run = {}, known_options(P.run)
	for _, p in pairs(P) do
		for name, takes in pairs(known_options(p)) do any[name] = any[name] or takes end
	end
	local cmd, own, rest, words = nil, {}, {}, {}
	local have_script = false
	local i, n = 1, #argv
	while i <= n do
		local a = argv[i]
		if a == "--" then
			-- never dropped: the script's arguments, or the command's expression
			local to = (cmd and cmd ~= "run") and words or rest
			for j = i + 1, n do to[#to + 1] = argv[j] end
			break
		elseif a:sub(1, 1) == "-" and #a > 1 then
			local name = a:match("^(%-%-[^=]+)=") or a
			local opts = have_script and run or any
			local takes = opts[a]
			if have_script and opts[name] == nil then
				rest[#rest + 1] = a
			elseif takes and i < n and argv[i + 1]:sub(1, 1) == "-" and #argv[i + 1] > 1 then
				-- a value that looks like an option ("--duration -1", "--len -100")
				-- is still the value, as getopt takes it: "--duration=-1", "-e-1"
				i = i + 1
				own[#own + 1] = a .. (a:sub(1, 2) == "--" and "=" or "") .. argv[i]
			else
				own[#own + 1] = a
				if takes and i < n then
					i = i + 1
					own[#own + 1] = argv[i]
				end
			end
		elseif have_script then
			rest[#rest + 1] = a
		elseif not cmd and P[a] then
			cmd = a
		else
			cmd = cmd or "run"
			if cmd == "run" then
				own[#own + 1] = a
				have_script = true
			else
				words[#words + 1] = a
			end
		end
		i = i + 1
	end
	return cmd or "run", own, rest, words
end

-- ---- open -------------------------------------------------------------------

local function split_list(s)
	local t = {}
	for item in s:gmatch("[^,%s]+") do t[#t + 1] = item end
	return #t == 1 and t[1] or t
end

-- A host name, as opposed to an address or a CIDR (which open() checks).
local function is_hostname(item)
	return not item:find("/", 1, true) and not item:find(":", 1, true)
		and item:find("%a") ~= nil and item:match("^[%w%.%-]+$") ~= nil
		and not item:match("^[%x%.]+$")
end

--- Split a comma list of addresses, CIDRs and host names; a name becomes
-- every address it resolves to (v4 and v6).  A name that does not resolve
-- is a bad argument (exit 2).
-- @treturn string|table
function M.resolve_list(s, flag)
	local out = {}
	for item in s:gmatch("[^,%s]+") do
		if is_hostname(item) then
			local addrs, err = core.resolve(item)
			if not addrs then
				script.fail(2, string.format("argument '%s': %s", flag, err), true)
			end
			for _, addr in ipairs(addrs) do out[#out + 1] = addr end
		else
			out[#out + 1] = item
		end
	end
	return #out == 1 and out[1] or out
end

local function parse_len(s)
	-- "-100" is "at most 100" (doc/cli.md: --len=-MAX), not a negative length
	local lo, hi = s:match("^(%d*)%-(%d*)$")
	if lo and (lo ~= "" or hi ~= "") then
		local min, max = math.tointeger(tonumber(lo)), math.tointeger(tonumber(hi))
		-- a bound too large for an integer is not dropped: open() names it
		if (lo ~= "" and not min) or (hi ~= "" and not max) then return s end
		return { min = min, max = max }
	end
	local n = math.tointeger(tonumber(s))
	if n then return n end
	return s -- open() names the mistake
end

--- The open() options a parsed command line asks for.
-- @tparam table a argparse's result
-- @treturn table
function M.open_options(a)
	local o, f = {}, {}
	o.mode = a.mode
	o.family = a.family
	for _, k in ipairs { "sport", "dport", "port", "flags" } do f[k] = a[k] end
	for _, k in ipairs { "saddr", "daddr", "host" } do
		if a[k] then f[k] = M.resolve_list(a[k], "--" .. k) end
	end
	if a.len then f.len = parse_len(a.len) end
	if next(f) then o.filter = f end
	o.sample = a.sample
	o.ring_size = a.ring_size
	o.cgroup = a.cgroup
	o.container = a.container
	-- digits are an inode (a namespace named by digits: give /run/netns/NAME)
	if a.netns then o.netns = a.netns:match("^%d+$") and math.tointeger(tonumber(a.netns)) or a.netns end
	if a.dev then o.dev = split_list(a.dev) end
	if a.interface and a.interface ~= "any" and not a.read then
		-- tcpdump's -i: that interface only, in every mode (tc attaches
		-- there); a capture file has no interface to choose (-r ignores it)
		o.dev = a.interface
		f.dev = a.interface
		o.filter = f
	end
	if a.expression and a.expression:match("%S") then
		f.expr = a.expression
		o.filter = f
	end
	if a.snapshot_length then
		o.snaplen = a.snapshot_length
		if o.snaplen == 0 then o.snaplen = a.read and 65535 or core.SNAPLEN_MAX end
	elseif a.X or a.A then
		o.snaplen = a.read and 65535 or core.SNAPLEN_MAX -- tcpdump shows whole segments
	end
	if a.read then o.file = a.read end
	-- connection tracking's (conns, export)
	o.idle_timeout = a.idle_timeout
	o.max_conns = a.max_conns
	-- -w: capture as much of each segment as a record holds (tcpdump's
	-- default snaplen), unless -s says otherwise
	if a.write and o.snaplen == nil then o.snaplen = o.file and 65535 or core.SNAPLEN_MAX end
	return o
end

-- ---- filter expressions -------------------------------------------------------------

--- Read tcpdump's -F FILE: the expression, '#' to the end of a line
-- being a comment (as tcpdump 4.99 reads it).
-- @treturn string|nil the expression, or nil and a message
function M.read_expr_file(path)
	local f, err = io.open(path, "r")
	if not f then return nil, "cannot open " .. tostring(err) end
	local text, rerr = f:read("a")
	f:close()
	if not text then return nil, "cannot read " .. path .. ": " .. tostring(rerr) end
	text = text:gsub("#[^\n]*", " "):gsub("%s+", " "):match("^%s*(.-)%s*$")
	return text
end

--- The filter expression of a parsed command line (`a.expression`): -F
-- FILE's (then the trailing words are ignored, as tcpdump -F ignores them;
-- a note says so), --expr, or a command's trailing words.
-- @treturn boolean ok
-- @treturn table|string the arguments, or a message (bad arguments)
-- @treturn[opt] integer 1 when the message is an environment failure
function M.expression(a, words)
	local trailing = #words > 0 and table.concat(words, " ") or nil
	if a.F and a.expr then
		return false, "argument '-F': give the expression once: -F FILE or --expr"
	end
	if a.F then
		local e, err = M.read_expr_file(a.F)
		-- as tcpdump (and -r here): a file that cannot be read ends with exit 1
		if not e then return false, "tcpinspect: -F: " .. err, 1 end
		if trailing and not a.quiet then
			io.stderr:write(string.format("tcpinspect: -F %s: the expression '%s' on the command line is " ..
				"ignored (as tcpdump -F ignores it)\n", a.F, trailing))
		end
		a.expression = e
	elseif a.expr then
		if trailing then
			return false, string.format("argument '--expr': give the expression once: --expr or the words " ..
				"after the options ('%s')", trailing)
		end
		a.expression = a.expr
	else
		a.expression = trailing
	end
	return true, a
end

--- Parse argv against the parsers.
-- @treturn table { cmd =, parser =, usage =, own =, rest = } and argparse's
-- result (or, for bad arguments, the message)
-- @treturn boolean|table ok
-- @treturn[opt] integer exit status when not ok: 2, or 1 (-F FILE unreadable)
function M.parse(argv, P)
	local cmd, own, rest, words = M.split(argv, P)
	local p = P[cmd]
	local r = { cmd = cmd, parser = p, usage = p:get_usage(), own = own, rest = rest }
	local ok, a = p:pparse(own)
	if ok then
		local code
		ok, a, code = M.expression(a, words)
		if code then return r, a, code end
	end
	if ok and a.interface and a.dev then
		ok, a = false, "argument '-i': give either -i (tcpdump's) or --dev, not both"
	end
	if not ok then
		local bad = a:match("^unknown option '([^']+)'")
		if bad then a = M.unknown_option(bad, cmd, P) end
		return r, a, 2
	end
	return r, a
end

return M
