-- SPDX-License-Identifier: GPL-2.0-only
-- demo_traffic.lua: bounded loopback traffic for `make demo` (and for
-- trying the other examples).  No root needed; nothing leaves 127.0.0.1.
--
--   lua5.4 examples/demo_traffic.lua [--duration S (default 5, at most 60)] [--rate conn/s (default 40)]
--
-- For the duration it runs three small servers (127.0.0.1:18080, :18081,
-- :18443) and connects to them at the given rate, sending payloads of
-- assorted sizes (the :18443 ones largest), plus one attempt in ten to the
-- closed port 18999 (answered by a RST).  At most rate * duration
-- connections.  Prints "demo-traffic: N connections, M bytes" at the end.
local socket = require "socket"

local duration, rate = 5, 40
local i = 1
while i <= #arg do
	if arg[i] == "--duration" then duration, i = tonumber(arg[i + 1]), i + 1
	elseif arg[i] == "--rate" then rate, i = tonumber(arg[i + 1]), i + 1
	else
		io.stderr:write("usage: lua5.4 examples/demo_traffic.lua [--duration S] [--rate N]\n")
		os.exit(2)
	end
	i = i + 1
end
assert(duration and duration > 0 and duration <= 60, "--duration: 0 < S <= 60")
assert(rate and rate > 0 and rate <= 1000, "--rate: 0 < N <= 1000")

local HOST = "127.0.0.1"
local PORTS = { 18080, 18081, 18443 }
local SIZES = { [18080] = { 64, 200, 512 }, [18081] = { 1, 10, 100 }, [18443] = { 1500, 4000, 16000 } }
local CLOSED = 18999

local servers, conns = {}, {}
for _, port in ipairs(PORTS) do
	local s = assert(socket.bind(HOST, port))
	s:settimeout(0)
	servers[#servers + 1] = s
end

local start = socket.gettime()
local deadline = start + duration
local made, bytes, n = 0, 0, 0
local next_conn = start
math.randomseed(42)

while socket.gettime() < deadline do
	local now = socket.gettime()
	if now >= next_conn then
		next_conn = next_conn + 1 / rate
		n = n + 1
		if n % 10 == 0 then
			local c = socket.tcp()
			c:settimeout(0.2)
			c:connect(HOST, CLOSED) -- refused: a SYN and a RST
			c:close()
		else
			local port = PORTS[(n % #PORTS) + 1]
			local c = socket.tcp()
			c:settimeout(1)
			if c:connect(HOST, port) then
				local size = SIZES[port][math.random(#SIZES[port])]
				c:send(string.rep("x", size))
				bytes = bytes + size
				made = made + 1
			end
			c:close()
		end
	end
	-- accept and drain
	local readable = socket.select(servers, nil, 0) or {}
	for _, s in ipairs(readable) do
		local c = s:accept()
		if c then
			c:settimeout(0)
			conns[#conns + 1] = c
		end
	end
	for j = #conns, 1, -1 do
		local _, err, partial = conns[j]:receive("*a")
		if err ~= "timeout" then
			conns[j]:close()
			table.remove(conns, j)
		end
		local _ = partial
	end
	socket.sleep(math.max(0, math.min(0.005, next_conn - socket.gettime())))
end
for _, c in ipairs(conns) do c:close() end
for _, s in ipairs(servers) do s:close() end
print(string.format("demo-traffic: %d connections, %d bytes", made, bytes))
