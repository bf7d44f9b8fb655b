-- SPDX-License-Identifier: GPL-2.0-only
-- BIG TCP captures made here (spec/40): the three shapes of tcpdump's own
-- bigtcp test captures (tcpdump 4.99.4+; Debian 12's 4.99.3 source has
-- none), written frame by frame so the spec knows every length:
--   ipv4      IPv4 total length 0, 32-byte TCP header, 80000 bytes payload
--   ipv6-hbh  IPv6 payload length 0, a Hop-by-Hop header whose Jumbo
--             Payload option says 80040, TCP 32 + 80000
--   ipv6      IPv6 payload length 0, no Hop-by-Hop header, TCP 32 + 79968
-- Ethernet frames in a classic pcap (snaplen 262144): tshark and tcpdump
-- read them, the replay takes the length from the frame where the IP
-- header has none.
local M = {}

local function tcp(payload, sport, dport)
	-- seq, ack, data offset 8 words (32 bytes: NOP NOP TS), PSH|ACK
	return string.pack(">I2I2I4I4BBI2I2I2", sport, dport, 4155358606, 17023525, 8 << 4, 0x18, 635, 0, 0)
		.. "\1\1\8\10" .. string.pack(">I4I4", 3921144597, 3152931631) .. string.rep("\0", payload)
end

local function eth(ethertype)
	return "\2\0\0\0\0\2" .. "\2\0\0\0\0\1" .. string.pack(">I2", ethertype)
end

local function ipv6(nexthdr)
	local a = "\38\4\19\128\64\145\206\0" .. string.rep("\0", 7)
	-- version 6, flow label, payload length 0, next header, hop limit 64
	return string.pack(">I4I2BB", 0x600a31ee, 0, nexthdr, 64) .. a .. "\13" .. a .. "\11"
end

M.frames = {
	ipv4 = function()
		local ip = string.pack(">BBI2I2I2BBI2", 0x45, 0, 0, 12031, 0x4000, 64, 6, 0)
			.. "\10\25\132\13" .. "\10\25\132\11"
		return eth(0x0800) .. ip .. tcp(80000, 35871, 36425)
	end,
	["ipv6-hbh"] = function()
		-- next header TCP, length 0 (8 bytes), option 0xC2 (Jumbo Payload), 4 bytes
		local hbh = string.pack(">BBBBI4", 6, 0, 0xc2, 4, 8 + 32 + 80000)
		return eth(0x86dd) .. ipv6(0) .. hbh .. tcp(80000, 41851, 43913)
	end,
	ipv6 = function()
		return eth(0x86dd) .. ipv6(6) .. tcp(79968, 43267, 41219)
	end,
}

--- Write the capture NAME (a key of M.frames) to PATH.
function M.write(name, path)
	local frame = M.frames[name]()
	local f = assert(io.open(path, "wb"))
	f:write(string.pack("<I4I2I2i4I4I4I4", 0xa1b2c3d4, 2, 4, 0, 0, 262144, 1))
	f:write(string.pack("<I4I4I4I4", 1759417540, 30951, #frame, #frame), frame)
	f:close()
	return path
end

return M
