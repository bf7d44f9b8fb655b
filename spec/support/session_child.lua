-- SPDX-License-Identifier: GPL-2.0-only
-- spec/support/session_child.lua: a child process for kernel specs that need
-- a session in another process (another network namespace, or a process to
-- SIGKILL).  Run it with net.lua_cmd(net.ROOT .. "/spec/support/session_child.lua", CONFIG)
-- where CONFIG is a Lua table constructor:
--
--   { open = {mode=..., filter=...},   -- tcpinspect.open options
--     listen = {"10.1.2.1", 20001},    -- optional: run an echo server there
--     listen6 = {"fd00::1", 20001},    -- optional: a second one
--     stop = "/tmp/.../stop",          -- run until this file exists
--     fork = "/tmp/.../fork.so" }      -- optional: once attached, fork a child
--                                      -- that exits with os.exit(0, true)
--                                      -- (closing its copy of the session),
--                                      -- and wait for it (spec/support/fork.c)
--
-- open = false runs the servers only (no session).
--
-- It prints "READY <mode>" (and "PROBE name status" lines) once attached, or
-- "FAIL <message>" and exits 1.  On stop it drains and prints one line
-- "RESULT <lua table>" with stats, per-flow map counts and per-flow events.
local net = require "support.net"
local tcpinspect = require "tcpinspect"

local cfg = assert(load("return " .. assert(arg[1], "config expected")))()
local s, err
if cfg.open then
	s, err = tcpinspect.open(cfg.open)
else
	-- a server only (open = false): stand-in so the loop below stays simple
	s = { mode = "none", probes = {}, on_packet = function() end, poll = function() return 0 end }
end
if not s then
	io.write("FAIL ", (tostring(err):gsub("\n", " | ")), "\n")
	io.stdout:flush()
	os.exit(1)
end
local events, syn_events, netns, probes_seen = {}, 0, {}, {}
s:on_packet(function(p)
	local k = net.flow_key(p.saddr, p.sport, p.daddr, p.dport)
	events[k] = (events[k] or 0) + 1
	netns[tostring(p.netns)] = true
	probes_seen[p.probe] = true
	if p.flagstr == "S" then syn_events = syn_events + 1 end
end)
if cfg.fork then
	local fork = assert(package.loadlib(cfg.fork, "luaopen_ti_fork"))()
	local pid = assert(fork.fork())
	if pid == 0 then os.exit(0, true) end -- the child: closes its Lua state
	local code = fork.wait(pid)
	io.write("FORKED ", tostring(code), "\n")
end
local servers = {}
for _, l in ipairs{ cfg.listen, cfg.listen6 } do
	servers[#servers + 1] = net.server(l[1], l[2])
end
for name, status in pairs(s.probes) do
	io.write("PROBE ", name, " ", status, "\n")
end
io.write("READY ", s.mode, "\n")
io.stdout:flush()

local function stop_requested()
	return cfg.stop and io.open(cfg.stop) ~= nil
end

if #servers == 0 then
	while not stop_requested() do s:poll(50) end
else
	net.serve_loop(servers, stop_requested, function() s:poll(0) end)
	for _, srv in ipairs(servers) do srv:close() end
end

if not cfg.open then
	io.write("RESULT {}\n")
	os.exit(0)
end
net.drain(s)
local flows = {}
for k, v in s:map("flows"):pairs() do
	flows[net.flow_key(k.saddr, k.sport, k.daddr, k.dport)] = v.packets
end
local syns = 0
for _, v in s:map("sources"):pairs() do syns = syns + v.syns end
local result = { stats = net.stats(s), flows = flows, events = events, syns = syns,
	syn_events = syn_events, mode = s.mode, netns = netns, probes = probes_seen }
s:close()

local ser = net.serialize
io.write("RESULT ", ser(result), "\n")
io.stdout:flush()
