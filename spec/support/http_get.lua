-- SPDX-License-Identifier: GPL-2.0-only
-- spec/support/http_get.lua: one HTTP GET, for specs that must make it from
-- inside a network namespace (`ip netns exec NS lua5.4 http_get.lua URL`).
--
--   lua5.4 http_get.lua URL [TIMEOUT]
--
-- Prints "STATUS <code> <seconds>" and then the body; exit 1 when the
-- request failed (the error on stderr).
local socket = require "socket"
local http = require "socket.http"
local ltn12 = require "ltn12"

local url, timeout = arg[1], tonumber(arg[2] or 5)
http.TIMEOUT = timeout
local body = {}
local t0 = socket.gettime()
local ok, code = http.request { url = url, sink = ltn12.sink.table(body) }
local dt = socket.gettime() - t0
if not ok then
	io.stderr:write("http_get: ", tostring(code), "\n")
	os.exit(1)
end
io.write(("STATUS %s %.3f\n"):format(tostring(code), dt), table.concat(body))
