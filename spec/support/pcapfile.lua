-- SPDX-License-Identifier: GPL-2.0-only
--- Read and write classic pcap files in the specs (no library): the filter
-- corpus (spec/fixtures/filter_corpus.pcap, LINKTYPE_RAW) and its makers.
--
--   local pcapfile = require "support.pcapfile"
--   local cap = pcapfile.read(path)     -- {linktype=, snaplen=, packets = {{sec=, usec=, nsec=, data=, len=}}}
--   pcapfile.write(path, linktype, packets)
--   pcapfile.to_raw(cap)                 -- the TCP segments of an Ethernet capture, from the IP header on
local M = {}

M.LINKTYPE_ETHERNET = 1
M.LINKTYPE_RAW = 101

function M.parse(data)
	assert(#data >= 24, "not a pcap file: too short")
	local magic = string.unpack("<I4", data, 1)
	local E, nano
	if magic == 0xa1b2c3d4 or magic == 0xa1b23c4d then
		E = "<"
	elseif magic == 0xd4c3b2a1 or magic == 0x4d3cb2a1 then
		E = ">"
	else
		error(("not a pcap file (magic 0x%08x)"):format(magic))
	end
	nano = magic == 0xa1b23c4d or magic == 0x4d3cb2a1
	local snaplen, linktype = string.unpack(E .. "I4I4", data, 17)
	local cap = { linktype = linktype & 0xffff, snaplen = snaplen, packets = {} }
	local pos = 25
	while pos + 16 <= #data + 1 do
		local sec, frac, incl, orig = string.unpack(E .. "I4I4I4I4", data, pos)
		local bytes = data:sub(pos + 16, pos + 15 + incl)
		assert(#bytes == incl, "truncated pcap record")
		cap.packets[#cap.packets + 1] = { sec = sec, usec = nano and frac // 1000 or frac,
			nsec = nano and frac or frac * 1000, data = bytes, len = orig }
		pos = pos + 16 + incl
	end
	return cap
end

function M.read(path)
	local f = assert(io.open(path, "rb"))
	local data = f:read("a")
	f:close()
	return M.parse(data)
end

function M.encode(linktype, packets, snaplen)
	local out = { string.pack("<I4I2I2i4I4I4I4", 0xa1b2c3d4, 2, 4, 0, 0, snaplen or 262144, linktype) }
	for _, p in ipairs(packets) do
		out[#out + 1] = string.pack("<I4I4I4I4", p.sec or 0, p.usec or 0, #p.data, p.len or #p.data)
		out[#out + 1] = p.data
	end
	return table.concat(out)
end

function M.write(path, linktype, packets, snaplen)
	local f = assert(io.open(path, "wb"))
	f:write(M.encode(linktype, packets, snaplen))
	f:close()
end

--- The IP packet of an Ethernet frame if it carries TCP (IPv4 protocol 6,
-- or IPv6 next header 6), cut to the IP length (no padding), else nil.
function M.tcp_ip_packet(frame)
	if #frame < 34 then return nil end
	local etype = string.unpack(">I2", frame, 13)
	if etype == 0x0800 and frame:byte(24) == 6 then
		local tot = string.unpack(">I2", frame, 17)
		return frame:sub(15, 14 + tot)
	elseif etype == 0x86dd and #frame >= 54 and frame:byte(21) == 6 then
		local plen = string.unpack(">I2", frame, 19)
		return frame:sub(15, 14 + 40 + plen)
	end
	return nil
end

--- The TCP segments of an Ethernet capture as LINKTYPE_RAW packets.
function M.to_raw(cap)
	assert(cap.linktype == M.LINKTYPE_ETHERNET, "link type " .. cap.linktype .. " is not Ethernet")
	local out = {}
	for _, p in ipairs(cap.packets) do
		local ip = M.tcp_ip_packet(p.data)
		if ip and #p.data == p.len then
			out[#out + 1] = { sec = p.sec, usec = p.usec, data = ip, len = #ip }
		end
	end
	return out
end

--- A raw IP packet as an Ethernet frame (zero MACs), for test_run and for
-- tcpreplay onto lo.
function M.ethernet(ip)
	local v = ip:byte(1) >> 4
	return string.rep("\0", 12) .. (v == 6 and "\134\221" or "\8\0") .. ip
end

return M
