-- SPDX-License-Identifier: GPL-2.0-only
-- The CLI's tcpdump habits of issue 12 (the kernel side): a trailing filter
-- expression (and after '--', never dropped), -s SNAPLEN, -X / -A (checked
-- against tcpdump's own output, byte for byte), -i.  Without root through
-- -r on the corpus; live (#kernel) on loopback.
local net = require "support.net"
local cli = require "support.cli"
local fmt = require "tcpinspect.format"
local pcapfile = require "support.pcapfile"
local clim = require "tcpinspect.cli"

local CORPUS = net.ROOT .. "/spec/fixtures/filter_corpus.pcap"

-- Output of tcpdump or tcpinspect (-X, -A) split into packets:
-- { {line=, body=}, ... }, body: what follows the packet's line
local function split_packets(out, head)
	out = "\n" .. out
	local starts, pos = {}, 1
	while true do
		local a, b = out:find("\n" .. head .. "[^\n]*", pos)
		if not a then break end
		starts[#starts + 1] = { a, b }
		pos = b + 1
	end
	local pkts = {}
	for k, st in ipairs(starts) do
		local stop = starts[k + 1] and starts[k + 1][1] - 1 or #out - 1
		pkts[#pkts + 1] = { line = out:sub(st[1] + 1, st[2]), body = out:sub(st[2] + 1, stop) }
	end
	return pkts
end

local STAMP = "%d%d:%d%d:%d%d%.%d%d%d%d%d%d "

local function tcpdump_packets(args)
	local _, out = net.sh("tcpdump -n -r " .. net.q(CORPUS) .. " " .. args .. " 2>/dev/null")
	return split_packets(out, STAMP .. "IP6? ")
end

local function own_packets(out)
	return split_packets(out, STAMP)
end

describe("cli: filter expressions and tcpdump's options", function()
	it("takes the expression from the trailing words, and after '--' (never dropped)", function()
		local cmd, _, rest, words = clim.split { "watch", "tcp", "port", "80", "-c", "3" }
		assert.are.equal("watch", cmd)
		assert.are.same({ "tcp", "port", "80" }, words)
		assert.are.same({}, rest)
		cmd, _, rest, words = clim.split { "watch", "-c", "3", "--", "tcp", "port", "-1" }
		assert.are.equal("watch", cmd)
		assert.are.same({ "tcp", "port", "-1" }, words)
		assert.are.same({}, rest)
		-- a script's arguments after '--' stay the script's
		cmd, _, rest, words = clim.split { "x.lua", "--", "tcp", "port" }
		assert.are.equal("run", cmd)
		assert.are.same({ "tcp", "port" }, rest)
		assert.are.same({}, words)
	end)

	it("refuses an expression as tcpdump does: libpcap's message, exit 1", function()
		for _, case in ipairs {
			{ { "watch", "tcp prot 80" }, "^tcpinspect: 'tcp prot 80': can't parse filter expression: syntax error\n$" },
			{ { "watch", "--", "tcp", "prot", "80" }, "^tcpinspect: 'tcp prot 80': can't parse filter expression" },
			{ { "top", "ether", "host", "1:2:3:4:5:6" }, "^tcpinspect: 'ether host 1:2:3:4:5:6': ethernet addresses supported only on" },
			{ { "watch", "ether[0]", "=", "1" }, "^tcpinspect: 'ether%[0%] = 1': ether%[...%] reads a link%-layer header" },
			{ { "stats", "tcp[250]", "=", "1" }, "^tcpinspect: 'tcp%[250%] = 1': reads up to byte 311 of the segment" },
			{ { "watch", "wacth" }, "did you mean 'watch'%?" },
			{ { "-r", CORPUS, "watch", "tcp prot 80" }, "^tcpinspect: 'tcp prot 80': can't parse" },
		} do
			local r = cli.run(case[1])
			assert.are.equal(1, r.code, table.concat(case[1], " ") .. "\n" .. r.err)
			assert.matches(case[2], r.err)
			assert.are.equal("", r.out)
		end
		for _, case in ipairs {
			{ { "watch", "-s", "-1" }, "argument '%-s': expected bytes >= 0" },
			{ { "watch", "-s", "5000" }, "argument '%-s': 5000 out of range 0%-4096" },
			{ { "watch", "-i", "lo", "--dev", "lo" }, "give either %-i" },
			{ { "watch", "-i", "nosuch0" }, "argument '%-i': no interface named 'nosuch0'" },
		} do
			local r = cli.run(case[1])
			assert.are.equal(2, r.code, table.concat(case[1], " ") .. "\n" .. r.err)
			assert.matches(case[2], r.err)
		end
	end)

	it("-X and -A print the captured bytes exactly as tcpdump -X / -A (every corpus segment)", function()
		local cap = pcapfile.read(CORPUS)
		for _, mode in ipairs { "-X", "-A" } do
			local want = tcpdump_packets(mode)
			assert.are.equal(#cap.packets, #want)
			local f = mode == "-X" and fmt.hex_ascii or fmt.ascii
			for i, p in ipairs(cap.packets) do
				assert(f(p.data) == want[i].body, ("%s segment %d:\n%q\n%q"):format(mode, i, f(p.data), want[i].body))
			end
		end
	end)

	it("watch -r FILE EXPR -X: the segments tcpdump selects, with tcpdump's dump", function()
		for _, e in ipairs { "dst port 8080", "ip6 and ip6[53] & 4 != 0", "len > 1000" } do
			local want = tcpdump_packets("-X " .. net.q(e))
			local r = cli.run { "-q", "-r", CORPUS, "watch", "-X", e }
			assert.are.equal(0, r.code, r.err)
			local got = own_packets(r.out)
			assert.are.equal(#want, #got, e)
			assert.is_true(#want > 0, e)
			for i = 1, #want do assert.are.equal(want[i].body, got[i].body, e .. " #" .. i) end
			-- the same after '--', as separate words
			local words = { "-q", "-r", CORPUS, "watch", "--" }
			for w in e:gmatch("%S+") do words[#words + 1] = w end
			r = cli.run(words)
			assert.are.equal(#want, #own_packets(r.out .. ""), e .. " after --")
		end
	end)

	it("-s N keeps N bytes of each segment from the IP header on", function()
		local r = cli.run { "-q", "-r", CORPUS, "watch", "-s", "20", "-X", "-c", "1", "ip" }
		assert.are.equal(0, r.code, r.err)
		local body = own_packets(r.out)[1].body
		assert.matches("^\n\t0x0000:  45", body)
		assert.matches("\n\t0x0010:  %x%x%x%x %x%x%x%x  ", body)
		assert.is_nil(body:find("0x0020", 1, true))
	end)
end)

describe("snaplen #kernel #matrix", function()
	for _, mode in ipairs(net.modes()) do
		it(("[%s] p:bytes() holds the whole segment, payload included, byte for byte as tcpdump captured it"):format(mode), function()
			local addr, port = net.addr4(), net.port()
			local srv = net.server(addr, port)
			local s = net.open{ mode = mode, snaplen = 4096, filter = { host = addr, dport = port } }
			local got = {}
			s:on_packet(function(p)
				if p.len > 0 then
					assert.are.equal(p.wirelen, p.caplen)
					got[#got + 1] = p:bytes()
				end
			end)
			local cap = net.tcpdump{ filter = ("tcp dst port %d and dst host %s"):format(port, addr), snaplen = 0 }
			-- a small payload and one of 3000 bytes (several page fragments
			-- on lo in fentry/kprobe), over v4
			for _, len in ipairs{ 16, 3000 } do
				local data = {}
				for i = 1, len do data[i] = string.char(32 + (i * 7 + len) % 95) end
				net.conversation(srv, addr, port, { data = table.concat(data) })
			end
			local want = {}
			for _, p in ipairs(cap:stop()) do
				if p.len > 0 then want[#want + 1] = p.ip end
			end
			net.drain(s)
			s:close()
			srv:close()
			table.sort(want)
			table.sort(got)
			assert.is_true(#want >= 2, "tcpdump saw " .. #want .. " segments with payload")
			assert.are.equal(#want, #got)
			local sizes = {}
			for i = 1, #want do
				assert(want[i] == got[i], ("segment %d: %d bytes captured, tcpdump has %d"):format(i, #got[i], #want[i]))
				sizes[i] = #got[i]
			end
			net.say("[%s] snaplen 4096: %d segments with payload, byte-identical to tcpdump's (%s bytes)", mode,
				#got, table.concat(sizes, ", "))
		end)
	end
end)

describe("cli: filter expressions #kernel #cli", function()
	it("watch 'EXPR' -X -s: only what the expression selects, its bytes dumped; -i lo", function()
		local addr, port = net.addr4(), net.port()
		local srv = net.server(addr, port)
		local caddr = net.addr4()
		local expr = ("dst host %s and tcp dst port %d and tcp[tcpflags] & tcp-push != 0"):format(addr, port)
		local p = cli.start { "watch", "-i", "lo", "-X", "-s", "128", "-c", "1", "--duration", "30", expr }
		local ok, err = pcall(function()
			p:ready()
			net.conversation(srv, addr, port, { data = "hello tcpinspect", bind = caddr })
			local r = p:wait()
			assert.are.equal(0, r.code, r.err)
			local pkts = own_packets(r.out)
			assert.are.equal(1, #pkts)
			local t = fmt.parse_packet(pkts[1].line)
			assert.are.equal(port, t.dport)
			assert.are.equal("P.", t.flagstr)
			assert.are.equal(16, t.len)
			-- the dump's bytes: the whole segment (under -s 128), IP header first,
			-- ending with the payload
			local bytes = {}
			for line in pkts[1].body:gmatch("\t0x%x+:  ([^\n]-)  ") do
				for h in line:gmatch("%x%x") do bytes[#bytes + 1] = string.char(tonumber(h, 16)) end
			end
			bytes = table.concat(bytes)
			assert.are.equal(0x45, bytes:byte(1))
			local total, ihl = string.unpack(">I2", bytes, 3), (bytes:byte(1) & 0xf) * 4
			local hdrs = ihl + (bytes:byte(ihl + 13) >> 4) * 4
			-- every mode: the whole segment, ending with the payload (fentry and
			-- kprobe read past the linear data into the page fragments, where
			-- the payload sits on lo)
			local mode = r.err:match("incoming TCP segments, (%a+) mode")
			net.say("[%s] -X -s 128: %d of %d bytes (headers %d)", tostring(mode), #bytes, total, hdrs)
			assert.are.equal(total, #bytes)
			assert.are.equal("hello tcpinspect", bytes:sub(-16))
		end)
		p:kill()
		srv:close()
		assert(ok, err)
	end)
end)
