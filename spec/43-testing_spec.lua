-- SPDX-License-Identifier: GPL-2.0-only
-- Unit specs: tcpinspect.testing (issue 25), a script run on a capture in
-- this process, and the README's busted recipe built on it, run as the
-- README says from an empty directory outside the checkout with tcpinspect
-- installed by `make install` (in a private mount namespace over an empty
-- /usr/local: unshare -rm, no root needed).  Expected counts come from
-- tcpdump reading the same files and from `tcpinspect -r` itself.
local testing = require "tcpinspect.testing"

local FIX = "spec/fixtures/"
local BIN = "build/bin/tcpinspect"

local net = require "support.net"
local q, must = net.q, net.must
local function sh(cmd) -- exit code, output (stdout and stderr)
	local _, out, code = net.sh(cmd)
	return code, out
end
local function read(path) return assert(net.read_file(path), path) end
local function tcpdump_count(file, expr)
	return tonumber(must(("tcpdump -nr %s %s 2>/dev/null | wc -l"):format(file, expr and q(expr) or "")):match("%d+"))
end

describe("tcpinspect.testing.run", function()
	it("gives a script's output, its maps and counters, as tcpinspect -r prints and tcpdump counts", function()
		local r = testing.run { script = "examples/port_scan.lua", file = FIX .. "port_scan.pcap" }
		local cli = must(BIN .. " -q -r " .. FIX .. "port_scan.pcap examples/port_scan.lua 2>/dev/null")
		assert.are.equal("ALERT port-scan src=127.0.0.1 ports=40 window=2s\nSUMMARY port-scan alerts=1\n", r.output)
		assert.are.equal(cli, r.output)
		local n = tcpdump_count(FIX .. "port_scan.pcap")
		assert.are.equal(40, n)
		assert.are.equal(n, r.stats.seen)
		assert.are.equal(n, r.stats.matched)
		assert.are.equal(0, r.stats.dropped)
		assert.are.equal("end", r.why)
		assert.are.equal(0, r.code)
		-- the SYNs went to 40 ports, 21000-21039, one each, sorted by port
		assert.are.equal(40, #r.maps.ports)
		for i, e in ipairs(r.maps.ports) do
			assert.are.equal(20999 + i, e.key.dport)
			assert.are.equal(1, e.value.packets)
		end
		assert.are.equal(1, #r.maps.sources)
		assert.are.equal("127.0.0.1", r.maps.sources[1].key.saddr)
		assert.are.equal(n, r.maps.sources[1].value.syns)
		assert.are.equal(40, #r.maps.flows)
		-- the capture's clock, not wall time: its span (0.879 s), up to the
		-- replay loop's last step (poll_ms, 100 ms)
		local first, last = must("tcpdump -tt -nr " .. FIX .. "port_scan.pcap 2>/dev/null | sed -n '1p;$p'")
			:match("^(%d+%.%d+).-\n(%d+%.%d+)")
		local span = tonumber(last) - tonumber(first)
		assert.is_true(r.elapsed >= span - 0.001 and r.elapsed <= span + 0.1, tostring(r.elapsed))
	end)

	it("captures print, printf and io.write, and leaves the process's stdout as it was", function()
		local before = io.output()
		local r = testing.run {
			code = "on_packet(function(p) print(p.dport, p.flagstr) printf('%d', p.len) io.write('w\\n') end)",
			file = FIX .. "connections.pcap",
		}
		assert.are.equal(io.stdout, io.output())
		assert.are.equal(before, io.output())
		local n = tcpdump_count(FIX .. "connections.pcap")
		assert.are.equal(30, n)
		local lines = 0
		for _ in r.output:gmatch("[^\n]*\n") do lines = lines + 1 end
		assert.are.equal(3 * n, lines)
		assert.matches("^18123\tS\n0\nw\n", r.output)
		assert.are.equal(n, r.stats.delivered)
	end)

	it("passes args, cli and options as the command line does", function()
		local r = testing.run { script = "examples/port_scan.lua", file = FIX .. "port_scan.pcap",
			args = { "--window", "3600", "--threshold", "10" }, options = { filter = { dport = "21000-21004" } } }
		local cli = must(BIN .. " -q -r " .. FIX .. "port_scan.pcap --dport 21000-21004 examples/port_scan.lua " ..
			"--window 3600 --threshold 10 2>/dev/null")
		assert.are.equal(cli, r.output)
		assert.are.equal("SUMMARY port-scan alerts=0\n", r.output)
		assert.are.equal(tcpdump_count(FIX .. "port_scan.pcap", "dst portrange 21000-21004"), r.stats.matched)
		assert.are.equal(5, r.stats.matched)
		assert.are.equal(35, r.stats.filtered)
		-- cli.duration ends the replay early, in capture seconds
		r = testing.run { code = "on_packet(function() end)", file = FIX .. "port_scan.pcap", cli = { duration = 0 } }
		assert.are.equal("duration", r.why)
	end)

	it("without a session: the output and exit status, no maps or counters", function()
		local r = testing.run { code = "print('hi') return 3", file = FIX .. "port_scan.pcap" }
		assert.are.same({ output = "hi\n", maps = {}, code = 3 }, r)
	end)

	it("raises a script's error, a bad capture, and a mistake in its table naming the key", function()
		local ok, err = pcall(testing.run, { code = "local x = nil\nreturn x.y", file = FIX .. "port_scan.pcap" })
		assert.is_false(ok)
		assert.matches("^%(command line%):2: attempt to index a nil value", err)
		assert.are.equal(io.stdout, io.output())
		ok, err = pcall(testing.run, { code = "print(session)", file = "/nonexistent.pcap" })
		assert.is_false(ok)
		assert.matches("ENOENT", err, 1, true)
		assert.matches("/nonexistent.pcap", err, 1, true)
		assert.has_error(function() testing.run { script = "x.lua", file = "y.pcap", arg = {} } end,
			"tcpinspect: testing.run: unknown key 'arg' (known: args, cli, code, file, options, script)")
		assert.has_error(function() testing.run { file = "y.pcap" } end,
			"tcpinspect: testing.run: give one of 'script' (a file) or 'code'")
		ok, err = pcall(testing.run, { script = "examples/port_scan.lua", file = FIX .. "port_scan.pcap",
			args = { "--windw", "3" } })
		assert.is_false(ok)
		assert.matches("^tcpinspect: unknown script argument '%-%-windw'.*%(exit 2%)$", err)
	end)

	it("is documented in doc/reference.md: each function of the module, and nothing else", function()
		local ref = read("doc/reference.md")
		local documented = {}
		for name in ref:gmatch("\n### testing%.([%w_]+)") do documented[name] = true end
		local have = {}
		for k, v in pairs(testing) do if type(v) == "function" then have[k] = true end end
		assert.are.same(have, documented)
	end)
end)

describe("the README's busted recipe", function()
	it("passes from an empty directory outside the checkout, run as the README says, tcpinspect installed", function()
		local readme = read("README.md")
		local test = assert(readme:match("```lua\n(%-%- spec/port_scan_spec.lua[^\n]*\n.-)```"),
			"no spec/port_scan_spec.lua block in README.md")
		local after = readme:sub((readme:find(test, 1, true)) + #test)
		local cmd = assert(after:match("```sh\n(busted[^\n#]-)%s*#[^\n]*\n```") or after:match("```sh\n(busted[^\n]*)\n```"))
		assert.matches("%-%-lua=lua5%.4", cmd)
		-- the files the README names, in an empty directory
		local dir = must("mktemp -d /tmp/tcpinspect-recipe-XXXXXXXX"):match("^(%S+)")
		finally(function() sh("rm -rf " .. q(dir)) end)
		must(("mkdir %s/spec && cp examples/port_scan.lua %s/port_scan.lua && cp %sport_scan.pcap %s/port_scan.pcap")
			:format(q(dir), q(dir), FIX, q(dir)))
		local f = assert(io.open(dir .. "/spec/port_scan_spec.lua", "w"))
		f:write(test)
		f:close()
		local script = table.concat({
			"mount -t tmpfs tmpfs /usr/local",
			"make -s install >/dev/null",
			"cd " .. q(dir),
			"env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=" .. q(dir) .. " " .. cmd .. " -o TAP",
		}, " && ")
		local rc, out = sh("unshare -rm sh -c " .. q(script))
		assert.are.equal(0, rc, out)
		assert.matches("\nok 1 %- port_scan.lua alerts once on the scan\n1%.%.1\n", "\n" .. out)
	end)
end)

describe("the README's replay samples", function()
	it("are what tcpinspect -r prints: every `$ tcpinspect` line of a sample block, run with TZ=UTC", function()
		local readme = read("README.md")
		local n = 0
		for block in readme:gmatch("\n```\n(%$ .-)```") do
			for cmd, want in block:gmatch("%$ tcpinspect ([^\n]*)\n([^$]*)") do
				assert.matches("%-r ", cmd) -- replays only: no root, no traffic
				local out = must("TZ=UTC " .. BIN .. " " .. cmd .. " 2>/dev/null")
				assert.are.equal(want, out, "README: $ tcpinspect " .. cmd)
				n = n + 1
			end
		end
		assert.are.equal(2, n)
	end)
end)
