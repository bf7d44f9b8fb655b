-- SPDX-License-Identifier: GPL-2.0-only
-- The CLI's reports in capture time, its edges, and filter expressions
-- for scripts and one-liners (issue 25, items 4-7): all through -r on the
-- fixture captures, so no root and no kernel object.  Spans come from the
-- captures' timestamps as tshark reads them; counts from tcpdump; the
-- samples of doc/cli.md marked as replay output are run and compared.
local net = require "support.net"
local cli = require "support.cli"
local dkjson = require "dkjson"
local fmt = require "tcpinspect.format"
local cliargs = require "tcpinspect.args"

local FIX = net.ROOT .. "/spec/fixtures/"
local CONNS, SCAN, CORPUS = FIX .. "connections.pcap", FIX .. "port_scan.pcap", FIX .. "filter_corpus.pcap"

-- The capture's span (last frame's time - first's) and its first and last
-- times, from tshark.
local function capture_span(file)
	local ok, out = net.sh("tshark -r " .. net.q(file) .. " -T fields -e frame.time_epoch 2>/dev/null")
	assert(ok, out)
	local t = {}
	for v in out:gmatch("[%d%.]+") do t[#t + 1] = tonumber(v) end
	assert(#t > 1, "tshark read no frames of " .. file)
	return t[#t] - t[1], t[1], t[#t]
end

-- tcpdump's count of frames matching expr in file
local function tcpdump_count(file, expr)
	local ok, out = net.sh("tcpdump -n -r " .. net.q(file) .. " " .. net.q(expr) .. " 2>/dev/null | wc -l")
	assert(ok, out)
	return tonumber(out:match("%d+"))
end

local function json_lines(out)
	local t = {}
	for _, l in ipairs(cli.lines(out)) do t[#t + 1] = assert(dkjson.decode(l), l) end
	return t
end

local function near(want, got, what, tol)
	tol = tol or 1e-6 * math.max(1, math.abs(want))
	assert(math.abs(want - got) <= tol, ("%s: want %.9g, got %.9g"):format(what, want, got))
end

describe("cli -r: reports in capture time", function()
	for _, file in ipairs { CONNS, SCAN } do
		local name = file:match("[^/]+$")
		it("top -r " .. name .. ": final elapsed is the span, every rate count/span", function()
			local span = capture_span(file)
			local r = cli.run { "top", "-r", file, "--json" }
			assert.are.equal(0, r.code, r.err)
			local blocks = json_lines(r.out)
			local last = blocks[#blocks]
			assert.is_true(last.final)
			near(span, last.elapsed, "elapsed")
			local n = 0
			for _, tbl in ipairs { "flows", "ports", "sources" } do
				for _, e in ipairs(last[tbl]) do
					near(e.packets / span, e.pps, tbl .. " pps " .. tostring(e.label))
					near(e.bytes / span, e.bps, tbl .. " bps " .. tostring(e.label))
					n = n + 1
				end
			end
			assert.is_true(n >= 3)
			-- the summary line: capture time too
			assert.matches(("reports printed in %s %%(end%%)"):format(fmt.duration(span):gsub("%p", "%%%0")), r.err)
			-- the text block: elapsed and the capture's time of day
			local _, first, lastt = capture_span(file)
			r = cli.run { "top", "-r", file }
			assert.are.equal(0, r.code, r.err)
			local head = r.out:match("^[^\n]*")
			assert.matches("elapsed " .. fmt.duration(span):gsub("%p", "%%%0") .. " ", head)
			local when = os.date("%H:%M:%S", math.floor(lastt))
			assert(head:find("  " .. when .. "  ", 1, true), head .. " (want " .. when .. ", first " .. first .. ")")
		end)
		it("stats -r " .. name .. ": final elapsed is the span, seen/s is seen/span", function()
			local span = capture_span(file)
			local r = cli.run { "stats", "-r", file, "--json" }
			assert.are.equal(0, r.code, r.err)
			local lines = json_lines(r.out)
			local last = lines[#lines]
			assert.is_true(last.final)
			near(span, last.elapsed, "elapsed")
			assert.is_true(last.seen > 0)
			near(last.seen / span, last.seen_per_s, "seen/s")
			-- the text line shows it to the millisecond
			r = cli.run { "stats", "-r", file }
			assert.are.equal(0, r.code, r.err)
			assert.matches(("elapsed=%.3f "):format(span), r.out)
			assert.matches(("in %s %%(end%%)"):format(fmt.duration(span):gsub("%p", "%%%0")), r.err)
		end)
	end

	it("the session's clock: a run that ends with the file ends at its last frame", function()
		local tcpinspect = require "tcpinspect"
		for _, file in ipairs { CONNS, SCAN, CORPUS } do
			local span, first, last = capture_span(file)
			local s = assert(tcpinspect.replay { file = file, events = false })
			near(first, s:now(), "clock at open")
			local _, why = s:run {}
			assert.are.equal("end", why)
			near(last, s:now(), "clock at the end")
			near(span, s:now() - first, "span")
			-- a duration past the file: the clock runs on to it
			local _, why2 = s:run { duration = 1.5 }
			assert.are.equal("duration", why2)
			near(last + 1.5, s:now(), "clock after the duration", 1e-3)
			s:close()
		end
	end)

	it("intervals on a long capture: capture seconds, then the span", function()
		local span = capture_span(CORPUS)
		assert.is_true(span > 60)
		local r = cli.run { "stats", "-r", CORPUS, "--interval", "20", "--json" }
		assert.are.equal(0, r.code, r.err)
		local lines = json_lines(r.out)
		assert.are.equal(math.floor(span / 20) + 1, #lines)
		local prev = 0
		for i = 1, #lines - 1 do
			near(20 * i, lines[i].elapsed, "interval " .. i, 1e-3)
			near((lines[i].seen - prev) / 20, lines[i].seen_per_s, "interval rate " .. i, 0.01)
			prev = lines[i].seen
		end
		near(span, lines[#lines].elapsed, "final elapsed")
		near(3226 / span, lines[#lines].seen_per_s, "final seen/s")
		-- the script's clock is the same one: on_exit gets the span
		r = cli.run { "-r", CORPUS, "-q", "-e", "on_exit(function(e, why) print(('%.6f %s'):format(e, why)) end)" }
		assert.are.equal(0, r.code, r.err)
		local e, why = r.out:match("^([%d%.]+) (%a+)\n$")
		assert.are.equal("end", why)
		near(span, tonumber(e), "on_exit elapsed")
		-- watch's summary too, and with --duration the duration
		r = cli.run { "watch", "-r", CONNS, "-w", "/dev/null" }
		assert.are.equal(0, r.code, r.err)
		assert.matches("30 packets written in 590ms %(end%)", r.err)
		r = cli.run { "stats", "-r", CONNS, "--duration", "2", "--json" }
		lines = json_lines(r.out)
		near(2, lines[#lines].elapsed, "--duration 2", 1e-3)
		assert.matches("reports printed in 2s %(duration%)", r.err)
	end)
end)

describe("cli edges", function()
	it("export is a command in the lists and the suggestions", function()
		local r = cli.run { "exprot" }
		assert.are.equal(2, r.code)
		assert.matches("unknown command 'exprot'; did you mean 'export'%? %(commands: watch, top, drops, stats, conns, export, record;", r.err)
		r = cli.run { "nocommand" }
		assert.are.equal(2, r.code)
		assert.matches("'nocommand' is neither a command %(watch, top, drops, stats, conns, export, record%) nor a script file", r.err)
		r = cli.run {}
		assert.matches("give a command %(watch, top, drops, stats, conns, export, record%)", r.err)
	end)
	it("a script that cannot be read: exit 2, a tcpinspect: message", function()
		local r = cli.run { "nosuch.lua" }
		assert.are.equal(2, r.code, r.err)
		assert.matches("\ntcpinspect: error: cannot open script nosuch.lua: No such file or directory\n$", r.err)
		assert.are.equal("", r.out)
	end)
	it("the library's option words become the command line's", function()
		local w = cliargs.cli_words
		assert.are.equal("EPERM: fentry is refused; try --mode kprobe, tc or cgroup",
			w("EPERM: fentry is refused; try mode='kprobe', 'tc' or 'cgroup'"))
		assert.are.equal("run as root, or sysctl kernel.perf_event_paranoid=2, or use --mode fentry",
			w("run as root, or sysctl kernel.perf_event_paranoid=2, or use mode='fentry'"))
		assert.are.equal("cannot tell a segment's cgroup (--cgroup); use --mode cgroup, fentry or kprobe",
			w("cannot tell a segment's cgroup (cgroup=); use mode='cgroup', 'fentry' or 'kprobe'"))
		assert.are.equal("use --mode tc, or scope by --cgroup or --container",
			w("use mode='tc', or scope by cgroup= or container="))
		assert.are.equal("option 'filter.dport' x=1 mode=auto", w("option 'filter.dport' x=1 mode=auto"))
		-- through the CLI: an option error of the library (checked before loading anything)
		local cg
		for line in (net.read_file("/proc/mounts") or ""):gmatch("[^\n]+") do
			local dir, fstype = line:match("^%S+ (%S+) (%S+)")
			if fstype == "cgroup2" then cg = dir break end
		end
		assert(cg, "no cgroup2 mount")
		local r = cli.run { "watch", "--mode", "tc", "--cgroup", cg, "--duration", "1" }
		assert.are.equal(2, r.code, r.err)
		assert.matches("argument '%-%-cgroup': tc mode runs before the socket lookup and cannot tell a " ..
			"segment's cgroup; use %-%-mode cgroup, fentry or kprobe\n$", r.err)
	end)
	it("every option of every command is in doc/cli.md", function()
		local doc = net.read_file(net.ROOT .. "/doc/cli.md")
		for _, cmd in ipairs { "watch", "top", "drops", "stats", "export", "-e" } do
			local args = cmd == "-e" and { "--help" } or { cmd, "--help" }
			local r = cli.run(args)
			assert.are.equal(0, r.code, r.err)
			local usage = r.out:match("^Usage:.-\n\n")
			for o in usage:gmatch("%[(%-%-?[%w-]+)") do
				local q = o:gsub("%p", "%%%0")
				assert(doc:find("`" .. q .. "[ `=]") or doc:find("`" .. cmd .. " " .. q .. "[ `=]"),
					("doc/cli.md does not document %s (%s)"):format(o, cmd))
			end
		end
	end)
end)

describe("cli: --expr and -F for every command and script", function()
	local SYN = "tcp[tcpflags] & tcp-syn != 0"
	local COUNT = "local n = 0 on_packet(function() n = n + 1 end) on_exit(function() print(n) end)"

	it("-e CODE --expr EXPR counts what tcpdump counts", function()
		for _, expr in ipairs { SYN, "tcp port 5201", "ip6", "tcp[tcpflags] & (tcp-fin|tcp-rst) != 0 and src net 10.0.0.0/8" } do
			local want = tcpdump_count(CORPUS, expr)
			local r = cli.run { "-r", CORPUS, "-q", "--expr", expr, "-e", COUNT }
			assert.are.equal(0, r.code, r.err)
			assert.are.equal(tostring(want) .. "\n", r.out, expr)
			assert.are.equal("", r.err)
		end
		assert.are.equal(560, tcpdump_count(CORPUS, SYN)) -- the corpus has SYNs, and not every frame is one
	end)

	it("-F FILE: the expression from a file ('#' comments), trailing words ignored with a note", function()
		local f = net.tmpfile(".expr")
		net.write_file(f, "# SYNs only\n" .. SYN .. "  # and a comment\n")
		local want = tcpdump_count(CORPUS, SYN)
		local r = cli.run { "-r", CORPUS, "-q", "-F", f, "-e", COUNT }
		assert.are.equal(0, r.code, r.err)
		assert.are.equal(want .. "\n", r.out)
		-- tcpdump -F ignores an expression on the command line: so do we, saying so
		assert.are.equal(want, tcpdump_count(CORPUS, SYN))
		r = cli.run { "watch", "-r", CORPUS, "-F", f, "udp" }
		assert.are.equal(0, r.code, r.err)
		assert.are.equal(want, #cli.lines(r.out))
		assert.matches("tcpinspect: %-F " .. f:gsub("%p", "%%%0") .. ": the expression 'udp' on the command line is ignored", r.err)
		r = cli.run { "stats", "-r", CORPUS, "--json", "-F", f }
		local lines = json_lines(r.out)
		assert.are.equal(want, lines[#lines].matched)
		-- a file that cannot be read: exit 1, as tcpdump -F (and -r); both -F and --expr: bad arguments
		r = cli.run { "watch", "-r", CORPUS, "-F", "/nonexistent/x.expr" }
		assert.are.equal(1, r.code)
		assert.are.equal("tcpinspect: -F: cannot open /nonexistent/x.expr: No such file or directory\n", r.err)
		r = cli.run { "watch", "-r", CORPUS, "-F", f, "--expr", "tcp" }
		assert.are.equal(2, r.code)
		r = cli.run { "watch", "-r", CORPUS, "--expr", "tcp", "udp" }
		assert.are.equal(2, r.code)
		assert.matches("give the expression once", r.err)
		-- a refused expression: libpcap's message, exit 1, as for the trailing words
		r = cli.run { "-r", CORPUS, "--expr", "tcp prot 80", "-e", COUNT }
		assert.are.equal(1, r.code)
		assert.matches("^tcpinspect: 'tcp prot 80': can't parse filter expression", r.err)
	end)

	it("commands take --expr as they take trailing words", function()
		local want = tcpdump_count(CORPUS, SYN)
		local a = cli.run { "watch", "-r", CORPUS, "-q", "--expr", SYN }
		local b = cli.run { "watch", "-r", CORPUS, "-q", SYN }
		assert.are.equal(want, #cli.lines(a.out))
		assert.are.equal(b.out, a.out)
		local r = cli.run { "top", "-r", CORPUS, "--json", "--expr", SYN }
		local blocks = json_lines(r.out)
		assert.are.equal(want, blocks[#blocks].stats.matched)
	end)

	it("a script keeps its trailing words; --expr filters its session", function()
		local f = net.tmpfile(".lua")
		net.write_file(f, "local a = ... " .. COUNT:gsub("print%(n%)", "print(n, a)") .. "\n")
		local want = tcpdump_count(CORPUS, SYN)
		local r = cli.run { "-r", CORPUS, "-q", f, "--expr", SYN, "tcp", "port", "80" }
		assert.are.equal(0, r.code, r.err)
		assert.are.equal(want .. "\ttcp\n", r.out)
		assert.are.equal("", r.err)
	end)

	it("-e with trailing words it never reads that compile as an expression: a hint", function()
		local r = cli.run { "-r", CONNS, "-q", "-e", COUNT, SYN }
		assert.are.equal(0, r.code, r.err)
		assert.are.equal("30\n", r.out) -- the words stay arguments: no filter
		assert.are.equal("tcpinspect: -e: the code does not read its arguments (" .. SYN .. "), which compile " ..
			"as a filter expression; to filter with it, give --expr '" .. SYN .. "'\n", r.err)
		-- no hint when the code reads them, or when they are no expression
		r = cli.run { "-r", CONNS, "-q", "-e", "print(...)", "tcp", "port", "80" }
		assert.are.equal("tcp\tport\t80\n", r.out)
		assert.are.equal("", r.err)
		r = cli.run { "-r", CONNS, "-q", "-e", "print(#args)", "tcp" }
		assert.are.equal("1\n", r.out)
		assert.are.equal("", r.err)
		r = cli.run { "-r", CONNS, "-q", "-e", "print(1)", "--", "--threshold=3" }
		assert.are.equal("1\n", r.out)
		assert.are.equal("", r.err)
		r = cli.run { "-r", CONNS, "-q", "-e", "print(1)", "hello", "world" }
		assert.are.equal("", r.err)
	end)
end)

-- The samples of doc/cli.md marked `<!-- replay output of: tcpinspect ARGS -->`
-- (or `replay output (exit N) of:`): the fenced block after the marker is
-- what the command prints, run in the checkout with TZ=UTC: stderr's
-- ready line, stdout, then the rest of stderr (as a terminal shows them).
local function run_sample(args)
	local outf, errf = net.tmpfile(".out"), net.tmpfile(".err")
	local _, rc = net.sh(("cd %s && TZ=UTC %s %s >%s 2>%s; echo $?"):format(net.q(net.ROOT), net.q(cli.BIN), args,
		net.q(outf), net.q(errf)))
	local out, err = net.read_file(outf) or "", net.read_file(errf) or ""
	local ready, rest = err:match("^([^\n]*Ctrl%-C to stop\n)(.*)$")
	return (ready or "") .. out .. (ready and rest or err), tonumber(rc:match("(%d+)%s*$"))
end

describe("doc/cli.md's replay samples", function()
	local doc = net.read_file(net.ROOT .. "/doc/cli.md")
	local samples = {}
	for code, args, block in doc:gmatch("<!%-%- replay output ?([^\n]-) of: tcpinspect (.-) %-%->\n```\n(.-\n)```") do
		samples[#samples + 1] = { args = args, block = block, code = tonumber(code:match("%(exit (%d+)%)") or "0") }
	end
	it("are there", function()
		assert.is_true(#samples >= 6, "only " .. #samples .. " samples")
	end)
	for _, s in ipairs(samples) do
		it("tcpinspect " .. s.args, function()
			local got, code = run_sample(s.args)
			assert.are.equal(s.code, code, got)
			assert.are.equal(s.block, got)
		end)
	end
end)
