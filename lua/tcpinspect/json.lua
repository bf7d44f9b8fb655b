-- SPDX-License-Identifier: GPL-2.0-only
--- tcpinspect.json: JSON lines through dkjson (Debian's lua-dkjson).
--
--     local json = require "tcpinspect.json"
--     s:on_packet(function(p) io.write(json.packet(p), "\n") end)
--     -- {"ts":123456789,"time":1700000000.1234,"family":4,"saddr":"127.0.0.1",...}
--
-- A packet becomes an object with every documented field but `line`
-- (`tcpinspect.packet_fields()`), keys in that order.  Other values (map
-- entries, counters) go through `json.encode`, keys sorted, so lines are
-- stable from run to run.  Measured rate on the development machine: see
-- doc/cli.md ("Performance").
-- @module tcpinspect.json
local dkjson = require "dkjson"

local M = {}

-- The documented order, from the core (tcpinspect.packet_fields()), less
-- `line` (format.packet's text of the other fields, not a value of its own).
local FIELDS = {}
for _, f in ipairs(require("tcpinspect.core").packet_fields()) do
	if f ~= "line" then FIELDS[#FIELDS + 1] = f end
end
M.fields = FIELDS

-- Packets take a fast path: the documented fields are known to be numbers
-- and short strings, so one line is built with string.format and table.concat
-- (about 10x dkjson's encode of p:totable(), measured in doc/cli.md);
-- strings that need escaping, and any other value type, go through dkjson.
local KEYS = {}
for i, f in ipairs(FIELDS) do KEYS[i] = dkjson.quotestring(f) .. ":" end
local NF = #FIELDS
local parts = {}
local sformat, mtype, concat = string.format, math.type, table.concat

-- the fields only some records have, left out where nil: a drop's own
-- (reason, location) and the receiving socket's (sockets = true, and a
-- hook that named one)
local OPTIONAL = { reason = true, location = true, sk_state = true, sk_cookie = true, uid = true, pid = true,
	comm = true }
--- The packet fields a line leaves out where nil (a set: name -> true).
M.OPTIONAL = OPTIONAL

local function quote(s)
	if s:find('[%c"\\\127-\255]') then return dkjson.quotestring(s) end
	return '"' .. s .. '"'
end

local function value(f, v)
	local tv = type(v)
	if tv == "number" then
		if mtype(v) == "integer" then return v end
		if v ~= v or v == math.huge or v == -math.huge then return "null" end
		-- wall-clock time to the microsecond (ts has the nanoseconds)
		return f == "time" and sformat("%.6f", v) or sformat("%.17g", v)
	elseif tv == "string" then
		return quote(v)
	elseif v == nil then
		return "null"
	end
	return dkjson.encode(v)
end

--- A packet (view, copy, or table of fields) as one line of JSON: an object
-- with every documented field, in the documented order; a drop's own
-- fields (reason, location) only in a drop's line, and the receiving
-- socket's where set, as dkjson leaves out a nil.
-- @param p
-- @treturn string
function M.packet(p)
	local n = 0
	for i = 1, NF do
		local f = FIELDS[i]
		local v = p[f]
		if v ~= nil or not OPTIONAL[f] then
			n = n + 1
			parts[n] = KEYS[i] .. value(f, v)
		end
	end
	return "{" .. concat(parts, ",", 1, n) .. "}"
end

--- The same line through dkjson's encoder (the slow, general path; kept for
-- comparison and for tables with extra keys, which it includes sorted after
-- the documented ones).
-- @param p
-- @treturn string
function M.packet_dkjson(p)
	local t = type(p) == "table" and p or p:totable()
	return dkjson.encode(t, { keyorder = FIELDS })
end

-- The conn view's documented fields, in order (tcpinspect.conn_fields()
-- where the core has it)
local core = require "tcpinspect.core"
local CONN_FIELDS = core.conn_fields and core.conn_fields() or { "start", "family", "saddr", "sport", "daddr",
	"dport", "netns", "duration", "segments", "bytes", "history", "handshake", "retransmits", "zero_windows",
	"end_reason" }
M.conn_fields = CONN_FIELDS
local CONN_KEYS = {}
for i, f in ipairs(CONN_FIELDS) do CONN_KEYS[i] = dkjson.quotestring(f) .. ":" end
-- wall-clock times to the microsecond (as packets' `time`); durations to
-- the nanosecond they are counted in, without trailing zeros
local CONN_TIMES = { start = true, last = true }
local CONN_SECONDS = { duration = true, handshake = true }
local function seconds9(v)
	local t = sformat("%.9f", v):gsub("0+$", "")
	if t:sub(-1) == "." then t = t .. "0" end
	return t
end

--- An ended (or open) connection as one line of JSON: an object with the
-- conn view's fields in their documented order (`start` to the
-- microsecond, `duration` and `handshake` in seconds to the nanosecond); a field that is nil
-- (`handshake` when the handshake was not seen) is left out.
-- @param c a conn view, its `:totable()`, or a table with the fields
-- @treturn string
function M.conn(c)
	local out, n = {}, 0
	for i, f in ipairs(CONN_FIELDS) do
		local v = c[f]
		if v ~= nil then
			n = n + 1
			if CONN_TIMES[f] and mtype(v) == "float" then
				out[n] = CONN_KEYS[i] .. sformat("%.6f", v)
			elseif CONN_SECONDS[f] and mtype(v) == "float" and v == v and v < math.huge and v > -math.huge then
				out[n] = CONN_KEYS[i] .. seconds9(v)
			else
				out[n] = CONN_KEYS[i] .. value(f, v)
			end
		end
	end
	return "{" .. concat(out, ",", 1, n) .. "}"
end

-- every string key of t and of the tables inside it, once
local function collect_keys(t, set, seen)
	if seen[t] then return end
	seen[t] = true
	for k, v in pairs(t) do
		if type(k) == "string" then set[k] = true end
		if type(v) == "table" then collect_keys(v, set, seen) end
	end
end

--- Any Lua value as JSON text on one line; object keys sorted.
-- @param v
-- @treturn string
function M.encode(v)
	if type(v) ~= "table" then return dkjson.encode(v) end
	local set, keys = {}, {}
	collect_keys(v, set, {})
	for k in pairs(set) do keys[#keys + 1] = k end
	table.sort(keys)
	return dkjson.encode(v, { keyorder = keys })
end

--- Parse JSON text.
-- @tparam string s
-- @return the value
-- @treturn[2] nil
-- @treturn[2] string message
function M.decode(s)
	local v, _, err = dkjson.decode(s, 1, dkjson.null)
	if err then return nil, err end
	return v
end

--- JSON's null, as decode returns it.
M.null = dkjson.null

return M
