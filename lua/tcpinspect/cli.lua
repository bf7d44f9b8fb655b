-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.cli: the `tcpinspect` command.
--
--     tcpinspect watch [options]             one tcpdump-style line per segment
--     tcpinspect top [options]               top flows, ports and sources, live
--     tcpinspect stats [options]             the counters, every interval
--     tcpinspect export [options]            Prometheus metrics on --listen
--     tcpinspect [options] SCRIPT [ARGS...]  run a Lua script with the prelude
--     tcpinspect [options] -e CODE           run a one-liner with the prelude
--     tcpinspect --version                   tcpinspect's, libbpf's and the kernel's versions
--
-- `main(argv)` returns the exit status: 0 (also after Ctrl-C or SIGTERM),
-- 1 when the environment fails (no privilege, no usable hook) or a script
-- raises, 2 for bad arguments.  Usage and every option: doc/cli.md.
-- @module tcpinspect.cli
local argparse = require "argparse"
local tcpinspect = require "tcpinspect"
local fmt = require "tcpinspect.format"
local json = require "tcpinspect.json"
local topk = require "tcpinspect.topk"
local script = require "tcpinspect.script"
local metrics = require "tcpinspect.metrics"
local exporter = require "tcpinspect.exporter"

local M = {}

local core = require "tcpinspect.core"

local STATS = core.stat_names
local resolve = core.resolve
-- the core's modes, "auto" (the default) first
local MODES = { "auto" }
for _, m in ipairs(core.mode_names) do
	if m ~= "auto" then MODES[#MODES + 1] = m end
end
M.STATS = STATS

local COMMANDS = { watch = true, top = true, stats = true, export = true, run = true }
-- the commands, as messages and suggestions name them
local COMMAND_LIST = { "watch", "top", "stats", "export" }

-- ---- option converters ------------------------------------------------------

local function seconds(name)
	return function(s)
		local n = tonumber(s)
		if not n or n <= 0 or n ~= n or n == math.huge then
			return nil, string.format("argument '%s': expected seconds > 0, got '%s'", name, s)
		end
		return n
	end
end

local function posint(name)
	return function(s)
		local n = math.tointeger(tonumber(s))
		if not n or n < 1 then
			return nil, string.format("argument '%s': expected an integer >= 1, got '%s'", name, s)
		end
		return n
	end
end

local function size(name)
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

local function listen_addr(s)
	local host, err = exporter.parse_listen(s)
	if not host then return nil, "argument '--listen': " .. err end
	return s
end

local function nonempty(name)
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
	["filter.dev"] = "-i",
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

-- ---- suggestions ------------------------------------------------------------------

-- Optimal string alignment distance: Levenshtein plus adjacent swaps.
local function distance(a, b)
	local d = {}
	for i = 0, #a do d[i] = { [0] = i } end
	for j = 0, #b do d[0][j] = j end
	for i = 1, #a do
		for j = 1, #b do
			local cost = a:byte(i) == b:byte(j) and 0 or 1
			local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
			if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
				v = math.min(v, d[i - 2][j - 2] + 1)
			end
			d[i][j] = v
		end
	end
	return d[#a][#b]
end
M.distance = distance

--- The name of `names` closest to `name` if it is close enough to be a typo
-- (1 edit for up to 4 characters, else 2; the same rule as the C core's), or nil.
function M.suggest(name, names)
	local core_name = name:gsub("^%-+", "")
	local best, found = (#core_name <= 4 and 1 or 2) + 1, nil
	for _, n in ipairs(names) do
		local dist = distance(name, n)
		if dist < best and dist < #core_name then best, found = dist, n end
	end
	return found
end

-- tcpdump's options that a tcpdump user reaches for first: what tcpinspect has.
local TCPDUMP = {}

-- The message for an unknown option of command `cmd`, with what to use instead.
local function unknown_option(opt, cmd, P)
	local name = opt:match("^(%-%-?[^=]+)") or opt
	local msg = string.format("unknown option '%s'", name)
	local t = TCPDUMP[name]
	if t then
		if t[1] then return string.format("%s; did you mean '%s'? (%s)", msg, t[1], t[2]) end
		return string.format("%s (%s)", msg, t[2])
	end
	local names, owners = {}, {}
	for c, p in pairs(P) do
		for _, o in ipairs(p._options) do
			for _, alias in ipairs(o._aliases) do
				if c == cmd then names[#names + 1] = alias else owners[alias] = owners[alias] or c end
			end
		end
	end
	table.sort(names)
	if owners[name] and cmd ~= "run" then
		return string.format("%s: '%s' is an option of 'tcpinspect %s'", msg, name, owners[name])
	end
	local long = {}
	for _, n in ipairs(names) do if n:sub(1, 2) == "--" then long[#long + 1] = n end end
	local hint = name:sub(1, 2) == "--" and M.suggest(name, long)
	if hint then return string.format("%s; did you mean '%s'?", msg, hint) end
	return msg
end

-- ---- parsers --------------------------------------------------------------------

-- The options every command takes; value-taking ones are listed for the
-- argument splitter (which must know what follows an option).
local VALUE_OPTS, RUN_VALUE_OPTS = {}, {}

local function common(p)
	local function opt(spec, desc, conv)
		local o = p:option(spec):description(desc)
		if conv then o:convert(conv) end
		for name in spec:gmatch("%-%-?[%w-]+") do VALUE_OPTS[name] = true end
		return o
	end
	opt("--mode", "Hook: auto (default: fentry, kprobe, tc, cgroup in turn), fentry, kprobe, tc, cgroup.")
		:choices(MODES)
		:argname "<mode>"
	opt("--family", "Only IPv4 (4, ipv4) or IPv6 (6, ipv6) segments; 'any' (default).")
		:argname "<family>"
	opt("--sport", "Source ports: 22, 8000-8100, or a comma list.", nonempty "--sport"):argname "<ports>"
	opt("--dport", "Destination ports: 22, 8000-8100, or a comma list.", nonempty "--dport"):argname "<ports>"
	opt("--port", "Either port: 22, 8000-8100, or a comma list.", nonempty "--port"):argname "<ports>"
	opt("--saddr", "Source addresses, CIDRs or host names, comma separated.", nonempty "--saddr"):argname "<cidrs>"
	opt("--daddr", "Destination addresses, CIDRs or host names, comma separated.", nonempty "--daddr"):argname "<cidrs>"
	opt("--host", "Either address: addresses, CIDRs or host names, comma separated.", nonempty "--host"):argname "<cidrs>"
	opt("--flags", "Segments with any of these flags: " .. table.concat(core.flag_names, ",") .. ".",
		nonempty "--flags")
		:argname "<flags>"
	opt("--len", "Payload length: N, MIN-MAX, MIN- or -MAX bytes.", nonempty "--len"):argname "<bytes>"
	opt("--dev", "Interfaces for tc mode (default: every interface that is up), comma separated.",
		nonempty "--dev"):argname "<ifaces>"
	opt("-i --interface", "tcpdump's -i: only segments received on this interface (any mode); tc " ..
		"attaches there. 'any' (default): every interface.", nonempty "-i"):argname "<iface>"
	opt("-s --snapshot-length", "Capture this many bytes of each segment from its IP header on " ..
		"(p:bytes(), -X, -A, -w); 0: the most a record holds (" .. core.SNAPLEN_MAX .. ").", snaplen_arg)
		:argname "<snaplen>"
	opt("--cgroup", "Only sockets in this cgroup v2 directory (cgroup mode: where it attaches, " ..
		"default the root; fentry/kprobe: a filter on early demux's socket).", nonempty "--cgroup")
		:argname "<path>"
	opt("--netns", "Only this network namespace: a name from 'ip netns', a path " ..
		"(/proc/PID/ns/net, /run/netns/NAME) or an inode number.", nonempty "--netns"):argname "<ns>"
	opt("--container", "Only this process's container: its network namespace (cgroup mode: its cgroup).",
		posint "--container"):argname "<pid>"
	opt("--sample", "Deliver one segment in N (counters still count all).", posint "--sample"):argname "<n>"
	opt("--ring-size", "Ring buffer bytes, a power-of-two multiple of the page (262144, 4M).",
		size "--ring-size"):argname "<bytes>"
	opt("-r --read", "Read the segments of a pcap file instead of the kernel's (no root needed); " ..
		"time is the capture's.", nonempty "-r"):argname "<file>"
	opt("--expr", "A filter expression (pcap-filter(7)) run in the kernel, as a command's trailing words; " ..
		"scripts and -e take it here (their trailing words are their arguments).", nonempty "--expr")
		:argname "<expr>"
	opt("-F", "Read the filter expression from FILE, as tcpdump -F ('#' to the end of a line is a " ..
		"comment; an expression on the command line is then ignored).", nonempty "-F"):argname "<file>"
	opt("--duration", "Stop after this many seconds (default: until Ctrl-C).", seconds "--duration")
		:argname "<s>"
	opt("--interval", "Seconds between reports (default 1).", seconds "--interval"):argname "<s>"
	p:flag("--json", "JSON lines instead of text.")
	p:flag("-q --quiet", "No 'ready' and summary lines on stderr.")
	p:flag("-h --help", "Show this help and exit.")
	p:flag("-V --version", "Print the versions of tcpinspect, libbpf and the kernel, and exit.")
end

local function new_parser(name, desc, epilog)
	local p = argparse():name(name):description(desc):add_help(false)
	if epilog then p:epilog(epilog) end
	common(p)
	return p
end

local function parsers()
	local P = {}
	P.watch = new_parser("tcpinspect watch",
		"One line per incoming TCP segment, in tcpdump's style (absolute sequence numbers).",
		"A trailing filter expression, as tcpdump takes it (pcap-filter(7), from the IP header on), " ..
		"is run in the kernel: tcpinspect watch 'dst port 443 and not src host 10.1.2.3'.  " ..
		"Arguments after '--' are the expression too.  See doc/cli.md.")
	P.watch:option("-c --count", "Exit after this many segments.", nil, posint "--count"):argname "<n>"
	P.watch:flag("-X", "After each line, the captured bytes in hex and ASCII, as tcpdump -X (sets -s 0 " ..
		"unless -s is given).")
	P.watch:flag("-A", "After each line, the captured bytes in ASCII, as tcpdump -A (sets -s 0 unless " ..
		"-s is given).")
	P.watch:option("-w --write", "Write the segments to a pcap file (LINUX_SLL2) instead of printing " ..
		"them; '-' is stdout.  A new file is 0600; a symbolic link is refused.", nil, nonempty "-w")
		:argname "<file>"
	P.watch:option("-Z --relinquish-privileges", "As tcpdump -Z: once attached, become this user " ..
		"(groups, gid, uid) before opening the -w file, which the user then owns.", nil, nonempty "-Z")
		:argname "<user>"
	VALUE_OPTS["-c"], VALUE_OPTS["--count"], VALUE_OPTS["-w"], VALUE_OPTS["--write"] = true, true, true, true
	VALUE_OPTS["-Z"], VALUE_OPTS["--relinquish-privileges"] = true, true

	P.top = new_parser("tcpinspect top",
		"The top flows, destination ports and sources, from the kernel's maps, every interval.")
	P.top:option("-n --top", "Rows per table (default 10).", nil, posint "--top"):argname "<n>"
	P.top:option("--sort", "Order rows by bytes (default) or packets."):choices { "bytes", "packets" }
	P.top:option("--by", "Group by flow (default: flows, ports and sources) or netns (one row per " ..
		"network namespace)."):choices { "flow", "netns" }
	VALUE_OPTS["-n"], VALUE_OPTS["--top"], VALUE_OPTS["--sort"], VALUE_OPTS["--by"] = true, true, true, true

	P.stats = new_parser("tcpinspect stats", "The session's counters, every interval.")
	P.stats:flag("--events", "Deliver events through the ring too (counts delivered/dropped).")

	-- serving Prometheus metrics: the export command, and scripts
	local function serving(p, what)
		p:option("--listen", what .. " (0.0.0.0:9464: every interface).", nil, listen_addr)
			:argname "<addr:port>"
		p:option("--max-series", "At most N label values per metric family; the rest fold into 'other' " ..
			"(default 100).", nil, posint "--max-series"):argname "<n>"
		p:option("--max-per-source", "At most N connections from one address; a new one closes that " ..
			"address's oldest idle one (default 8).", nil, posint "--max-per-source"):argname "<n>"
		VALUE_OPTS["--listen"], VALUE_OPTS["--max-series"], VALUE_OPTS["--max-per-source"] = true, true, true
	end
	P.export = new_parser("tcpinspect export",
		"Serve the counters, per-port and per-source maps and the payload histogram as Prometheus " ..
		"metrics on http://ADDR:PORT/metrics.  See doc/cli.md.")
	serving(P.export, "Serve the metrics on ADDR:PORT, default 127.0.0.1:9464")
	P.run = new_parser("tcpinspect",
		"Watch incoming TCP segments from the kernel, in Lua.\n\n" ..
		"Commands:\n" ..
		"   tcpinspect watch [options]             one tcpdump-style line per segment\n" ..
		"   tcpinspect top [options]               top flows, ports and sources\n" ..
		"   tcpinspect stats [options]             counters every interval\n" ..
		"   tcpinspect export [options]            Prometheus metrics on --listen\n" ..
		"   tcpinspect [options] SCRIPT [ARGS...]  run a Lua script (with the prelude)\n" ..
		"   tcpinspect [options] -e CODE           run a one-liner (with the prelude)\n" ..
		"   tcpinspect --version                   the versions of tcpinspect, libbpf and the kernel",
		"Options may come before or after the command or script.  Arguments after the script\n" ..
		"that are not tcpinspect options, and everything after '--', go to the script;\n" ..
		"a filter expression for the script or -e is --expr EXPR or -F FILE.\n" ..
		"'tcpinspect COMMAND --help' shows a command's options.  See doc/cli.md.")
	P.run:option("-e", "Lua code to run, with the prelude (see doc/cli.md).", nil, nonempty "-e")
		:argname "<code>"
	P.run:argument("script", "A Lua script to run, with the prelude."):args "?"
	serving(P.run, "Serve the script's `metrics` (Prometheus) on ADDR:PORT")
	VALUE_OPTS["-e"] = true
	VALUE_OPTS["--expr"], VALUE_OPTS["-F"] = true, true
	for _, o in ipairs(P.run._options) do
		for _, name in ipairs(o._aliases) do
			if VALUE_OPTS[name] then RUN_VALUE_OPTS[name] = true end
		end
	end
	return P
end

--- Split argv into the command, tcpinspect's own tokens and the script's
-- arguments.  A known option anywhere is tcpinspect's (with its value);
-- after the script name, anything else (and everything after "--") is the
-- script's.
-- @treturn string command: watch, top, stats or run
-- @treturn table tokens for the command's parser
-- @treturn table the script's arguments
-- @treturn table the words of watch/top/stats/export's filter expression
-- (their positional arguments, and everything after "--"), as tcpdump
-- takes them: joined with spaces
function M.split(argv, value_opts)
	if not value_opts then
		parsers()
		value_opts = VALUE_OPTS
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
			local takes = (have_script and RUN_VALUE_OPTS or value_opts)[a]
			local known = (have_script and RUN_VALUE_OPTS or value_opts)[name] or name == "--json"
				or name == "-q" or name == "--quiet" or name == "-h" or name == "--help"
				or name == "-V" or name == "--version"
			if have_script and not known then
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
		elseif not cmd and COMMANDS[a] then
			cmd = a
			if a == "run" then cmd = "run" end
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
			local addrs, err = resolve(item)
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
	-- -w: capture as much of each segment as a record holds (tcpdump's
	-- default snaplen), unless -s says otherwise
	if a.write and o.snaplen == nil then o.snaplen = o.file and 65535 or core.SNAPLEN_MAX end
	return o
end

-- The command-line option an error of the core is about (its `option`
-- field, see doc/reference.md "Errors"), or nil.
local function cli_option(err, given)
	local flag = type(err) == "table" and err.option and OPTNAME[err.option] or nil
	-- -i sets dev and filter.dev
	if given and (err.option == "dev" or err.option == "filter.dev") and given["-i"] then flag = "-i" end
	return flag
end

-- Open, turning mistakes in command-line values into exit 2 and environment
-- failures into exit 1.
-- A filter expression the library refused: tcpdump prints libpcap's
-- message and exits 1; so do we (a command's name mistyped as an
-- expression gets a hint).
local function expression_error(err)
	if type(err) == "table" and err.option == "filter.expr" then
		local msg = "tcpinspect: " .. tostring(err.reason)
		local word = err.reason:match("^'([%w]+)'")
		local hint = word and M.suggest(word, COMMAND_LIST)
		if hint then msg = msg .. string.format(" (a command goes first: did you mean '%s'?)", hint) end
		script.fail(1, msg)
	end
end

local function open_session(o, usage, from_cli)
	-- -r FILE: the same options, replayed from the file
	local ok, s, msg = pcall(o.file and tcpinspect.replay or tcpinspect.open, o)
	if not ok then
		expression_error(s)
		local flag = cli_option(s, from_cli)
		if flag and (from_cli == nil or from_cli[flag]) then
			script.fail(2, string.format("argument '%s': %s", flag, M.cli_words(s.reason)), usage)
		end
		error(s, 0)
	end
	if not s then script.fail(1, "tcpinspect: " .. M.cli_words(tostring(msg))) end
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
	local flag = cli_option(err, given)
	if flag and given[flag] then
		script.fail(2, string.format("argument '%s': %s", flag, M.cli_words(err.reason)), usage)
	end
	error(err, 0)
end

local function probes_text(s)
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

--- Run a session until --duration, Ctrl-C, SIGTERM or stop(); flush stdout
-- after every poll.
-- @treturn string why: "duration", "stopped", "interrupted"
function M.drive(s, run_opts)
	-- the signals that end a terminal's programs (Ctrl-C, kill, a hang-up,
	-- Ctrl-\, a reader that went away) interrupt the poll wait; run()
	-- returns "signal" and the session detaches (netlink filters included)
	tcpinspect.trap_signals { "INT", "TERM", "HUP", "QUIT", "PIPE" }
	local user_stop = run_opts.should_stop
	run_opts.should_stop = function()
		io.stdout:flush()
		return user_stop ~= nil and user_stop() or false
	end
	local ok, n, why = pcall(s.run, s, run_opts)
	io.stdout:flush()
	if not ok then
		if script.is_interrupt(n) then return "interrupted" end
		error(n, 0)
	end
	if n == nil then script.fail(1, "tcpinspect: " .. M.cli_words(tostring(why))) end
	if why == "signal" then return "interrupted" end
	return why
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
	for _, k in ipairs(STATS) do parts[#parts + 1] = k .. "=" .. st[k] end
	if rates then parts[#parts + 1] = "seen/s=" .. fmt._short(rates) end
	return table.concat(parts, " ")
end

local function stats_summary(st)
	local parts = {}
	for _, k in ipairs(STATS) do parts[#parts + 1] = k .. " " .. st[k] end
	return table.concat(parts, ", ")
end

--- The end-of-run line every command prints on stderr (unless -q):
-- "8 packets printed in 1.5s (duration); seen 8, filtered 0, ...".
-- @tparam string what "8 packets printed", "3 reports printed", ...
function M.summary(what, elapsed, why, st)
	return string.format("%s in %s (%s); %s", what, fmt.duration(elapsed), why, stats_summary(st))
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
	say(M.ready_line("watch", s))
	-- times are the session's (session:now(): a replay's is the capture's)
	local t0 = s:now()
	local why = M.drive(s, { duration = a.duration, interval = a.interval or 1 })
	local ok, err = s:dump(nil) -- flushed and closed
	if not ok then script.fail(1, "tcpinspect: argument '-w': " .. tostring(err)) end
	say(M.summary(printed .. (a.write and " packets written" or " packets printed"),
		s:now() - t0, why, s:stats()))
	return 0
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
-- "pid N (comm)" of a process in it; this process's own is "this namespace".
-- Rescanned (at most once per call) when an inode is not known yet.
function M.netns_namer(run)
	run = run or function(cmd)
		local f = io.popen(cmd .. " 2>/dev/null")
		local out = f:read("a")
		f:close()
		return out
	end
	local names, scanned = {}, false
	local function scan()
		local own = tonumber(run("stat -L -c %i /proc/self/ns/net"):match("%d+") or "")
		if own then names[own] = "this namespace" end
		for ino, path in run("stat -L -c '%i %n' /proc/[0-9]*/ns/net"):gmatch("(%d+) /proc/(%d+)/") do
			ino = tonumber(ino)
			if not names[ino] then
				local comm = run("cat /proc/" .. path .. "/comm"):match("[^\n]+")
				names[ino] = string.format("pid %s (%s)", path, comm or "?")
			end
		end
		-- `ip netns` names win over pids
		for ino, name in run("stat -L -c '%i %n' /run/netns/*"):gmatch("(%d+) /run/netns/([^\n]+)") do
			ino = tonumber(ino)
			if names[ino] ~= "this namespace" then names[ino] = name end
		end
	end
	return function(ino)
		if not names[ino] and not scanned then
			scanned = true
			scan()
		end
		return names[ino] or "?"
	end, function() scanned = false end
end

-- top's loop, whatever it groups by: the ready line, a report every interval
-- and a final one, the summary line
local function run_reports(a, s, say, t0, report, count)
	say(M.ready_line("top", s))
	local why = M.drive(s, { duration = a.duration, interval = a.interval or 1,
		on_interval = function(_, elapsed) report(elapsed) end })
	local elapsed = s:now() - t0
	report(elapsed, true)
	say(M.summary(count() .. " reports printed", elapsed, why, s:stats()))
	return 0
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
		local dt = math.max(elapsed - last, 1e-9)
		local t = {}
		for ino, e in pairs(cur) do
			local o = (not final and prev[ino]) or { packets = 0, bytes = 0 }
			local r = { netns = ino, name = name_of(ino), packets = e.packets, bytes = e.bytes,
				pps = (e.packets - o.packets) / (final and math.max(elapsed, 1e-9) or dt),
				bps = (e.bytes - o.bytes) / (final and math.max(elapsed, 1e-9) or dt) }
			t[tostring(ino)] = r
			prev[ino] = { packets = e.packets, bytes = e.bytes }
		end
		last = elapsed
		local list = {}
		for _, e in ipairs(topk.top(t, rows, by)) do list[#list + 1] = e.value end
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

-- ---- export ------------------------------------------------------------------------

local function cmd_export(a, s, say)
	local reg = metrics.registry { max_series = a.max_series }
	exporter.kernel_metrics(s, reg)
	local srv, err = exporter.server { listen = a.listen, registry = reg, max_per_source = a.max_per_source }
	if not srv then script.fail(1, "tcpinspect: export: " .. err) end
	say(string.format("export: incoming TCP segments, %s mode (%s); serving %s; Ctrl-C to stop", s.mode,
		probes_text(s), srv.url))
	local ok, why = pcall(exporter.serve, srv, { duration = a.duration })
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
		script.fail(2, "give a command (" .. table.concat(COMMAND_LIST, ", ") .. "), a script, or -e CODE", true)
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
		local hint = M.suggest(a.script, COMMAND_LIST)
		if hint then
			script.fail(2, string.format("unknown command '%s'; did you mean '%s'? (commands: %s; " ..
				"or a script file)", a.script, hint, table.concat(COMMAND_LIST, ", ")), true)
		elseif not a.script:find("[/.]") then
			script.fail(2, string.format("'%s' is neither a command (%s) nor a script file",
				a.script, table.concat(COMMAND_LIST, ", ")), true)
		end
		-- a script that cannot be read is a bad argument (exit 2), as a
		-- missing file is to tcpdump -r
		local _, why = io.open(a.script, "r")
		script.fail(2, string.format("cannot open script %s", tostring(why)), true)
	end
	check_options(M.open_options(a), usage, given)
	if a.e and #rest > 0 then M.unread_args_hint(a.e, rest) end
	local rt = script.new {
		options = M.open_options(a),
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

-- ---- main -------------------------------------------------------------------------

-- messages quote names from the system (interfaces, paths): printable,
-- lines and a traceback's tabs kept
local function print_err(msg)
	io.stderr:write((tostring(msg):gsub("[^\n\t]+", fmt.printable)), "\n")
end

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

--- Run the command.
-- @tparam table argv the arguments (like `arg`)
-- @treturn integer exit status
function M.main(argv)
	argv = argv or {}
	local list = {}
	for i = 1, #argv do list[#list + 1] = argv[i] end
	local P = parsers()
	local cmd, own, rest, words = M.split(list, VALUE_OPTS)
	local p = P[cmd]
	local usage = p:get_usage()
	local ok, a = p:pparse(own)
	if ok then
		local code
		ok, a, code = M.expression(a, words)
		if code then
			print_err(a)
			return code
		end
	end
	if ok then
		if a.interface and a.dev then
			ok, a = false, "argument '-i': give either -i (tcpdump's) or --dev, not both"
		end
	end
	if not ok then
		local bad = a:match("^unknown option '([^']+)'")
		if bad then a = unknown_option(bad, cmd, P) end
		io.stderr:write(usage, "\n\ntcpinspect: error: ", fmt.printable(a), "\n")
		return 2
	end
	if a.help then
		io.stdout:write(p:get_help(), "\n")
		return 0
	end
	if a.version then
		local v = tcpinspect.versions()
		io.stdout:write("tcpinspect ", v.tcpinspect, "\nlibbpf ", v.libbpf, "\nkernel ", v.kernel, "\n")
		return 0
	end
	-- which command-line options were given (to blame the right one)
	local given = {}
	for _, t in ipairs(own) do given[t:match("^(%-%-[^=]+)") or t] = true end
	local say = a.quiet and function() end or function(msg) print_err("tcpinspect: " .. msg) end

	local session
	local run_ok, code = pcall(function()
		if cmd == "run" then
			return cmd_run(a, rest, usage, say, given)
		end
		local o = M.open_options(a)
		-- top --by netns counts the events' netns (the maps have no netns)
		if (cmd == "top" and a.by ~= "netns") or cmd == "export" or (cmd == "stats" and not a.events) then
			o.events = false
		end
		session = open_session(o, usage, given)
		if cmd == "watch" then return cmd_watch(a, session, say, usage) end
		if cmd == "top" then return cmd_top(a, session, say) end
		if cmd == "export" then return cmd_export(a, session, say) end
		return cmd_stats(a, session, say)
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
