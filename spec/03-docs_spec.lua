-- SPDX-License-Identifier: GPL-2.0-only
-- The reference docs and the code stay in step: every exported name is
-- documented in doc/reference.md, and every documented name exists.
local core = require "tcpinspect.core"
local tcpinspect = require "tcpinspect"

local function read(path)
	local f = assert(io.open(path))
	local s = f:read("a")
	f:close()
	return s
end

local ref = read("doc/reference.md")

-- names in table rows: | `name` | ...
local function table_names()
	local t = {}
	for name in ref:gmatch("\n| `([%w_]+)` |") do t[name] = true end
	return t
end

local function headings()
	local t = {}
	for name in ref:gmatch("\n### ([%w_%.:]+)") do t[name] = true end
	return t
end

describe("doc/reference.md", function()
	local rows, heads = table_names(), headings()

	it("documents every module function and constant", function()
		for k in pairs(tcpinspect) do
			assert(heads["tcpinspect." .. k] or rows[k], "undocumented: tcpinspect." .. k)
		end
	end)
	it("documents every session method", function()
		for k in pairs(core.session_methods) do
			assert(heads["session:" .. k], "undocumented: session:" .. k)
		end
	end)
	it("documents every option, filter key, counter, map, session and packet field", function()
		for _, list in ipairs{ core.option_names, core.filter_keys, core.stat_names,
			core.map_names, core.session_fields, core.packet_fields(), core.conn_fields(), core.recorder_option_names,
			core.recorder_stat_names } do
			for _, k in ipairs(list) do assert(rows[k], "undocumented: " .. k) end
		end
	end)
	it("documents nothing that does not exist", function()
		for h in pairs(heads) do
			local obj, name = h:match("^(%w+)[:%.]([%w_]+)$")
			if obj == "tcpinspect" then
				assert(tcpinspect[name] ~= nil, "documented but missing: " .. h)
			elseif obj == "session" then
				assert(core.session_methods[name], "documented but missing: " .. h)
			elseif obj == "packet" then
				assert(name == "copy" or name == "totable" or name == "bytes", "documented but missing: " .. h)
			elseif obj == "recorder" then
				local known = { dump = 1, stats = 1, close = 1 }
				assert(known[name], "documented but missing: " .. h)
				local mt = debug.getregistry()["tcpinspect.recorder"]
				assert(mt and mt.__index[name], "documented but missing: " .. h)
			elseif obj == "map" then
				local known = { pairs = 1, lookup = 1, delete = 1, clear = 1, count = 1 }
				assert(known[name], "documented but missing: " .. h)
			end
		end
	end)
	it("lists every known name in a row or heading that the code has", function()
		local known = {}
		for _, list in ipairs{ core.option_names, core.filter_keys, core.stat_names,
			core.map_names, core.session_fields, core.packet_fields(), core.conn_fields(), core.recorder_option_names,
			core.recorder_stat_names } do
			for _, k in ipairs(list) do known[k] = true end
		end
		for k in pairs(tcpinspect) do known[k] = true end
		-- map key/value columns are documented in the Maps table, not rows
		for name in pairs(rows) do
			assert(known[name], "documented row with no code behind it: " .. name)
		end
	end)
end)

-- The type column of the field tables: the reference says what a field
-- holds, and the code must hold that (issue 11: s.events was a method).
local TYPES = { string = true, integer = true, float = true, boolean = true, table = true }

local function typed_rows(section)
	local body = assert(ref:match("\n## " .. section .. "\n(.-)\n#"), "no section " .. section)
	local t = {}
	for name, ty in body:gmatch("\n| `([%w_]+)` | (%w+) |") do t[name] = ty end
	return t
end

local function type_of(v)
	return math.type(v) or type(v)
end

describe("doc/reference.md field types", function()
	it("gives every session and packet field a Lua type", function()
		for section, names in pairs{ ["Session fields"] = core.session_fields,
			["Packet fields"] = core.packet_fields(), ["Conn fields"] = core.conn_fields() } do
			local rows = typed_rows(section)
			for _, k in ipairs(names) do
				assert(TYPES[rows[k]], section .. ": no type for " .. k .. " (got " .. tostring(rows[k]) .. ")")
			end
		end
	end)
	it("packet fields have the documented types", function()
		local rows = typed_rows("Packet fields")
		-- a drop record (probe TI_PROBE_KFREE_SKB, the byte at offset 83): every field set
		-- ... with its receiving socket, which a live process holds
		local raw, _, done = require("spec.support.sock_record").full_record(core)
		local p = core.decode_record(raw, 1.5)
		for _, k in ipairs(core.packet_fields()) do
			assert.are.equal(rows[k], type_of(p[k]), "packet field " .. k)
		end
		done()
	end)
end)

describe("doc/reference.md conn field types", function()
	it("conn fields have the documented types", function()
		local rows = typed_rows("Conn fields")
		-- a conn-end record: a struct ti_event of probe "conn" and its struct ti_conn
		local probe = 0
		for i, n in ipairs(core.probe_names) do if n == "conn" then probe = i - 1 end end
		local ev = string.pack("<I8", 5e9) .. "\10\0\0\1" .. ("\0"):rep(12) .. "\10\0\0\2" .. ("\0"):rep(12)
			.. string.pack("<I4I4I4I4I8I4I2I2I2I2I4BBBBI4I4I4I8I8I4BBI2", 1, 2, 1, 4026531840, 0, 0, 1001, 80, 0, 96,
				0, 0, 4, 64, probe, 0, 0, 0, 0, 0, 0, 0, 0, 0)
		local c = string.pack("<I8I8I8I8I8I8I8I8I4I4", 5e9, 6e9, 5e9, 1e7, 9, 300, 1, 1, 0, 0)
			.. ("SADF" .. ("\0"):rep(12)) .. string.pack("<BBBxxxxx", 4, 1, 1)
		assert.are.equal(120 + 96, #ev + #c)
		local conn = assert(core.decode_conn(ev .. c, 0))
		for _, k in ipairs(core.conn_fields()) do
			assert.are.equal(rows[k], math.type(conn[k]) or type(conn[k]), "conn field " .. k)
		end
		assert.are.same({ "10.0.0.1", 1001, 80, 9, 300, "SADF", "fin", 1.0 },
			{ conn.saddr, conn.sport, conn.dport, conn.segments, conn.bytes, conn.history, conn.end_reason, conn.duration })
	end)
end)

describe("doc/reference.md session field types #kernel", function()
	local net = require "support.net"
	it("a tc session's fields have the documented types and values", function()
		local rows = typed_rows("Session fields")
		for _, events in ipairs{ true, false } do
			local s = net.open{ mode = "tc", events = events, sample = 3, ring_size = 262144,
				filter = { port = net.port(), host = net.addr4() } }
			for _, k in ipairs(core.session_fields) do
				assert.are.equal(rows[k], type_of(s[k]), "session field " .. k)
			end
			assert.are.equal(events, s.events)
			assert.are.equal("tc", s.mode)
			assert.are.equal(3, s.sample)
			assert.are.equal(262144, s.ring_size)
			assert.is_false(s.closed)
			s:close()
			assert.is_true(s.closed)
		end
	end)
end)
