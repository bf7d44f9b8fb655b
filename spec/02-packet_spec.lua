-- SPDX-License-Identifier: GPL-2.0-only
-- Unit specs: decoding ring records into packets (core.decode_record), the
-- same code the ring callback uses.  No root, no kernel, no maps.
local core = require "tcpinspect.core"
local tcpinspect = require "tcpinspect"

-- struct ti_event (bpf/tcpinspect.h), little-endian x86_64 layout
-- (sport, dport, window, caplen, len, flags, family, ttl, probe, wirelen,
-- reason, location, sk_cookie, sk_ino, uid, sk_state, sk_flags, pad)
local FMT = "<I8c16c16I4I4I4I4I8I4I2I2I2I2I4BBBBI4I4I4I8I8I4BBI2"

local function v4(a, b, c, d)
	return string.char(a, b, c, d) .. ("\0"):rep(12)
end

local function v6(...)
	local bytes = { ... }
	local s = {}
	for i = 1, 16 do s[i] = string.char(bytes[i] or 0) end
	return table.concat(s)
end

local function record(t)
	local raw = string.pack(FMT, t.ts or 0, t.saddr or v4(0, 0, 0, 0), t.daddr or v4(0, 0, 0, 0),
		t.seq or 0, t.ack or 0, t.ifindex or 0, t.netns or 0, t.cgroup or 0, t.cpu or 0,
		t.sport or 0, t.dport or 0, t.window or 0, t.bytes and #t.bytes or 0, t.len or 0,
		t.flags or 0, t.family or 4, t.ttl or 0, t.probe or 0, t.wirelen or 0, t.reason or 0, t.location or 0,
		t.sk_cookie or 0, t.sk_ino or 0, t.uid or 0, t.sk_state or 0, t.sk_flags or 0, 0)
	return raw .. ("\0"):rep(core.record_size - #raw) .. (t.bytes or "")
end

-- the receiving socket's fields and their type where set
local SOCKET_FIELDS = { sk_state = "string", sk_cookie = "integer", uid = "integer", pid = "integer", comm = "string" }

local LOOPBACK6 = v6(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)

describe("packet decoding", function()
	it("has the record size of struct ti_event", function()
		assert.are.equal(120, core.record_size)
		assert.are.equal(core.record_size, #string.pack(FMT, 0, ("\0"):rep(16), ("\0"):rep(16), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
			0, 0, 0, 0, 0, 0))
	end)

	it("decodes an IPv4 segment field by field", function()
		local p = core.decode_record(record{
			ts = 1234567890123, saddr = v4(192, 0, 2, 1), daddr = v4(198, 51, 100, 7),
			seq = 0xfffffffe, ack = 42, ifindex = 1, netns = 4026531840, cgroup = 0x100000123, cpu = 3,
			sport = 51000, dport = 443, window = 65535, len = 1448, wirelen = 1500,
			flags = 0x18, family = 4, ttl = 64, probe = 1,
		}, 1000.5)
		assert.are.equal(1234567890123, p.ts)
		assert.are.equal(4, p.family)
		assert.are.equal("192.0.2.1", p.saddr)
		assert.are.equal("198.51.100.7", p.daddr)
		assert.are.equal(51000, p.sport)
		assert.are.equal(443, p.dport)
		assert.are.equal(4294967294, p.seq)
		assert.are.equal(42, p.ack)
		assert.are.equal(65535, p.window)
		assert.are.equal(0x18, p.flags)
		assert.are.equal("P.", p.flagstr)
		assert.are.equal(1448, p.len)
		assert.are.equal(1500, p.iplen)
		assert.are.equal(64, p.ttl)
		assert.are.equal(1, p.ifindex)
		assert.are.equal(4026531840, p.netns)
		assert.are.equal(0x100000123, p.cgroup)
		assert.are.equal("tcp_v4_rcv", p.probe)
		assert.are.equal(3, p.cpu)
		assert.is_true(math.abs(p.time - (1234.567890123 + 1000.5)) < 1e-6)
	end)

	it("carries 32-bit lengths: BIG TCP, a full 64 KiB IPv6 segment on lo", function()
		local big = core.decode_record(record{ family = 4, len = 185000, wirelen = 185052 })
		assert.are.equal(185000, big.len)
		assert.are.equal(185052, big.wirelen)
		assert.are.equal(185052, big.iplen)
		local lo6 = core.decode_record(record{ family = 6, len = 65464, wirelen = 65536, daddr = LOOPBACK6 })
		assert.are.equal(65464, lo6.len)
		assert.are.equal(65536, lo6.wirelen)
		assert.are.equal(65496, lo6.iplen)
		local huge = core.decode_record(record{ family = 6, len = 0xffffffff - 72, wirelen = 0xffffffff })
		assert.are.equal(0xffffffff - 72, huge.len)
		assert.are.equal(0xffffffff, huge.wirelen)
		assert.are.equal(0xffffffff - 40, huge.iplen)
	end)

	it("decodes an IPv6 segment", function()
		local p = core.decode_record(record{
			saddr = v6(0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10),
			daddr = LOOPBACK6, family = 6, sport = 1, dport = 65535, flags = 0x12, ttl = 255, probe = 2,
		})
		assert.are.equal(6, p.family)
		assert.are.equal("2001:db8::10", p.saddr)
		assert.are.equal("::1", p.daddr)
		assert.are.equal(65535, p.dport)
		assert.are.equal("S.", p.flagstr)
		assert.are.equal(255, p.ttl)
		assert.are.equal("tcp_v6_rcv", p.probe)
	end)

	it("names every probe", function()
		assert.are.equal("cgroup_skb/ingress", core.decode_record(record{ probe = 3 }).probe)
		assert.are.equal("tc/ingress", core.decode_record(record{ probe = 4, ifindex = 0x7ffffff0 }).probe)
		assert.are.equal("tc/ingress:lo", core.decode_record(record{ probe = 4, ifindex = 1 }).probe)
		assert.are.equal("unknown", core.decode_record(record{ probe = 0 }).probe)
		assert.are.equal("unknown", core.decode_record(record{ probe = 200 }).probe)
	end)

	it("names a drop's reason by the running kernel's BTF, and its number when it has none", function()
		local names = tcpinspect.drop_reasons()
		assert.is_true(#names > 0, "no drop reasons: this host has kernel BTF (/sys/kernel/btf/vmlinux)")
		-- enum skb_drop_reason is dense from 0 (its members take implicit values)
		for i, name in ipairs(names) do
			assert.are.equal(name, core.decode_record(record{ probe = 6, reason = i - 1 }).reason)
		end
		assert.are.equal("60000", core.decode_record(record{ probe = 6, reason = 60000 }).reason)
		assert.are.equal("skb:kfree_skb", core.decode_record(record{ probe = 6 }).probe)
		-- a segment that was not dropped has neither
		local p = core.decode_record(record{ probe = 1, reason = 3, location = 5 })
		assert.is_nil(p.reason)
		assert.is_nil(p.location)
	end)

	it("names a drop's location by /proc/kallsyms", function()
		local f = assert(io.open("/proc/kallsyms"))
		local addr
		for line in f:lines() do
			local a, name = line:match("^(%x+) [tT] (%S+)$")
			if name == "tcp_v4_rcv" then addr = tonumber(a, 16) break end
		end
		f:close()
		assert(addr, "tcp_v4_rcv is in /proc/kallsyms")
		local p = core.decode_record(record{ probe = 6, location = (addr + 4) & 0xffffffff })
		if addr ~= 0 then
			assert.are.equal("tcp_v4_rcv", p.location)
		else -- kallsyms hides the addresses from this user
			assert.truthy(p.location:match("^0x%x+$"), p.location)
		end
	end)

	it("writes flags as tcpdump does", function()
		-- tcpdump 4.99 prints the letters in bit order (checked with tcpdump -r on
		-- a pcap of these flag bytes): FIN SYN RST PSH ACK URG ECE CWR
		local cases = {
			[0x02] = "S", [0x12] = "S.", [0x10] = ".", [0x11] = "F.", [0x04] = "R", [0x14] = "R.",
			[0x18] = "P.", [0x19] = "FP.", [0x00] = "none", [0xc2] = "SEW", [0xff] = "FSRP.UEW",
			[0x32] = "S.U", [0x43] = "FSE",
		}
		for flags, want in pairs(cases) do
			assert.are.equal(want, core.decode_record(record{ flags = flags }).flagstr)
			assert.are.equal(want, tcpinspect.flagstr(flags))
		end
	end)

	it("totable has every field of packet_fields, equal to the fields", function()
		local p = core.decode_record(record{ saddr = v4(10, 0, 0, 1), daddr = v4(10, 0, 0, 2), sport = 5, dport = 6,
			flags = 0x11, len = 3, probe = 6, reason = 3, ts = 5e9, sk_state = 10, sk_flags = 1, uid = 7,
			sk_cookie = 9 }) -- a drop with its socket: every field set but pid and comm (no such inode)
		local t = p:totable()
		local names = tcpinspect.packet_fields()
		assert.are.equal(30, #names)
		for _, name in ipairs(names) do
			if name ~= "pid" and name ~= "comm" then assert.is_not_nil(t[name], name) end
			assert.are.equal(p[name], t[name], name)
		end
		assert.are.same({ "LISTEN", 7, 9 }, { p.sk_state, p.uid, p.sk_cookie })
		local n = 0
		for _ in pairs(t) do n = n + 1 end
		assert.are.equal(#names - 2, n) -- pid and comm: nil
	end)

	it("a copy is independent and equal", function()
		local p = core.decode_record(record{ saddr = v4(10, 0, 0, 1), sport = 7, flags = 2 })
		local c = p:copy()
		assert.are_not.equal(p, c)
		assert.are.same(p:totable(), c:totable())
	end)

	it("tostring reads like tcpdump", function()
		local p = core.decode_record(record{ saddr = v4(127, 0, 0, 1), daddr = v4(127, 0, 0, 2), sport = 1000,
			dport = 80, flags = 0x02, len = 0 })
		assert.are.equal("tcpinspect.packet 127.0.0.1.1000 > 127.0.0.2.80 [S] len 0", tostring(p))
	end)

	it("carries the captured bytes: p:bytes(), caplen, wirelen", function()
		local ip = "\69\0\0\40" .. ("\1"):rep(36)
		local p = core.decode_record(record{ bytes = ip:sub(1, 24), wirelen = 40 })
		assert.are.equal(24, p.caplen)
		assert.are.equal(40, p.wirelen)
		assert.are.equal(ip:sub(1, 24), p:bytes())
		local c = p:copy()
		assert.are.equal(ip:sub(1, 24), c:bytes())
		assert.are.equal(24, c.caplen)
		local none = core.decode_record(record{})
		assert.are.equal("", none:bytes())
		assert.are.equal(0, none.caplen)
	end)

	it("rejects records of the wrong size and unknown fields", function()
		assert.has_error(function() core.decode_record("short") end,
			("record is 5 bytes, expected %d and its caplen bytes"):format(core.record_size))
		assert.has_error(function() core.decode_record(record{} .. "x") end,
			("record is %d bytes, expected %d and its caplen (0) bytes"):format(core.record_size + 1, core.record_size))
		assert.has_error(function() core.decode_record(record{ bytes = "abc" }:sub(1, -2)) end)
		assert.has_error(function() core.decode_record("") end)
		local p = core.decode_record(record{})
		assert.has_error(function() return p.nosuch end, "tcpinspect: packet has no field 'nosuch'")
		assert.has_error(function() return p[""] end)
	end)

	it("never fails on random records: every field readable", function()
		math.randomseed(12345)
		for _ = 1, 2000 do
			local b = {}
			for i = 1, core.record_size do b[i] = string.char(math.random(0, 255)) end
			-- caplen (offset 74) says how many bytes follow: give it that many
			local raw = table.concat(b)
			raw = raw .. ("x"):rep((string.unpack("<I2", raw, 75)))
			local p = core.decode_record(raw)
			local drop = string.byte(raw, 84) == 6 -- probe TI_PROBE_KFREE_SKB
			for _, name in ipairs(tcpinspect.packet_fields()) do
				local v = p[name]
				if (name == "reason" or name == "location") and not drop then
					assert.is_nil(v, name) -- only a drop has them
				elseif SOCKET_FIELDS[name] then
					-- nil where the hook named no socket, or no process holds it
					-- (a state the kernel has no name for: its number)
					assert.is_true(v == nil or type(v) == SOCKET_FIELDS[name] or math.type(v) == SOCKET_FIELDS[name]
						or (name == "sk_state" and math.type(v) == "integer"), name)
				else
					assert.is_not_nil(v, name)
				end
			end
			assert.is_string(p.saddr)
			assert.is_true(p.sport >= 0 and p.sport <= 65535)
			assert.is_true(p.flags >= 0 and p.flags <= 255)
			assert.is_string(tostring(p))
		end
	end)
end)
