-- SPDX-License-Identifier: GPL-2.0-only
-- Kernel specs: the tc and cgroup parsers against a table of odd frames, run
-- through session:test_run (BPF_PROG_TEST_RUN: the real program, no
-- traffic).  Each frame must land in exactly the counter doc/modes.md ("Odd
-- frames") names: one whole TCP segment in `seen` (and a flow with the right
-- payload bytes), a TCP frame that is not one whole readable segment in
-- `errors`, anything else in no counter.
--
-- The session runs in a child process inside a fresh network namespace
-- (tc: on its lo) or on a fresh empty cgroup (cgroup), so no other traffic
-- on this machine moves its counters.
local net = require "support.net"

-- ---- frame builders -----------------------------------------------------------

local ETH = string.rep("\0", 12)
local A4, B4 = "\10\77\0\1", "\10\77\0\2"
local A6 = "\253\0" .. string.rep("\0", 13) .. "\1"
local B6 = "\253\0" .. string.rep("\0", 13) .. "\2"

local function tcp(o)
	o = o or {}
	local opts = string.rep("\1", math.max(0, ((o.doff or 5) - 5) * 4)) -- NOPs
	local h = string.pack(">I2I2I4I4BBI2I2I2", o.sport or 40000, o.dport or 80, 1, 0,
		(o.doff or 5) << 4, o.flags or 0x02, 65535, 0, 0)
	if o.short then return h:sub(1, o.short) end
	return h .. opts
end

-- IPv4: o.opts (bytes of options), o.tot (total length), o.frag (the
-- flags+offset field), o.proto, o.pad (bytes after the packet in the frame)
local function ipv4(l4, o)
	o = o or {}
	local opts = o.opts or ""
	local ihl = 5 + #opts // 4
	local tot = o.tot or (20 + #opts + #l4)
	return ETH .. "\8\0" .. string.pack(">BBI2I2I2BBI2c4c4", 0x40 | ihl, 0, tot, 1, o.frag or 0, 64,
		o.proto or 6, 0, A4, B4) .. opts .. l4 .. string.rep("\0", o.pad or 0)
end

-- IPv6: exts = list of {type, bytes}: each extension header's own type and
-- its body after the 2-byte (next, length) prefix
local function ipv6(l4, o)
	o = o or {}
	local exts = o.exts or {}
	local chain = ""
	for i = #exts, 1, -1 do
		local e = exts[i]
		local nxt = i == #exts and (o.proto or 6) or exts[i + 1][1]
		local hdr
		if e[1] == 44 then -- Fragment: fixed 8 bytes
			hdr = string.char(nxt, 0) .. e[2]
		else
			local len = (2 + #e[2]) // 8 - 1
			hdr = string.char(nxt, len) .. e[2]
		end
		chain = hdr .. chain
	end
	local first = #exts > 0 and exts[1][1] or (o.proto or 6)
	local plen = o.plen or (#chain + #l4)
	return ETH .. "\134\221" .. string.pack(">I4I2BB", 0x60000000, plen, first, 64) .. A6 .. B6 .. chain .. l4
end

local PAD6 = string.rep("\0", 6) -- fills a minimal 8-byte extension header
local FRAG_FIRST = string.pack(">I2I4", 1, 7)   -- offset 0, M=1
local FRAG_LATER = string.pack(">I2I4", 185 << 3, 7)

-- name, frame, expected {seen, errors, flows: {sport, family, bytes} or nil}
local FRAMES = {
	{ "IPv4 SYN", ipv4(tcp { sport = 41001 }), 1, 0, { 41001, 4, 0 } },
	{ "IPv4 with 100 payload bytes", ipv4(tcp { sport = 41002 } .. string.rep("x", 100)), 1, 0, { 41002, 4, 100 } },
	{ "IPv4 options (IHL 7)", ipv4(tcp { sport = 41003 }, { opts = "\1\1\1\1\1\1\1\0" }), 1, 0, { 41003, 4, 0 } },
	{ "TCP options (doff 8)", ipv4(tcp { sport = 41004, doff = 8 } .. "abc"), 1, 0, { 41004, 4, 3 } },
	{ "IPv4 first fragment (MF)", ipv4(tcp { sport = 41005 } .. "abcd", { frag = 0x2000 }), 0, 1 },
	{ "IPv4 non-first fragment", ipv4(tcp { sport = 41006 } .. "abcd", { frag = 185 }), 0, 1 },
	{ "IPv4 last fragment (offset, no MF)", ipv4("abcdefgh", { frag = 3 }), 0, 1 },
	{ "IPv4 DF set (not a fragment)", ipv4(tcp { sport = 41007 }, { frag = 0x4000 }), 1, 0, { 41007, 4, 0 } },
	{ "tot_len smaller than the frame (padding)", ipv4(tcp { sport = 41008 } .. "12345", { pad = 20 }), 1, 0, { 41008, 4, 5 } },
	{ "tot_len larger than the frame", ipv4(tcp { sport = 41009 } .. "12345", { tot = 1500 }), 0, 1 },
	{ "tot_len smaller than the headers", ipv4(tcp { sport = 41010 }, { tot = 30 }), 0, 1 },
	{ "IHL below 5", (ipv4(tcp { sport = 41011 }):gsub("^(" .. ("."):rep(14) .. ").", "%1\67")), 0, 1 },
	{ "short TCP header (10 of 20 bytes)", ipv4(tcp { short = 10 }), 0, 1 },
	{ "TCP data offset 4", ipv4(tcp { sport = 41012, doff = 4 } .. string.rep("\0", 4)), 0, 1 },
	{ "TCP data offset past tot_len", ipv4(tcp { sport = 41013, doff = 15 }:sub(1, 20)), 0, 1 },
	{ "UDP (not TCP)", ipv4(string.rep("\0", 8), { proto = 17 }), 0, 0 },
	{ "IPv6 SYN", ipv6(tcp { sport = 42001 }), 1, 0, { 42001, 6, 0 } },
	{ "IPv6 hop-by-hop + TCP", ipv6(tcp { sport = 42002 } .. "xy", { exts = { { 0, PAD6 } } }), 1, 0, { 42002, 6, 2 } },
	{ "IPv6 hop-by-hop + routing + dest-opts + TCP",
		ipv6(tcp { sport = 42003 }, { exts = { { 0, PAD6 }, { 43, string.char(0, 0) .. string.rep("\0", 4 + 16) },
			{ 60, PAD6 } } }), 1, 0, { 42003, 6, 0 } },
	{ "IPv6 fragment header (first) + TCP", ipv6(tcp { sport = 42004 }, { exts = { { 44, FRAG_FIRST } } }), 0, 1 },
	{ "IPv6 fragment header (later)", ipv6("abcdefgh", { exts = { { 44, FRAG_LATER } } }), 0, 1 },
	{ "IPv6 hop-by-hop + UDP (not TCP)", ipv6(string.rep("\0", 8), { exts = { { 0, PAD6 } }, proto = 17 }), 0, 0 },
	{ "IPv6 seven extension headers", ipv6(tcp { sport = 42005 }, { exts = {
		{ 60, PAD6 }, { 60, PAD6 }, { 60, PAD6 }, { 60, PAD6 }, { 60, PAD6 }, { 60, PAD6 }, { 60, PAD6 } } }), 0, 1 },
	{ "IPv6 payload length larger than the frame", ipv6(tcp { sport = 42006 }, { plen = 400 }), 0, 1 },
	-- lengths the header does not carry (BIG TCP, RFC 2675): a test_run skb is not GSO
	{ "IPv4 total length 0, not a GSO skb", ipv4(tcp { sport = 41015 } .. "abc", { tot = 0 }), 0, 1 },
	{ "IPv6 jumbogram: payload length 0, Hop-by-Hop Jumbo Payload 31",
		ipv6(tcp { sport = 42007 } .. "xyz", { plen = 0, exts = { { 0, "\194\4" .. string.pack(">I4", 8 + 20 + 3) } } }),
		1, 0, { 42007, 6, 3 } },
	{ "IPv6 jumbogram whose Jumbo Payload is past the frame",
		ipv6(tcp { sport = 42008 } .. "xyz", { plen = 0, exts = { { 0, "\194\4" .. string.pack(">I4", 100000) } } }), 0, 1 },
	{ "IPv6 payload length 0, no Hop-by-Hop header, not a GSO skb", ipv6(tcp { sport = 42009 }, { plen = 0 }), 0, 1 },
	{ "802.1Q-tagged IPv4 SYN (counted at the VLAN device)",
		ETH .. "\129\0\0\5" .. ipv4(tcp { sport = 41014 }):sub(13), 0, 0 },
}

local CHILD = [[
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/spec/?.lua;" .. package.path
package.cpath = ROOT .. "/build/?.so;" .. package.cpath
local tcpinspect = require "tcpinspect"
local s, err = tcpinspect.open(OPEN)
if not s then print("FAIL " .. tostring(err)) return end
local flows = s:map("flows")
for i, f in ipairs(FRAMES) do
  local a = s:stats()
  local ok, e = pcall(s.test_run, s, f[2])
  if not ok then print("FAIL test_run " .. tostring(e)) return end
  local b = s:stats()
  local out = { i, b.seen - a.seen, b.errors - a.errors }
  if f[5] then
    local fam = f[5][2]
    local v = flows:lookup{ saddr = fam == 4 and "10.77.0.1" or "fd00::1",
      daddr = fam == 4 and "10.77.0.2" or "fd00::2", sport = f[5][1], dport = 80 }
    out[4] = v and v.packets or 0
    out[5] = v and v.bytes or -1
  end
  print("FRAME " .. table.concat(out, " "))
end
print("TOTAL " .. flows:count())
s:close()
]]

local function run_child(open, netns)
	local path = net.tmpfile(".lua")
	net.write_file(path, ("local ROOT = %q\nlocal OPEN = %s\nlocal FRAMES = %s\n"):format(net.ROOT,
		net.serialize(open), net.serialize(FRAMES)) .. CHILD)
	local cmd = net.LUA .. " " .. net.q(path)
	if netns then cmd = "ip netns exec " .. netns .. " " .. cmd end
	local _, out = net.sh(cmd .. " 2>&1")
	os.remove(path)
	return out
end

local function check(mode, out)
	assert.not_matches("FAIL", out)
	local rows, nflows = {}, 0
	for i, seen, errors, rest in out:gmatch("FRAME (%d+) (%-?%d+) (%-?%d+)([^\n]*)") do
		rows[tonumber(i)] = { tonumber(seen), tonumber(errors), rest }
	end
	for i, f in ipairs(FRAMES) do
		local r = assert(rows[i], "no result for frame " .. i .. " (" .. f[1] .. "):\n" .. out)
		local what = ("[%s] %s"):format(mode, f[1])
		assert.are.equal(f[3], r[1], what .. ": seen")
		assert.are.equal(f[4], r[2], what .. ": errors")
		if f[5] then
			local packets, bytes = r[3]:match("(%d+) (%-?%d+)")
			assert.are.equal(1, tonumber(packets), what .. ": flow packets")
			assert.are.equal(f[5][3], tonumber(bytes), what .. ": flow bytes")
			nflows = nflows + 1
		end
	end
	-- no frame made a flow it should not have (garbage ports from a fragment)
	assert.are.equal(nflows, tonumber(out:match("TOTAL (%d+)")), "flows in the map")
	net.say("[%s] %d frames: each in the counter doc/modes.md names; %d flows, no others", mode, #FRAMES, nflows)
end

describe("#kernel odd frames", function()
	if net.has_mode("tc") then
		it("[tc] each frame of the table lands in exactly its counter", function()
			local ns = net.netns("fr")
			local ok, err = pcall(function()
				check("tc", run_child({ mode = "tc", dev = "lo", events = false }, ns.name))
			end)
			ns:destroy()
			assert(ok, err)
		end)
	end
	if net.has_mode("cgroup") then
		it("[cgroup] each frame of the table lands in exactly its counter", function()
			local _, root = net.sh("awk '$3 == \"cgroup2\" { print $2; exit }' /proc/mounts")
			root = root:match("[^\n]+")
			assert(root, "no cgroup2 mount")
			local dir = root .. "/tirel-frames-" .. net.getpid()
			net.must("mkdir -p " .. net.q(dir))
			local ok, err = pcall(function()
				check("cgroup", run_child({ mode = "cgroup", cgroup = dir, events = false }))
			end)
			net.sh("rmdir " .. net.q(dir))
			assert(ok, err)
		end)
	end
end)
