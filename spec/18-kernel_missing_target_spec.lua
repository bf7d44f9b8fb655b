-- SPDX-License-Identifier: GPL-2.0-only
-- A missing probe target (RELIABILITY 14): when tcp_v6_rcv is absent, the
-- tcp_v4_rcv probe still attaches and counts, and session.probes reports the
-- gap.  Kernels here all have both functions, so the spec hides tcp_v6_rcv
-- with the TCPINSPECT_HIDE_FUNCS test hook (read by open() in a child
-- process), which makes open() take the same path as a kernel without it.
local net = require "support.net"

local modes = {}
for m in (os.getenv("TCPINSPECT_EXPECT_MODES") or ""):gmatch("[^,]+") do
	if m == "fentry" or m == "kprobe" then modes[#modes + 1] = m end
end

-- The child: open, make one v4 and one v6 connection with a payload to the
-- filtered port, print what the session saw.
local CHILD = [[
package.path = "lua/?.lua;" .. package.path
package.cpath = "build/?.so;" .. package.cpath
local tcpinspect, socket = require "tcpinspect", require "socket"
local mode, family, port = ...
port = tonumber(port)
local s, err, errno = tcpinspect.open{ mode = mode, family = family, filter = { port = port } }
if not s then print("FAIL", errno, err) return end
print("PROBES", s.probes.tcp_v4_rcv, s.probes.tcp_v6_rcv)
for _, host in ipairs{ "127.0.0.1", "::1" } do
  local srv = assert(socket.bind(host, port))
  local c = assert(socket.connect(host, port))
  local a = assert(srv:accept())
  assert(c:send("hello")); assert(a:receive(5) == "hello")
  c:close(); a:close(); srv:close()
end
s:poll(100)
local syns = { [4] = 0, [6] = 0 }
for k, v in s:map("sources"):pairs() do syns[k.family] = syns[k.family] + v.syns end
print("SYNS", syns[4], syns[6])
s:close()
]]

local function run_child(mode, family)
	local path = os.tmpname()
	local f = assert(io.open(path, "w"))
	f:write(CHILD)
	f:close()
	-- a port no socket holds, out of the ephemeral range (a fixed one in it
	-- was taken by an earlier test's client in TIME_WAIT: EADDRINUSE)
	local p = assert(io.popen(("TCPINSPECT_HIDE_FUNCS=tcp_v6_rcv lua5.4 %s %s %s %d 2>&1"):format(
		path, mode, family or "any", net.port())))
	local out = p:read("a")
	p:close()
	os.remove(path)
	return out
end

describe("missing probe target #kernel #matrix", function()
	for _, mode in ipairs(modes) do
		it(mode .. ": without tcp_v6_rcv, v4 is probed and the gap reported", function()
			local out = run_child(mode)
			assert.matches("PROBES\tattached\tmissing: tcp_v6_rcv is not in this kernel", out)
			-- one v4 connection seen (its SYN), the v6 one not probed
			assert.matches("SYNS\t1\t0\n", out)
		end)
		it(mode .. ": family='ipv6' with tcp_v6_rcv missing fails with the reason", function()
			local out = run_child(mode, "ipv6")
			assert.matches("^FAIL\t2\tENOENT: " .. mode ..
				": no probe target: missing: tcp_v6_rcv is not in this kernel", out)
		end)
	end
end)
