-- SPDX-License-Identifier: GPL-2.0-only
-- spec/support/client_child.lua: make N complete connections to a server in
-- another process (another network namespace), as net.conversation does:
-- connect, send DATALEN bytes, read the echo, half-close, read EOF, close.
--
--   lua5.4 client_child.lua HOST PORT N DATALEN
--
-- Prints "DONE n" on success; raises (exit 1) on any failure.
local socket = require "socket"
local host, port, n, datalen = arg[1], tonumber(arg[2]), tonumber(arg[3]), tonumber(arg[4] or 0)
local data = ("y"):rep(datalen)
local timeout = os.getenv("TCPINSPECT_IN_VM") and 50 or 5

local function recv_n(c, want)
	local got, have = {}, 0
	while have < want do
		local d, err, partial = c:receive(want - have)
		d = d or partial
		if d and #d > 0 then got[#got + 1] = d; have = have + #d end
		if err then error("receive: " .. err) end
	end
	return table.concat(got)
end

for _ = 1, n do
	local c = host:find(":", 1, true) and socket.tcp6() or socket.tcp4()
	c:settimeout(timeout)
	assert(c:connect(host, port))
	if datalen > 0 then
		assert(c:send(data))
		assert(recv_n(c, datalen) == data)
	end
	c:shutdown("send")
	local _, err = c:receive(1)
	assert(err == "closed", "expected EOF, got " .. tostring(err))
	c:close()
end
print("DONE " .. n)
