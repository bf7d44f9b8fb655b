-- SPDX-License-Identifier: GPL-2.0-only
-- spec/support/traffic_child.lua: a fixed mix of TCP traffic on loopback, for
-- a spec that watches it live and replays a capture of it (spec/35).  Run
-- it in a private network namespace (the addresses are fixed), and in the
-- watched cgroup for cgroup mode: every socket of the mix is this process's.
--
--   lua5.4 traffic_child.lua
--
-- The mix (server 127.0.0.1:8080 and [::1]:8080, echoing):
--   3 conversations from 127.0.0.2, 100 bytes each way
--   1 conversation from 127.0.0.3, 5000 bytes each way
--   2 conversations from ::1, 300 bytes each way
--   connects from 127.0.0.9 to the closed ports 127.0.0.1:9100-9129 (SYN, RST)
-- Conversations close in order (net.conversation), so each of their
-- segments reaches a full socket; the scan's SYNs reach no socket.
-- Prints "DONE" at the end; raises (exit 1) on any failure.
local net = require "support.net"
local socket = require "socket"

local srv4 = net.server("127.0.0.1", 8080)
local srv6 = net.server("::1", 8080)
net.conversations(srv4, "127.0.0.1", 8080, 3, { bind = "127.0.0.2", data = ("a"):rep(100) })
net.conversation(srv4, "127.0.0.1", 8080, { bind = "127.0.0.3", data = ("b"):rep(5000) })
net.conversations(srv6, "::1", 8080, 2, { data = ("c"):rep(300) })
for port = 9100, 9129 do
	local c = socket.tcp4()
	c:settimeout(net.scale(5))
	assert(c:bind("127.0.0.9", 0))
	local ok, err = c:connect("127.0.0.1", port)
	c:close()
	assert(not ok and err == "connection refused", "port " .. port .. ": " .. tostring(err))
end
srv4:close()
srv6:close()
print("DONE")
