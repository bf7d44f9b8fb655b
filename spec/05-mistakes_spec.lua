-- SPDX-License-Identifier: GPL-2.0-only
-- A new user's mistakes (issue 11), without a kernel: each runs through
-- `require "tcpinspect"` (in this process, or in a script file run by
-- lua5.4) and through the real command (build/bin/tcpinspect; a `-e`
-- one-liner or a script that opens no session loads nothing), and the
-- message is asserted in full where it matters: the user's own file and
-- line, one "tcpinspect:" prefix, the suggestion.
local net = require "support.net"
local cli = require "support.cli"
local dkjson = require "dkjson"
local tcpinspect = require "tcpinspect"
local core = require "tcpinspect.core"

local THIS = "spec/05-mistakes_spec.lua"

-- The line of the caller (for "this file:line" in expected messages).
local function line()
	return debug.getinfo(2, "l").currentline
end

local function count(s, pat)
	local n = 0
	for _ in s:gmatch(pat) do n = n + 1 end
	return n
end

local function script(code)
	local f = net.tmpfile(".lua")
	net.write_file(f, code)
	return f
end

-- Run a Lua file with lua5.4 and the checkout's paths: code, stdout+stderr.
local function lua(file)
	local ok, out, code = net.sh(net.lua_cmd(file))
	return ok and 0 or code, out
end

-- What `tcpinspect OPTIONS -e ...` turns the options into (no kernel).
local function options_of(args)
	local a = { "-e", "io.write(json.encode{ options = options, cli = { duration = cli.duration, " ..
		"interval = cli.interval, json = cli.json, quiet = cli.quiet, verbose = cli.verbose } })" }
	for _, x in ipairs(args) do a[#a + 1] = x end
	local r = cli.run(a)
	assert.are.equal(0, r.code, table.concat(args, " ") .. ": " .. r.err)
	return dkjson.decode(r.out)
end

describe("errors at the caller's line, with one prefix", function()
	it("open() with a bad option: this file and line, in the message and the error object", function()
		local ok, err = pcall(function() tcpinspect.open{ filter = { dport = 70000 } } end)
		local l = line() - 1
		assert.is_false(ok)
		assert.are.equal(("%s:%d: tcpinspect: option 'filter.dport': port 70000 out of range 0-65535"):format(THIS, l),
			tostring(err))
		assert.are.equal("filter.dport", err.option)
		assert.are.equal("port 70000 out of range 0-65535", err.reason)
		assert.are.equal(tostring(err), err.message)
	end)
	it("check_options and run options too", function()
		local ok, err = pcall(function() tcpinspect.check_options{ sample = 0 } end)
		local l = line() - 1
		assert.is_false(ok)
		assert.are.equal(("%s:%d: tcpinspect: option 'sample': 0 out of range 1-1073741824"):format(THIS, l),
			tostring(err))
	end)
	it("a script run by lua5.4: the script's line, not tcpinspect.lua's", function()
		local f = script('local tcpinspect = require "tcpinspect"\n\nlocal s = tcpinspect.open{ filter = { dport = 70000 } }\n')
		local code, out = lua(f)
		assert.are_not.equal(0, code)
		assert.matches(("%s:3: tcpinspect: option 'filter.dport': port 70000"):format(f:gsub("%p", "%%%0")), out)
		assert.is_nil(out:find("tcpinspect.lua:", 1, true), out)
		assert.are.equal(1, count(out:match("^[^\n]*"), "tcpinspect: "), out)
	end)
	it("the same script run by the CLI: its line, one prefix, exit 1", function()
		local f = script('local tcpinspect = require "tcpinspect"\n\nlocal s = tcpinspect.open{ filter = { dport = 70000 } }\n')
		local r = cli.run { f }
		assert.are.equal(1, r.code)
		assert.are.equal(("%s:3: tcpinspect: option 'filter.dport': port 70000 out of range 0-65535\n"):format(f), r.err)
	end)
	it("the prelude's open{} with a typo: the script's line and a suggestion", function()
		local f = script('\nopen{ filter = { dprot = 22 } }\n')
		local r = cli.run { f }
		assert.are.equal(1, r.code)
		assert.are.equal(("%s:2: tcpinspect: unknown filter key 'dprot'; did you mean 'dport'? (known: %s)\n"):format(
			f, table.concat(core.filter_keys, ", ")), r.err)
	end)
	it("printf with a bad argument: the script's line, not script.lua's", function()
		local f = script('local n = 1\nprintf("%d packets", "many")\n')
		local r = cli.run { f }
		assert.are.equal(1, r.code)
		assert.matches(("^tcpinspect: %s:2: bad argument #2 to 'printf' %%(number expected, got string%%)\n"):format(
			f:gsub("%p", "%%%0")), r.err)
		assert.is_nil(r.err:find("script.lua", 1, true), r.err)
	end)
end)

describe("script errors under the CLI", function()
	it("name the script's file and line, keep only its frames, and run on_exit with why 'error'", function()
		local f = script(table.concat({
			'on_exit(function(_, why) print("EXIT", why) end)',
			'local function parse(t)',
			'  return t.header.len',
			'end',
			'parse({})',
		}, "\n"))
		local r = cli.run { f }
		assert.are.equal(1, r.code)
		assert.are.equal("EXIT\terror\n", r.out)
		assert.are.equal(table.concat({
			("tcpinspect: %s:3: attempt to index a nil value (field 'header')"):format(f),
			"stack traceback:",
			("\t%s:3: in local 'parse'"):format(f),
			("\t%s:5: in main chunk"):format(f),
		}, "\n") .. "\n", r.err)
	end)
	it("-e code is '(command line)'", function()
		local r = cli.run { "-e", "local x = nil; return x.y" }
		assert.are.equal(1, r.code)
		assert.matches("^tcpinspect: %(command line%):1: attempt to index a nil value %(local 'x'%)\n", r.err)
		assert.is_nil(r.err:find("cli.lua", 1, true), r.err)
	end)
end)

describe("did you mean", function()
	it("packet fields (the C core's packet_index)", function()
		local p = core.decode_record(string.rep("\0", core.record_size))
		local ok, err = pcall(function() return p.dprot end)
		local l = line() - 1
		assert.is_false(ok)
		assert.are.equal(("%s:%d: tcpinspect: packet has no field 'dprot'; did you mean 'dport'?"):format(THIS, l), err)
		local _, err2 = pcall(function() return p.flagz end)
		assert.matches("did you mean 'flags'%?$", err2)
		local _, err3 = pcall(function() return p.nothinglikeit end)
		assert.matches("tcpinspect: packet has no field 'nothinglikeit'$", err3)
	end)
	it("option and filter keys", function()
		local _, err = pcall(tcpinspect.open, { ringsize = 4096 })
		assert.matches("^tcpinspect: unknown option 'ringsize'; did you mean 'ring_size'%? %(known: mode, ", tostring(err))
		assert.are.equal("ringsize", err.option)
		_, err = pcall(tcpinspect.check_options, { filter = { dprot = 22 } })
		assert.matches("^tcpinspect: unknown filter key 'dprot'; did you mean 'dport'%?", tostring(err))
		_, err = pcall(tcpinspect.check_options, { filter = { len = { mn = 2 } } })
		assert.matches("unknown filter.len key 'mn'; did you mean 'min'%?", tostring(err))
		_, err = pcall(tcpinspect.check_options, { bogus = 1 })
		assert.are.equal("tcpinspect: unknown option 'bogus' (known: " .. table.concat(core.option_names, ", ") .. ")",
			tostring(err))
	end)
	local function bad(args)
		local r = cli.run(args)
		assert.are.equal(2, r.code, table.concat(args, " ") .. ": " .. r.err)
		assert.matches("Usage: tcpinspect", r.err)
		return r.err:match("tcpinspect: error: ([^\n]*)\n$")
	end
	it("CLI commands: a first argument that is neither a file nor a command", function()
		assert.are.equal("unknown command 'wach'; did you mean 'watch'? (commands: watch, top, drops, stats, conns, export, record; or a script file)",
			bad { "wach" })
		assert.are.equal("unknown command 'stat'; did you mean 'stats'? (commands: watch, top, drops, stats, conns, export, record; or a script file)",
			bad { "stat", "--dport", "22" })
		assert.are.equal("'frobnicate' is neither a command (watch, top, drops, stats, conns, export, record) nor a script file", bad { "frobnicate" })
		-- a path is still a script, one that cannot be opened: a bad argument (exit 2)
		assert.are.equal("cannot open script /nonexistent/wach.lua: No such file or directory",
			bad { "/nonexistent/wach.lua" })
	end)
	it("CLI options: the closest of this command's, -i with --dev, another command's; -r of a missing file", function()
		assert.are.equal("unknown option '--dprot'; did you mean '--dport'?", bad { "watch", "--dprot", "22" })
		assert.are.equal("unknown option '--duraton'; did you mean '--duration'?", bad { "top", "--duraton=3" })
		assert.are.equal("argument '-i': give either -i (tcpdump's) or --dev, not both",
			bad { "watch", "-i", "lo", "--dev", "lo" })
		assert.are.equal("argument '-s': expected bytes >= 0, got 'x'", bad { "watch", "-s", "x" })
		assert.are.equal("unknown option '-w': '-w' is an option of 'tcpinspect record' and 'tcpinspect watch'", bad { "top", "-w", "x.pcap" })
		-- -r reads a file: a missing one is an environment failure (exit 1), as in tcpdump
		local r = cli.run { "watch", "-r", "/nonexistent/x.pcap" }
		assert.are.equal(1, r.code)
		assert.are.equal("tcpinspect: ENOENT: /nonexistent/x.pcap: No such file or directory\n", r.err)
		assert.are.equal("unknown option '-c': '-c' is an option of 'tcpinspect conns' and 'tcpinspect watch'", bad { "top", "-c", "3" })
		assert.are.equal("unknown option '--bogus'", bad { "watch", "--bogus" })
	end)
end)

describe("negative-looking values", function()
	local function bad(args, msg)
		local r = cli.run(args)
		assert.are.equal(2, r.code, r.err)
		assert.are.equal("tcpinspect: error: " .. msg, r.err:match("[^\n]*\n$"):sub(1, -2))
	end
	it("are values, checked as such", function()
		bad({ "watch", "--duration", "-1" }, "argument '--duration': expected seconds > 0, got '-1'")
		bad({ "watch", "--port", "-8000" }, "argument '--port': '-8000' is not a port or a range like '8000-8100'")
		bad({ "watch", "-c", "-5" }, "argument '--count': expected an integer >= 1, got '-5'")
		bad({ "top", "--interval", "-0.5" }, "argument '--interval': expected seconds > 0, got '-0.5'")
	end)
	it("--len -MAX and --len=-MAX are 'at most MAX'", function()
		assert.are.same({ max = 100 }, options_of({ "--len", "-100" }).options.filter.len)
		assert.are.same({ max = 100 }, options_of({ "--len=-100" }).options.filter.len)
		assert.are.same({ min = 10 }, options_of({ "--len", "10-" }).options.filter.len)
	end)
end)

describe("doc/cli.md's option table", function()
	-- the table's rows: options (column 1) and backticked examples (column 3)
	local doc = net.read_file(net.ROOT .. "/doc/cli.md")
	local body = assert(doc:match("\n## Options %(every command%)\n(.-)\n\n"))
	local NOT_VALUES = { watch = true, top = true, stats = true, ["cli.interval"] = true }
	local rows = {}
	for l in body:gmatch("[^\n]+") do
		local c1, _, c3 = l:match("^|([^|]*)|([^|]*)|(.*)|$")
		if c1 and c1:find("`%-") then
			local row = { opts = {}, examples = {} }
			for o in c1:gmatch("`(%-%-?[%w-]+)[^`]*`") do row.opts[#row.opts + 1] = o end
			for e in c3:gmatch("`([^`]+)`") do
				-- not values: the commands and prelude names the text mentions
				if not NOT_VALUES[e] then row.examples[#row.examples + 1] = e end
			end
			rows[#rows + 1] = row
		end
	end
	-- placeholders in the examples
	local SUBST = { N = "100", ["MIN-MAX"] = "10-100", ["MIN-"] = "10-", ["--len=-MAX"] = "--len=-100",
		["--len -MAX"] = "--len -100" }
	-- the cgroup example: this machine's cgroup v2 mount (--cgroup checks that it is one)
	for mline in (net.read_file("/proc/mounts") or ""):gmatch("[^\n]+") do
		local dir, fstype = mline:match("^%S+ (%S+) (%S+)")
		if fstype == "cgroup2" then
			SUBST["/sys/fs/cgroup"] = dir
			break
		end
	end
	-- where each option lands, and what an example must become there
	local PATH = { ["--mode"] = "options.mode", ["--family"] = "options.family",
		["--sport"] = "options.filter.sport", ["--dport"] = "options.filter.dport", ["--port"] = "options.filter.port",
		["--saddr"] = "options.filter.saddr", ["--daddr"] = "options.filter.daddr", ["--host"] = "options.filter.host",
		["--flags"] = "options.filter.flags", ["--len"] = "options.filter.len", ["--dev"] = "options.dev",
		["--cgroup"] = "options.cgroup", ["--sample"] = "options.sample", ["--ring-size"] = "options.ring_size",
		["-i"] = "options.dev", ["--interface"] = "options.dev", ["-s"] = "options.snaplen",
		["--snapshot-length"] = "options.snaplen",
		["--netns"] = "options.netns", ["--container"] = "options.container",
		["--duration"] = "cli.duration", ["--interval"] = "cli.interval", ["--json"] = "cli.json",
		["-q"] = "cli.quiet", ["--quiet"] = "cli.quiet", ["-v"] = "cli.verbose", ["--verbose"] = "cli.verbose", ["--expr"] = "options.filter.expr",
		["-F"] = "options.filter.expr" }
	local EXPECT = {
		["--len"] = { ["100"] = 100, ["10-100"] = { min = 10, max = 100 }, ["10-"] = { min = 10 },
			["--len=-100"] = { max = 100 }, ["--len -100"] = { max = 100 } },
		["--ring-size"] = { ["262144"] = 262144, ["256K"] = 262144, ["4M"] = 4194304 },
		["--netns"] = { ["4026531840"] = 4026531840 }, ["--container"] = { ["1"] = 1 },
		["--sample"] = { ["10"] = 10 }, ["--duration"] = { ["10"] = 10, ["0.5"] = 0.5 },
		["-s"] = { ["128"] = 128, ["0"] = 4096 }, ["--snapshot-length"] = { ["128"] = 128, ["0"] = 4096 },
		["--interval"] = { ["0.5"] = 0.5 },
		["--host"] = { ["localhost"] = "127.0.0.1", ["10.0.0.0/8,2001:db8::/32"] = { "10.0.0.0/8", "2001:db8::/32" } },
	}
	EXPECT["--saddr"], EXPECT["--daddr"] = EXPECT["--host"], EXPECT["--host"]
	-- the -F example: a file holding an expression (and a comment)
	SUBST["syn.expr"] = net.tmpfile(".expr")
	net.write_file(SUBST["syn.expr"], "tcp[tcpflags] & tcp-syn != 0 # SYNs\n")
	EXPECT["-F"] = { [SUBST["syn.expr"]] = "tcp[tcpflags] & tcp-syn != 0" }
	local function at(t, path)
		for k in path:gmatch("[^%.]+") do t = t and t[k] end
		return t
	end

	it("has a row for every option the command takes", function()
		local seen = {}
		for _, row in ipairs(rows) do for _, o in ipairs(row.opts) do seen[o] = true end end
		for _, o in ipairs { "--mode", "--family", "--sport", "--dport", "--port", "--saddr", "--daddr", "--host",
			"--flags", "--len", "--dev", "--cgroup", "--netns", "--container", "--sample", "--ring-size", "--duration", "--interval", "--json",
			"-q", "-v", "-h", "-V" } do
			assert(seen[o], "doc/cli.md's option table has no row for " .. o)
		end
	end)
	it("every example runs through the real CLI and means what the table says", function()
		local n = 0
		for _, row in ipairs(rows) do
			local o1 = row.opts[1]
			if o1 == "-h" then
				local r = cli.run { "-h" }
				assert.are.equal(0, r.code)
				assert.matches("Usage: tcpinspect", r.out)
			elseif o1 == "-V" then
				local r = cli.run { "--version" }
				assert.are.equal(0, r.code, r.err)
				assert.matches("^tcpinspect 0%.2%.0\nlibbpf %d+%.%d+\nkernel ", r.out)
			elseif #row.examples == 0 or o1 == "--json" or o1 == "-q" then
				for _, o in ipairs(row.opts) do
					assert.is_true(at(options_of { o }, PATH[o]), o)
				end
			else
				for _, o in ipairs(row.opts) do
					for _, ex in ipairs(row.examples) do
						ex = SUBST[ex] or ex
						if ex:sub(1, 1) == "-" and not (ex:find("^" .. o:gsub("%p", "%%%0") .. "[= ]")) then
							goto next -- names an option, not an example ("`--host` is either address")
						end
						do
							local args = {}
							if ex:sub(1, 2) == "--" then
								for w in ex:gmatch("%S+") do args[#args + 1] = w end
							else
								args = { o, ex }
							end
							local got = at(options_of(args), assert(PATH[o], o))
							local want = EXPECT[o] and EXPECT[o][ex]
							if want == nil then want = ex end
							assert.are.same(want, got, table.concat(args, " "))
							n = n + 1
						end
						::next::
					end
				end
			end
		end
		assert.is_true(n >= 30, "only " .. n .. " examples")
	end)
end)

describe("--version", function()
	it("prints the version, libbpf's and the kernel's", function()
		local r = cli.run { "--version" }
		assert.are.equal(0, r.code)
		local uname = net.must("uname -r"):gsub("%s+$", "")
		local v = tcpinspect.versions()
		assert.matches("^%d+%.%d+$", v.libbpf)
		assert.are.equal(("tcpinspect 0.2.0\nlibbpf %s\nkernel %s\n"):format(v.libbpf, uname), r.out)
		assert.are.equal(uname, v.kernel)
		assert.are.equal(0, cli.run({ "watch", "-V" }).code)
	end)
end)

describe("host names for address options", function()
	it("resolve to their addresses; a name that does not resolve is a bad argument", function()
		assert.are.equal("127.0.0.1", options_of({ "--host", "localhost" }).options.filter.host)
		assert.are.same({ "10.1.2.3", "127.0.0.1" }, options_of({ "--saddr", "10.1.2.3,localhost" }).options.filter.saddr)
		assert.are.same({ "127.0.0.1" }, core.resolve("localhost"))
		local r = cli.run { "watch", "--daddr", "no-such-host.invalid" }
		assert.are.equal(2, r.code)
		assert.matches("tcpinspect: error: argument '%-%-daddr': %u+: cannot resolve 'no%-such%-host%.invalid': ", r.err)
	end)
end)
