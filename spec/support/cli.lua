-- SPDX-License-Identifier: GPL-2.0-only
--- spec/support/cli.lua: run the `tcpinspect` command from specs.
--
--     local cli = require "support.cli"
--     local r = cli.run{ "watch", "--mode", "xdp" }      -- waits; r.code, r.out, r.err
--     local p = cli.start({ "watch", "--host", a }, { netns = ns })
--     p:ready()            -- waits for "Ctrl-C to stop" on stderr (the session is attached)
--     ...traffic...
--     p:interrupt()        -- SIGINT
--     local r = p:wait()   -- r.code, r.out, r.err
--
-- Builds on spec/support/net.lua (shell, files, waits).
local net = require "support.net"

local M = {}

M.BIN = net.ROOT .. "/build/bin/tcpinspect"

--- The shell command line for `tcpinspect ARGS...` (optionally in a netns).
function M.cmdline(args, netns, env, wrap)
	local parts = { net.q(M.BIN) }
	if wrap then table.insert(parts, 1, wrap) end
	for _, a in ipairs(args) do parts[#parts + 1] = net.q(a) end
	local cmd = table.concat(parts, " ")
	if env then cmd = "env " .. env .. " " .. cmd end
	if netns then cmd = "ip netns exec " .. net.q(netns) .. " " .. cmd end
	return cmd
end

local Proc = {}
Proc.__index = Proc

--- Start `tcpinspect ARGS...` in the background; stdout and stderr go to
-- files, the exit status to a third.  opts.netns runs it in a namespace,
-- opts.env ("VAR=x ...") sets environment variables, opts.wrap is a
-- command that runs it ("setpriv --bounding-set=...").
function M.start(args, opts)
	opts = opts or {}
	local p = setmetatable({ outf = net.tmpfile(".out"), errf = net.tmpfile(".err"),
		rcf = net.tmpfile(".rc"), pidf = net.tmpfile(".pid"), args = args }, Proc)
	p.cmd = M.cmdline(args, opts.netns, opts.env, opts.wrap)
	-- `exec` everywhere: the pid is the lua5.4 process itself (ip netns exec
	-- and the launcher exec too), so signals reach it directly.
	local sh = ("(%s) </dev/null >%s 2>%s & echo $! >%s; wait $!; echo $? >%s"):format(
		"exec " .. p.cmd, net.q(p.outf), net.q(p.errf), net.q(p.pidf), net.q(p.rcf))
	net.spawn("sh -c " .. net.q(sh))
	p.pid = net.wait_until(function()
		local s = net.read_file(p.pidf)
		return s and tonumber(s:match("%d+"))
	end, 10)
	assert(p.pid, "tcpinspect did not start: " .. p.cmd)
	return p
end

function Proc:stdout() return net.read_file(self.outf) or "" end
function Proc:stderr() return net.read_file(self.errf) or "" end

--- Wait until the session is attached (the "Ctrl-C to stop" line); raises
-- with the output when the command fails first.
function Proc:ready(timeout)
	local ok = net.wait_until(function()
		if self:stderr():find("Ctrl-C to stop", 1, true) then return "ready" end
		if net.read_file(self.rcf) then return "exited" end
	end, timeout or 20)
	if ok ~= "ready" then
		self:kill()
		error(("tcpinspect did not get ready (%s): %s\nstdout:\n%s\nstderr:\n%s"):format(
			tostring(ok), self.cmd, self:stdout(), self:stderr()), 2)
	end
	return self
end

function Proc:interrupt() net.kill(self.pid, "INT") end
function Proc:terminate() net.kill(self.pid, "TERM") end

function Proc:kill()
	if net.alive(self.pid) then net.kill(self.pid, "KILL") end
end

--- Wait for the exit; returns {code=, out=, err=}.  Kills it after timeout.
function Proc:wait(timeout)
	local rc = net.wait_until(function()
		local s = net.read_file(self.rcf)
		return s and s:match("%d+") and tonumber(s:match("%d+"))
	end, timeout or 20)
	if not rc then
		self:kill()
		error(("tcpinspect did not exit: %s\nstdout:\n%s\nstderr:\n%s"):format(self.cmd, self:stdout(),
			self:stderr()), 2)
	end
	return { code = rc, out = self:stdout(), err = self:stderr() }
end

--- Run `tcpinspect ARGS...` to the end.
function M.run(args, opts)
	return M.start(args, opts):wait((opts or {}).timeout or 30)
end

--- The lines of a text.
function M.lines(s)
	local t = {}
	for l in s:gmatch("[^\n]+") do t[#t + 1] = l end
	return t
end

--- Lines that start with a word (e.g. "ALERT").
function M.grep(s, prefix)
	local t = {}
	for l in s:gmatch("[^\n]+") do
		if l:sub(1, #prefix) == prefix then t[#t + 1] = l end
	end
	return t
end

--- "k=v" pairs of a line, numbers converted.
function M.kv(line)
	local t = {}
	for k, v in line:gmatch("([%w_/%-]+)=(%S+)") do t[k] = tonumber(v) or v end
	return t
end

return M
