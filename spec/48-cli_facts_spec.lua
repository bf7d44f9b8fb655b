-- SPDX-License-Identifier: GPL-2.0-only
-- The CLI states each fact once (issue 20): the command list is one table
-- that the help, the dispatch, the suggestions and doc/cli.md follow; the
-- modes, "did you mean" and network namespace names come from the C core;
-- -v prints libbpf's log (the #kernel part), and nothing of it without.
local net = require "support.net"
local cli = require "support.cli"
local core = require "tcpinspect.core"
local tcpinspect = require "tcpinspect"
local clim = require "tcpinspect.cli"

local function lua_files(under)
	local t = {}
	local p = io.popen("find " .. net.q(net.ROOT .. "/" .. under) .. " -name '*.lua' | sort")
	for f in p:lines() do t[#t + 1] = f end
	p:close()
	return t
end

-- Places where every word of `words` occurs within `window` lines of one
-- another (whole words, code, strings and comments alike): each is a copy
-- of that list.  "file:line" of each, non-overlapping.
local function lists_of(words, files, window)
	local found = {}
	for _, f in ipairs(files) do
		local lines = {}
		for l in io.lines(f) do lines[#lines + 1] = l end
		local i = 1
		while i <= #lines do
			local text = table.concat(lines, "\n", i, math.min(#lines, i + window - 1))
			local all = true
			for _, w in ipairs(words) do
				if not text:find("%f[%w_]" .. w .. "%f[^%w_]") then all = false break end
			end
			-- the copy starts at the first line holding one of the words
			local first = lines[i]:find("%f[%w_]" .. words[1] .. "%f[^%w_]")
			for _, w in ipairs(words) do first = first or lines[i]:find("%f[%w_]" .. w .. "%f[^%w_]") end
			if all and first then
				found[#found + 1] = f:gsub("^.*/lua/", "lua/") .. ":" .. i
				i = i + window
			else
				i = i + 1
			end
		end
	end
	return found
end

describe("the CLI's facts, each once", function()
	local names = {}
	for _, c in ipairs(clim.COMMANDS or {}) do names[#names + 1] = c.name end

	it("one command table, with each command's name, summary, parser and handler", function()
		assert.are.same({ "watch", "top", "drops", "stats", "conns", "export", "record" }, names)
		for _, c in ipairs(clim.COMMANDS) do
			assert.is_string(c.summary, c.name)
			assert.is_function(c.run, c.name)
			assert.is_string(c.parse.description, c.name)
		end
	end)

	it("lua/ writes the list of commands once (the table)", function()
		local found = lists_of({ "watch", "top", "drops", "stats", "conns", "export", "record" }, lua_files("lua"), 8)
		assert.are.equal(1, #found, "the commands are listed at " .. table.concat(found, ", "))
	end)

	it("the CLI writes no list of modes: they come from core.mode_names", function()
		local modes = {}
		for _, m in ipairs(core.mode_names) do if m ~= "auto" then modes[#modes + 1] = m end end
		assert.are.same({ "fentry", "kprobe", "tc", "cgroup" }, modes)
		local files = {}
		for _, f in ipairs(lua_files("lua/tcpinspect")) do
			if f:match("/cli%.lua$") or f:match("/args%.lua$") then files[#files + 1] = f end
		end
		assert.is_true(#files >= 1)
		local found = lists_of(modes, files, 3)
		assert.are.equal(0, #found, "the modes are listed at " .. table.concat(found, ", "))
		-- and the help names them all, in the core's order
		local r = cli.run { "watch", "--help" }
		assert.are.equal(0, r.code, r.err)
		assert.matches("Hook: auto %(default: fentry, kprobe, tc, cgroup in turn%), fentry, kprobe, tc, cgroup%.",
			r.out:gsub("\n%s+", " "))
	end)

	it("lua/ has no edit distance of its own and runs no stat(1)", function()
		for _, f in ipairs(lua_files("lua")) do
			local src = net.read_file(f)
			assert.is_nil(src:find("d%[i %- 1%]%[j %- 1%]"), f .. ": a second edit distance")
			assert.is_nil(src:find("popen", 1, true), f .. ": a subprocess")
			assert.is_nil(src:find("stat %-L"), f .. ": stat(1)")
		end
	end)

	it("help, suggestions and doc/cli.md follow the table", function()
		local help = cli.run { "--help" }
		assert.are.equal(0, help.code, help.err)
		local doc = net.read_file(net.ROOT .. "/doc/cli.md")
		local synopsis = {}
		for name in ("\n" .. doc:match("^# [^\n]*\n\n(.-)\n\n")):gmatch("\n    tcpinspect (%l+) ") do synopsis[#synopsis + 1] = name end
		assert.are.same(names, synopsis, "doc/cli.md's synopsis")
		for _, c in ipairs(clim.COMMANDS) do
			assert.matches("\n   tcpinspect " .. c.name .. " %[options%] +" .. c.summary:gsub("%p", "%%%0") .. "\n",
				help.out)
			assert.truthy(doc:find("\n## " .. c.name .. "\n", 1, true), "doc/cli.md has no section " .. c.name)
			-- a typo: the second and third letters swapped
			local typo = c.name:sub(1, 1) .. c.name:sub(3, 3) .. c.name:sub(2, 2) .. c.name:sub(4)
			local r = cli.run { typo }
			assert.are.equal(2, r.code, r.err)
			assert.matches(("unknown command '%s'; did you mean '%s'%%? %%(commands: %s;"):format(typo, c.name,
				table.concat(names, ", ")), r.err)
		end
		local r = cli.run { "exprot" }
		assert.are.equal(2, r.code, r.err)
		assert.matches("unknown command 'exprot'; did you mean 'export'%?", r.err)
	end)

	it("core.suggest is the one rule: close names only, ties to the first", function()
		assert.are.equal("export", core.suggest("exprot", names))
		assert.are.equal("dport", core.suggest("dprot", { "sport", "dport" }))
		assert.are.equal("top", core.suggest("tpo", names))
		assert.is_nil(core.suggest("tx", { "top" })) -- 2 edits, 2 letters
		assert.is_nil(core.suggest("frobnicate", names))
		assert.is_nil(core.suggest("x", {}))
		assert.are.equal("abcd", core.suggest("abce", { "abcd", "abcf" }))
		assert.has_error(function() core.suggest("x", { 1 }) end)
		-- the C core's own suggestions follow the same rule
		local ok, err = pcall(tcpinspect.open, { filter = { dprot = 22 } })
		assert.is_false(ok)
		assert.matches("did you mean 'dport'%?", tostring(err))
	end)

	it("names network namespaces through core.netns_path, without a subprocess", function()
		local own = core.netns_inode()
		assert.are.equal(math.tointeger(net.must("stat -L -c %i /proc/self/ns/net"):match("%d+")), own)
		-- a /run/netns name, a process's, this namespace, and one not found
		local calls = {}
		local paths = { [11] = "/run/netns/blue", [12] = "/proc/1/ns/net" }
		local name_of, rescan = clim.netns_namer(function(ino)
			calls[#calls + 1] = ino
			return paths[ino]
		end)
		assert.are.equal("blue", name_of(11))
		local comm = net.read_file("/proc/1/comm")
		assert.are.equal(("pid 1 (%s)"):format(comm and comm:match("[^\n]+") or "?"), name_of(12))
		assert.are.equal("this namespace", name_of(own))
		assert.are.equal("?", name_of(13))
		assert.are.equal("?", name_of(0)) -- a replay without namespaces: no lookup
		assert.are.same({ 11, 12, 13 }, calls)
		-- known names are kept, an unknown one is looked up again after rescan()
		paths[13] = "/run/netns/red"
		assert.are.equal("?", name_of(13))
		rescan()
		assert.are.equal("red", name_of(13))
		assert.are.equal("blue", name_of(11))
		assert.are.same({ 11, 12, 13, 13 }, calls)
		-- the real lookup: the own namespace's path names it
		local path = assert(core.netns_path(own))
		assert.are.equal(own, math.tointeger(net.must("stat -L -c %i " .. net.q(path)):match("%d+")))
		local none, msg, errno = core.netns_path(1)
		assert.is_nil(none)
		assert.matches("^ENOENT: ", msg)
		assert.are.equal("ENOENT", tcpinspect.errname(errno))
		assert.has_error(function() core.netns_path(0) end)
	end)

	it("set_debug takes a boolean", function()
		assert.has_error(function() tcpinspect.set_debug("yes") end)
		assert.has_error(function() tcpinspect.set_debug() end)
		tcpinspect.set_debug(false)
	end)
end)

describe("-v: libbpf's log #kernel #cli", function()
	local function lines_of(err, pattern)
		local n = 0
		for l in err:gmatch("[^\n]+") do if l:find(pattern) then n = n + 1 end end
		return n
	end

	it("watch -v prints libbpf's whole log on stderr, and without -v nothing of it", function()
		local args = { "watch", "--mode", "tc", "-i", "lo", "--host", "127.0.0.254", "--duration", "1" }
		local quiet = cli.run(args)
		assert.are.equal(0, quiet.code, quiet.err)
		assert.are.equal(0, lines_of(quiet.err, "^libbpf: "), quiet.err)
		-- the ready line and the summary, nothing else
		assert.are.equal(2, #cli.lines(quiet.err), quiet.err)
		local v = { "-v" }
		for _, a in ipairs(args) do v[#v + 1] = a end
		local loud = cli.run(v)
		assert.are.equal(0, loud.code, loud.err)
		-- libbpf's debug level too: the object's sections, its maps, the programs loaded
		assert.matches("\nlibbpf: loading object 'tcpinspect_bpf' from buffer\n", "\n" .. loud.err)
		assert.is_true(lines_of(loud.err, "^libbpf: elf: section") > 5, loud.err)
		assert.is_true(lines_of(loud.err, "^libbpf: map '") > 3, loud.err)
		-- the rest of stderr is what it is without -v
		assert.are.equal(2, #cli.lines(loud.err) - lines_of(loud.err, "^libbpf: "))
		assert.are.equal(quiet.out, loud.out)
	end)

	it("tcpinspect.set_debug(true) does it for a script, set_debug(false) stops it", function()
		local code = [[
local tcpinspect = require "tcpinspect"
tcpinspect.set_debug(true)
local s = assert(tcpinspect.open { mode = "tc", dev = "lo" })
s:close()
io.stderr:write("MARK\n")
tcpinspect.set_debug(false)
s = assert(tcpinspect.open { mode = "tc", dev = "lo" })
s:close()
]]
		local f = net.tmpfile(".lua")
		net.write_file(f, code)
		local err = net.tmpfile(".err")
		local ok = os.execute(("cd %s && lua5.4 -e 'package.path=\"lua/?.lua;\"..package.path; " ..
			"package.cpath=\"build/?.so;\"..package.cpath' %s 2>%s"):format(net.q(net.ROOT), net.q(f), net.q(err)))
		local text = net.read_file(err) or ""
		assert.is_true(ok, text)
		local before, after = text:match("^(.*)MARK\n(.*)$")
		assert.is_string(before, text)
		assert.matches("libbpf: loading object 'tcpinspect_bpf' from buffer\n", before)
		assert.is_true(lines_of(before, "^libbpf: ") > 20, before)
		assert.are.equal("", after)
	end)
end)
