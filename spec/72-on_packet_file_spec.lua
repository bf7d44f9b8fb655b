-- SPDX-License-Identifier: GPL-2.0-only
-- session:on_packet(file) (issue 23: `tcpinspect watch` costs no more than a
-- 1-field callback): each segment's line (the packet field `line`) and a
-- newline written to a Lua file from C, with no Lua call per segment.  What
-- `tcpinspect watch` prints without -c, -X, -A, --json or --drops.  No root,
-- no kernel: the replay delivers as a live session does (the same deliver
-- in luaext/session.c).
local tcpinspect = require "tcpinspect"

local CORPUS = "spec/fixtures/filter_corpus.pcap" -- 3226 segments, IPv4 and IPv6

-- the lines p.line gives, through a callback, for the file
local function lines_of(file)
	local s <close> = assert(tcpinspect.replay { file = file })
	local lines = {}
	s:on_packet(function(line) lines[#lines + 1] = line end, { "line" })
	while s:poll(-1) > 0 do end
	return lines
end

local function read_all(f)
	f:seek("set", 0)
	return f:read("a")
end

describe("session:on_packet(file)", function()
	it("writes every segment's line, byte for byte p.line, one per line, and counts them delivered", function()
		local want = lines_of(CORPUS)
		assert.are.equal(3226, #want)
		local f <close> = assert(io.tmpfile())
		local s <close> = assert(tcpinspect.replay { file = CORPUS })
		assert.are.equal(s, s:on_packet(f))
		local n, delivered
		delivered = 0
		repeat
			n = s:poll(-1)
			delivered = delivered + n
		until n == 0
		assert.are.equal(3226, delivered)
		assert.are.equal(table.concat(want, "\n") .. "\n", read_all(f))
	end)

	it("takes fields {\"line\"} too; any other fields raise naming \"fields\"", function()
		local f <close> = assert(io.tmpfile())
		local s <close> = assert(tcpinspect.replay { file = "spec/fixtures/connections.pcap" })
		s:on_packet(f, { "line" })
		assert.are.equal(30, s:run {})
		local text = read_all(f)
		assert.are.equal(30, select(2, text:gsub("\n", "")))
		for _, fields in ipairs { { "len" }, { "line", "len" } } do
			local ok, err = pcall(s.on_packet, s, f, fields)
			assert.is_false(ok)
			assert.are.equal("fields", err.option)
			assert.truthy(tostring(err):find('give no fields, or {"line"}', 1, true), tostring(err))
		end
	end)

	it("refuses a closed file when set, and stops the poll with an error when it is closed after", function()
		local s <close> = assert(tcpinspect.replay { file = "spec/fixtures/connections.pcap" })
		local closed = assert(io.tmpfile())
		closed:close()
		local ok, err = pcall(s.on_packet, s, closed)
		assert.is_false(ok)
		assert.truthy(tostring(err):find("the file is closed", 1, true), tostring(err))

		local f = assert(io.tmpfile())
		s:on_packet(f)
		f:close()
		ok, err = pcall(s.poll, s, -1)
		assert.is_false(ok)
		assert.truthy(tostring(err):find("on_packet: the file is closed", 1, true), tostring(err))
		-- the session goes on: a callback takes the rest (the record that failed is not delivered again)
		local rest = 0
		s:on_packet(function() rest = rest + 1 end)
		while s:poll(-1) > 0 do end
		assert.are.equal(29, rest)
	end)

	it("a write that fails (a full device) stops the poll with the error, naming it", function()
		local full = assert(io.open("/dev/full", "w")) -- Linux's device that always reports ENOSPC
		full:setvbuf("no")
		local s <close> = assert(tcpinspect.replay { file = "spec/fixtures/connections.pcap" })
		s:on_packet(full)
		local ok, err = pcall(s.poll, s, -1)
		full:close()
		assert.is_false(ok)
		assert.truthy(tostring(err):find("writing a line failed: No space left on device", 1, true), tostring(err))
	end)

	it("neither a function nor a file raises; events = false raises as for a function", function()
		local s <close> = assert(tcpinspect.replay { file = "spec/fixtures/connections.pcap" })
		local ok, err = pcall(s.on_packet, s, 42)
		assert.is_false(ok)
		assert.truthy(tostring(err):find("function or file expected", 1, true), tostring(err))
		local q <close> = assert(tcpinspect.replay { file = "spec/fixtures/connections.pcap", events = false })
		ok, err = pcall(q.on_packet, q, io.stdout)
		assert.is_false(ok)
		assert.truthy(tostring(err):find("opened with events = false", 1, true), tostring(err))
	end)
end)
