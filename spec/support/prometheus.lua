-- SPDX-License-Identifier: GPL-2.0-only
--- spec/support/prometheus.lua: Debian's real `prometheus` server and HTTP
-- GETs, inside a network namespace made by the spec.
--
--     local prom = require "support.prometheus"
--     local code, body, secs = prom.get(ns, "http://127.0.0.1:9464/metrics")
--     local p = prom.start(ns, config_yaml, "127.0.0.1:19090")  -- waits until ready
--     p:value('tcpinspect_port_segments_total{dport="19101"}')  -- number or nil
--     p:vector("tcpinspect_source_syns_total")  -- { {metric = {...}, value = n}, ... }
--     p:await_all{ { 'x_total{a="1"}', 5 }, { "y_total", 2 } }  -- one query per try
--     p:stop()
--
-- Builds on spec/support/net.lua.
local net = require "support.net"
local dkjson = require "dkjson"

local M = {}

--- GET url from inside namespace ns: status code, body, seconds taken
-- (nil, error text when the request failed).
function M.get(ns, url, timeout)
	local ok, out = net.sh("ip netns exec " .. net.q(ns) .. " " ..
		net.lua_cmd(net.ROOT .. "/spec/support/http_get.lua", url, net.scale(timeout or 5)) .. " 2>&1")
	local code, secs, body = out:match("^STATUS (%d+) ([%d.]+)\n(.*)$")
	if not ok or not code then return nil, out end
	return tonumber(code), body, tonumber(secs)
end

local function urlencode(s)
	return (s:gsub("[^%w%-_%.~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local Prom = {}
Prom.__index = Prom

--- Start prometheus in ns with this configuration (YAML text), its API on
-- addr, a temporary TSDB; waits until /-/ready answers 200.
function M.start(ns, config, addr)
	local dir = net.tmpfile(".prom")
	net.must("mkdir -p " .. net.q(dir .. "/data"))
	net.write_file(dir .. "/prometheus.yml", config)
	local self = setmetatable({ ns = ns, addr = addr, dir = dir, log = dir .. "/log" }, Prom)
	self.pid = net.spawn(("exec ip netns exec %s prometheus --config.file=%s --storage.tsdb.path=%s " ..
		"--web.listen-address=%s --log.level=warn"):format(net.q(ns), net.q(dir .. "/prometheus.yml"),
		net.q(dir .. "/data"), addr), self.log)
	local ready = net.wait_until(function()
		if not net.alive(self.pid) then return "exited" end
		local code = M.get(ns, "http://" .. addr .. "/-/ready", 2)
		if code == 200 then return "ready" end
	end, 60, 0.25)
	if ready ~= "ready" then
		self:stop()
		error(("prometheus did not get ready (%s):\n%s"):format(tostring(ready), net.read_file(self.log) or ""), 2)
	end
	return self
end

--- Instant query: the result vector, values as numbers.
function Prom:vector(expr)
	local code, body = M.get(self.ns, "http://" .. self.addr .. "/api/v1/query?query=" .. urlencode(expr))
	if code ~= 200 then error(("query %s: %s %s"):format(expr, tostring(code), tostring(body)), 2) end
	local r = dkjson.decode(body)
	assert(r and r.status == "success", body)
	local list = {}
	for _, e in ipairs(r.data.result) do
		list[#list + 1] = { metric = e.metric, value = tonumber(e.value[2]) }
	end
	return list
end

--- Instant query of one series: its value, or nil when there is none.
function Prom:value(expr)
	local v = self:vector(expr)
	assert(#v <= 1, "more than one series for " .. expr)
	return v[1] and v[1].value
end

--- Wait until the query's value equals want (or timeout); returns the last value.
function Prom:await(expr, want, timeout)
	local last
	net.wait_until(function()
		last = self:value(expr)
		return last == want
	end, timeout or 15, 0.25)
	return last
end

--- The series of a result vector as "name{k="v",...}" (labels sorted, job
-- and instance left out) -> value.
function M.series(vector)
	local t = {}
	for _, e in ipairs(vector) do
		local names = {}
		for k in pairs(e.metric) do
			if k ~= "__name__" and k ~= "job" and k ~= "instance" then names[#names + 1] = k end
		end
		table.sort(names)
		local parts = {}
		for _, k in ipairs(names) do parts[#parts + 1] = ('%s="%s"'):format(k, e.metric[k]) end
		local key = (e.metric.__name__ or "") .. (#parts > 0 and "{" .. table.concat(parts, ",") .. "}" or "")
		t[key] = e.value
	end
	return t
end

--- Wait until every {series, want} of checks has its value, with one
-- query per try (every series of the metric names named); returns series ->
-- last value.  Series are written as M.series writes them:
-- name{a="x",b="y"}, labels sorted.
function Prom:await_all(checks, timeout)
	local names, seen = {}, {}
	for _, c in ipairs(checks) do
		local n = c[1]:match("^[%w_:]+")
		if not seen[n] then seen[n], names[#names + 1] = true, n end
	end
	local expr = '{__name__=~"' .. table.concat(names, "|") .. '"}'
	local got
	net.wait_until(function()
		got = M.series(self:vector(expr))
		for _, c in ipairs(checks) do
			if got[c[1]] ~= c[2] then return false end
		end
		return true
	end, timeout or 15, 0.25)
	return got
end

function Prom:stop()
	if self.pid and net.alive(self.pid) then
		net.kill(self.pid, "TERM")
		if not net.wait_exit(self.pid, 10) then net.kill(self.pid, "KILL") end
	end
end

--- Parse a text exposition: { [name{labels}] = value }, and the list of
-- series names per metric name.
function M.parse(text)
	local values, by_name = {}, {}
	for line in text:gmatch("[^\n]+") do
		if line:sub(1, 1) ~= "#" then
			local series, v = line:match("^(%S+) (%S+)$")
			if series then
				values[series] = tonumber(v)
				local name = series:match("^[^{]+")
				by_name[name] = by_name[name] or {}
				table.insert(by_name[name], series)
			end
		end
	end
	return values, by_name
end

return M
