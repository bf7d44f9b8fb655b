-- SPDX-License-Identifier: GPL-2.0-only
-- Files written as root, and names printed on a terminal (issue 19, items
-- 2 and 8).
--
-- -w and session:dump: a symbolic link is refused and its target left
-- untouched; a new file is 0600; a full disk (a 64 KiB tmpfs) ends the
-- command with exit 1, ENOSPC and the number of packets in the file, which
-- is what tcpdump reads back from it; -Z USER drops privileges after the
-- attach, so the file belongs to USER.  Replay-based where possible (no
-- hooks), but root is needed (nobody's link, mount, -Z): #kernel.  -Z live
-- and the names (an interface and a process named with escape sequences,
-- in a namespace of our own) attach tc.
local net = require "support.net"
local cli = require "support.cli"
local pcapfile = require "support.pcapfile"
local fmt = require "tcpinspect.format"
local dkjson = require "dkjson"
local tcpinspect = require "tcpinspect"

local CONNS = net.ROOT .. "/spec/fixtures/connections.pcap"

describe("format.printable", function()
	it("prints names as tcpdump's fn_print_char: ^x for controls, M- for the high bit", function()
		assert.are.equal("eth0", fmt.printable("eth0"))
		assert.are.equal("^[]0;x^G", fmt.printable("\27]0;x\7"))
		assert.are.equal("a^@b^?c^I^J", fmt.printable("a\0b\127c\t\n"))
		assert.are.equal("M-^[M-iM-^?M- ", fmt.printable("\155\233\255\160"))
		-- every byte: the result is printable ASCII only
		local all = {}
		for c = 0, 255 do all[#all + 1] = string.char(c) end
		assert.is_nil(fmt.printable(table.concat(all)):find("[^\32-\126]"))
	end)
end)

-- a mktemp directory of mode 1777 (as /tmp): anyone may plant a file there
local function sticky_dir()
	local d = net.must("mktemp -d /tmp/tcpinspect-files-XXXXXXXX"):match("^(%S+)")
	net.must("chmod 1777 " .. d)
	return d
end

local function stat(path, what)
	local _, out = net.sh(("stat -c %s %s"):format(what, net.q(path)))
	return out:match("[^\n]+")
end

-- records tcpdump reads from a file, and its stderr
local function tcpdump_count(path)
	local errf = net.tmpfile(".tcpdump")
	local _, out = net.sh(("tcpdump -n -r %s 2>%s"):format(net.q(path), net.q(errf)))
	local n = 0
	for _ in out:gmatch("[^\n]+") do n = n + 1 end
	return n, net.read_file(errf) or ""
end

-- n IPv4 TCP segments of `size` bytes each (LINKTYPE_RAW), one flow
local function segments(n, size)
	local pkts = {}
	for i = 1, n do
		local ip = string.pack(">BBI2I2I2BBI2I4I4", 0x45, 0, size, i & 0xffff, 0x4000, 64, 6, 0,
			0x0a000001, 0x0a000002)
		local tcp = string.pack(">I2I2I4I4BBI2I2I2", 40000, 5001, 1000 + (i - 1) * (size - 40), 1, 0x50, 0x18,
			512, 0, 0)
		pkts[i] = { sec = 1700000000, usec = i, data = ip .. tcp .. string.rep("x", size - 40) }
	end
	return pkts
end

describe("files written as root #kernel #cli", function()
	local cleanup = {}
	after_each(function()
		for _, c in ipairs(cleanup) do os.execute(c) end
		cleanup = {}
	end)

	it("-w and session:dump refuse a symbolic link planted by nobody; its target is untouched", function()
		local d, secret = sticky_dir(), net.must("mktemp -d /tmp/tcpinspect-secret-XXXXXXXX"):match("^(%S+)")
		cleanup[#cleanup + 1] = "rm -rf " .. net.q(d) .. " " .. net.q(secret)
		local target = secret .. "/shadow"
		local content = "root:$6$secret:19000:0:99999:7:::\n"
		net.write_file(target, content)
		net.must("chmod 600 " .. net.q(target))
		local link = d .. "/out.pcap"
		net.must(("setpriv --reuid=nobody --regid=nogroup --clear-groups ln -s %s %s"):format(net.q(target),
			net.q(link)))
		local r = cli.run{ "watch", "-q", "-r", CONNS, "-w", link }
		assert.are.equal(1, r.code, r.err)
		assert.matches("argument '%-w': EACCES: dump: " .. link:gsub("%p", "%%%0") .. ": a symbolic link", r.err)
		assert.are.equal(content, net.read_file(target))
		assert.are.equal("600 root", stat(target, "'%a %U'"))
		-- the library: nil, message, errno; a link of our own in a private
		-- directory gives ELOOP (O_NOFOLLOW)
		local s = tcpinspect.replay{ file = CONNS }
		local ok, msg, errno = s:dump(link)
		assert.is_nil(ok)
		assert.matches("^EACCES: dump: .*a symbolic link", msg)
		assert.are.equal("EACCES", tcpinspect.errname(errno))
		local own = secret .. "/mine.pcap"
		net.must(("ln -s %s %s"):format(net.q(target), net.q(own)))
		ok, msg, errno = s:dump(own)
		assert.is_nil(ok)
		assert.matches("^ELOOP: dump: .*a symbolic link", msg)
		assert.are.equal("ELOOP", tcpinspect.errname(errno))
		s:close()
		assert.are.equal(content, net.read_file(target))
		net.say("symlink of nobody's: exit %d, %q", r.code, r.err:match("[^\n]+"))
	end)

	it("a new -w file is mode 0600, with every segment in it", function()
		local d = sticky_dir()
		cleanup[#cleanup + 1] = "rm -rf " .. net.q(d)
		local out = d .. "/new.pcap"
		local r = cli.run{ "watch", "-r", CONNS, "-w", out }
		assert.are.equal(0, r.code, r.err)
		assert.are.equal("600 root", stat(out, "'%a %U'"))
		local n, err = tcpdump_count(out)
		assert.are.equal(30, n, err)
		assert.matches("30 packets written", r.err)
	end)

	it("a full disk: exit 1, ENOSPC and the packets in the file, which tcpdump reads back exactly", function()
		local d = net.must("mktemp -d /tmp/tcpinspect-full-XXXXXXXX"):match("^(%S+)")
		cleanup[#cleanup + 1] = "umount " .. net.q(d) .. " 2>/dev/null; rmdir " .. net.q(d)
		net.must("mount -t tmpfs -o size=64k tcpinspect-full " .. net.q(d))
		-- 2000 segments of 544 bytes: records of 16 + 20 + 544 bytes
		local cap = net.tmpfile(".pcap")
		pcapfile.write(cap, 101, segments(2000, 544))
		local out = d .. "/out.pcap"
		local r = cli.run{ "watch", "-r", cap, "-w", out }
		assert.are.equal(1, r.code, r.err)
		local n = tonumber(r.err:match("ENOSPC: dump: writing " .. out:gsub("%p", "%%%0") ..
			" failed: No space left on device; (%d+) packets written to it"))
		assert(n, r.err)
		local got, err = tcpdump_count(out)
		assert.are.equal(n, got)
		assert.is_nil(err:find("truncated"), err)
		-- the file ends with the last whole record
		assert.are.equal(24 + n * (16 + 20 + 544), tonumber(stat(out, "%s")))
		assert.is_true(n > 50 and n < 2000, "n = " .. n)
		net.say("64 KiB tmpfs: exit 1, %d of 2000 packets written, tcpdump reads %d", n, got)

		-- session:dump: the fail tuple from the poll (run) that met the error
		os.remove(out)
		local s = tcpinspect.replay{ file = cap, snaplen = 65535 }
		assert.is_truthy(s:dump(out))
		local ok, msg, errno = s:run()
		assert.is_nil(ok)
		assert.are.equal("ENOSPC", tcpinspect.errname(errno))
		local m = tonumber(msg:match("^ENOSPC: dump: writing .* failed: No space left on device; (%d+) packets written to it$"))
		assert(m, msg)
		assert.are.equal(m, (tcpdump_count(out)))
		assert.are.equal(24 + m * 580, tonumber(stat(out, "%s")))
		assert.is_truthy(s:dump(nil)) -- reported once, closed
		s:close()
	end)

	it("-Z nobody: the file belongs to nobody; an unknown user exits 2 naming -Z", function()
		local d = sticky_dir()
		cleanup[#cleanup + 1] = "rm -rf " .. net.q(d)
		local out = d .. "/z.pcap"
		local r = cli.run{ "watch", "-r", CONNS, "-Z", "nobody", "-w", out }
		assert.are.equal(0, r.code, r.err)
		assert.are.equal("600 nobody", stat(out, "'%a %U'"))
		assert.are.equal(30, (tcpdump_count(out)))
		r = cli.run{ "watch", "-r", CONNS, "-Z", "no-such-user-tcpinspect", "-w", d .. "/z2.pcap" }
		assert.are.equal(2, r.code, r.err)
		assert.matches("error: argument '%-Z': ENOENT: drop_privileges: no user 'no%-such%-user%-tcpinspect'", r.err)
		assert.is_nil(net.read_file(d .. "/z2.pcap"))
	end)

	for _, mode in ipairs(net.modes()) do
		it(("[%s] live: -Z nobody after the attach, every segment in a file nobody owns"):format(mode), function()
			local d = sticky_dir()
			cleanup[#cleanup + 1] = "rm -rf " .. net.q(d)
			local out = d .. "/live.pcap"
			local addr, port = net.addr4(), net.port()
			local srv = net.server(addr, port)
			local p = cli.start{ "watch", "--mode", mode, "--host", addr, "--dport", tostring(port), "-Z", "nobody",
				"-w", out }
			p:ready()
			local capture = net.tcpdump{ filter = ("tcp dst port %d and dst host %s"):format(port, addr) }
			net.conversations(srv, addr, port, 3)
			local want = #capture:stop()
			net.sleep(net.scale(0.5))
			p:interrupt()
			local r = p:wait(net.scale(20))
			srv:close()
			assert.are.equal(0, r.code, r.err)
			assert.are.equal("600 nobody", stat(out, "'%a %U'"))
			assert.is_true(want >= 9, "tcpdump saw " .. want)
			assert.are.equal(want, (tcpdump_count(out)))
			assert.matches(want .. " packets written", r.err)
			net.say("[%s] -Z nobody: %d segments in a file of nobody's (tcpdump %d)", mode, want, want)
		end)
	end
end)

describe("names with escape sequences #kernel #cli", function()
	it("[tc] an interface and a process named with ESC: printed escaped, never raw", function()
		if not net.has_mode("tc") then
			assert.is_nil(os.getenv("TCPINSPECT_EXPECT_MODES"):find("tc"), "tc expected")
			return
		end
		-- a namespace whose only process is a shell named "\27]0;pwn\7"
		-- (an xterm title sequence), holding a veth named "\27]0;x"
		local pidf = net.tmpfile(".pid")
		local holder = net.tmpfile(".fifo")
		net.must("mkfifo " .. net.q(holder))
		net.spawn(("unshare -n sh -c %s"):format(net.q(("echo $$ > %s; printf '\\033]0;pwn\\007' > /proc/$$/comm; " ..
			"ip link set lo up; read x < %s"):format(net.q(pidf), net.q(holder)))))
		local pid = net.wait_until(function()
			local s = net.read_file(pidf)
			return s and tonumber(s:match("%d+"))
		end, 10)
		assert(pid, "no namespace holder")
		local function cleanup()
			os.execute(("echo > %s; kill %d 2>/dev/null"):format(net.q(holder), pid))
		end
		local ok, err = pcall(function()
			net.wait_until(function() return net.read_file("/proc/" .. pid .. "/comm") == "\27]0;pwn\7\n" end, 5)
			assert.are.equal("\27]0;pwn\7\n", net.read_file("/proc/" .. pid .. "/comm"))
			local ns = "/proc/" .. pid .. "/ns/net"
			net.must(("nsenter -t %d -n ip link add %s type veth peer name tiv-peer"):format(pid, net.q("\27]0;x")))
			net.must(("nsenter -t %d -n ip link set %s up"):format(pid, net.q("\27]0;x")))
			net.must(("nsenter -t %d -n ip link set tiv-peer up"):format(pid))
			local function top(json)
				local args = { "top", "--by", "netns", "--mode", "tc", "--netns", ns, "--interval", "60" }
				if json then args[#args + 1] = "--json" end
				local p = cli.start(args)
				p:ready()
				-- a few SYNs (answered by RSTs) on the namespace's lo
				net.must(("nsenter -t %d -n sh -c %s"):format(pid, net.q(
					"for i in 1 2 3; do timeout 2 bash -c 'echo > /dev/tcp/127.0.0.1/9' 2>/dev/null; done; true")))
				net.sleep(net.scale(0.5))
				p:interrupt()
				return p:wait(net.scale(20))
			end
			local r = top(false)
			assert.are.equal(0, r.code, r.err)
			assert.is_nil(r.out:find("[\27\7]"), "raw ESC/BEL in stdout")
			assert.is_nil(r.err:find("[\27\7]"), "raw ESC/BEL in stderr")
			-- tc's header counts interfaces (names are in session.probes)
			assert.is_truthy(r.err:find("tc/ingress: 3 interfaces in 1 network namespace", 1, true), r.err)
			-- an interface name in a message: escaped as tcpdump prints it
			local bad = cli.run({ "watch", "--mode", "tc", "--netns", ns, "--dev", "\27]0;nosuch", "-c", "1" })
			assert.are_not.equal(0, bad.code)
			assert.is_nil(bad.err:find("[\27\7]"), "raw ESC/BEL in stderr")
			assert.is_truthy(bad.err:find("^[]0;nosuch", 1, true), bad.err)
			assert.is_truthy(r.out:find(("pid %d (^[]0;pwn^G)"):format(pid), 1, true), r.out)
			-- --json: escaped by the encoder, the name itself intact
			r = top(true)
			assert.are.equal(0, r.code, r.err)
			assert.is_nil(r.out:find("[\27\7]"), "raw ESC/BEL in the JSON")
			local lines = cli.lines(r.out)
			local block = dkjson.decode(lines[#lines])
			assert.are.equal(("pid %d (\27]0;pwn\7)"):format(pid), block.netns[1].name)
		end)
		cleanup()
		assert(ok, err)
	end)
end)
