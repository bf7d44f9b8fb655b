-- SPDX-License-Identifier: GPL-2.0-only
--- spec/support/net.lua: shared helpers for the kernel specs (and the CLI and
-- example specs).  Real traffic, real captures, real namespaces; no mocks.
--
--     local net = require "support.net"
--
-- Environment
--   net.ROOT                  absolute path of the checkout
--   net.BUILD                 the build the specs load (TCPINSPECT_BUILD, else ROOT/build)
--   net.LUA                   the Lua interpreter to run children with ("lua5.4")
--   net.IN_VM                 TCPINSPECT_IN_VM (kernel id) or nil
--   net.PREEMPT_RT            true on a PREEMPT_RT kernel (uname -v)
--   net.modes()               modes that must work here: TCPINSPECT_EXPECT_MODES,
--                             else what tcpinspect.features() reports
--   net.scale(seconds)        a timeout, multiplied by 10 inside a (TCG) guest
--   net.open(opts)            tcpinspect.open, but raises (fails the spec) with the
--                             message when an expected mode cannot open
--   net.ncpus()               number of possible CPUs
--   net.say(fmt, ...)         print one "measured" line to stderr (for the lead)
--
-- Processes and shell (lua-posix is not available for 5.4: all through sh)
--   net.sh(cmd)               -> ok, output (stdout+stderr), exit code
--   net.must(cmd)             -> output; raises with the output on failure
--   net.q(s)                  shell-quote a string
--   net.spawn(cmd, [outfile]) -> pid; cmd runs in the background, output to outfile
--   net.alive(pid)            -> boolean
--   net.kill(pid, [sig])      sig defaults to "TERM"
--   net.wait_exit(pid, [timeout]) -> true once the process is gone
--   net.wait_until(fn, [timeout], [step]) -> fn's first truthy value, or nil
--   net.lua_cmd(script_path, args...) -> "lua5.4 ..." command line with the
--                             checkout's package.path/cpath
--   net.tmpfile([suffix]) / net.read_file(path) / net.write_file(path, s)
--   net.mibs([ns]): a namespace's MIB counters by nstat's names
--   net.getpid()              pid of this Lua process
--
-- Traffic (lua-socket, blocking, bounded by timeouts)
--   net.port([n])             a fresh TCP port free on 127.0.0.1 and ::1; with n, the
--                             first of n consecutive free ports
--   net.addr4()               a fresh 127.X.Y.Z address (X >= 1): foreign traffic on a
--                             shared machine hits 127.0.0.1, never these
--   net.server(host, port)    -> listening lua-socket object (backlog 512)
--   net.conversation(srv, host, port, opts) -> info
--                             one complete connection: connect (optionally from
--                             opts.bind), send opts.data (string) and read the echo,
--                             then an orderly close (client shutdown, server close)
--                             that keeps every segment on a full socket, so hooks
--                             that only see socketed segments (cgroup) see them all.
--                             info = {sport=, dport=, saddr=, daddr=}
--   net.conversations(srv, host, port, n, opts) -> list of info
--   net.connect_closed(host, port) -> true when refused (RST)
--   net.serve_loop(srvs, should_stop, [on_idle]) echo server pump (one server or a
--                             list) for a child process; on_idle runs every loop
--
-- Captures
--   net.tcpdump(opts)         -> capture; opts.iface ("lo"), opts.filter (pcap
--                             expression), opts.netns, opts.snaplen (tcpdump -s,
--                             default 128; 0: whole frames); starts tcpdump -Q in
--                             -U --immediate-mode -w and waits until it listens;
--                             capture.file is the pcap
--   capture:stop()            -> list of packets {saddr, sport, daddr, dport, flags
--                             (bitmask), flagstr (tcpdump's), len, family};
--                             capture.dropped: tcpdump's "dropped by kernel" count
--                             (nil for the shared capture of a guest's lo)
--   net.read_pcap(path)       -> the same list from a pcap file (parsed in Lua)
--   net.count(pkts, pred)     -> number of packets for which pred(p) is true
--   net.by_flow(pkts)         -> {[flow_key] = packets}
--   net.flow_key(saddr, sport, daddr, dport)
--   net.snmp(ns)              -> table of "Tcp:" counters (InSegs, ...) of a netns
--
-- Sessions
--   net.drain(s, [quiet])     poll until a poll that waited `quiet` seconds found nothing
--   net.map_flows(s, pred)    -> {[flow_key] = value} from the flows map
--   net.stats(s)             -> s:stats() read until two reads agree (a consistent
--                             snapshot while other traffic is counted)
--   net.identity(stats_or_session, events) asserts seen == filtered + matched and, with
--                             events on, matched == sampled_out + delivered + dropped
--
-- Namespaces
--   net.netns_pair()          -> pair; two fresh namespaces joined by a veth,
--                             pair.server / pair.client (ns names),
--                             pair.server4/client4 (10.x addresses), server6/client6
--                             (fd00:: addresses), pair.sdev / pair.cdev (veth names),
--                             pair:exec(ns, cmd) -> ok, out; pair:destroy() (idempotent)
--   net.netns(name_hint)      -> one fresh namespace with lo up: ns.name, ns:exec(cmd),
--                             ns:destroy()
--
-- Child sessions (spec/support/session_child.lua)
--   net.session_child(cfg, [opts]) -> child; cfg = {open=opts, listen={host,port},
--                             listen6={host,port}}; opts.netns, opts.env, opts.cgroup (a
--                             cgroup v2 directory the child joins before it starts)
--   child:ready()             -> mode, probes (raises with the output if it failed)
--   child:stop()              -> result {stats, flows, events, syns, syn_events,
--                             netns, probes, mode}
--   child:kill()              SIGKILL and wait
--   child.pid
--   net.serialize(v)          Lua source for a value
--
-- BPF objects
--   net.bpf_ids(pid)          -> {progs = {id,...}, links = {id,...}} held by a process
--   net.prog_exists(id), net.link_exists(id)
--   net.tc_filters(dev, [ns]) -> text of `tc filter show dev DEV ingress`
--   net.tc_ours(text)         -> whether that text shows a tcpinspect filter
--   net.tc_state_files([pid]) -> the tc state files in /run/tcpinspect (PID's)
local socket = require "socket"

local net = {}

-- ---- environment ------------------------------------------------------------

local function script_dir()
	local src = debug.getinfo(1, "S").source:gsub("^@", "")
	return src:match("^(.*)/[^/]*$") or "."
end

do
	local f = io.popen("cd " .. ("'" .. script_dir():gsub("'", "'\\''") .. "'") .. "/../.. && pwd -P")
	net.ROOT = f:read("l")
	f:close()
end
net.LUA = os.getenv("TCPINSPECT_LUA") or "lua5.4"
net.IN_VM = os.getenv("TCPINSPECT_IN_VM")
if net.IN_VM == "" then net.IN_VM = nil end
do -- a PREEMPT_RT kernel says so in its version string (uname -v)
	local f = io.open("/proc/sys/kernel/version")
	net.PREEMPT_RT = f and (f:read("a") or ""):find("PREEMPT_RT") ~= nil or false
	if f then f:close() end
end

-- the build whose core the specs load: build/, or a test build
-- (TCPINSPECT_BUILD: `make clobber-check`)
net.BUILD = os.getenv("TCPINSPECT_BUILD") or (net.ROOT .. "/build")
package.path = net.ROOT .. "/lua/?.lua;" .. net.ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = net.BUILD .. "/?.so;" .. package.cpath

local tcpinspect = require "tcpinspect"
net.tcpinspect = tcpinspect

function net.scale(seconds)
	return net.IN_VM and seconds * 10 or seconds
end

local modes_cache
function net.modes()
	if modes_cache then return modes_cache end
	local env = os.getenv("TCPINSPECT_EXPECT_MODES")
	local list = {}
	if env and env ~= "" then
		for m in env:gmatch("[^,%s]+") do list[#list + 1] = m end
	else
		local f = tcpinspect.features()
		for _, m in ipairs{ "fentry", "kprobe", "tc", "cgroup" } do
			if f[m] then list[#list + 1] = m end
		end
	end
	modes_cache = list
	return list
end

--- Number of possible CPUs (the size of per-CPU maps).
function net.ncpus()
	local s = net.read_file("/sys/devices/system/cpu/possible") or "0"
	local n = 0
	for a, b in s:gmatch("(%d+)%-?(%d*)") do
		n = n + (b ~= "" and tonumber(b) - tonumber(a) + 1 or 1)
	end
	return n
end

function net.has_mode(m)
	for _, x in ipairs(net.modes()) do if x == m then return true end end
	return false
end

function net.open(opts)
	local s, err, errno = tcpinspect.open(opts)
	if not s then
		error(("tcpinspect.open{mode=%s} failed (errno %s): %s"):format(
			tostring(opts and opts.mode), tostring(errno), tostring(err)), 2)
	end
	return s
end

function net.say(fmt, ...)
	io.stderr:write(fmt:format(...), "\n")
	io.stderr:flush()
end

-- ---- shell and processes ------------------------------------------------------

function net.q(s)
	return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

function net.sh(cmd)
	local f = io.popen("(" .. cmd .. ") 2>&1", "r")
	local out = f:read("a")
	local ok, _, code = f:close()
	return ok == true, out, code
end

function net.must(cmd)
	local ok, out, code = net.sh(cmd)
	if not ok then
		error(("command failed (exit %s): %s\n%s"):format(tostring(code), cmd, out), 2)
	end
	return out
end

function net.getpid()
	local f = assert(io.open("/proc/self/stat"))
	local pid = tonumber(f:read("l"):match("^(%d+)"))
	f:close()
	return pid
end

local tmpdir
local tmpseq = 0
function net.tmpfile(suffix)
	if not tmpdir then
		-- mktemp: a directory no other load of this file shares.  busted
		-- reloads this module for every spec file (insulation), so a name
		-- made of pid and math.random collided for two files loaded in the
		-- same second (same seed): the second file's helpers then read the
		-- first one's .rc and .out files (CI: spec/37 got spec/30's result)
		tmpdir = net.must("mktemp -d /tmp/tcpinspect-spec-XXXXXXXX"):match("^(%S+)")
		net.must("chmod 755 " .. tmpdir)
	end
	tmpseq = tmpseq + 1
	return ("%s/f%d%s"):format(tmpdir, tmpseq, suffix or "")
end

function net.read_file(path)
	local f = io.open(path, "rb")
	if not f then return nil end
	local s = f:read("a")
	f:close()
	return s
end

-- The MIB counters of network namespace `ns` (a name in /run/netns; nil:
-- this one), from /proc/net/snmp and /proc/net/netstat, as nstat names them:
-- "TcpInCsumErrors", "TcpExtListenDrops".  The kernel keeps them per
-- namespace, so a fresh namespace's count only its own traffic.
function net.mibs(ns)
	local t = {}
	for _, f in ipairs{ "/proc/net/snmp", "/proc/net/netstat" } do
		local out = net.must((ns and "ip netns exec " .. net.q(ns) .. " " or "") .. "cat " .. f)
		local names
		for line in out:gmatch("[^\n]+") do
			local pre, rest = line:match("^(%w+): (.*)$")
			if pre and rest:match("^%a") then
				names = {}
				for w in rest:gmatch("%S+") do names[#names + 1] = w end
			elseif pre and names then
				local i = 0
				for w in rest:gmatch("%S+") do
					i = i + 1
					t[pre .. names[i]] = tonumber(w)
				end
				names = nil
			end
		end
	end
	return t
end

function net.write_file(path, s)
	local f = assert(io.open(path, "wb"))
	f:write(s)
	f:close()
end

function net.spawn(cmd, outfile)
	outfile = outfile or "/dev/null"
	local f = io.popen(("exec 3>&1; (%s) </dev/null >%s 2>&1 & echo $!"):format(cmd, net.q(outfile)))
	local pid = tonumber(f:read("l"))
	f:close()
	assert(pid, "spawn failed: " .. cmd)
	return pid
end

function net.alive(pid)
	-- a zombie is not alive: read the state from /proc
	local s = net.read_file("/proc/" .. pid .. "/stat")
	if not s then return false end
	local state = s:match("^%d+ %b() (%a)")
	return state ~= "Z" and state ~= "X"
end

function net.kill(pid, sig)
	net.sh(("kill -%s %d"):format(sig or "TERM", pid))
end

function net.sleep(s)
	socket.sleep(s)
end

--- busted keeps one `finally` per test: collect a test's cleanups and run
-- them all (last first) from it.  Call inside a test with busted's
-- `finally` (a spec file's own global, not this module's); returns
-- `defer(fn)`.
function net.cleanups(finally)
	local fns = {}
	finally(function()
		for i = #fns, 1, -1 do pcall(fns[i]) end
	end)
	return function(fn) fns[#fns + 1] = fn end
end

function net.wait_until(fn, timeout, step)
	local deadline = socket.gettime() + net.scale(timeout or 5)
	step = step or 0.02
	while true do
		local v = fn()
		if v then return v end
		if socket.gettime() > deadline then return nil end
		socket.sleep(step)
	end
end

function net.wait_exit(pid, timeout)
	return net.wait_until(function() return not net.alive(pid) end, timeout or 5) or false
end

--- "lua5.4 -e '<paths>' SCRIPT ARGS..." for a child process.
function net.lua_cmd(script, ...)
	local pre = ("package.path=%q..package.path package.cpath=%q..package.cpath"):format(
		net.ROOT .. "/lua/?.lua;" .. net.ROOT .. "/lua/?/init.lua;" .. net.ROOT .. "/spec/?.lua;",
		net.BUILD .. "/?.so;")
	local parts = { net.LUA, "-e", net.q(pre), net.q(script) }
	for _, a in ipairs{ ... } do parts[#parts + 1] = net.q(a) end
	return table.concat(parts, " ")
end

--- Run a Lua chunk in a child (lua5.4 with the checkout's paths); returns its
-- output (stdout and stderr).  opts: netns (run in it), env ("K=V ..."),
-- wrap (a function from the command line to the one to run).
function net.lua_child(code, opts)
	opts = opts or {}
	local path = net.tmpfile(".lua")
	net.write_file(path, ("package.path = %q .. package.path\npackage.cpath = %q .. package.cpath\n"):format(
		net.ROOT .. "/lua/?.lua;" .. net.ROOT .. "/spec/?.lua;", net.ROOT .. "/build/?.so;") .. code)
	local cmd = (opts.env and ("env " .. opts.env .. " ") or "") .. net.LUA .. " " .. net.q(path)
	if opts.netns then cmd = "ip netns exec " .. opts.netns .. " " .. cmd end
	if opts.wrap then cmd = opts.wrap(cmd) end
	local _, out = net.sh(cmd .. " 2>&1")
	os.remove(path)
	return out
end

-- ---- traffic ---------------------------------------------------------------------

local function tcp_for(host)
	return host:find(":", 1, true) and socket.tcp6() or socket.tcp4()
end

local function free_on(host, port)
	local s = tcp_for(host)
	s:setoption("reuseaddr", true)
	local ok = s:bind(host, port)
	s:close()
	return ok ~= nil
end

local used = {}
function net.port(n)
	n = n or 1
	for _ = 1, 2000 do
		local p = math.random(20000, 32000 - n)
		local ok = true
		for i = 0, n - 1 do
			if used[p + i] or not free_on("127.0.0.1", p + i) or not free_on("::1", p + i) then
				ok = false
				break
			end
		end
		if ok then
			for i = 0, n - 1 do used[p + i] = true end
			return p
		end
	end
	error("no free port found")
end

--- A fresh IPv4 loopback address (127.X.Y.Z, X >= 1): lo answers all of
-- 127/8, and no other test on a shared machine talks to it, unlike 127.0.0.1.
local used_addr = {}
function net.addr4()
	while true do
		local a = ("127.%d.%d.%d"):format(math.random(1, 254), math.random(0, 255), math.random(1, 254))
		if not used_addr[a] then
			used_addr[a] = true
			return a
		end
	end
end

function net.server(host, port)
	local s = tcp_for(host)
	assert(s:setoption("reuseaddr", true))
	assert(s:bind(host, port))
	assert(s:listen(512))
	s:settimeout(net.scale(5))
	return s
end

local function recv_n(c, n)
	local got = {}
	local have = 0
	while have < n do
		local data, err, partial = c:receive(n - have)
		data = data or partial
		if data and #data > 0 then
			got[#got + 1] = data
			have = have + #data
		end
		if err then return nil, err end
	end
	return table.concat(got)
end

--- One complete connection through srv (a listening socket of this process).
function net.conversation(srv, host, port, opts)
	opts = opts or {}
	local c = tcp_for(host)
	c:settimeout(net.scale(5))
	if opts.bind then assert(c:bind(opts.bind, 0)) end
	assert(c:connect(host, port))
	local conn = assert(srv:accept())
	conn:settimeout(net.scale(5))
	local data = opts.data or ""
	if #data > 0 then
		assert(c:send(data))
		local got = assert(recv_n(conn, #data))
		assert(conn:send(got))
		assert(recv_n(c, #data) == data)
	end
	-- orderly close: the client half-closes (its socket is not orphaned, so
	-- it stays a full socket), the server sees EOF and closes, the client
	-- reads EOF, then closes in TIME_WAIT.
	c:shutdown("send")
	local _, err = conn:receive(1)
	assert(err == "closed", "server expected EOF, got " .. tostring(err))
	conn:close()
	_, err = c:receive(1)
	assert(err == "closed", "client expected EOF, got " .. tostring(err))
	local saddr, sport = c:getsockname()
	c:close()
	return { saddr = saddr, sport = tonumber(sport), daddr = host, dport = port }
end

function net.conversations(srv, host, port, n, opts)
	local list = {}
	for i = 1, n do list[i] = net.conversation(srv, host, port, opts) end
	return list
end

--- A connect to a port nobody listens on: SYN, then RST from the kernel.
--- n connection attempts (SYNs) from network namespace ns to addr:port, each
-- bounded by a timeout (nothing needs to listen).
function net.syns(ns, addr, port, n)
	for _ = 1, n do
		net.sh(("ip netns exec %s timeout %d bash -c 'echo > /dev/tcp/%s/%d' 2>/dev/null"):format(ns, net.scale(2), addr, port))
	end
end

function net.connect_closed(host, port)
	local c = tcp_for(host)
	c:settimeout(net.scale(5))
	local ok, err = c:connect(host, port)
	c:close()
	assert(not ok, "port " .. port .. " unexpectedly open")
	return err == "connection refused"
end

--- Echo server pump for a child process: accepts, echoes, closes on EOF,
-- until should_stop() returns true.
function net.serve_loop(srvs, should_stop, on_idle)
	if type(srvs) ~= "table" or srvs.accept then srvs = { srvs } end
	local listening = {}
	for _, srv in ipairs(srvs) do
		srv:settimeout(0)
		listening[srv] = true
	end
	local conns = {}
	while not should_stop() do
		local rd = {}
		for _, srv in ipairs(srvs) do rd[#rd + 1] = srv end
		for c in pairs(conns) do rd[#rd + 1] = c end
		local ready = socket.select(rd, nil, 0.05)
		for _, s in ipairs(ready) do
			if listening[s] then
				local c = s:accept()
				if c then
					c:settimeout(0)
					conns[c] = true
				end
			else
				local data, err, partial = s:receive(65536)
				data = data or partial
				if data and #data > 0 then
					s:settimeout(net.scale(5))
					s:send(data)
					s:settimeout(0)
				end
				if err == "closed" then
					s:close()
					conns[s] = nil
				end
			end
		end
		if on_idle then on_idle() end
	end
	for c in pairs(conns) do c:close() end
end

-- ---- captures --------------------------------------------------------------------

function net.flow_key(saddr, sport, daddr, dport)
	return ("%s.%d > %s.%d"):format(saddr, sport, daddr, dport)
end

local capture = {}
capture.__index = capture

local function file_size(path)
	local f = io.open(path, "rb")
	if not f then return -1 end
	local n = f:seek("end")
	f:close()
	return n
end


-- A predicate for the small pcap-filter language the specs use: "tcp",
-- "port N", "portrange A-B", "host X", "and", "or", "not", parentheses.
-- nil when the expression uses anything else.
local function compile_filter(expr)
	local toks = {}
	for t in expr:gsub("%(", " ( "):gsub("%)", " ) "):gmatch("%S+") do toks[#toks + 1] = t end
	local i = 1
	local function peek() return toks[i] end
	local function take() i = i + 1 return toks[i - 1] end
	local parse_or
	local function primary()
		local t = take()
		if t == "(" then
			local f = parse_or()
			if take() ~= ")" then error("syntax") end
			return f
		elseif t == "not" then
			local f = primary()
			return function(p) return not f(p) end
		elseif t == "tcp" then
			if peek() == "port" or peek() == "portrange" then return primary() end
			return function() return true end
		elseif t == "port" then
			local n = tonumber(take())
			if not n then error("syntax") end
			return function(p) return p.sport == n or p.dport == n end
		elseif t == "portrange" then
			local a, b = (take() or ""):match("^(%d+)%-(%d+)$")
			a, b = tonumber(a), tonumber(b)
			if not a then error("syntax") end
			return function(p) return p.sport >= a and p.sport <= b or p.dport >= a and p.dport <= b end
		elseif t == "host" then
			local h = take()
			if not h then error("syntax") end
			return function(p) return p.saddr == h or p.daddr == h end
		end
		error("unsupported: " .. tostring(t))
	end
	local function parse_and()
		local f = primary()
		while peek() == "and" or peek() == "&&" do
			take()
			local g, f0 = primary(), f
			f = function(p) return f0(p) and g(p) end
		end
		return f
	end
	parse_or = function()
		local f = parse_and()
		while peek() == "or" or peek() == "||" do
			take()
			local g, f0 = parse_and(), f
			f = function(p) return f0(p) or g(p) end
		end
		return f
	end
	local ok, f = pcall(parse_or)
	if ok and i == #toks + 1 then return f end
	return nil
end
net.compile_filter = compile_filter

local function start_tcpdump(c, iface, filter, netns, snaplen)
	local pre = netns and ("ip netns exec " .. net.q(netns) .. " ") or ""
	-- whole frames: a ring slot is as large as the snapshot length (256 KiB
	-- for -s 0), so tcpdump's default 2 MiB buffer holds 8 and a burst on lo
	-- overflows it; 64 MiB hold 256
	local buf = snaplen and (snaplen == 0 or snaplen > 4096) and "-B 65536 " or ""
	local cmd = ("exec %stcpdump -Q in -i %s -n -U --immediate-mode %s-s %d -w %s %s"):format(
		pre, net.q(iface), buf, snaplen or 128, net.q(c.file), net.q(filter))
	c.pid = net.spawn(cmd, c.log)
	local ok = net.wait_until(function()
		local l = net.read_file(c.log) or ""
		return l:find("listening on", 1, true) or not net.alive(c.pid)
	end, 10)
	if not ok or not net.alive(c.pid) then
		error("tcpdump did not start: " .. (net.read_file(c.log) or "?"))
	end
end

-- In a guest (only our traffic, and tcpdump takes ~1 s to start under TCG),
-- captures on lo share one tcpdump process; each capture reads the packets
-- written after it began and applies its filter in Lua.
local shared_lo
-- at exit: stop the shared capture and remove this process's scratch files
net._reaper = setmetatable({}, { __gc = function()
	if shared_lo and shared_lo.pid then os.execute("kill -INT " .. shared_lo.pid .. " 2>/dev/null") end
	if tmpdir and tmpdir:match("^/tmp/tcpinspect%-spec%-") then os.execute("rm -rf " .. tmpdir) end
end })

function net.tcpdump(opts)
	opts = opts or {}
	local iface, filter = opts.iface or "lo", opts.filter or "tcp"
	local c = setmetatable({ netns = opts.netns }, capture)
	local pred = net.IN_VM and iface == "lo" and not opts.netns and not opts.snaplen and compile_filter(filter)
	if pred then
		if not shared_lo or not net.alive(shared_lo.pid) then
			shared_lo = { file = net.tmpfile(".pcap"), log = net.tmpfile(".log") }
			start_tcpdump(shared_lo, "lo", "tcp", nil)
		end
		c.shared, c.pred, c.file, c.log, c.pid = true, pred, shared_lo.file, shared_lo.log, shared_lo.pid
		c.offset = file_size(c.file)
		return c
	end
	c.file, c.log = net.tmpfile(".pcap"), net.tmpfile(".log")
	start_tcpdump(c, iface, filter, opts.netns, opts.snaplen)
	return c
end

local function ntop6(b)
	local g = {}
	for i = 1, 16, 2 do g[#g + 1] = (b:byte(i) << 8) | b:byte(i + 1) end
	-- the longest run (>= 2) of zero groups becomes "::", as inet_ntop does
	local best, blen, cur, clen = nil, 0, nil, 0
	for i = 1, 8 do
		if g[i] == 0 then
			if not cur then cur, clen = i, 0 end
			clen = clen + 1
			if clen > blen then best, blen = cur, clen end
		else
			cur = nil
		end
	end
	if blen < 2 then best = nil end
	local parts, i = {}, 1
	while i <= 8 do
		if i == best then
			parts[#parts + 1] = "" -- the gap
			i = i + blen
		else
			parts[#parts + 1] = ("%x"):format(g[i])
			i = i + 1
		end
	end
	local s = table.concat(parts, ":")
	if best == 1 then s = ":" .. s end
	if best and best + blen - 1 == 8 then s = s .. ":" end
	return s
end
net.ntop6 = ntop6

local TCPDUMP_FLAGS = { { 0x01, "F" }, { 0x02, "S" }, { 0x04, "R" }, { 0x08, "P" },
	{ 0x10, "." }, { 0x20, "U" }, { 0x40, "E" }, { 0x80, "W" } }

--- Parse a pcap file (Ethernet link type, as tcpdump writes for lo and veth)
-- into TCP packets {family, saddr, sport, daddr, dport, flags, flagstr, len, ip}
-- (ip: the captured bytes from the IP header on).
function net.read_pcap(path, offset)
	local data = assert(net.read_file(path), "no capture file " .. path)
	local pkts = {}
	if #data < 24 then return pkts end
	local magic = string.unpack("<I4", data, 1)
	local E = (magic == 0xa1b2c3d4 or magic == 0xa1b23c4d) and "<" or ">"
	local linktype = string.unpack(E .. "I4", data, 21)
	assert(linktype == 1, "pcap link type " .. linktype .. " is not Ethernet")
	local pos = math.max(25, (offset or 0) + 1)
	while pos + 16 <= #data + 1 do
		local incl = string.unpack(E .. "I4", data, pos + 8)
		local frame = data:sub(pos + 16, pos + 15 + incl)
		pos = pos + 16 + incl
		local etype = #frame >= 14 and string.unpack(">I2", frame, 13)
		local p, l4, iplen_payload
		if etype == 0x0800 and #frame >= 34 then
			local ihl = (frame:byte(15) & 0x0f) * 4
			if frame:byte(24) == 6 then
				local tot = string.unpack(">I2", frame, 17)
				p = { family = 4,
					saddr = ("%d.%d.%d.%d"):format(frame:byte(27, 30)),
					daddr = ("%d.%d.%d.%d"):format(frame:byte(31, 34)) }
				l4 = 15 + ihl
				iplen_payload = tot - ihl
			end
		elseif etype == 0x86dd and #frame >= 54 and frame:byte(21) == 6 then
			p = { family = 6, saddr = ntop6(frame:sub(23, 38)), daddr = ntop6(frame:sub(39, 54)) }
			l4 = 55
			iplen_payload = string.unpack(">I2", frame, 19)
		end
		if p and #frame >= l4 + 13 then
			p.sport, p.dport = string.unpack(">I2I2", frame, l4)
			local doff = (frame:byte(l4 + 12) >> 4) * 4
			p.flags = frame:byte(l4 + 13)
			p.len = iplen_payload - doff
			local fs = {}
			for _, f in ipairs(TCPDUMP_FLAGS) do
				if p.flags & f[1] ~= 0 then fs[#fs + 1] = f[2] end
			end
			p.flagstr = table.concat(fs)
			p.ip = frame:sub(15) -- the captured bytes from the IP header on
			pkts[#pkts + 1] = p
		end
	end
	return pkts
end

function capture:stop()
	-- let the last packets reach the file (-U writes each packet as it
	-- comes): wait until the file has not grown for a while
	local stable_for = net.IN_VM and 0.4 or 0.2
	local last, since = -1, socket.gettime()
	net.wait_until(function()
		local n = file_size(self.file)
		if n ~= last then last, since = n, socket.gettime() end
		return socket.gettime() - since >= stable_for
	end, 5, 0.05)
	local pkts
	if self.shared then
		pkts = {}
		for _, p in ipairs(net.read_pcap(self.file, self.offset)) do
			if self.pred(p) then pkts[#pkts + 1] = p end
		end
	else
		net.kill(self.pid, "INT")
		if not net.wait_exit(self.pid, 5) then net.kill(self.pid, "KILL") end
		self.dropped = tonumber((net.read_file(self.log) or ""):match("(%d+) packets? dropped by kernel"))
		-- read the file ourselves: `tcpdump -r` takes ~25 ms a packet in a TCG guest
		pkts = net.read_pcap(self.file)
	end
	self.packets = pkts
	return pkts
end

function net.count(pkts, pred)
	local n = 0
	for _, p in ipairs(pkts) do if not pred or pred(p) then n = n + 1 end end
	return n
end

function net.by_flow(pkts, pred)
	local t = {}
	for _, p in ipairs(pkts) do
		if not pred or pred(p) then
			local k = net.flow_key(p.saddr, p.sport, p.daddr, p.dport)
			t[k] = (t[k] or 0) + 1
		end
	end
	return t
end

function net.snmp(ns)
	local cmd = ns and ("ip netns exec " .. net.q(ns) .. " cat /proc/net/snmp") or "cat /proc/net/snmp"
	local out = net.must(cmd)
	local names, vals
	for line in out:gmatch("[^\n]+") do
		if line:match("^Tcp: %a") then names = line
		elseif line:match("^Tcp: [%d-]") then vals = line end
	end
	local t, nl, vl = {}, {}, {}
	for w in names:gmatch("%S+") do nl[#nl + 1] = w end
	for w in vals:gmatch("%S+") do vl[#vl + 1] = w end
	for i = 2, #nl do t[nl[i]] = tonumber(vl[i]) end
	return t
end

-- ---- sessions --------------------------------------------------------------------

--- Deliver everything pending.  Callers drain after the traffic is over
-- (after capture:stop(), when the hooks have long run), so this polls until
-- a poll that waited `quiet` seconds found nothing more.
function net.drain(s, quiet)
	quiet = quiet or (net.IN_VM and 0.15 or 0.05)
	local total = 0
	local deadline = socket.gettime() + net.scale(10)
	while socket.gettime() < deadline do
		local n = s:poll(0)
		total = total + n
		if n == 0 then
			n = s:poll(math.floor(quiet * 1000))
			total = total + n
			if n == 0 then break end
		end
	end
	return total
end

function net.map_flows(s, pred)
	local t = {}
	for k, v in s:map("flows"):pairs() do
		if not pred or pred(k, v) then
			t[net.flow_key(k.saddr, k.sport, k.daddr, k.dport)] = v
		end
	end
	return t
end

local function same_stats(a, b)
	for k, v in pairs(a) do
		-- stats().drops (drops = true) is a table of counters, with reasons
		if type(v) == "table" then
			if type(b[k]) ~= "table" or not same_stats(v, b[k]) or not same_stats(b[k], v) then return false end
		elseif b[k] ~= v then
			return false
		end
	end
	return true
end

--- A consistent snapshot of s:stats(): counters are read one at a time while
-- the machine's other traffic keeps counting (seen/filtered), so read until
-- two reads in a row agree.
function net.stats(s)
	local a = s:stats()
	for _ = 1, 2000 do
		local b = s:stats()
		if same_stats(a, b) then return b end
		a = b
	end
	return a
end

function net.identity(st, events)
	if type(st) ~= "table" then st = net.stats(st) end
	assert(st.seen == st.filtered + st.matched,
		("identity broken: seen %d ~= filtered %d + matched %d"):format(st.seen, st.filtered, st.matched))
	if events ~= false then
		assert(st.matched == st.sampled_out + st.delivered + st.dropped,
			("identity broken: matched %d ~= sampled_out %d + delivered %d + dropped %d"):format(
				st.matched, st.sampled_out, st.delivered, st.dropped))
	end
	return true
end

-- ---- namespaces ------------------------------------------------------------------

local nsseq = 0
local function ns_name(hint)
	nsseq = nsseq + 1
	return ("ti%s%d%d%d"):format(hint or "", net.getpid() % 100000, nsseq, math.random(999))
end

local nsobj = {}
nsobj.__index = nsobj

function net.netns(hint)
	local name = ns_name(hint)
	net.must("ip netns add " .. name)
	local ns = setmetatable({ name = name }, nsobj)
	local ok, err = pcall(net.must, "ip -n " .. name .. " link set lo up")
	if not ok then ns:destroy() error(err) end
	return ns
end

function nsobj:exec(cmd)
	return net.sh("ip netns exec " .. self.name .. " " .. cmd)
end

function nsobj:destroy()
	if self.name and not self.destroyed then
		self.destroyed = true
		net.sh("ip netns pids " .. self.name .. " | xargs -r kill -9")
		net.sh("ip netns del " .. self.name)
	end
end

local pair = {}
pair.__index = pair

function net.netns_pair()
	local id = math.random(2, 250)
	local p = setmetatable({
		server = ns_name("s"), client = ns_name("c"),
		sdev = ("tis%d"):format(math.random(1e6)), cdev = ("tic%d"):format(math.random(1e6)),
	}, pair)
	p.server4, p.client4 = ("10.%d.%d.1"):format(id, math.random(0, 255)), nil
	p.client4 = p.server4:gsub("%.1$", ".2")
	p.server6 = ("fd00:%x:%x::1"):format(id, math.random(0, 65535))
	p.client6 = p.server6:gsub("::1$", "::2")
	local ok, err = pcall(function()
		net.must("ip netns add " .. p.server)
		net.must("ip netns add " .. p.client)
		net.must(("ip link add %s netns %s type veth peer name %s netns %s"):format(
			p.sdev, p.server, p.cdev, p.client))
		for _, x in ipairs{ { p.server, p.sdev, p.server4, p.server6 }, { p.client, p.cdev, p.client4, p.client6 } } do
			local ns, dev, a4, a6 = x[1], x[2], x[3], x[4]
			net.must(("ip -n %s link set lo up"):format(ns))
			net.must(("ip -n %s addr add %s/24 dev %s"):format(ns, a4, dev))
			net.must(("ip -n %s addr add %s/64 dev %s nodad"):format(ns, a6, dev))
			net.must(("ip -n %s link set %s up"):format(ns, dev))
		end
	end)
	if not ok then
		p:destroy()
		error(err)
	end
	-- wait for the link and IPv6 addresses to be usable
	net.wait_until(function()
		local _, out = net.sh(("ip -n %s -6 addr show dev %s tentative"):format(p.server, p.sdev))
		local _, out2 = net.sh(("ip -n %s -6 addr show dev %s tentative"):format(p.client, p.cdev))
		return not out:find("inet6") and not out2:find("inet6")
	end, 5)
	return p
end

function pair.exec(_, ns, cmd)
	return net.sh("ip netns exec " .. ns .. " " .. cmd)
end

function pair:destroy()
	if self.destroyed then return end
	self.destroyed = true
	for _, ns in ipairs{ self.server, self.client } do
		net.sh("ip netns pids " .. ns .. " | xargs -r kill -9")
		net.sh("ip netns del " .. ns)
	end
end

-- ---- child sessions ---------------------------------------------------------------

--- Lua source for a value (tables, strings, numbers, booleans).
function net.serialize(v)
	if type(v) == "table" then
		local parts = {}
		for k, x in pairs(v) do
			parts[#parts + 1] = ("[%s]=%s"):format(net.serialize(k), net.serialize(x))
		end
		return "{" .. table.concat(parts, ",") .. "}"
	elseif type(v) == "string" then
		return ("%q"):format(v)
	else
		return tostring(v)
	end
end

local child = {}
child.__index = child

--- Start spec/support/session_child.lua with cfg (see that file) in the
-- background; opts.netns runs it in a namespace, opts.env is prefixed as
-- "env VAR=x ...", opts.cgroup moves it into that cgroup v2 directory
-- first.  The returned handle has :ready(), :stop(), :kill().
function net.session_child(cfg, opts)
	opts = opts or {}
	local c = setmetatable({ out = net.tmpfile(".out"), stopfile = net.tmpfile(".stop") }, child)
	cfg.stop = c.stopfile
	local pre = ""
	if opts.netns then pre = "ip netns exec " .. opts.netns .. " " end
	if opts.env then pre = pre .. "env " .. opts.env .. " " end
	c.cmd = "exec " .. pre .. net.lua_cmd(net.ROOT .. "/spec/support/session_child.lua", net.serialize(cfg))
	if opts.cgroup then
		-- into the cgroup before anything runs: sockets take their creator's cgroup
		c.cmd = "exec sh -c " .. net.q("echo $$ > " .. net.q(opts.cgroup .. "/cgroup.procs") .. " && " .. c.cmd)
	end
	c.pid = net.spawn(c.cmd, c.out)
	return c
end

function child:output()
	return net.read_file(self.out) or ""
end

--- Wait until the child attached; raises with its output if it failed.
-- Returns its mode and its probes table.
function child:ready(timeout)
	local state = net.wait_until(function()
		local o = self:output()
		if o:find("\nREADY ") or o:find("^READY ") then return "ready" end
		if o:find("FAIL ") or not net.alive(self.pid) then return "failed" end
	end, timeout or 20)
	local o = self:output()
	if state ~= "ready" then
		self:kill()
		error(("child session did not start (%s):\n%s\n%s"):format(tostring(state), self.cmd, o), 2)
	end
	local probes = {}
	for name, status in o:gmatch("PROBE (%S+) ([^\n]*)") do probes[name] = status end
	return o:match("READY (%S+)"), probes
end

--- Ask the child to stop, wait for it, return its RESULT table.
function child:stop(timeout)
	net.write_file(self.stopfile, "stop\n")
	if not net.wait_exit(self.pid, timeout or 20) then
		self:kill()
		error("child session did not stop:\n" .. self:output(), 2)
	end
	local r = self:output():match("RESULT ([^\n]*)")
	if not r then error("child session gave no result:\n" .. self:output(), 2) end
	return assert(load("return " .. r))()
end

function child:kill()
	if net.alive(self.pid) then
		net.kill(self.pid, "KILL")
		net.wait_exit(self.pid, 10)
	end
end

-- ---- BPF objects -----------------------------------------------------------------

function net.bpf_ids(pid)
	local ids = { progs = {}, links = {} }
	local _, out = net.sh("ls -l /proc/" .. pid .. "/fd")
	for fd, what in out:gmatch(" (%d+) %-> anon_inode:(%S+)") do
		local info = net.read_file(("/proc/%d/fdinfo/%s"):format(pid, fd)) or ""
		if what:find("bpf%-prog") or what:find("bpf_prog") then
			local id = info:match("prog_id:%s*(%d+)")
			if id then ids.progs[#ids.progs + 1] = tonumber(id) end
		elseif what:find("bpf_link") or what:find("bpf%-link") then
			local id = info:match("link_id:%s*(%d+)")
			if id then ids.links[#ids.links + 1] = tonumber(id) end
		end
	end
	return ids
end

function net.prog_exists(id)
	return (net.sh("bpftool prog show id " .. id))
end

function net.link_exists(id)
	return (net.sh("bpftool link show id " .. id))
end

function net.tc_filters(dev, ns)
	local pre = ns and ("ip netns exec " .. ns .. " ") or ""
	local _, out = net.sh(pre .. "tc filter show dev " .. dev .. " ingress")
	return out
end

net.TC_PREF = 29001 -- 0x7149, tcpinspect's tc priority (luaext/kernel_tc.c)

function net.tc_ours(filters)
	return filters:find("ti_tc_ingress", 1, true) ~= nil or filters:find("pref " .. net.TC_PREF .. " ", 1, true) ~= nil
end

-- names tc-PID-N, sorted (ls), of every session or of PID's only
function net.tc_state_files(pid)
	local _, out = net.sh("ls /run/tcpinspect 2>/dev/null")
	local t = {}
	for name, owner in out:gmatch("(tc%-(%d+)%-%d+)") do
		if not pid or tonumber(owner) == pid then t[#t + 1] = name end
	end
	return t
end

-- seeded from the kernel: busted reloads this file for every spec file,
-- and a seed of time and pid repeats within a second
do
	local f = assert(io.open("/dev/urandom", "rb"))
	math.randomseed(string.unpack("<i8", f:read(8)))
	f:close()
end

-- TCPINSPECT_SPEC_TIMING=1: log the time taken by the slow helpers (stderr)
if os.getenv("TCPINSPECT_SPEC_TIMING") then
	local function wrap(tbl, name, label)
		local f = tbl[name]
		tbl[name] = function(...)
			local t0 = socket.gettime()
			local r = table.pack(f(...))
			io.stderr:write(("  [timing] %-14s %.2fs\n"):format(label, socket.gettime() - t0))
			return table.unpack(r, 1, r.n)
		end
	end
	wrap(net, "open", "open")
	wrap(net, "tcpdump", "tcpdump start")
	wrap(capture, "stop", "tcpdump stop")
	wrap(net, "drain", "drain")
	wrap(net, "conversations", "conversations")
	wrap(net, "stats", "stats")
	wrap(net, "must", "must")
	wrap(child, "ready", "child ready")
	wrap(child, "stop", "child stop")
end

return net
