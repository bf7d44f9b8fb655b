-- SPDX-License-Identifier: GPL-2.0-only
-- Unit specs: the files a maintainer expects, kept true to the tree (issue
-- 20): LICENSE and an SPDX line in every source file; CHANGELOG.md, the
-- rockspec and tcpinspect._VERSION naming one version; Lua indented with
-- tabs; spec/README.md listing every spec file; doc/HACKING.md naming every
-- file of bpf/, luaext/, lua/, spec/support/ and tools/; CONTRIBUTING.md's
-- make commands real.  No root, no kernel; run from the checkout.

local SPDX = "SPDX-License-Identifier: GPL-2.0-only"

local net = require "support.net"
local read = net.read_file

local function lines(cmd)
	local p = assert(io.popen(cmd))
	local t = {}
	for l in p:lines() do t[#t + 1] = l end
	p:close()
	return t
end

-- the tracked files (git), or every file when this is not a git checkout
local function tracked()
	local t = lines("git ls-files 2>/dev/null")
	if #t == 0 then t = lines("find . -path ./build -prune -o -path ./.git -prune -o -type f -print | sed 's|^\\./||'") end
	local present = {}
	for _, f in ipairs(t) do
		if read(f) then present[#present + 1] = f end
	end
	table.sort(present)
	return present
end

local function set_of(list)
	local s = {}
	for _, v in ipairs(list) do s[v] = true end
	return s
end

-- The source files that must carry the SPDX line: issue 20's list (bpf/*.c
-- and *.h but not vmlinux, luaext/, lua/, spec/ Lua and the shell scripts of
-- spec/ and .ci/, examples) and the rest of the tree's code (spec/'s C and
-- Python, tools/, the Makefile, the rockspec).
local function source_files()
	local out = {}
	for _, f in ipairs(tracked()) do
		local src = f:match("^bpf/[^/]+%.[ch]$") or f:match("^luaext/[^/]+$") or f:match("^lua/.+%.lua$")
			or f:match("^examples/") or f:match("^tools/") or f:match("^%.ci/") or f == "Makefile"
			or f:match("^[^/]+%.rockspec$")
			or (f:match("^spec/") and not f:match("^spec/fixtures/") and not f:match("^spec/fuzz/corpus/")
				and not f:match("^spec/fuzz/regress/[^/]+/") and not f:match("%.md$")
				and (f:match("%.lua$") or f:match("%.[ch]$") or f:match("%.py$") or f:match("%.sh$")
					or (read(f) or ""):sub(1, 2) == "#!"))
		if src then out[#out + 1] = f end
	end
	return out
end

describe("LICENSE and SPDX lines", function()
	it("has the GPL-2.0 text as LICENSE, the license the rockspec names", function()
		local lic = assert(read("LICENSE"), "no LICENSE file")
		assert.matches("^%s*GNU GENERAL PUBLIC LICENSE\n%s*Version 2, June 1991\n", lic)
		assert.truthy(lic:find("END OF TERMS AND CONDITIONS", 1, true))
		local rs = assert(lines("ls *.rockspec")[1])
		assert.matches('\n%s*license = "GPL%-2%.0%-only"', read(rs))
	end)

	it("gives every source file the SPDX line in its first 3 lines", function()
		local files, missing = source_files(), {}
		assert(#files >= 140, "only " .. #files .. " source files found: is this the checkout?")
		for _, f in ipairs(files) do
			local head = table.concat({ (read(f) or ""):match("^([^\n]*)\n?([^\n]*)\n?([^\n]*)") }, "\n")
			if not head:find(SPDX, 1, true) then missing[#missing + 1] = f end
		end
		assert(#missing == 0, "no '" .. SPDX .. "' in the first 3 lines of (tools/add-spdx adds it):\n  "
			.. table.concat(missing, "\n  "))
	end)

	it("has tools/add-spdx covering the same files, and its check agrees", function()
		local listed = set_of(lines("tools/add-spdx --list"))
		local missing = {}
		for _, f in ipairs(source_files()) do
			if not listed[f] then missing[#missing + 1] = f end
		end
		assert(#missing == 0, "tools/add-spdx --list leaves out:\n  " .. table.concat(missing, "\n  "))
		assert.is_true(os.execute("tools/add-spdx --check >/dev/null"))
	end)
end)

describe("versions", function()
	local function changelog_versions()
		local cl = assert(read("CHANGELOG.md"), "no CHANGELOG.md")
		local t = {}
		for v, date in cl:gmatch("\n## %[(%d+%.%d+%.%d+)%] %- (%d%d%d%d%-%d%d%-%d%d)\n") do
			t[#t + 1] = { v = v, date = date }
		end
		return t, cl
	end
	local function semver(v)
		local a, b, c = v:match("^(%d+)%.(%d+)%.(%d+)$")
		return tonumber(a) * 1e6 + tonumber(b) * 1e3 + tonumber(c)
	end

	it("has a Keep a Changelog CHANGELOG.md: [Unreleased] first, then dated versions, newest first", function()
		local vs, cl = changelog_versions()
		assert.truthy(cl:find("keepachangelog.com", 1, true))
		assert.matches("\n## %[Unreleased%]\n", cl)
		assert(cl:find("\n## %[Unreleased%]") < cl:find("\n## %[%d"), "[Unreleased] must come first")
		assert(#vs >= 2, "expected at least two released versions")
		for i = 2, #vs do
			assert(semver(vs[i - 1].v) > semver(vs[i].v), vs[i - 1].v .. " listed above " .. vs[i].v)
			assert(vs[i - 1].date >= vs[i].date, vs[i - 1].v .. " dated before " .. vs[i].v)
		end
		for heading in cl:gmatch("\n### ([^\n]+)") do
			assert(({ Added = true, Changed = true, Deprecated = true, Removed = true, Fixed = true,
				Security = true })[heading], "not a Keep a Changelog section: ### " .. heading)
		end
	end)

	it("names the CHANGELOG's latest released version in the rockspec, its file name and _VERSION", function()
		local vs = changelog_versions()
		local latest = assert(vs[1]).v
		local specs = lines("ls *.rockspec")
		assert.are.same({ "tcpinspect-" .. latest .. "-1.rockspec" }, specs)
		local env = {}
		assert(load(read(specs[1]), "@" .. specs[1], "t", env))()
		assert.are.equal(latest .. "-1", env.version)
		assert.are.equal("tcpinspect " .. latest, require("tcpinspect")._VERSION)
	end)
end)

describe("Lua indentation", function()
	it("indents every Lua file with tabs (tools/lua-indent --check)", function()
		local files = {}
		for _, f in ipairs(tracked()) do
			if f:match("%.lua$") or f:match("%.rockspec$") or f == ".busted" or f == ".luacheckrc"
				or f == "tools/lua-indent" then
				files[#files + 1] = "'" .. f .. "'"
			end
		end
		assert(#files > 80, "only " .. #files .. " Lua files")
		local out = table.concat(lines("lua5.4 tools/lua-indent --check " .. table.concat(files, " ") .. " 2>&1"), "\n")
		assert(out == "", "indented with spaces (make format, or tools/lua-indent FILE):\n" .. out)
	end)

	it("has a check that finds space indentation outside long strings only", function()
		local path = os.tmpname()
		local f = assert(io.open(path, "w"))
		f:write("local x = [[\n  kept, a string\n]]\nif x then\n  print(x)\nend\n")
		f:close()
		local out = lines("lua5.4 tools/lua-indent --check " .. path)
		assert.are.same({ path .. ":5: indented with spaces" }, out)
		lines("lua5.4 tools/lua-indent " .. path)
		assert.are.equal("local x = [[\n  kept, a string\n]]\nif x then\n\tprint(x)\nend\n", read(path))
		os.remove(path)
	end)
end)

describe("spec/README.md", function()
	it("lists every spec file, and only files that exist", function()
		local readme = assert(read("spec/README.md"), "no spec/README.md")
		local listed = {}
		for f in readme:gmatch("`(spec/[%w_%-]+_spec%.lua)`") do listed[f] = true end
		local missing = {}
		for _, f in ipairs(lines("ls spec/*_spec.lua")) do
			if not listed[f] then missing[#missing + 1] = f end
			listed[f] = nil
		end
		assert(#missing == 0, "spec/README.md does not list:\n  " .. table.concat(missing, "\n  "))
		assert.are.same({}, listed)
	end)
end)

describe("doc/HACKING.md", function()
	it("names every file of bpf/, luaext/, lua/, spec/support/ and tools/", function()
		local doc = assert(read("doc/HACKING.md"))
		local missing = {}
		for _, f in ipairs(tracked()) do
			if f:match("^bpf/[^/]+$") or f:match("^luaext/") or f:match("^lua/") or f:match("^spec/support/")
				or f:match("^tools/") then
				local base = f:match("[^/]+$")
				-- a file is named by its path, or by its name in a list of its directory's files
				if not doc:find(f, 1, true) and not doc:find("`" .. base .. "`", 1, true) then
					missing[#missing + 1] = f
				end
			end
		end
		assert(#missing == 0, "doc/HACKING.md does not name:\n  " .. table.concat(missing, "\n  "))
	end)

	it("cites only files that are in the tree", function()
		local doc = assert(read("doc/HACKING.md"))
		local bad = {}
		-- every relative path with a directory and an extension (build/ output,
		-- /absolute ones and patterns aside)
		for path in doc:gmatch("%f[%w_%.%-/]([%w_%.%-]+/[%w_%./%-<>%*%$%(%)]+%.%a+)") do
			path = path:gsub("%.$", "")
			if not path:match("^build/") and not path:find("[%*<>%$]") and not path:find("NN")
				and not path:find("%.%.") and not read(path) then
				bad[#bad + 1] = path
			end
		end
		assert(#bad == 0, "doc/HACKING.md cites files not in the tree:\n  " .. table.concat(bad, "\n  "))
	end)
end)

describe("CONTRIBUTING.md", function()
	it("names only make targets the Makefile has", function()
		local doc = assert(read("CONTRIBUTING.md"), "no CONTRIBUTING.md")
		local mk = read("Makefile")
		local n = 0
		for target in doc:gmatch("make ([%w][%w%-]*)") do
			n = n + 1
			assert(mk:find("\n" .. (target:gsub("%-", "%%-")) .. ":"), "CONTRIBUTING.md: no make target '" .. target .. "'")
		end
		assert(n >= 8, "CONTRIBUTING.md names " .. n .. " make commands")
	end)
end)
